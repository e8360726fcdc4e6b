"""``parse_int`` and ``decode_uri_component`` follow JavaScript, not Python."""

from __future__ import annotations

import sys
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reflectd.protocol.jsparse import decode_uri_component, parse_int

# ------------------------------------------------------------------------------ parseInt


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("42", 42),
        ("5123.400000095367", 5123),
        ("12abc", 12),
        ("1e3", 1),
        ("1_000", 1),
        ("-7", -7),
        ("+7", 7),
        ("-0", 0),
        ("007", 7),
        (" 42", 42),
        ("\t\n\v\f\r 42 ", 42),
        ("\u00a0\u2028\ufeff42", 42),
        ("0x1f", 31),
        ("0X1F", 31),
        ("-0x10", -16),
        ("0x1fz", 31),
        ("9007199254740993", 9007199254740993),
    ],
)
def test_parse_int_reads_the_leading_integer_like_javascript(text: str, value: int) -> None:
    assert parse_int(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "x",
        "abc12",
        "-",
        "+",
        "--1",
        "+-1",
        ".5",
        "Infinity",
        "NaN",
        "0x",
        "0xg",
        "\u0663",
        "\uff11\uff12",
        "\u200b1",
    ],
)
def test_parse_int_gives_none_where_javascript_gives_nan(text: str) -> None:
    assert parse_int(text) is None


def test_parse_int_reads_digit_strings_longer_than_pythons_conversion_limit() -> None:
    digits = "9" * (sys.get_int_max_str_digits() + 700)
    assert parse_int(digits) == 10 ** len(digits) - 1
    assert parse_int("-" + digits + ".5") == -(10 ** len(digits) - 1)


@given(st.integers())
def test_parse_int_reads_back_any_decimal_integer(value: int) -> None:
    assert parse_int(str(value)) == value


@given(st.text())
def test_parse_int_never_raises(text: str) -> None:
    value = parse_int(text)
    assert value is None or isinstance(value, int)


# ------------------------------------------------------------------------------ decodeURIComponent


@pytest.mark.parametrize(
    ("text", "decoded"),
    [
        ("", ""),
        ("abc", "abc"),
        ("a+b", "a+b"),
        ("a%20b", "a b"),
        ("%2B", "+"),
        ("%25", "%"),
        ("%2541", "%41"),
        ("%C3%A9", "é"),
        ("%c3%a9", "é"),
        ("%F0%9F%98%80", "😀"),
        ("%E0%A4%A4x%E0%A4%A4", "तxत"),
        ("é", "é"),
    ],
)
def test_decode_uri_component_decodes_like_javascript(text: str, decoded: str) -> None:
    assert decode_uri_component(text) == decoded


@pytest.mark.parametrize(
    "text",
    [
        "%",
        "%2",
        "%E0%A4%A",
        "abc%",
        "%zz",
        "%%41",
        "%C3",
        "%C3x",
        "%C3%A9%C3",
        "%41%C3",
        "%FF",
        "%C0%80",
        "%ED%A0%80",
    ],
)
def test_decode_uri_component_raises_where_javascript_throws_uri_error(text: str) -> None:
    with pytest.raises(ValueError):
        decode_uri_component(text)


@given(st.text())
def test_decode_uri_component_inverts_encode_uri_component(text: str) -> None:
    try:
        encoded = quote(text, safe="-_.!~*'()")
    except UnicodeEncodeError:  # lone surrogates: encodeURIComponent throws too
        return
    assert decode_uri_component(encoded) == text


@given(st.text())
def test_decode_uri_component_returns_a_string_or_raises_value_error(text: str) -> None:
    try:
        decoded = decode_uri_component(text)
    except ValueError:
        assert "%" in text
    else:
        assert isinstance(decoded, str)
