"""The endpoints outside rooms (the version at ``/``, the canary checks, client metrics and
logs), the JSON 404/405 envelope and CORS, as the original answers them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from reflectd.server import http as http_module
from reflectd.server.settings import ServerSettings

from .conftest import make_app
from .harness import Harness, serve

pytestmark = pytest.mark.anyio

PREFLIGHT = {
    "Origin": "https://app.example",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type",
}


async def test_root_reports_the_reflect_server_version(server: Harness) -> None:
    async with server.http() as http:
        response = await http.get("/")
    assert response.status_code == 200
    assert response.json()["reflectServerVersion"] == "0.39.202402230127+b70f6b"


async def test_canary_get_answers_hello(server: Harness) -> None:
    async with server.http() as http:
        response = await http.get("/api/canary/v0/get", params={"id": "abc"})
    assert (response.status_code, response.text) == (200, "hello")


async def test_canary_websocket_sends_hello(server: Harness) -> None:
    url = f"{server.ws_url}/api/canary/v0/websocket?id=1&wSecWebSocketProtocolHeader=false"
    async with connect(url) as ws:
        assert await ws.recv() == "hello"
        assert ws.subprotocol is None


async def test_canary_websocket_echoes_the_subprotocol(server: Harness) -> None:
    url = f"{server.ws_url}/api/canary/v0/websocket?id=1&wSecWebSocketProtocolHeader=true"
    async with connect(url, subprotocols=["check-1"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "check-1"
        assert await ws.recv() == "hello"


async def test_canary_websocket_requiring_a_subprotocol_without_one_gets_400(
    server: Harness,
) -> None:
    url = f"{server.ws_url}/api/canary/v0/websocket?id=1&wSecWebSocketProtocolHeader=true"
    with pytest.raises(InvalidStatus) as caught:
        await connect(url)
    assert caught.value.response.status_code == 400
    assert bytes(caught.value.response.body) == b"expected Sec-WebSocket-Protocol"


async def test_canary_websocket_closes_itself_after_its_lifetime(
    server: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_module, "CANARY_SOCKET_LIFETIME_S", 0.1)
    async with connect(f"{server.ws_url}/api/canary/v0/websocket?id=1") as ws:
        assert await ws.recv() == "hello"
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 2)


async def test_canary_websocket_without_upgrade_gets_400_expected_websocket(
    server: Harness,
) -> None:
    async with server.http() as http:
        response = await http.get("/api/canary/v0/websocket", params={"id": "1"})
    assert (response.status_code, response.text) == (400, "expected websocket")


VALID_REPORT = {
    "series": [
        {
            "metric": "time_to_connect_ms",
            "points": [[1700000000, [123.5]]],
            "host": "app.example",
            "tags": ["version:0.39.202402230127"],
        },
        {"metric": "not_connected", "type": "gauge", "points": [[1700000000, 1]]},
        {"metric": "connect_errors", "type": "count", "points": [[1700000000.5, 2]]},
        {"metric": "d", "type": "distribution", "points": [[1, [1, 2, 3]]]},
    ]
}


async def test_metrics_report_with_a_valid_body_is_accepted(server: Harness) -> None:
    async with server.http() as http:
        response = await http.post(
            "/api/metrics/v0/report",
            params={"clientID": "c", "roomID": "r", "userID": "u", "requestID": "x"},
            content=json.dumps(VALID_REPORT),
        )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "{}",
        '{"series": {}}',
        '{"series": [], "extra": 1}',
        '{"series": [{"metric": "m"}]}',
        '{"series": [{"metric": "m", "points": [[1, 2]]}]}',
        '{"series": [{"metric": "m", "type": "gauge", "points": [[1, [2]]]}]}',
        '{"series": [{"metric": "m", "type": "histogram", "points": [[1, 2]]}]}',
        '{"series": [{"metric": "m", "points": [[1, [2]]], "extra": 1}]}',
        '{"series": [1]}',
        '{"series": [{"metric": "m", "points": [[1, [2]]], "host": null}]}',
        '{"series": [{"metric": "m", "points": [[1, [2]]], "tags": null}]}',
        '{"series": [{"metric": "m", "points": [[1, [2]]], "type": null}]}',
        '{"series": [{"metric": "m", "type": "count", "points": [[1, 2]], "host": null}]}',
    ],
)
async def test_metrics_report_with_an_invalid_body_gets_400_json(
    server: Harness, body: str
) -> None:
    async with server.http() as http:
        response = await http.post("/api/metrics/v0/report", content=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["resource"]) == (400, "request")


async def test_client_logs_are_accepted(server: Harness) -> None:
    lines = [{"level": "error", "message": "boom"}, {"level": "info", "message": "hi"}]
    body = "\n".join(json.dumps(line) for line in lines)
    async with server.http() as http:
        response = await http.post(
            "/api/logs/v0/log",
            params={"service": "reflect", "host": "h", "ddtags": "version:0.39"},
            content=body,
        )
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/nope", "/api", "/api/sync/v1/connect/", "/api/canary/v0/get/"])
async def test_unknown_path_gets_404_json_envelope(server: Harness, path: str) -> None:
    async with server.http() as http:
        response = await http.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": {"code": 404, "resource": "request", "message": "Unknown or invalid URL"}
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/"),
        ("POST", "/api/canary/v0/get"),
        ("GET", "/api/sync/v1/close"),
        ("GET", "/api/metrics/v0/report"),
        ("PUT", "/api/logs/v0/log"),
    ],
)
async def test_wrong_method_gets_405_json_envelope(server: Harness, method: str, path: str) -> None:
    async with server.http() as http:
        response = await http.request(method, path)
    assert response.status_code == 405
    assert response.json() == {
        "error": {"code": 405, "resource": "request", "message": "unsupported method"}
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/api/canary/v0/get"),
        ("GET", "/nope"),
        ("POST", "/"),
        ("GET", "/api/sync/v1/connect"),
        ("GET", "/api/sync/x/connect"),
        ("POST", "/api/sync/v1/close"),
        ("POST", "/api/metrics/v0/report"),
        ("POST", "/api/logs/v0/log"),
    ],
)
async def test_every_response_carries_the_cors_header(
    server: Harness, method: str, path: str
) -> None:
    async with server.http() as http:
        response = await http.request(method, path)
    assert response.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("path", ["/", "/api/sync/v1/close", "/api/metrics/v0/report", "/nope"])
async def test_full_preflight_is_answered_with_the_allow_headers(
    server: Harness, path: str
) -> None:
    async with server.http() as http:
        response = await http.options(path, headers=PREFLIGHT)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-methods"] == "GET,HEAD,POST,OPTIONS"
    assert response.headers["access-control-max-age"] == "86400"
    assert response.headers["access-control-allow-headers"] == "content-type"


@pytest.mark.parametrize("missing", list(PREFLIGHT))
async def test_partial_preflight_gets_the_allow_header(server: Harness, missing: str) -> None:
    headers = {k: v for k, v in PREFLIGHT.items() if k != missing}
    async with server.http() as http:
        response = await http.options("/api/sync/v1/close", headers=headers)
    assert response.status_code == 200
    assert response.headers["allow"] == "GET, HEAD, POST, OPTIONS"
    assert "access-control-allow-methods" not in response.headers


async def test_static_dir_is_served_under_app_and_app_redirects_to_it(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<h1>my app</h1>")
    settings = ServerSettings(db="memory://", static_dir=str(tmp_path))
    async with serve(make_app(), settings) as server, server.http() as http:
        page = await http.get("/app/")
        assert (page.status_code, page.text) == (200, "<h1>my app</h1>")
        redirect = await http.get("/app")
        assert redirect.status_code == 307
        assert redirect.headers["location"].endswith("/app/")
