"""User values as JSON: what JavaScript reads back, and what cannot be sent."""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reflectd.errors import InvalidJSONValue
from reflectd.protocol.codec import decode_json_value, encode_json_value

MAX_SAFE_INTEGER = 2**53 - 1


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (MAX_SAFE_INTEGER, b"9007199254740991"),
        (-MAX_SAFE_INTEGER, b"-9007199254740991"),
        (0.1, b"0.1"),
        (1e21, b"1e21"),  # JavaScript writes 1e+21; JSON.parse reads both as the same double
        (1e-7, b"1e-7"),
        (-0.0, b"-0.0"),
        (5e-324, b"5e-324"),
        (1.7976931348623157e308, b"1.7976931348623157e308"),
        (True, b"true"),
        (None, b"null"),
        ("é\u2028\U0001f600", '"é\u2028\U0001f600"'.encode()),
        ({"a": [1, {"b": None}]}, b'{"a":[1,{"b":null}]}'),
        ((1, "two"), b'[1,"two"]'),
    ],
    ids=repr,
)
def test_encode_json_value_writes_what_javascript_reads_back(value: Any, encoded: bytes) -> None:
    assert encode_json_value(value) == encoded


def test_negative_zero_keeps_its_sign() -> None:
    assert math.copysign(1.0, json.loads(encode_json_value(-0.0))) == -1.0


@settings(max_examples=300)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_finite_float_round_trips_bit_for_bit(value: float) -> None:
    decoded = json.loads(encode_json_value(value))  # the shortest form: JSON.parse reads the same
    assert struct.pack(">d", float(decoded)) == struct.pack(">d", value)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200)
@given(_json_values)
def test_json_values_round_trip_through_encode_and_decode(value: Any) -> None:
    assert decode_json_value(encode_json_value(value)) == value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (float("nan"), "nan is not a JSON number"),
        (float("inf"), "inf is not a JSON number"),
        (-float("inf"), "-inf is not a JSON number"),
        ([1, {"x": float("nan")}], "nan is not a JSON number"),
        ({1: "x"}, "object key 1 is not a string"),
        ({None: "x"}, "object key None is not a string"),
        ({"ok": {("a",): 1}}, "object key ('a',) is not a string"),
        (object(), "object is not a JSON type"),
        ({1, 2}, "set is not a JSON type"),
        (b"bytes", "bytes is not a JSON type"),
        (bytearray(b"x"), "bytearray is not a JSON type"),
        (1j, "complex is not a JSON type"),
        ("\ud800", "not valid Unicode"),
        ({"\udfff": 1}, "not valid Unicode"),
    ],
    ids=repr,
)
def test_encode_json_value_refuses_what_json_cannot_hold(value: Any, reason: str) -> None:
    with pytest.raises(InvalidJSONValue, match=reason.replace("(", r"\(").replace(")", r"\)")):
        encode_json_value(value)


#: the largest integer that JavaScript's JSON.parse reads as a finite number (the largest
#: double, 1.7976931348623157e308, once rounded): one more, and it reads Infinity
LARGEST_FINITE_IN_JS = 2**1024 - 2**970 - 1


@pytest.mark.parametrize("value", [LARGEST_FINITE_IN_JS, -LARGEST_FINITE_IN_JS, 2**1023, 10**308])
def test_integers_javascript_reads_as_finite_numbers_are_encoded_exactly(value: int) -> None:
    assert encode_json_value(value) == str(value).encode()
    assert float(value) == json.loads(str(value), parse_int=float)


@pytest.mark.parametrize(
    "value",
    [LARGEST_FINITE_IN_JS + 1, -LARGEST_FINITE_IN_JS - 1, 10**309, 10**3999, {"a": [1, 10**400]}],
    ids=["largest+1", "-(largest+1)", "1e309", "4000 digits", "nested"],
)
def test_integers_javascript_reads_as_infinity_are_refused(value: Any) -> None:
    with pytest.raises(InvalidJSONValue, match=r"JavaScript can read \(it reads it as Infinity\)"):
        encode_json_value(value)


def test_encode_json_value_refuses_values_nested_too_deeply() -> None:
    value: Any = 0
    for _ in range(100_000):
        value = [value]
    with pytest.raises(InvalidJSONValue, match="nested too deeply"):
        encode_json_value(value)


def test_invalid_json_value_is_a_value_error() -> None:
    assert issubclass(InvalidJSONValue, ValueError)
