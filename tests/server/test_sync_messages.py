"""Messages on a connected socket: pokes, push, ping, pull, invalid frames."""

from __future__ import annotations

import json

import pytest

from .harness import Harness, now_ms, push_frame

pytestmark = pytest.mark.anyio


async def test_connect_sends_connected_with_wsid_and_timestamp_then_the_first_poke(
    server: Harness,
) -> None:
    before = now_ms()
    client = await server.connect(first_poke=False, wsid="my-socket")
    [connected] = client.frames
    assert connected[1]["wsid"] == "my-socket"
    assert before - 1000 <= connected[1]["timestamp"] <= now_ms() + 1000
    [poke] = await client.next_pokes()
    assert (poke["baseCookie"], poke["cookie"]) == (None, 0)
    assert poke["presence"] == [{"op": "clear"}, {"op": "put", "key": "c1", "value": 1}]
    assert client.presence == {"c1"}


async def test_connect_without_wsid_sends_an_empty_wsid(server: Harness) -> None:
    params = {"clientID": "c1", "clientGroupID": "g1", "roomID": "r1", "userID": "u1"}
    client = await server.open({**params, "ts": "1", "lmid": "0"})
    assert (await client.expect_connected())["wsid"] == ""


async def test_push_is_confirmed_by_a_poke_with_its_patch_and_last_mutation_id(
    server: Harness,
) -> None:
    client = await server.connect()
    await client.push("put", {"key": "a", "value": {"n": 1}})
    [poke] = await client.next_pokes()
    timestamp = poke.pop("timestamp")
    assert abs(timestamp - now_ms()) < 5000
    assert poke == {
        "baseCookie": 0,
        "cookie": 1,
        "lastMutationIDChanges": {"c1": 1},
        "patch": [{"op": "put", "key": "a", "value": {"n": 1}}],
        "presence": [],
    }
    assert await server.values() == {"a": {"n": 1}}


async def test_each_mutation_gets_its_own_version_and_poke(server: Harness) -> None:
    client = await server.connect()
    frames = [client.push_frame("put", {"key": f"k{i}", "value": i}) for i in range(3)]
    for frame in frames:
        await client.send(frame)
    pokes = []
    while client.lmid < 3:
        pokes += await client.next_pokes()
    assert [(p["baseCookie"], p["cookie"]) for p in pokes] == [(0, 1), (1, 2), (2, 3)]
    assert [p["lastMutationIDChanges"] for p in pokes] == [{"c1": 1}, {"c1": 2}, {"c1": 3}]
    assert client.data == {"k0": 0, "k1": 1, "k2": 2}


async def test_delete_is_poked_as_a_del_op_and_stored_as_a_tombstone(server: Harness) -> None:
    client = await server.connect()
    await client.mutate("put", {"key": "a", "value": 1})
    [poke] = await client.mutate("delete", {"key": "a"})
    assert poke["patch"] == [{"op": "del", "key": "a"}]
    snapshot = await server.snapshot()
    assert snapshot.entries["a"].deleted
    assert snapshot.entries["a"].version == 2


async def test_duplicate_mutation_is_silently_ignored(server: Harness) -> None:
    client = await server.connect()
    await client.mutate("put", {"key": "a", "value": 1})
    await client.push("put", {"key": "a", "value": 2}, mutation_id=1)
    await client.expect_silence()
    await client.ping()
    assert await server.values() == {"a": 1}


@pytest.mark.parametrize("name", ["fail", "noSuchMutator"])
async def test_failing_or_unknown_mutator_still_consumes_the_id_with_an_empty_patch(
    server: Harness, name: str
) -> None:
    client = await server.connect()
    [poke] = await client.mutate(name, {"x": 1})
    assert poke["patch"] == []
    assert poke["lastMutationIDChanges"] == {"c1": 1}
    assert await server.values() == {}
    assert (await server.snapshot()).clients["c1"].last_mutation_id == 1


