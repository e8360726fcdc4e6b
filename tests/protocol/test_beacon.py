"""The close beacon's request: query, Authorization header and body, with the original's
messages."""

from __future__ import annotations

import pytest

from reflectd.protocol.beacon import (
    BeaconBody,
    beacon_query_problem,
    bearer_token,
    decode_beacon_body,
)

QUERY = [("roomID", "r1"), ("userID", "u1"), ("clientID", "c1")]


def test_a_query_of_exactly_room_user_and_client_has_no_problem() -> None:
    assert beacon_query_problem(QUERY) is None


@pytest.mark.parametrize(
    ("items", "problem"),
    [
        (QUERY[1:], "Missing property roomID"),
        ([*QUERY, ("x", "1")], "Unexpected property x"),
        ([*QUERY, ("userID", "u2")], "Expected string at userID. Got array"),
        ([("roomID", "r\x001"), *QUERY[1:]], "Invalid character (NUL) at roomID"),
    ],
)
def test_a_query_problem_is_named_in_the_originals_words(
    items: list[tuple[str, str]], problem: str
) -> None:
    assert beacon_query_problem(items) == problem


def test_a_bearer_token_is_uri_decoded() -> None:
    assert bearer_token("Bearer a%20b") == "a b"
    assert bearer_token("bearer t") == "t"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Basic t", "Invalid Authorization header"),
        ("Bearer", "Invalid Authorization header"),
        ("Bearer %", "Malformed Authorization header"),
    ],
)
def test_a_bad_authorization_header_is_refused_with_its_message(header: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bearer_token(header)


def test_the_body_holds_exactly_the_last_mutation_id() -> None:
    assert decode_beacon_body(b'{"lastMutationID":3}') == BeaconBody(last_mutation_id=3)
    for body in [b"", b"{}", b'{"lastMutationID":"1"}', b'{"lastMutationID":1,"x":2}']:
        with pytest.raises(ValueError, match="Body schema error"):
            decode_beacon_body(body)
