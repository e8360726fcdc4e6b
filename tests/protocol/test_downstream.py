"""Encoding of downstream frames: exactly the fields the client's strict schemas accept
(an extra field makes the client drop the message), optional fields omitted rather than
null."""

from __future__ import annotations

import json
from typing import Any, Literal, get_args

import msgspec
import pytest
from msgspec import Raw

from reflectd.errors import ErrorKind
from reflectd.protocol.codec import (
    PONG_FRAME,
    PokeFrames,
    encode_connected,
    encode_error,
    encode_patch,
    encode_poke,
    encode_pull_response,
)
from reflectd.protocol.messages import (
    EMPTY_PATCH,
    ClearOp,
    ConnectedBody,
    DelOp,
    Poke,
    PokeBody,
    PresencePutOp,
    PullResponseBody,
    PutOp,
)


def _poke(**fields: Any) -> Poke:
    defaults: dict[str, Any] = {
        "base_cookie": 3,
        "cookie": 4,
        "last_mutation_id_changes": {"c1": 7},
        "patch": Raw(b'[{"op":"put","key":"k","value":{"a":[1,null]}},{"op":"del","key":"d"}]'),
        "presence": [],
    }
    return Poke(**{**defaults, **fields})


def _round_trip(frame: bytes, kind: str, body_type: type[Any]) -> Any:
    decoded_kind, body = msgspec.json.decode(frame, type=tuple[Literal[kind], body_type])  # type: ignore[valid-type]
    assert decoded_kind == kind
    return body


# ----------------------------------------------------------------------------- connected


def test_connected_with_timestamp_encodes_wsid_and_timestamp() -> None:
    body = ConnectedBody(wsid="w1", timestamp=1_700_000_000_000)
    frame = encode_connected(body)
    assert frame == b'["connected",{"wsid":"w1","timestamp":1700000000000}]'
    assert _round_trip(frame, "connected", ConnectedBody) == body


def test_connected_without_timestamp_omits_it() -> None:
    assert encode_connected(ConnectedBody(wsid="")) == b'["connected",{"wsid":""}]'


# ----------------------------------------------------------------------------- pong, error


def test_pong_is_exactly_pong_and_an_empty_object() -> None:
    assert PONG_FRAME == b'["pong",{}]'


@pytest.mark.parametrize("kind", get_args(ErrorKind))
def test_error_frames_are_three_tuples_of_error_kind_and_message(kind: ErrorKind) -> None:
    frame = encode_error(kind, 'bad "thing" é')
    assert json.loads(frame) == ["error", kind, 'bad "thing" é']


def test_error_kinds_are_exactly_the_clients_eleven() -> None:
    assert set(get_args(ErrorKind)) == {
        "AuthInvalidated",
        "ClientNotFound",
        "InvalidConnectionRequest",
        "InvalidConnectionRequestBaseCookie",
        "InvalidConnectionRequestLastMutationID",
        "InvalidMessage",
        "InvalidPush",
        "RoomClosed",
        "RoomNotFound",
        "Unauthorized",
        "VersionNotSupported",
    }


# ----------------------------------------------------------------------------- pull


def test_pull_response_has_exactly_cookie_request_id_and_last_mutation_id_changes() -> None:
    body = PullResponseBody(cookie=17, request_id="r", last_mutation_id_changes={"a": 4})
    frame = encode_pull_response(body)
    assert frame == b'["pull",{"cookie":17,"requestID":"r","lastMutationIDChanges":{"a":4}}]'
    assert _round_trip(frame, "pull", PullResponseBody) == body


# ----------------------------------------------------------------------------- poke


def test_poke_without_optional_fields_omits_them_and_always_has_presence() -> None:
    frame = encode_poke(PokeBody(request_id="q", pokes=[_poke(patch=EMPTY_PATCH)]))
    assert frame == (
        b'["poke",{"requestID":"q","pokes":[{"baseCookie":3,"cookie":4,'
        b'"lastMutationIDChanges":{"c1":7},"patch":[],"presence":[]}]}]'
    )


def test_poke_from_null_encodes_base_cookie_as_null() -> None:
    frame = encode_poke(PokeBody(request_id="q", pokes=[_poke(base_cookie=None)]))
    assert json.loads(frame)[1]["pokes"][0]["baseCookie"] is None


