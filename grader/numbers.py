"""Students' numbers: parsed as data, never evaluated.

Accepted: JSON numbers, and strings holding a decimal (``"0.25"``, ``"-3"``,
``"2.5e-3"``) or a fraction of two integers (``"1/4"``, ``"-3 / 8"``). Anything
else, and anything not finite, is rejected with a message the student can act on.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

from deepdrill.model.tolerance import MAX_EXACT

MAX_TEXT = 64  # longest string taken as a number

_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,4})?")
_FRACTION = re.compile(r"([+-]?\d{1,30})\s*/\s*([+-]?\d{1,30})")


class NotANumber(ValueError):
    """The value cannot be read as a number; the message says why, for the student."""


class NonFinite:
    """A JSON ``NaN`` / ``Infinity`` literal, kept so it can be reported per field."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def show(value: Any, limit: int = 40) -> str:
    """A short rendering of what the student wrote, for messages."""
    text = value.text if isinstance(value, NonFinite) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_number(value: Any) -> float:
    """A finite float from a student's value, or :class:`NotANumber`.

    >>> parse_number("1/4"), parse_number(" -2.5e-3 "), parse_number(3)
    (0.25, -0.0025, 3.0)
    """
    if value is None:
        raise NotANumber("no answer given")
    if isinstance(value, bool):
        raise NotANumber(f"{show(value)} is not a number")
    if isinstance(value, NonFinite):
        raise NotANumber(f"{value.text} is not a finite number")
    if isinstance(value, (int, float)):
        return _finite(value)
    if isinstance(value, str):
        return _finite(_parse_text(value))
    if isinstance(value, (list, dict)):
        raise NotANumber("expected a number here, got " +
                         ("a list" if isinstance(value, list) else "an object"))
    raise NotANumber(f"{show(value)} is not a number")


def _parse_text(text: str) -> float | Fraction:
    if len(text) > MAX_TEXT:
        raise NotANumber(f"{show(text)} is too long to be a number")
    t = text.strip().replace("\u2212", "-")  # a typographic minus pasted from a PDF
    if _DECIMAL.fullmatch(t):
        return float(t)
    m = _FRACTION.fullmatch(t)
    if m:
        num, den = int(m.group(1)), int(m.group(2))
        if den == 0:
            raise NotANumber(f"{show(text)} divides by zero")
        return Fraction(num, den)
    if "," in t and _DECIMAL.fullmatch(t.replace(",", ".")):
        raise NotANumber(f"{show(text)}: write decimals with a point, not a comma")
    raise NotANumber(f"{show(text)} is not a number (write e.g. 0.25 or \"1/4\")")


def _finite(x: float | int | Fraction) -> float:
    try:
        f = float(x)
    except OverflowError:
        raise NotANumber("the number is too large") from None
    if not math.isfinite(f):
        raise NotANumber(f"{show(x)} is not a finite number")
    return f


def parse_integer(value: Any) -> int:
    """A whole number (shapes, counts): 156, 156.0 and "156" pass; 156.5 does not."""
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > MAX_EXACT:  # no count a sheet asks for (and no float is exact)
            raise NotANumber("the number is too large")
        return value
    x = parse_number(value)
    if not x.is_integer():
        raise NotANumber(f"{show(value)} is not a whole number")
    return int(x)
