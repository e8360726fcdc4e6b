"""The connect request: the URL's version, the gate, the query; checks, order and messages."""

from __future__ import annotations

import pytest

from reflectd.errors import InvalidConnectionRequest, ProtocolError, VersionNotSupported
from reflectd.protocol.connect import (
    ConnectQuery,
    Gate,
    check_gate,
    check_room_id,
    parse_connect_query,
    parse_gate_params,
    parse_version,
    single_valued,
)

URL = "wss://example.com/api/sync/v1/connect?x"


def query(**overrides: str | None) -> dict[str, str]:
    params = {
        "clientID": "c1",
        "clientGroupID": "g1",
        "roomID": "r1",
        "userID": "u1",
        "baseCookie": "",
        "ts": "812.3",
        "lmid": "0",
        "wsid": "w1",
    }
    for name, value in overrides.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    return params


def refusal(params: dict[str, str]) -> str:
    with pytest.raises(InvalidConnectionRequest) as caught:
        parse_connect_query(params, URL)
    assert type(caught.value) is InvalidConnectionRequest
    return caught.value.message


def test_connect_query_of_a_fresh_client_parses() -> None:
    assert parse_connect_query(query(), URL) == ConnectQuery(
        client_id="c1",
        client_group_id="g1",
        room_id="r1",
        user_id="u1",
        jurisdiction="",
        base_cookie=None,
        lmid=0,
        wsid="w1",
        debug_perf=False,
    )


def test_base_cookie_ts_and_lmid_are_read_with_parse_int() -> None:
    parsed = parse_connect_query(query(baseCookie="12abc", ts="1.9", lmid="3 "), URL)
    assert (parsed.base_cookie, parsed.lmid) == (12, 3)


@pytest.mark.parametrize("base_cookie", [None, ""])
def test_absent_or_empty_base_cookie_is_null(base_cookie: str | None) -> None:
    assert parse_connect_query(query(baseCookie=base_cookie), URL).base_cookie is None


def test_wsid_defaults_to_empty() -> None:
    assert parse_connect_query(query(wsid=None), URL).wsid == ""


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("1", False), ("True", False)])
def test_debug_perf_is_on_only_for_exactly_true(value: str, expected: bool) -> None:
    assert parse_connect_query(query(debugPerf=value), URL).debug_perf is expected


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"clientID": None, "roomID": None, "userID": None}, "clientID parameter required"),
        ({"clientID": "", "roomID": ""}, "clientID parameter required"),
        ({"roomID": None, "userID": None}, "roomID parameter required"),
        ({"roomID": "", "jurisdiction": "us"}, "roomID parameter required"),
        ({"userID": ""}, "userID parameter required"),
        ({"userID": None, "roomID": "bad id"}, "userID parameter required"),
        (
            {"roomID": "bad id", "jurisdiction": "us"},
            'Invalid roomID "bad id" (must match /^[A-Za-z0-9_/-]+$/)',
        ),
        ({"jurisdiction": "us", "clientGroupID": None}, "invalid jurisdiction parameter"),
        ({"jurisdiction": "EU"}, "invalid jurisdiction parameter"),
        ({"clientGroupID": None, "ts": None}, "invalid querystring - missing clientGroupID"),
        ({"clientGroupID": ""}, "invalid querystring - missing clientGroupID"),
        ({"ts": None, "lmid": None}, "invalid querystring - missing ts"),
        ({"ts": ""}, "invalid querystring - missing ts"),
        ({"lmid": None}, "invalid querystring - missing lmid"),
        ({"lmid": ""}, "invalid querystring - missing lmid"),
        (
            {"baseCookie": "x", "ts": "y"},
            f"invalid querystring parameter baseCookie, got: x, url: {URL}",
        ),
        ({"ts": "y", "lmid": "z"}, f"invalid querystring parameter ts, got: y, url: {URL}"),
        ({"lmid": "z"}, f"invalid querystring parameter lmid, got: z, url: {URL}"),
        ({"lmid": "0x"}, f"invalid querystring parameter lmid, got: 0x, url: {URL}"),
    ],
)
def test_connect_query_checks_come_in_the_originals_order(
    overrides: dict[str, str | None], message: str
) -> None:
    assert refusal(query(**overrides)) == message


@pytest.mark.parametrize("jurisdiction", ["", "eu"])
def test_gate_params_accept_an_empty_or_eu_jurisdiction(jurisdiction: str) -> None:
    assert parse_gate_params(query(jurisdiction=jurisdiction)) == ("c1", "r1", "u1", jurisdiction)


