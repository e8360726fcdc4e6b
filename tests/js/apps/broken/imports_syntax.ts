// Imports a module with a syntax error.
import {broken} from "./syntax_dep.ts";
export default {mutators: {a() { broken; }}};
