"""Pokes for clients that connected with ``debugPerf=true``: the debug timestamps."""

from __future__ import annotations

from .harness import START_MS, RoomDriver, mutation, present


def test_debug_perf_client_gets_the_buffer_and_debug_timestamps_of_live_mutations() -> None:
    driver = RoomDriver()
    driver.connect("c1", debug_perf=True)
    driver.turn()
    driver.push("c1", mutation(1, timestamp=START_MS - 10), timestamp=START_MS - 5)
    driver.advance(30)

    frames = driver.turn()

    [frame] = frames.poke_frames("c1")
    assert frame[1]["debugServerBufferMs"] == 0
    [poke] = frame[1]["pokes"]
    assert poke["timestamp"] == START_MS - 5  # offset 5 ms
    assert poke["debugOriginTimestamp"] == START_MS - 10
    assert poke["debugServerReceivedTimestamp"] == START_MS
    assert poke["debugServerSentTimestamp"] == START_MS + 30


def test_debug_timestamps_survive_presence_riding_on_the_mutation_poke() -> None:
    driver = RoomDriver()
    driver.connect("c1", debug_perf=True)
    driver.turn()
    driver.connect("c2")
    driver.push("c1", 1)

    frames = driver.turn()

    [poke] = frames.pokes("c1")
    assert poke["presence"] == present("c2")
    assert poke["debugOriginTimestamp"] == START_MS
    assert poke["debugServerReceivedTimestamp"] == START_MS
    assert poke["debugServerSentTimestamp"] == START_MS


def test_debug_fields_are_omitted_on_pokes_without_a_mutation_timestamp() -> None:
    driver = RoomDriver()
    driver.connect("c1", debug_perf=True)
    driver.push("c1", mutation(1, timestamp=START_MS - 1000))  # not live

    frames = driver.turn()

    for poke in frames.pokes("c1"):
        assert not {"timestamp", "debugOriginTimestamp"} & poke.keys()


def test_clients_without_debug_perf_get_no_debug_fields() -> None:
    driver = RoomDriver()
    driver.connect("debug", debug_perf=True)
    driver.connect("plain")
    driver.push("debug", 1)
    driver.push("plain", 1)

    frames = driver.turn()

    assert "debugServerBufferMs" not in frames.poke_frames("plain")[0][1]
    for poke in frames.pokes("plain"):
        assert not [key for key in poke if key.startswith("debug")]
    assert all("debugOriginTimestamp" in p for p in frames.pokes("debug")[1:])
