"""``/healthz`` answers while the process runs; ``/readyz`` says whether this node should get
traffic: not while draining, nor with its storage, lease renewal or control bus failing."""

from __future__ import annotations

import pytest

from cluster.in_process import SharedLeaseStore, node
from reflectd.errors import StorageError
from reflectd.server.settings import ServerSettings
from reflectd.storage import MemoryStore

from .conftest import make_app
from .harness import Harness, serve

pytestmark = pytest.mark.anyio


async def test_healthz_and_readyz_answer_ok_on_a_running_server(server: Harness) -> None:
    async with server.http() as http:
        for path in ("/healthz", "/readyz"):
            response = await http.get(path)
            assert (response.status_code, response.text) == (200, "ok")


async def test_readyz_answers_503_while_the_server_drains_and_healthz_still_answers() -> None:
    async with serve(make_app()) as harness:
        await harness.connect("c1")
        await harness.server.shutdown()  # as SIGTERM does; uvicorn still listens
        async with harness.http() as http:
            ready = await http.get("/readyz")
            alive = await http.get("/healthz")
    assert ready.status_code == 503
    assert "draining" in ready.text
    assert alive.status_code == 200


class _UnreachableStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.reachable = True

    async def get_room(self, room_id: str):  # type: ignore[no-untyped-def]
        if not self.reachable:
            raise StorageError("connection refused")
        return await super().get_room(room_id)


async def test_readyz_answers_503_when_the_storage_fails_and_200_once_it_answers_again() -> None:
    store = _UnreachableStore()
    settings = ServerSettings(db="memory://")
    async with serve(make_app(), settings, store=store) as harness, harness.http() as http:
        store.reachable = False
        down = await http.get("/readyz")
        store.reachable = True
        up = await http.get("/readyz")
    assert down.status_code == 503
    assert down.text == "storage: StorageError\n"
    assert up.status_code == 200


async def test_readyz_reports_a_failing_lease_renewal_and_a_closed_control_bus() -> None:
    store = SharedLeaseStore()
    async with node(make_app(), store, "a") as a, a.http() as http:
        assert (await http.get("/readyz")).status_code == 200
        assert a.server.registry is not None and a.server.control is not None
        a.server.registry.lease_renewal_failing = True
        await a.server.control.close()
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.text.splitlines() == [
        "leases: the last renewal failed",
        "control bus: not connected",
    ]
