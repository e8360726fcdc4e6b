"""Loading the user's ``App``: ``path/to/file.py:attribute`` or ``module:attribute`` names a
Python app; ``path/to/index.ts`` (``.tsx``, ``.js``, ``.mjs``) a Reflect server module."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from reflectd.app import App
from reflectd.engine.handlers import EngineSettings
from reflectd.errors import AppLoadError as AppLoadError  # in the exception tree
from reflectd.errors import ServerModuleError

if TYPE_CHECKING:
    from reflectd.js.runtime import JsLimits


def load_app(
    spec: str,
    *,
    dev: bool = False,
    engine: EngineSettings | None = None,
    js_limits: JsLimits | None = None,
) -> App:
    """The app ``spec`` names; ``dev`` bundles a server module for development."""
    from reflectd.js import is_server_module, load_server_module

    if is_server_module(spec):
        engine = engine or EngineSettings()
        try:
            return load_server_module(
                spec,
                mode="development" if dev else "production",
                max_key_bytes=engine.max_key_bytes,
                max_value_bytes=engine.max_value_bytes,
                limits=js_limits,
            )
        except ServerModuleError as e:
            raise AppLoadError(str(e)) from None
    module_name, _, attribute = spec.rpartition(":")
    if not module_name or not attribute:
        raise AppLoadError(
            f"APP must be path/to/file.py:attribute or module:attribute, got {spec!r}"
        )
    if module_name.endswith(".py") or "/" in module_name:
        path = Path(module_name).resolve()
        if not path.is_file():
            raise AppLoadError(f"no such file: {module_name}")
        sys.path.insert(0, str(path.parent))
        name = f"reflectd_app_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise AppLoadError(f"cannot import {module_name}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
    else:
        sys.path.insert(0, str(Path.cwd()))
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            raise AppLoadError(f"cannot import module {module_name!r}: {e}") from None
    if not hasattr(module, attribute):
        raise AppLoadError(f"{module_name} has no attribute {attribute!r} (APP is {spec})")
    app = getattr(module, attribute)
    if not isinstance(app, App):
        raise AppLoadError(f"{spec} is {type(app).__name__}, not a reflectd.App")
    return app
