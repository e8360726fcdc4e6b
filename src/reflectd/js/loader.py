"""Loading a Reflect server module as a reflectd ``App``."""

from __future__ import annotations

import logging
from pathlib import Path

from reflectd.app import App, env_from_environ
from reflectd.errors import JsLoadError, ServerModuleError
from reflectd.js.runtime import JsLimits, JsRuntime, Mode

logger = logging.getLogger(__name__)


def load_server_module(
    path: str,
    *,
    mode: Mode = "production",
    max_key_bytes: int,
    max_value_bytes: int,
    limits: JsLimits | None = None,
) -> App:
    """An ``App`` whose mutators and handlers are those of the module at ``path``: a ``.ts``,
    ``.tsx``, ``.js`` or ``.mjs`` file whose default export is ``makeOptions`` or the options.
    """
    entry = Path(path)
    if not entry.is_file():
        raise ServerModuleError(f"no such file: {path}")
    env = env_from_environ()
    try:
        runtime = JsRuntime(
            entry,
            mode=mode,
            env=env,
            max_key_bytes=max_key_bytes,
            max_value_bytes=max_value_bytes,
            limits=limits,
        )
    except JsLoadError as e:
        raise ServerModuleError(str(e)) from None
    shape = runtime.shape
    if shape.allow_unconfirmed_writes:
        logger.info(
            "%s: allowUnconfirmedWrites is ignored: reflectd sends nothing before the writes "
            "it depends on are durable",
            path,
        )
    return App(
        mutators={},
        auth_handler=runtime.authenticate if shape.auth_handler else None,
        env=env,
        runtime=runtime,
        max_mutations_per_turn=shape.max_mutations_per_turn,
    )
