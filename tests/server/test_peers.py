"""Telling a request another node forwarded from a client's (``x-reflectd-proxied``)."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from reflectd.server.peers import MAX_AGE_MS, PROXIED_HEADER, PeerAuth

SECRET = b"s" * 32
NOW_MS = 1_700_000_000_000
PATH = "/api/sync/v1/connect"
PARAMS = [("roomID", "r1"), ("clientID", "c1"), ("userID", "u1")]


def request(header: str | None, *, path: str = PATH, query: str = "") -> HTTPConnection:
    headers = [] if header is None else [(PROXIED_HEADER.encode(), header.encode())]
    query = query or "roomID=r1&clientID=c1&userID=u1"
    return HTTPConnection(
        {"type": "http", "path": path, "query_string": query.encode(), "headers": headers}
    )


def peers(secret: bytes | None = SECRET, now_ms: int = NOW_MS, node_id: str = "n2") -> PeerAuth:
    return PeerAuth(secret, node_id, now_ms=lambda: now_ms)


def test_a_header_a_peer_signed_names_that_peer() -> None:
    header = peers(node_id="n1").header(PATH, PARAMS)
    assert peers().sender(request(header)) == "n1"


def test_the_signature_does_not_depend_on_the_order_or_encoding_of_the_parameters() -> None:
    header = peers(node_id="n1").header(PATH, PARAMS)
    reordered = request(header, query="userID=u1&roomID=%72%31&clientID=c1")
    assert peers().sender(reordered) == "n1"


def test_a_request_without_the_header_is_a_clients() -> None:
    assert peers().sender(request(None)) is None


def test_a_clients_copy_of_the_header_is_ignored_and_counted() -> None:
    node = peers()
    forged = ["n1", "n1 1700000000000 00", "", "x" * 10_000, f"n1 {NOW_MS} " + "0" * 64]
    assert [node.sender(request(value)) for value in forged] == [None] * len(forged)
    assert node.ignored == len(forged)


def test_a_header_signed_with_another_secret_is_ignored() -> None:
    header = peers(secret=b"other" * 8, node_id="n1").header(PATH, PARAMS)
    assert peers().sender(request(header)) is None


def test_a_header_is_good_for_its_own_path_and_parameters_only() -> None:
    header = peers(node_id="n1").header(PATH, PARAMS)
    assert peers().sender(request(header, path="/api/sync/v1/close")) is None
    assert peers().sender(request(header, query="roomID=r2&clientID=c1&userID=u1")) is None


def test_a_header_older_or_newer_than_the_allowed_age_is_ignored() -> None:
    header = peers(node_id="n1").header(PATH, PARAMS)
    assert peers(now_ms=NOW_MS + MAX_AGE_MS).sender(request(header)) == "n1"
    assert peers(now_ms=NOW_MS + MAX_AGE_MS + 1).sender(request(header)) is None
    assert peers(now_ms=NOW_MS - MAX_AGE_MS - 1).sender(request(header)) is None


def test_a_node_without_a_cluster_trusts_no_header() -> None:
    header = peers(node_id="n1").header(PATH, PARAMS)
    assert peers(secret=None).sender(request(header)) is None
