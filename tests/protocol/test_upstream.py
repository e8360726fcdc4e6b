"""Parsing upstream frames strictly: valid frames become typed messages, anything
else raises ``InvalidMessage`` saying what was wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reflectd.errors import InvalidMessage
from reflectd.protocol.codec import parse_upstream
from reflectd.protocol.messages import Mutation, PingBody, PullBody, PushBody

PUSH: dict[str, Any] = {
    "clientGroupID": "g1",
    "mutations": [
        {"id": 1, "clientID": "c1", "name": "setX", "args": {"v": [1, None]}, "timestamp": 5.5},
    ],
    "pushVersion": 1,
    "schemaVersion": "",
    "timestamp": 1_700_000_000_125,
    "requestID": "req",
}


def _frame(kind: str, body: Any) -> str:
    return json.dumps([kind, body])


def _push_with(**changes: Any) -> str:
    return _frame("push", {**PUSH, **changes})


def _mutation_with(**changes: Any) -> str:
    return _push_with(mutations=[{**PUSH["mutations"][0], **changes}])


def _rejection(frame: str | bytes) -> str:
    with pytest.raises(InvalidMessage) as raised:
        parse_upstream(frame)
    assert raised.value.message
    assert raised.value.kind == "InvalidMessage"
    assert not raised.value.closes_socket
    return raised.value.message


# ----------------------------------------------------------------------------- valid


def test_ping_parses() -> None:
    assert parse_upstream('["ping",{}]') == PingBody()


def test_push_parses_into_typed_mutations() -> None:
    push = parse_upstream(_frame("push", PUSH).encode())
    assert push == PushBody(
        client_group_id="g1",
        mutations=[
            Mutation(id=1, client_id="c1", name="setX", args={"v": [1, None]}, timestamp=5.5)
        ],
        push_version=1,
        schema_version="",
        timestamp=1_700_000_000_125.0,
        request_id="req",
    )


def test_push_accepts_any_json_as_args_including_null() -> None:
    for args in (None, 0, "s", [], {"deep": [{"x": 1.5}]}, True):
        push = parse_upstream(_mutation_with(args=args))
        assert isinstance(push, PushBody)
        assert push.mutations[0].args == args


def test_push_with_no_mutations_parses() -> None:
    push = parse_upstream(_push_with(mutations=[]))
    assert isinstance(push, PushBody) and push.mutations == []


def test_pull_parses_with_a_null_or_numeric_cookie() -> None:
    assert parse_upstream(
        _frame("pull", {"clientGroupID": "g", "cookie": None, "requestID": "r"})
    ) == PullBody(client_group_id="g", cookie=None, request_id="r")
    pull = parse_upstream(_frame("pull", {"clientGroupID": "g", "cookie": 12, "requestID": "r"}))
    assert isinstance(pull, PullBody) and pull.cookie == 12


def test_whitespace_around_the_frame_is_accepted() -> None:
    assert parse_upstream(' \n["ping" , {} ]\t') == PingBody()


# ----------------------------------------------------------------------------- invalid


def test_invalid_json_is_rejected_as_an_invalid_frame() -> None:
    assert _rejection('["ping",{}') == "invalid frame: Input data was truncated"
    assert "JSON is malformed" in _rejection("not json")
    assert "truncated" in _rejection("")


def test_unknown_message_type_is_named() -> None:
    assert _rejection('["pong",{}]') == "unknown message type 'pong'"
    assert "'connected'" in _rejection('["connected",{"wsid":""}]')


def test_frame_of_the_wrong_length_says_so() -> None:
    assert "length 2" in _rejection('["ping"]')
    assert "length 2" in _rejection('["ping",{},{}]')
    assert "length 2" in _rejection("[]")


def test_frame_that_is_not_an_array_says_so() -> None:
    assert "Expected `array`, got `object`" in _rejection('{"ping":{}}')
    assert "Expected `array`" in _rejection('"ping"')


def test_message_type_that_is_not_a_string_says_so() -> None:
    assert "Expected `str`, got `int`" in _rejection("[1,{}]")


def test_unknown_field_is_named() -> None:
    assert "unknown field `x`" in _rejection('["ping",{"x":1}]')
    assert "unknown field `extra`" in _rejection(_push_with(extra=1))
    message = _rejection(_mutation_with(extra=True))
    assert "unknown field `extra`" in message and "$.mutations[0]" in message


def test_missing_field_is_named() -> None:
    body = dict(PUSH)
    del body["requestID"]
    assert "missing required field `requestID`" in _rejection(_frame("push", body))
    mutation = dict(PUSH["mutations"][0])
    del mutation["args"]
    assert "missing required field `args`" in _rejection(_push_with(mutations=[mutation]))


def test_wrong_type_names_the_expected_type_and_the_path() -> None:
    message = _rejection(_mutation_with(id="1"))
    assert "Expected `int`, got `str`" in message and "$.mutations[0].id" in message
    assert "got `bool`" in _rejection(_mutation_with(id=True))
    assert "got `float`" in _rejection(_mutation_with(id=1.5))
    assert "$.timestamp" in _rejection(_push_with(timestamp="now"))
    assert "$.clientGroupID" in _rejection(_push_with(clientGroupID=None))
    assert "$.mutations" in _rejection(_push_with(mutations={}))
    assert "Expected `object`, got `null`" in _rejection('["ping",null]')


def test_null_for_a_required_field_is_rejected() -> None:
    assert _rejection(_frame("pull", {"clientGroupID": "g", "cookie": 1, "requestID": None}))


def test_a_negative_pull_cookie_is_rejected() -> None:
    frame = _frame("pull", {"clientGroupID": "g", "cookie": -1, "requestID": "r"})
    assert "Expected `int` >= 0 - at `$.cookie`" in _rejection(frame)


def test_numbers_javascript_reads_as_infinity_are_rejected() -> None:
    frame = _push_with(timestamp=0).replace('"timestamp": 0', '"timestamp": 1e400')
    assert "Number out of range - at `$.timestamp`" in _rejection(frame)
    assert _rejection('["pull",{"clientGroupID":"g","cookie":1e400,"requestID":"r"}]')


def test_nan_and_infinity_literals_are_not_json() -> None:
    assert _rejection('["push",{"timestamp":NaN}]')
    assert _rejection('["push",{"timestamp":Infinity}]')


def test_invalid_utf8_is_rejected() -> None:
    assert _rejection(b'["ping",{}]\xff')
    assert "can't decode" in _rejection(b'["p\xc3\x28ng",{}]')
    assert _rejection(b'["ping",{"\xed\xa0\x80":1}]')  # an encoded surrogate


def test_lone_surrogates_are_rejected() -> None:
    assert _rejection('["ping",{"\\ud800":1}]')
    assert _rejection('["ping",{}]\ud800')
    assert _rejection(_mutation_with(name="\ud800"))


def test_deeply_nested_json_is_rejected_not_a_crash() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    assert _rejection(deep)
    assert _rejection(f'["ping",{deep}]').endswith("JSON is nested too deeply")
    assert _rejection(_mutation_with(args=None).replace("null", deep))


def test_moderately_nested_args_parse() -> None:
    nested = "[" * 200 + "]" * 200
    push = parse_upstream(_mutation_with(args=None).replace("null", nested))
    assert isinstance(push, PushBody)


def test_huge_integers_parse_or_are_rejected_cleanly() -> None:
    huge = 10**400
    try:
        push = parse_upstream(_mutation_with(id=huge))
    except InvalidMessage as e:
        assert e.message
    else:
        assert isinstance(push, PushBody) and push.mutations[0].id == huge
