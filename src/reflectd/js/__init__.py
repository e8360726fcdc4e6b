"""Running a Reflect app's own server module (TypeScript or JavaScript) on reflectd."""

from reflectd.js.loader import load_server_module
from reflectd.js.runtime import JsLimits, JsRuntime, is_server_module

__all__ = ["JsLimits", "JsRuntime", "is_server_module", "load_server_module"]
