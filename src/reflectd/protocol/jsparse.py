"""JavaScript's ``parseInt`` and ``decodeURIComponent``, as the original server used them.

Python's ``int`` and ``urllib.parse.unquote`` differ: ``int("5123.4")`` raises where
``parseInt`` gives 5123, and ``unquote`` lets malformed ``%`` sequences through.
"""

from __future__ import annotations

import re

# JS whitespace that String.prototype.trim (and so parseInt) skips
_JS_SPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_INT_PREFIX = re.compile(r"([+-]?)(?:(0[xX])([0-9a-fA-F]*)|([0-9]+))")
#: Python refuses to convert longer digit strings in one go (``sys.get_int_max_str_digits``)
_DIGITS_PER_CHUNK = 4000
_PERCENT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2})+")

#: ``Number.MAX_SAFE_INTEGER``: every integer that enters from outside stays within
#: ``[-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER]`` (JavaScript reads it exactly, int64 columns hold it)
MAX_SAFE_INTEGER = 2**53 - 1


def is_safe_integer(value: int, *, non_negative: bool = False) -> bool:
    """``Number.isSafeInteger(value)``, and ``value >= 0`` if ``non_negative``."""
    return (0 if non_negative else -MAX_SAFE_INTEGER) <= value <= MAX_SAFE_INTEGER


def parse_int(text: str) -> int | None:
    """``parseInt(text)``: leading integer digits, ``None`` where JavaScript gives NaN."""
    match = _INT_PREFIX.match(text.lstrip(_JS_SPACE))
    if match is None:
        return None
    sign, hex_prefix, hex_digits, decimal_digits = match.groups()
    if hex_prefix and not hex_digits:
        return None  # "0x" with no hex digit after it is NaN, not 0
    value = int(hex_digits, 16) if hex_prefix else _decimal(decimal_digits)
    return -value if sign == "-" else value


def _decimal(digits: str) -> int:
    """``int(digits)``, also for strings longer than Python's int-conversion limit."""
    value = 0
    for start in range(0, len(digits), _DIGITS_PER_CHUNK):
        chunk = digits[start : start + _DIGITS_PER_CHUNK]
        value = value * 10 ** len(chunk) + int(chunk)
    return value


def decode_uri_component(text: str) -> str:
    """``decodeURIComponent(text)``; raise ``ValueError`` where JavaScript throws URIError.

    ``+`` stays a plus sign; a stray ``%`` or a sequence that is not UTF-8 is an error.
    """
    parts: list[str] = []
    position = 0
    for match in _PERCENT_RUN.finditer(text):
        parts.append(text[position : match.start()])
        parts.append(bytes.fromhex(match.group().replace("%", "")).decode("utf-8"))
        position = match.end()
    parts.append(text[position:])
    decoded_plain = [parts[i] for i in range(0, len(parts), 2)]
    if any("%" in plain for plain in decoded_plain):
        raise ValueError("malformed percent-encoding")
    return "".join(parts)
