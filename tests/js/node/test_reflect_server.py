"""What a module gets from '@rocicorp/reflect/server' (node/reflect-server.js): the options
builder, logLevel, the log sinks and createReflectServer, used as Reflect's CLI scripts used
them (tests/js/apps/builder.ts)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from reflectd.js import JsRuntime

from ..harness import JsRoom, written

Start = Callable[..., JsRuntime]


def app_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "reflectd.app"]


def test_create_reflect_server_worker_as_default_export_serves_the_options(
    runtime_of: Start,
) -> None:
    runtime = runtime_of("builder.ts")

    assert runtime.mutator_names == {"talk"}
    assert runtime.shape.max_mutations_per_turn == 7
    assert written(JsRoom(runtime).mutate("talk", {"text": "hi"})) == {"talked": "hi"}


def test_log_level_default_drops_debug_and_each_line_is_logged_once(
    runtime_of: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="reflectd.app")
    room = JsRoom(runtime_of("builder.ts"))

    room.mutate("talk", {"text": "hi"})

    assert room.runtime.shape.log_level == "info"
    assert app_lines(caplog) == [
        (logging.INFO, "room r1 client c1: info hi"),
        (logging.ERROR, "room r1 client c1: error hi"),
    ]


def test_log_level_reads_log_level_from_the_env(
    runtime_of: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="reflectd.app")
    room = JsRoom(runtime_of("builder.ts", env={"LOG_LEVEL": "debug"}))

    room.mutate("talk", {"text": "hi"})

    assert room.runtime.shape.log_level == "debug"
    assert [m for _, m in app_lines(caplog)] == [
        "room r1 client c1: debug hi",
        "room r1 client c1: info hi",
        "room r1 client c1: error hi",
    ]


def test_datadog_logging_says_once_that_logs_stay_in_reflectds_log(
    runtime_of: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="reflectd.app")
    runtime_of("builder.ts", env={"DATADOG_LOGS_API_KEY": "k", "DATADOG_METRICS_API_KEY": "k"})

    assert app_lines(caplog) == [
        (
            logging.WARNING,
            "Datadog logging is not supported by reflectd: the app's logs go to reflectd's log",
        ),
        (
            logging.WARNING,
            "Datadog metrics is not supported by reflectd: the app's logs go to reflectd's log",
        ),
    ]
