// A package that is not installed.
import {x} from "@reflectd-test/not-installed";
export default {mutators: {a() { x; }}};
