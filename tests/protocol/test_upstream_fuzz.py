"""Hostile upstream frames: whatever arrives, ``parse_upstream`` returns a message or raises
``InvalidMessage`` with a message, and nothing else."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reflectd.errors import InvalidMessage
from reflectd.protocol.codec import parse_upstream
from reflectd.protocol.messages import PingBody, PullBody, PushBody

_fuzz = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**30), max_value=10**30).map(lambda n: n * 10**300)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
_json = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=15,
)

#: ``Number.MAX_SAFE_INTEGER``: the bound of every integer the server takes from a client
MAX_SAFE = 2**53 - 1
_timestamps = st.floats(min_value=-MAX_SAFE, max_value=MAX_SAFE) | st.integers(0, MAX_SAFE)

_mutation = st.fixed_dictionaries(
    {
        "id": st.integers(min_value=0, max_value=MAX_SAFE),
        "clientID": st.text(max_size=5),
        "name": st.text(max_size=5),
        "args": _json,
        "timestamp": _timestamps,
    }
)
_push = st.fixed_dictionaries(
    {
        "clientGroupID": st.text(max_size=5),
        "mutations": st.lists(_mutation, max_size=3),
        "pushVersion": st.integers(0, 2),
        "schemaVersion": st.text(max_size=3),
        "timestamp": _timestamps,
        "requestID": st.text(max_size=5),
    }
)
_pull = st.fixed_dictionaries(
    {
        "clientGroupID": st.text(max_size=5),
        "cookie": st.none() | st.integers(min_value=0, max_value=MAX_SAFE),
        "requestID": st.text(max_size=5),
    }
)
_valid_frames = (
    st.just(["ping", {}])
    | st.tuples(st.just("push"), _push).map(list)
    | st.tuples(st.just("pull"), _pull).map(list)
)


def _parses_or_is_invalid(frame: str | bytes) -> Any:
    try:
        return parse_upstream(frame)
    except InvalidMessage as e:
        assert isinstance(e.message, str) and e.message
        return None


@_fuzz
@given(st.binary(max_size=64))
def test_random_bytes_parse_or_raise_invalid_message(frame: bytes) -> None:
    _parses_or_is_invalid(frame)


@_fuzz
@given(st.text(max_size=64))
def test_random_text_including_lone_surrogates_parses_or_raises_invalid_message(
    frame: str,
) -> None:
    _parses_or_is_invalid(frame)


@_fuzz
@given(_json)
def test_random_json_parses_or_raises_invalid_message(value: Any) -> None:
    _parses_or_is_invalid(json.dumps(value))


@_fuzz
@given(
    st.sampled_from(["ping", "push", "pull", "pong", "", "PING"]),
    _json,
    st.lists(_json, max_size=2),
)
def test_random_bodies_and_extra_tuple_items_parse_or_raise_invalid_message(
    kind: str, body: Any, extra: list[Any]
) -> None:
    _parses_or_is_invalid(json.dumps([kind, body, *extra]))


@_fuzz
@given(_valid_frames)
def test_valid_frames_parse_to_their_values(frame: list[Any]) -> None:
    message = parse_upstream(json.dumps(frame).encode())
    kind, body = frame
    if kind == "ping":
        assert message == PingBody()
    elif kind == "pull":
        assert isinstance(message, PullBody)
        assert (message.client_group_id, message.cookie) == (body["clientGroupID"], body["cookie"])
    else:
        assert isinstance(message, PushBody)
        assert [m.id for m in message.mutations] == [m["id"] for m in body["mutations"]]
        assert [m.args for m in message.mutations] == [m["args"] for m in body["mutations"]]


def _damage(frame: list[Any], data: st.DataObject) -> Any:
    """One random change to (a copy of) a valid frame: drop, add or retype a field."""
    frame = copy.deepcopy(frame)
    containers: list[Any] = []

    def collect(value: Any) -> None:
        if isinstance(value, (dict, list)):
            containers.append(value)
            for item in value.values() if isinstance(value, dict) else value:
                collect(item)

    collect(frame)
    target = data.draw(st.sampled_from(containers))
    action = data.draw(st.sampled_from(["drop", "add", "retype", "wrap", "truncate"]))
    if isinstance(target, dict):
        keys = sorted(target)
        if action == "add" or not keys:
            target[data.draw(st.text(max_size=6))] = data.draw(_json)
        elif action == "drop":
            del target[data.draw(st.sampled_from(keys))]
        elif action == "wrap":
            key = data.draw(st.sampled_from(keys))
            target[key] = [target[key]]
        else:
            target[data.draw(st.sampled_from(keys))] = data.draw(_json)
    elif target:
        index = data.draw(st.integers(0, len(target) - 1))
        if action == "drop" or action == "truncate":
            del target[index]
        elif action == "add":
            target.append(data.draw(_json))
        else:
            target[index] = data.draw(_json)
    else:
        target.append(data.draw(_json))
    return frame


@_fuzz
@given(_valid_frames, st.data())
def test_damaged_valid_frames_parse_or_raise_invalid_message(
    frame: list[Any], data: st.DataObject
) -> None:
    _parses_or_is_invalid(json.dumps(_damage(frame, data)))


@_fuzz
@given(_valid_frames, st.data())
def test_truncated_valid_frames_raise_invalid_message(
    frame: list[Any], data: st.DataObject
) -> None:
    encoded = json.dumps(frame).encode()
    cut = data.draw(st.integers(0, len(encoded) - 1))
    assert _parses_or_is_invalid(encoded[:cut]) is None


@settings(max_examples=20, deadline=None)
@given(st.integers(1_000, 200_000), st.sampled_from(["[", '{"a":', "[{}, "]))
def test_deep_nesting_anywhere_raises_invalid_message(depth: int, opener: str) -> None:
    closer = {"[": "]", '{"a":': "}", "[{}, ": "]"}[opener]
    deep = opener * depth + "0" + closer * depth
    for frame in (
        deep,
        f'["ping",{deep}]',
        f'["push",{{"clientGroupID":"g","mutations":[{{"id":1,"clientID":"c","name":"n",'
        f'"args":{deep},"timestamp":1}}],"pushVersion":1,"schemaVersion":"","timestamp":1,'
        f'"requestID":"r"}}]',
    ):
        _parses_or_is_invalid(frame)


# ------------------------------------------------------------- integers at their boundaries

#: the int64 and JavaScript safe-integer boundaries, and a step past each
BOUNDARIES = [
    0,
    1,
    -1,
    MAX_SAFE,
    MAX_SAFE + 1,
    -MAX_SAFE,
    -MAX_SAFE - 1,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64,
    10**400,
]
#: every numeric field of every upstream message: (frame kind, path, non-negative integer?)
NUMERIC_FIELDS = [
    ("push", ("mutations", 0, "id"), True),
    ("push", ("mutations", 0, "timestamp"), False),
    ("push", ("pushVersion",), True),
    ("push", ("timestamp",), False),
    ("pull", ("cookie",), True),
]
_one_mutation_push = _push.filter(lambda body: len(body["mutations"]) >= 1)


def _accepted(value: int, non_negative: bool) -> bool:
    return (0 if non_negative else -MAX_SAFE) <= value <= MAX_SAFE


@_fuzz
@given(st.sampled_from(NUMERIC_FIELDS), st.sampled_from(BOUNDARIES), st.data())
def test_every_numeric_field_is_accepted_exactly_within_the_safe_integer_range(
    field: tuple[str, tuple[str | int, ...], bool], value: int, data: st.DataObject
) -> None:
    kind, path, non_negative = field
    body = data.draw(_one_mutation_push if kind == "push" else _pull)
    target: Any = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    frame = json.dumps([kind, body])
    if _accepted(value, non_negative):
        message: Any = parse_upstream(frame)
        for step in path:
            message = message[step] if isinstance(step, int) else getattr(message, _attr(step))
        assert message == value
    else:
        try:
            parse_upstream(frame)
        except InvalidMessage as e:
            assert f"`$.{_json_path(path)}`" in e.message, e.message
        else:
            raise AssertionError(f"{kind} with {_json_path(path)} = {value} was accepted")


def _attr(name: str) -> str:
    return {"pushVersion": "push_version"}.get(name, name)


def _json_path(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)[1:]


@pytest.mark.parametrize("text", ["1e400", "-1e400", "1e300", "9007199254740992.5"])
def test_a_timestamp_beyond_the_safe_range_or_overflowing_is_invalid(text: str) -> None:
    frame = (
        '["push",{"clientGroupID":"g","mutations":[],"pushVersion":1,"schemaVersion":"",'
        f'"timestamp":{text},"requestID":"r"}}]'
    )
    with pytest.raises(InvalidMessage, match=r"\$\.timestamp"):
        parse_upstream(frame)
