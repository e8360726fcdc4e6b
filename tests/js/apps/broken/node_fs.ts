// Node.js built-ins are not provided.
import {readFileSync} from "node:fs";
export default {mutators: {a() { readFileSync; }}};
