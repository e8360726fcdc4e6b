"""The harness itself: its strict schemas and its client model must catch what the real client
would choke on, or the other tests prove nothing."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from .harness import ClientModel, InvalidFrame, assert_frames_valid, poke

VALID_POKE: dict[str, Any] = {
    "baseCookie": None,
    "cookie": 0,
    "lastMutationIDChanges": {"c1": 1},
    "patch": [{"op": "put", "key": "k", "value": {"any": [None]}}, {"op": "del", "key": "d"}],
    "presence": [{"op": "clear"}, {"op": "put", "key": "c1", "value": 1}],
    "timestamp": 1.5,
}


def _poke_frame(**changes: Any) -> str:
    return json.dumps(["poke", {"requestID": "r", "pokes": [{**VALID_POKE, **changes}]}])


@pytest.mark.parametrize(
    "frame",
    [
        '["connected",{"wsid":""}]',
        '["connected",{"wsid":"w","timestamp":1}]',
        '["pong",{}]',
        '["error","InvalidPush","message"]',
        '["pull",{"cookie":1,"requestID":"r","lastMutationIDChanges":{}}]',
        _poke_frame(),
        json.dumps(["poke", {"requestID": "r", "pokes": [], "debugServerBufferMs": 0}]),
    ],
)
def test_valid_downstream_frames_pass(frame: str) -> None:
    assert assert_frames_valid(frame) == json.loads(frame)


@pytest.mark.parametrize(
    ("frame", "complaint"),
    [
        ('["connected",{"wsid":"w","timestamp":null}]', "null for an optional field"),
        ('["connected",{"wsid":"w","extra":1}]', "unknown field"),
        ('["connected",{}]', "missing field"),
        ('["pong",{"x":1}]', "unknown field"),
        ('["pong"]', "tuple of length 2"),
        ('["error","InvalidPush"]', "tuple of length 3"),
        ('["error","NoSuchKind","m"]', "unknown error kind"),
        ('["error","InvalidPush",null]', "expected a string"),
        ('["pull",{"cookie":1,"requestID":"r","lastMutationIDChanges":{},"patch":[]}]', "unknown"),
        ('["hello",{}]', "unknown downstream message type"),
        ('{"poke":1}', "not [type, ...]"),
        ("[NaN]", "not JSON"),
        (_poke_frame(timestamp=None), "null for an optional field"),
        (_poke_frame(extra=1), "unknown field"),
        (_poke_frame(cookie=17.0), "expected an integer"),
        (_poke_frame(cookie=2**53), "safe integers"),
        (_poke_frame(baseCookie="1"), "expected an integer"),
        (_poke_frame(lastMutationIDChanges={"c": "1"}), "expected an integer"),
        (_poke_frame(patch=[{"op": "put", "key": "k"}]), "missing field"),
        (_poke_frame(patch=[{"op": "del", "key": "k", "value": 1}]), "unknown field"),
        (_poke_frame(patch=[{"op": "clear", "key": "k"}]), "unknown field"),
        (_poke_frame(patch=[{"op": "replace", "key": "k"}]), "not a patch op"),
        (_poke_frame(presence=None), "null for an optional field"),
    ],
)
def test_invalid_downstream_frames_fail(frame: str, complaint: str) -> None:
    with pytest.raises(InvalidFrame, match=re.escape(complaint)):
        assert_frames_valid(frame)


def _receive_pokes(model: ClientModel, *pokes: dict[str, Any]) -> None:
    model.receive(json.dumps(["poke", {"requestID": "r", "pokes": list(pokes)}]).encode())


def _connected_model() -> ClientModel:
    model = ClientModel("c1", "g1", "u1")
    model.receive(b'["connected",{"wsid":""}]')
    return model


def test_client_model_applies_a_gap_free_chain_of_pokes() -> None:
    model = _connected_model()
    _receive_pokes(
        model,
        poke(None, 0, patch=[{"op": "put", "key": "a", "value": 1}], presence=[{"op": "clear"}]),
        poke(0, 1, lmids={"c1": 1}, patch=[{"op": "put", "key": "b", "value": 2}]),
        poke(
            1,
            2,
            patch=[{"op": "del", "key": "a"}],
            presence=[{"op": "put", "key": "x", "value": 1}],
        ),
    )
    assert (model.cookie, model.data, model.lmid, model.presence) == (
        2,
        {"b": 2},
        1,
        {"c1", "x"},
    )


def test_client_model_fails_on_a_base_cookie_that_is_not_its_cookie() -> None:
    model = _connected_model()
    with pytest.raises(AssertionError, match="unexpected base cookie"):
        _receive_pokes(model, poke(0, 1))


def test_client_model_tells_null_from_zero() -> None:
    model = _connected_model()
    _receive_pokes(model, poke(None, 0))
    with pytest.raises(AssertionError, match="unexpected base cookie"):
        _receive_pokes(model, poke(None, 1))


def test_client_model_fails_on_a_gap_inside_one_poke_message() -> None:
    model = _connected_model()
    with pytest.raises(AssertionError, match="unexpected base cookie"):
        _receive_pokes(model, poke(None, 0), poke(1, 2))


def test_client_model_fails_on_a_cookie_going_back() -> None:
    model = _connected_model()
    _receive_pokes(model, poke(None, 5))
    with pytest.raises(AssertionError, match="not after"):
        _receive_pokes(model, poke(5, 4))


def test_client_model_fails_on_a_last_mutation_id_going_back() -> None:
    model = _connected_model()
    _receive_pokes(model, poke(None, 0, lmids={"c1": 3}))
    with pytest.raises(AssertionError, match="goes back"):
        _receive_pokes(model, poke(0, 1, lmids={"c1": 2}))


def test_client_model_fails_on_a_poke_without_presence_or_with_a_data_clear() -> None:
    model = _connected_model()
    no_presence = poke(None, 0)
    del no_presence["presence"]
    with pytest.raises(AssertionError, match="always sends presence"):
        _receive_pokes(model, no_presence)
    with pytest.raises(AssertionError, match="data patch"):
        _receive_pokes(model, poke(None, 0, patch=[{"op": "clear"}]))


def test_client_model_fails_on_a_poke_before_connected() -> None:
    model = ClientModel("c1", "g1", "u1")
    with pytest.raises(AssertionError, match="before connected"):
        _receive_pokes(model, poke(None, 0))


def test_client_model_presence_always_includes_itself_and_resets_on_close() -> None:
    model = _connected_model()
    _receive_pokes(model, poke(None, 0, presence=[{"op": "clear"}, {"op": "del", "key": "c1"}]))
    assert model.presence == {"c1"}
    _receive_pokes(model, poke(0, 1, presence=[{"op": "put", "key": "c2", "value": 1}]))
    assert model.presence == {"c1", "c2"}
    model.socket_closed()
    assert model.presence == {"c1"}
