"""Loading the user's ``App`` from ``path/to/file.py:attribute`` or ``module:attribute``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from reflectd.app import App


class AppLoadError(Exception):
    """The APP argument does not name an ``App``."""


def load_app(spec: str) -> App:
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
    app = getattr(module, attribute, None)
    if not isinstance(app, App):
        raise AppLoadError(f"{spec} is {type(app).__name__}, not a reflectd.App")
    return app
