"""Bundling a server module (node/bundle.mjs) as Reflect's CLI did: imports resolved through
tsconfig ``paths``/``baseUrl``, ``./x.js`` naming ``./x.ts`` and package.json ``imports``;
``process.env`` replaced; errors that stop loading with file:line (tests/js/apps/bundling,
tests/js/apps/broken)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from reflectd.js import JsRuntime
from reflectd.js.runtime import JsLoadError

from ..harness import APPS, REPO_ROOT, JsRoom, start_runtime

Start = Callable[..., JsRuntime]

TEMPLATE = (
    REPO_ROOT
    / "tests/interop/node/node_modules/@rocicorp/reflect/bin/templates/create/reflect-server"
    / "index.ts"
)


def test_imports_resolve_through_tsconfig_paths_js_extensions_and_package_imports(
    runtime_of: Start,
) -> None:
    room = JsRoom(runtime_of("bundling/index.ts"))

    out = room.out("compute", {"n": 5})

    assert out == {
        "double": 10,  # '@lib/math': tsconfig paths
        "triple": 15,  # 'lib/triple': tsconfig baseUrl
        "greeting": "HELLO",  # '#greeting', '#shared/shout': package.json imports
        "nodeEnv": "production",
        "processEnv": {},
    }
    assert room.runtime.mutator_names == {"compute"}  # from './names.js', which is names.ts


def test_node_env_is_development_under_dev(node_ready: str) -> None:
    runtime = JsRuntime(
        APPS / "bundling" / "index.ts",
        mode="development",
        env={},
        max_key_bytes=2048,
        max_value_bytes=128 * 1024,
    )
    try:
        assert JsRoom(runtime).out("compute", {"n": 1})["nodeEnv"] == "development"
    finally:
        runtime.close()


def test_the_bundles_inputs_are_its_source_files(runtime_of: Start) -> None:
    runtime = runtime_of("bundling/index.ts")
    base = APPS / "bundling"
    assert sorted(runtime.shape.inputs) == sorted(
        str(base / name)
        for name in [
            "index.ts",
            "names.ts",
            "lib/math.ts",
            "lib/triple.ts",
            "shared/greeting.ts",
            "shared/shout.ts",
        ]
    )


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        ("syntax.ts", r'^syntax\.ts:3:28: Unexpected ";"$'),
        ("imports_syntax.ts", r'^syntax_dep\.ts:2:24: Expected identifier but found ";"$'),
        (
            "node_fs.ts",
            r'^node_fs\.ts:2:28: Could not resolve "node:fs": Node\.js built-in modules are not '
            r"available",
        ),
        (
            "missing_package.ts",
            r'^missing_package\.ts:2:17: Could not resolve "@reflectd-test/not-installed": is the '
            r"package installed\?",
        ),
        (
            "bad_reflect_import.ts",
            r'^bad_reflect_import\.ts:2:9: No matching export in "@rocicorp/reflect/server" for '
            r'import "notExported"$',
        ),
        ("no_mutators.ts", r"no_mutators\.ts: the options have no mutators object$"),
        ("throws.ts", r"^Error: the module refuses to load\n    at .*throws\.ts:\d+:\d+$"),
    ],
)
def test_a_module_that_cannot_load_stops_with_where_and_why(
    node_ready: str, app: str, expected: str
) -> None:
    with pytest.raises(JsLoadError) as raised:
        start_runtime(f"broken/{app}")

    message = str(raised.value)
    assert re.search(expected, message), message
    assert "reflectd/js/node" not in message  # nothing of the runtime's own files


def test_bundle_and_load_time_of_the_reflect_create_template(node_ready: str) -> None:
    """Measured, not asserted: the template imports packages (@rocicorp/rails, nanoid) that
    are not installed beside it, so loading it in place fails on the first of them."""
    if not TEMPLATE.is_file():
        pytest.skip("tests/interop/node/node_modules is not installed (scripts/bootstrap-node)")
    started = time.monotonic()
    try:
        runtime = start_runtime(TEMPLATE)
    except JsLoadError as e:
        outcome = f"failed: {e}"
    else:
        outcome = f"loaded: mutators {sorted(runtime.mutator_names)}"
        runtime.close()
    elapsed_ms = (time.monotonic() - started) * 1000
    print(f"\nreflect create template, bundled and loaded in place: {elapsed_ms:.0f} ms, {outcome}")
