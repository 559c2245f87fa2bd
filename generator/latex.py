"""LaTeX from numbers and from outside text.

Symbolic mathematics goes through sympy's printer (see the types that derive
formulas). Numeric arrays go through the small formatters here: a class build
typesets tens of thousands of matrices, and ``sympy.latex`` costs about a
millisecond per matrix, which would dominate the build.

:class:`Tex` marks a string as trusted LaTeX. The renderer escapes every other
string, so text from outside (titles, names, rosters) can never inject TeX.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


class Tex(str):
    """A string of LaTeX produced by deepdrill's own code: never escaped again."""


SIG_FIGS = 4

# Characters pdflatex typesets with the document's T1/utf8 setup: ASCII, Latin-1
# and Latin Extended-A. Anything else (CJK, emoji, control characters) would stop
# the whole class's compile, so it is replaced before it reaches LaTeX.
_TYPESETTABLE = re.compile(r"[\x20-\x7e\u00a0-\u017f]")
_REPLACEMENT = "?"


def typesettable(text: str) -> str:
    """Text reduced to characters pdflatex can print; others become '?'."""
    if text.isascii() and text.isprintable():
        return text
    text = unicodedata.normalize("NFC", str(text))
    out = []
    for ch in text:
        if _TYPESETTABLE.fullmatch(ch):
            out.append(ch)
        elif ch in "\t\n\r":
            out.append(" ")
        else:
            base = unicodedata.normalize("NFKD", ch)[:1]
            out.append(base if base and _TYPESETTABLE.fullmatch(base) else _REPLACEMENT)
    return "".join(out)


def escape(text: Any) -> Tex:
    """Outside text as safe LaTeX: special characters escaped, untypesettable ones replaced."""
    return _escape(str(text))


@functools.lru_cache(maxsize=8192)  # titles, names and labels repeat on every sheet
def _escape(text: str) -> Tex:
    from pylatex.utils import escape_latex  # (here: the types import this module to grade)

    return Tex(escape_latex(typesettable(text)))


def num(x: Any, sig: int = SIG_FIGS) -> Tex:
    """A number as a student would write it: integers plain, others to ``sig`` figures.

    >>> num(3.0), num(-0.25), num(1 / 3), num(120422400)
    ('3', '-0.25', '0.3333', '120422400')
    """
    return _num(float(x), sig)


@functools.lru_cache(maxsize=65536)  # a sheet prints the same small numbers again and again
def _num(x: float, sig: int) -> Tex:
    if not math.isfinite(x):
        raise ValueError(f"cannot typeset {x}")
    if x == int(x) and abs(x) < 1e15:
        return Tex(str(int(x)))
    mag = math.floor(math.log10(abs(x)))
    if -4 <= mag < 15:
        text = f"{x:.{max(sig - 1 - mag, 0)}f}"
        text = text.rstrip("0").rstrip(".") if "." in text else text
        return Tex("0" if text in ("-0", "") else text)
    mantissa, exp = f"{x:.{sig - 1}e}".split("e")
    return Tex(rf"{mantissa}\times 10^{{{int(exp)}}}")


def term(x: Any, sig: int = SIG_FIGS) -> Tex:
    """A number as a factor in a product: negatives in parentheses."""
    t = num(x, sig)
    return Tex(f"({t})") if t.startswith("-") else t


def matrix(a: Any, sig: int = SIG_FIGS) -> Tex:
    """A 2-D array as a bmatrix; a 1-D array as a column."""
    arr = np.asarray(a, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"matrix() takes 1-D or 2-D arrays, not shape {arr.shape}")
    rows = [" & ".join(num(v, sig) for v in row) for row in arr]
    return Tex(r"\begin{bmatrix}" + r" \\ ".join(rows) + r"\end{bmatrix}")


def row(a: Iterable[Any], sig: int = SIG_FIGS) -> Tex:
    """A 1-D array as a row vector in parentheses: (1, -2, 0.5)."""
    return Tex(r"\left(" + ",\\ ".join(num(v, sig) for v in a) + r"\right)")


def dot(pairs: Sequence[tuple[Any, Any]], sig: int = SIG_FIGS) -> Tex:
    """A sum of products written out: 1\\cdot 2 + 0\\cdot(-1) + ..."""
    return Tex(" + ".join(rf"{num(a, sig)}\cdot {term(b, sig)}" for a, b in pairs))


def count(n: Any) -> Tex:
    """A whole number with thin spaces between groups of three digits: 120\\,422\\,400."""
    text = f"{int(n):,}"
    return Tex(text.replace(",", r"\,"))


def shape(dims: Iterable[int]) -> Tex:
    return Tex("(" + ", ".join(str(int(d)) for d in dims) + ")")


def plus(v: float) -> Tex:
    """A term added to a sum: ``+ 2`` or ``- 0.5``."""
    return Tex(f"- {num(-v)}" if v < 0 else f"+ {num(v)}")


def signed_sum(values: Iterable[Any]) -> Tex:
    """``1 + 3 - 2 + 0.5``: a sum written as a student writes it."""
    first, *rest = list(values)
    return Tex(" ".join([num(first), *(plus(v) for v in rest)]))


def relation(value: float) -> Tex:
    """``=`` when the printed number is the value itself, else ``\\approx``."""
    try:
        exact = math.isclose(float(num(value)), value, rel_tol=1e-12, abs_tol=1e-12)
    except ValueError:  # printed as a power of ten
        exact = False
    return Tex("=" if exact else r"\approx")