def test_poke_with_every_optional_field_encodes_all_of_them() -> None:
    poke = _poke(
        timestamp=100,
        debug_origin_timestamp=90,
        debug_server_received_timestamp=95,
        debug_server_sent_timestamp=120,
        presence=[ClearOp(), PresencePutOp(key="c1"), DelOp(key="c2")],
    )
    body = PokeBody(request_id="q", pokes=[poke], debug_server_buffer_ms=25)

    frame = encode_poke(body)

    assert json.loads(frame) == [
        "poke",
        {
            "requestID": "q",
            "debugServerBufferMs": 25,
            "pokes": [
                {
                    "baseCookie": 3,
                    "cookie": 4,
                    "lastMutationIDChanges": {"c1": 7},
                    "patch": [
                        {"op": "put", "key": "k", "value": {"a": [1, None]}},
                        {"op": "del", "key": "d"},
                    ],
                    "presence": [
                        {"op": "clear"},
                        {"op": "put", "key": "c1", "value": 1},
                        {"op": "del", "key": "c2"},
                    ],
                    "timestamp": 100,
                    "debugOriginTimestamp": 90,
                    "debugServerReceivedTimestamp": 95,
                    "debugServerSentTimestamp": 120,
                }
            ],
        },
    ]
    assert _round_trip(frame, "poke", PokeBody) == body


def test_poke_with_only_a_timestamp_omits_the_debug_fields() -> None:
    frame = encode_poke(PokeBody(request_id="q", pokes=[_poke(timestamp=5)]))
    [poke] = json.loads(frame)[1]["pokes"]
    assert set(poke) == {
        "baseCookie",
        "cookie",
        "lastMutationIDChanges",
        "patch",
        "presence",
        "timestamp",
    }
    assert "debugServerBufferMs" not in json.loads(frame)[1]


def test_poke_message_holds_several_pokes_in_order() -> None:
    pokes = [_poke(base_cookie=n, cookie=n + 1, patch=EMPTY_PATCH) for n in range(3)]
    frame = encode_poke(PokeBody(request_id="q", pokes=pokes))
    assert [(p["baseCookie"], p["cookie"]) for p in json.loads(frame)[1]["pokes"]] == [
        (0, 1),
        (1, 2),
        (2, 3),
    ]


def test_a_turns_poke_frames_are_exactly_the_poke_body_of_their_pokes() -> None:
    shared = _poke(last_mutation_id_changes={})
    lists = [
        [_poke(presence=[ClearOp(), PresencePutOp(key="c1")]), shared],
        [shared],
        [_poke(base_cookie=None, timestamp=7), shared, _poke(patch=EMPTY_PATCH)],
    ]
    frames = PokeFrames('req "1" é')
    for pokes in lists:
        frame = frames.frame(pokes)
        assert frame == encode_poke(PokeBody(request_id='req "1" é', pokes=pokes))
        assert _round_trip(frame, "poke", PokeBody) == PokeBody(request_id='req "1" é', pokes=pokes)


def test_clients_with_the_same_pokes_share_one_frame() -> None:
    first, second = _poke(), _poke(cookie=5)
    frames = PokeFrames("q")
    frame = frames.frame([first, second])
    assert frames.frame([first, second]) is frame
    assert frames.frame([first]) is not frame


def test_a_patch_is_raw_json_of_its_ops_and_an_empty_one_is_the_shared_empty_patch() -> None:
    patch = encode_patch([PutOp(key="k", value=Raw(b"[1]")), DelOp(key="d")])
    assert patch == Raw(b'[{"op":"put","key":"k","value":[1]},{"op":"del","key":"d"}]')
    assert encode_patch([]) is EMPTY_PATCH


def test_patch_ops_encode_with_their_op_tag_first() -> None:
    assert msgspec.json.encode(ClearOp()) == b'{"op":"clear"}'
    assert msgspec.json.encode(DelOp(key="k")) == b'{"op":"del","key":"k"}'
    assert msgspec.json.encode(PresencePutOp(key="c")) == b'{"op":"put","key":"c","value":1}'


def test_versions_and_ids_encode_as_integers_js_reads_exactly() -> None:
    big = 2**53 - 1
    frame = encode_poke(
        PokeBody(
            request_id="q",
            pokes=[_poke(base_cookie=big - 1, cookie=big, last_mutation_id_changes={"c": big})],
        )
    )
    assert b'"baseCookie":9007199254740990,"cookie":9007199254740991' in frame
    assert b'{"c":9007199254740991}' in frame
