"""REST bodies whatever their Content-Type: as in the original, the header is not consulted;
the body itself must be what the command takes, or the call gets a clear 400 and nothing
stored changes."""

from __future__ import annotations

import pytest

from .conftest import SHAPES, Rest, assert_error

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("shape", SHAPES)]

CONTENT_TYPES = [
    None,
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/octet-stream",
    "application/json; charset=latin-1",
]


def _headers(content_type: str | None) -> dict[str, str]:
    return {} if content_type is None else {"Content-Type": content_type}


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
async def test_a_json_body_is_read_whatever_the_content_type_says(
    rest: Rest, shape: str, content_type: str | None
) -> None:
    response = await rest.call(
        shape, "POST", "rooms:create", {"roomID": "a"}, body="{}",
        extra_headers=_headers(content_type),
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert await rest.store.get_room("a") is not None


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"jurisdiction=eu"),
        ("multipart/form-data; boundary=xyz", b'--xyz\r\nContent-Disposition: form-data; '
         b'name="jurisdiction"\r\n\r\neu\r\n--xyz--\r\n'),
        ("application/json", b"\xff\xfe{\x00}\x00"),  # UTF-16
        ("application/json", b"\x00\x01\x02"),
        ("text/plain", b"jurisdiction: eu"),
        ("application/json", b""),
    ],
)  # fmt: skip
async def test_a_body_that_is_not_json_gets_400_and_creates_nothing(
    rest: Rest, shape: str, content_type: str, body: bytes
) -> None:
    response = await rest.call(
        shape, "POST", "rooms:create", {"roomID": "a"}, body=body,
        extra_headers=_headers(content_type),
    )  # fmt: skip
    assert_error(response, 400, "Body must be valid json.")
    assert await rest.store.get_room("a") is None


@pytest.mark.parametrize("content_type", CONTENT_TYPES[1:])
async def test_a_body_sent_to_a_command_without_one_gets_400_and_changes_nothing(
    rest: Rest, shape: str, content_type: str
) -> None:
    await rest.create("a", shape)
    response = await rest.call(
        shape, "POST", "rooms:close", {"roomID": "a"}, body=b"roomID=a",
        extra_headers=_headers(content_type),
    )  # fmt: skip
    assert_error(response, 400, "Unexpected request body.")
    room = await rest.store.get_room("a")
    assert room is not None and room.status == "open"