async def test_a_value_with_an_integer_javascript_reads_as_infinity_is_not_stored_or_poked(
    server: Harness,
) -> None:
    """A 4,000-digit integer argument used to be stored and poked, though the client reads
    it as Infinity: ``set`` refuses it, and the mutation is skipped."""
    watcher = await server.connect("watcher")
    client = await server.connect("c1")
    [poke] = await client.mutate("put", {"key": "huge", "value": [1, 10**3999]})
    assert poke["patch"] == []
    assert await server.values() == {}
    await client.mutate("put", {"key": "largest", "value": 2**1024 - 2**970 - 1})
    await watcher.sync_until(lambda c: "largest" in c.data)
    assert watcher.data == {"largest": 2**1024 - 2**970 - 1}  # JavaScript: 1.797...e308


async def test_ping_is_answered_with_exactly_pong_and_an_empty_object(server: Harness) -> None:
    client = await server.connect()
    await client.send(["ping", {}])
    assert await client.ws.recv() == '["pong",{}]'


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[",
        '["ping",{}] trailing',
        "{}",
        "[]",
        '["ping"]',
        '["ping",{},1]',
        "null",
        '["subscribe",{}]',
        '["ping",{"extra":1}]',
        '["ping",null]',
        '["pull",{"clientGroupID":"g1","cookie":null}]',
        '["pull",{"clientGroupID":"g1","cookie":"1","requestID":"r"}]',
        '["pull",{"clientGroupID":"g1","cookie":1,"requestID":"r","patch":[]}]',
        '["push",{"clientGroupID":"g1","mutations":[],"pushVersion":1,"schemaVersion":"",'
        '"timestamp":null,"requestID":"r"}]',
        '["push",{"clientGroupID":"g1","mutations":[{"id":1,"clientID":"c1","name":"put",'
        '"args":{"key":"a","value":1},"timestamp":1,"extra":true}],"pushVersion":1,'
        '"schemaVersion":"","timestamp":1,"requestID":"r"}]',
        '["push",{"clientGroupID":"g1","mutations":[{"id":"1","clientID":"c1","name":"put",'
        '"args":{"key":"a","value":1},"timestamp":1}],"pushVersion":1,"schemaVersion":"",'
        '"timestamp":1,"requestID":"r"}]',
    ],
)
async def test_invalid_frame_gets_invalid_message_and_the_socket_stays_open(
    server: Harness, frame: str
) -> None:
    client = await server.connect(client_group_id="g1")
    before = await server.snapshot()
    await client.ws.send(frame)
    await client.expect_error("InvalidMessage")
    await client.ping()
    await client.mutate("put", {"key": "after", "value": True})
    after = await server.snapshot()
    assert set(after.entries) == {"after"}
    assert after.clients["c1"].last_mutation_id == before.clients["c1"].last_mutation_id + 1


async def test_binary_frame_gets_invalid_message_and_the_socket_stays_open(
    server: Harness,
) -> None:
    client = await server.connect()
    await client.ws.send(json.dumps(["ping", {}]).encode())
    await client.expect_error("InvalidMessage")
    await client.ping()


async def test_push_with_an_id_gap_is_refused_with_invalid_push_and_closed(
    server: Harness,
) -> None:
    client = await server.connect()
    await client.mutate("put", {"key": "a", "value": 1})
    await client.push("put", {"key": "b", "value": 2}, mutation_id=3)
    await client.expect_error(
        "InvalidPush",
        "Push contains unexpected mutation id 3 for client c1. Expected mutation id 2.",
    )
    await client.expect_closed()
    assert await server.values() == {"a": 1}


async def test_push_with_a_gap_after_valid_mutations_stores_none_of_them(server: Harness) -> None:
    client = await server.connect()
    mutations = [
        {
            "id": i,
            "clientID": "c1",
            "name": "put",
            "args": {"key": f"k{i}", "value": i},
            "timestamp": now_ms(),
        }
        for i in (1, 2, 4)
    ]
    await client.send(push_frame(mutations, client.client_group_id))
    await client.expect_error("InvalidPush")
    await client.expect_closed()
    snapshot = await server.snapshot()
    assert snapshot.entries == {}
    assert snapshot.clients["c1"].last_mutation_id == 0