@pytest.mark.parametrize("room_id", ["a", "A-z_0/9", "--", "/", "a/b/c"])
def test_room_ids_matching_the_pattern_are_accepted(room_id: str) -> None:
    check_room_id(room_id)


@pytest.mark.parametrize("room_id", ["", " ", "a b", "a.b", "é", "a\n", "a\u0663", "r%20"])
def test_room_ids_outside_the_pattern_are_refused(room_id: str) -> None:
    with pytest.raises(InvalidConnectionRequest) as caught:
        check_room_id(room_id)
    assert caught.value.message == f'Invalid roomID "{room_id}" (must match /^[A-Za-z0-9_/-]+$/)'


def test_a_very_long_lmid_is_refused_not_a_crash() -> None:
    assert refusal(query(lmid="9" * 6000)).startswith("invalid querystring parameter lmid, got: 9")


MAX_SAFE = 2**53 - 1


@pytest.mark.parametrize("name", ["lmid", "baseCookie", "ts"])
@pytest.mark.parametrize("value", [MAX_SAFE + 1, 2**63, 2**64, -(MAX_SAFE + 1), -(2**63)])
def test_integers_outside_the_safe_range_are_refused(name: str, value: int) -> None:
    message = refusal(query(**{name: str(value)}))
    assert message == f"invalid querystring parameter {name}, got: {value}, url: {URL}"


@pytest.mark.parametrize("name", ["lmid", "baseCookie"])
def test_negative_lmid_and_base_cookie_are_refused(name: str) -> None:
    message = refusal(query(**{name: "-1"}))
    assert message == f"invalid querystring parameter {name}, got: -1, url: {URL}"


@pytest.mark.parametrize(
    ("name", "value"), [("lmid", MAX_SAFE), ("baseCookie", MAX_SAFE), ("ts", -MAX_SAFE)]
)
def test_integers_at_the_safe_bounds_are_accepted(name: str, value: int) -> None:
    parsed = parse_connect_query(query(**{name: str(value)}), URL)
    if name == "lmid":
        assert parsed.lmid == value
    elif name == "baseCookie":
        assert parsed.base_cookie == value


@pytest.mark.parametrize("name", ["roomID", "clientID", "lmid", "wsid", "unknown"])
def test_a_repeated_parameter_is_refused(name: str) -> None:
    items = [*query().items(), (name, "once"), (name, "again")]
    with pytest.raises(InvalidConnectionRequest) as caught:
        single_valued(items)
    assert caught.value.message == f"query parameter {name} is repeated"


def test_parameters_given_once_are_kept() -> None:
    assert single_valued(query().items()) == query()


# ----------------------------------------------------------------------------- version, gate


@pytest.mark.parametrize(("segment", "version"), [("v1", 1), ("v2", 2), ("v", None), ("1", None)])
def test_the_urls_version_segment_is_v_and_digits(segment: str, version: int | None) -> None:
    assert parse_version(segment) == version


def test_the_gate_passes_room_user_jurisdiction_and_the_decoded_token() -> None:
    gate = check_gate(query(jurisdiction="eu"), version=1, protocol="a%20b", auth_required=True)
    assert gate == Gate(room_id="r1", user_id="u1", jurisdiction="eu", token="a b")


def test_the_gate_without_a_protocol_header_has_no_token() -> None:
    assert check_gate(query(), version=1, protocol=None, auth_required=False).token is None


def _gate_refusal(params: dict[str, str], **kwargs: object) -> tuple[type[Exception], str]:
    arguments: dict[str, object] = {"version": 1, "protocol": None, "auth_required": False}
    with pytest.raises(ProtocolError) as caught:
        check_gate(params, **{**arguments, **kwargs})  # type: ignore[arg-type]
    return type(caught.value), caught.value.message


def test_the_gate_checks_auth_first_then_the_version_then_the_query_then_the_token() -> None:
    bad = query(roomID=None)
    assert _gate_refusal(bad, version=2, auth_required=True) == (
        InvalidConnectionRequest,
        "auth required",
    )
    assert _gate_refusal(bad, version=2) == (VersionNotSupported, "unsupported version")
    assert _gate_refusal(bad, protocol="%") == (
        InvalidConnectionRequest,
        "roomID parameter required",
    )
    assert _gate_refusal(query(), protocol="%") == (InvalidConnectionRequest, "malformed auth")
