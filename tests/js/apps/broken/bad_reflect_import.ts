// A name @rocicorp/reflect/server does not export.
import {notExported} from "@rocicorp/reflect/server";
export default {mutators: {a() { notExported; }}};
