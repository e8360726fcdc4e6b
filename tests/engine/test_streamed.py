"""Big fast-forwards as pieces: the same JSON as one patch, cut around a poke's patch."""

from __future__ import annotations

import msgspec

from reflectd.engine.records import Entry
from reflectd.engine.streamed import (
    PIECE_BYTES,
    STREAMED_PATCH,
    PatchPieces,
    should_stream,
    split_frame,
)
from reflectd.engine.turn import patch_of
from reflectd.protocol.codec import encode_poke
from reflectd.protocol.messages import Poke, PokeBody


def _items(count: int, value_bytes: int) -> list[tuple[str, Entry]]:
    value = b'"' + b"v" * value_bytes + b'"'
    return [
        (f"k/{i:05d}", Entry(version=i + 1, deleted=i % 7 == 0, value=value)) for i in range(count)
    ]


def test_the_pieces_of_a_patch_join_to_the_patch_encoded_at_once() -> None:
    items = _items(3000, 500)
    pieces = PatchPieces.of(items, base_cookie=None, cookie=3000)
    parts = []
    while (piece := pieces.piece(len(parts))) is not None:
        assert len(piece) < PIECE_BYTES + 1000
        parts.append(piece)
    assert len(parts) > 3
    assert b"[" + b"".join(parts) + b"]" == bytes(patch_of(dict(items)))


def test_pieces_are_encoded_once_and_shared() -> None:
    pieces = PatchPieces.of(_items(3000, 500), base_cookie=None, cookie=3000)
    assert pieces.piece(2) is pieces.piece(2)
    assert pieces.piece(0) is not None


def test_small_fast_forwards_are_not_streamed_and_big_ones_are() -> None:
    assert not should_stream(_items(100, 100))
    assert should_stream(_items(2000, 10))
    assert should_stream(_items(10, PIECE_BYTES // 5))


def test_a_streamed_frame_is_the_poke_message_with_the_pieces_as_its_first_patch() -> None:
    items = _items(2000, 200)
    pieces = PatchPieces.of(items, base_cookie=None, cookie=9)
    pokes = [
        Poke(
            base_cookie=None,
            cookie=9,
            last_mutation_id_changes={'"patch":[': 1},
            patch=STREAMED_PATCH,
            presence=[],
        ),
        Poke(
            base_cookie=9, cookie=10, last_mutation_id_changes={}, patch=patch_of({}), presence=[]
        ),
    ]
    frame = encode_poke(PokeBody(request_id="r", pokes=pokes))
    stream = split_frame(frame, pieces)
    decoded = msgspec.json.decode(stream.join())
    assert decoded[1]["pokes"][0]["patch"] == msgspec.json.decode(bytes(patch_of(dict(items))))
    assert decoded[1]["pokes"][0]["lastMutationIDChanges"] == {'"patch":[': 1}
    assert decoded[1]["pokes"][1]["cookie"] == 10


def test_a_live_only_patch_skips_tombstones() -> None:
    items = _items(3000, 100)
    pieces = PatchPieces(
        [k for k, _ in items], [e for _, e in items], base_cookie=None, cookie=1, live_only=True
    )
    parts = []
    while (piece := pieces.piece(len(parts))) is not None:
        parts.append(piece)
    live = {k: e for k, e in items if not e.deleted}
    assert b"[" + b"".join(parts) + b"]" == bytes(patch_of(live))
