"""Repeated failed REST authentication from one address is slowed down (rest/throttle.py)."""

from __future__ import annotations

import httpx
import pytest

from reflectd.server.rest.throttle import FailedAuthThrottle

from .conftest import APP_ID, ENV_KEY, TIMEOUT_S, assert_unauthorized, in_process, served

pytestmark = pytest.mark.anyio

LIMIT = 3
WRONG = {"Authorization": "Basic not-a-key"}
GOOD = {"Authorization": f"Basic {ENV_KEY}"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------ the limiter


def test_the_nth_failure_is_allowed_and_then_the_address_waits_for_the_window() -> None:
    clock = Clock()
    throttle = FailedAuthThrottle(LIMIT, window_s=60, clock=clock)
    for _ in range(LIMIT):
        assert throttle.retry_after("a") is None
        throttle.failed("a")
    clock.now += 20.5
    assert throttle.retry_after("a") == 40
    assert throttle.retry_after("b") is None  # another address is not affected
    clock.now += 39.5
    assert throttle.retry_after("a") is None  # the window is over: a fresh start
    throttle.failed("a")
    assert throttle.retry_after("a") is None


def test_failures_in_an_expired_window_do_not_add_up() -> None:
    clock = Clock()
    throttle = FailedAuthThrottle(LIMIT, window_s=60, clock=clock)
    for _ in range(LIMIT - 1):
        throttle.failed("a")
    clock.now += 61
    throttle.failed("a")
    assert throttle.retry_after("a") is None


def test_a_limit_of_zero_never_throttles() -> None:
    throttle = FailedAuthThrottle(0)
    for _ in range(1000):
        throttle.failed("a")
    assert throttle.retry_after("a") is None


def test_memory_stays_bounded_whatever_the_number_of_addresses() -> None:
    throttle = FailedAuthThrottle(1, max_sources=100)
    for i in range(10_000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(throttle._failures) == 100
    assert throttle.retry_after("10.0.39.15") is not None  # the latest are kept
    assert throttle.retry_after("10.0.0.0") is None  # the oldest forgotten


# ------------------------------------------------------------------------------ over HTTP


@pytest.mark.parametrize("shape", ["apps", "original"])
async def test_after_the_limit_an_address_gets_429_even_with_a_good_key(shape: str) -> None:
    path, wrong, good = (
        (f"/v1/apps/{APP_ID}/rooms", WRONG, GOOD)
        if shape == "apps"
        else ("/api/v1/rooms", {"x-reflect-api-key": "nope"}, {"x-reflect-api-key": ENV_KEY})
    )
    async with in_process(max_failed_auth_per_minute=LIMIT) as rest:
        assert (await rest.http.get(path, headers=good)).status_code == 200  # not counted
        for _ in range(LIMIT):
            assert_unauthorized(await rest.http.get(path, headers=wrong), shape)
        refused = await rest.http.get(path, headers=good)
        assert refused.status_code == 429
        assert 0 < int(refused.headers["retry-after"]) <= 60
        if shape == "apps":
            assert refused.json()["error"]["code"] == 429
            assert refused.json()["error"]["message"].startswith(
                "Too many failed authentications from 127.0.0.1; retry in "
            )
        else:
            assert refused.text == "Too Many Requests"
        # another address is served as usual
        other = httpx.ASGITransport(app=rest.server.asgi, client=("198.51.100.9", 4000))
        async with httpx.AsyncClient(transport=other, base_url="http://reflectd.test") as http:
            assert (await http.get(path, headers=good)).status_code == 200


async def test_behind_a_trusted_proxy_each_forwarded_client_is_counted_apart() -> None:
    async with served(max_failed_auth_per_minute=LIMIT) as live:
        path = f"/v1/apps/{APP_ID}/rooms"

        def via(client: str) -> dict[str, str]:
            return {"X-Forwarded-For": client}  # as the proxy (on 127.0.0.1) reports it

        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{live.port}", timeout=TIMEOUT_S
        ) as http:
            for _ in range(LIMIT):
                response = await http.get(path, headers={**WRONG, **via("203.0.113.7")})
                assert response.status_code == 401
            response = await http.get(path, headers={**GOOD, **via("203.0.113.7")})
            assert response.status_code == 429
            assert "203.0.113.7" in response.json()["error"]["message"]
            response = await http.get(path, headers={**GOOD, **via("203.0.113.8")})
            assert response.status_code == 200
            assert (await http.get(path, headers=GOOD)).status_code == 200  # the proxy itself