async def test_push_for_a_client_of_another_group_is_refused_with_invalid_push(
    server: Harness,
) -> None:
    other = await server.connect("c2", client_group_id="g2")
    await other.close()
    client = await server.connect("c1", client_group_id="g1")
    await client.push("put", {"key": "a", "value": 1}, client_id="c2")
    await client.expect_error(
        "InvalidPush",
        "Push for client c1 with clientGroupID g1 contains mutation for client c2 which "
        "belongs to clientGroupID g2.",
    )
    await client.expect_closed()


async def test_mutations_of_another_client_of_the_group_are_applied_and_confirmed(
    server: Harness,
) -> None:
    """Mutation recovery: a client pushes for another client of its group."""
    client = await server.connect("c1", client_group_id="g1")
    await client.push("put", {"key": "a", "value": 1}, client_id="c0", mutation_id=1)
    [poke] = await client.next_pokes()
    assert poke["lastMutationIDChanges"] == {"c0": 1}
    record = (await server.snapshot()).clients["c0"]
    assert (record.client_group_id, record.last_mutation_id, record.user_id) == ("g1", 1, "u1")


async def test_second_connection_of_a_client_closes_the_first_silently(server: Harness) -> None:
    first = await server.connect(client_group_id="g1")
    await first.mutate("put", {"key": "a", "value": 1})
    second = await server.connect(client_group_id="g1", base_cookie=first.cookie, lmid=1)
    await first.expect_closed()
    assert all(frame[0] != "error" for frame in first.frames)
    await second.mutate("put", {"key": "b", "value": 2})
    assert second.data == {"b": 2}
    assert second.presence == {"c1"}


async def test_first_connections_close_does_not_disconnect_the_second(server: Harness) -> None:
    watcher = await server.connect("watcher")
    first = await server.connect(client_group_id="g1")
    await watcher.sync_until(lambda c: c.presence == {"watcher", "c1"})
    second = await server.connect(client_group_id="g1", base_cookie=first.cookie)
    await first.expect_closed()
    await second.mutate("put", {"key": "still-here", "value": True})
    await watcher.sync_until(lambda c: "still-here" in c.data)
    assert watcher.presence == {"watcher", "c1"}
    assert (await server.snapshot()).connected_clients == {"watcher", "c1"}


async def test_pull_response_has_exactly_cookie_request_id_and_changes(server: Harness) -> None:
    pusher = await server.connect("c1", client_group_id="g1")
    await pusher.mutate("put", {"key": "a", "value": 1})
    await pusher.mutate("put", {"key": "b", "value": 2})
    puller = await server.connect("c9", client_group_id="g9")
    assert puller.cookie == 3  # the version bump that told c1 of c9's presence
    for cookie, changes in [(None, {"c1": 2}), (1, {"c1": 2}), (2, {})]:
        await puller.send(["pull", {"clientGroupID": "g1", "cookie": cookie, "requestID": "p1"}])
        raw = await puller.ws.recv()
        assert json.loads(raw) == [
            "pull",
            {"cookie": puller.cookie, "requestID": "p1", "lastMutationIDChanges": changes},
        ]


async def test_pull_of_a_room_without_mutations_answers_cookie_zero(server: Harness) -> None:
    client = await server.connect()
    await client.send(["pull", {"clientGroupID": "gx", "cookie": None, "requestID": "p"}])
    assert await client.expect("pull") == {
        "cookie": 0,
        "requestID": "p",
        "lastMutationIDChanges": {},
    }


async def test_debug_perf_client_gets_the_debug_fields(server: Harness) -> None:
    client = await server.connect(debugPerf="true")
    await client.push("put", {"key": "a", "value": 1})
    body = await client.expect("poke")
    assert "debugServerBufferMs" in body
    [poke] = body["pokes"]
    assert {"debugOriginTimestamp", "debugServerReceivedTimestamp", "debugServerSentTimestamp"} <= (
        poke.keys()
    )


async def test_reconnect_with_the_saved_cookie_fast_forwards_deletes(server: Harness) -> None:
    writer = await server.connect("w")
    await writer.mutate("put", {"key": "a", "value": 1})
    await writer.mutate("put", {"key": "b", "value": 2})
    reader = await server.connect("r")
    assert reader.data == {"a": 1, "b": 2}
    await reader.close()
    await writer.mutate("delete", {"key": "a"})
    reader = await server.reconnect(reader)
    assert reader.data == {"b": 2}
