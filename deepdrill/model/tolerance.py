"""How closely an answer must match: tolerance modes as small pure functions.

Each comparison takes arrays of the student's values and of the expected values
(same length) and returns a boolean array saying which entries pass.

The modes:

* ``exact``: integers that must be right to the unit (small counts, shapes).
* ``count``: an integer that is exact below 10^8; from 10^8 on, three significant
  figures are enough (``1.20e8`` for 120,422,400), as a TA accepts on paper: within one
  unit of the third figure, so a sum of rounded terms (1.26e8 for 126,844,928) passes.
* ``relabs``: ``|x - x*| <= max(rtol * |x*|, atol)``. By default ``rtol = 1e-2`` and
  ``atol`` is a floor scaled to the field's own size (:func:`default_floor`), so a
  probability of 0.00136 is not passed by 0.0005, and a value that cancels to near 0
  is not failed for an honest rounding of the larger numbers it came from.
* ``sigfigs``: an interval, never a re-rounding: the answer passes when it lies
  within half a unit of the last asked digit of the true value. More digits than
  asked never hurt.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

DEFAULT_RTOL = 1e-2
FLOOR_SHARE = 0.05  # the default absolute floor: this share of rtol times the field's largest |x*|
MAX_EXACT = 2 ** 53  # the largest whole numbers a float holds exactly: no count is larger
BIG_COUNT = 10 ** 8  # counts from here on may be given to COUNT_SIGFIGS significant figures
COUNT_SIGFIGS = 3
# Float slack: a value exactly on a boundary is not failed by binary rounding
# (0.1 + 0.2, or a key stored as 1.8250000000000002).
_SLACK = 1e-9


class Mode(str, enum.Enum):
    EXACT = "exact"
    COUNT = "count"
    RELABS = "relabs"
    SIGFIGS = "sigfigs"


@dataclass(frozen=True)
class Tolerance:
    mode: Mode = Mode.RELABS
    rtol: float = DEFAULT_RTOL
    atol: float = 0.0
    sigfigs: int | None = None

    @classmethod
    def exact(cls) -> "Tolerance":
        return cls(Mode.EXACT, 0.0, 0.0)

    @classmethod
    def count(cls) -> "Tolerance":
        return cls(Mode.COUNT, 0.0, 0.0, COUNT_SIGFIGS)

    @property
    def is_integer(self) -> bool:
        return self.mode in (Mode.EXACT, Mode.COUNT)

    def overridden(self, rtol: float | None = None, atol: float | None = None,
                   sigfigs: int | None = None) -> "Tolerance":
        """This tolerance with an assignment's per-field settings applied."""
        if self.is_integer:
            return self
        if sigfigs is not None:
            return Tolerance(Mode.SIGFIGS, self.rtol, self.atol, int(sigfigs))
        return replace(self, mode=Mode.RELABS,
                       rtol=self.rtol if rtol is None else float(rtol),
                       atol=self.atol if atol is None else float(atol))

    def describe(self) -> str:
        """Words for the sheet and the report."""
        if self.mode is Mode.EXACT:
            return "exact"
        if self.mode is Mode.COUNT:
            return f"exact; from 10^8 on, {self.sigfigs} significant figures are enough"
        if self.mode is Mode.SIGFIGS:
            return f"to {self.sigfigs} significant figures"
        return f"within {self.rtol:.3g} relative, or {self.atol:.2g} absolute"

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode.value, "rtol": self.rtol, "atol": self.atol,
                "sigfigs": self.sigfigs}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Tolerance":
        return _tolerance(data["mode"], data["rtol"], data["atol"], data.get("sigfigs"))


@functools.lru_cache(maxsize=4096)  # a class key repeats a few tolerances thousands of times
def _tolerance(mode: str, rtol: float, atol: float, sigfigs: int | None) -> Tolerance:
    return Tolerance(Mode(mode), rtol, atol, sigfigs)


def default_floor(expected: Any, rtol: float = DEFAULT_RTOL) -> float:
    """The default absolute floor of a real field: FLOOR_SHARE * rtol * its largest |x*|.

    >>> default_floor([0.9, 0.1, 0.00136])
    0.00045
    """
    arr = np.abs(np.asarray(expected, dtype=float))
    return float(FLOOR_SHARE * rtol * arr.max()) if arr.size else 0.0


# -- the comparisons --------------------------------------------------------------

def exact(given: np.ndarray, expected: np.ndarray, tol: Tolerance) -> np.ndarray:
    return (given == expected) & np.isfinite(expected)


def magnitude(x: np.ndarray) -> np.ndarray:
    """The power of ten of each value's first significant digit (0 for 0).

    >>> magnitude(np.array([123.4, 0.05, 0.0])).tolist()
    [2.0, -2.0, 0.0]
    """
    return np.floor(np.log10(np.where(x == 0, 1.0, np.abs(x))))


def half_unit(expected: np.ndarray, sigfigs: int) -> np.ndarray:
    """Half a unit of the ``sigfigs``-th significant digit of each value (0 for 0)."""
    return np.where(expected == 0, 0.0, 0.5 * 10.0 ** (magnitude(expected) - sigfigs + 1))


def within(given: np.ndarray, expected: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """|given - expected| <= bound, with float slack; never for a non-finite expected value
    (a step recomputed from a student's 0 variance gives inf, which nothing matches)."""
    with np.errstate(invalid="ignore", over="ignore"):
        slack = _SLACK * np.maximum(np.abs(expected), 1e-300)
        ok = np.abs(given - expected) <= bound * (1 + _SLACK) + slack
    return ok & np.isfinite(expected)


def count(given: np.ndarray, expected: np.ndarray, tol: Tolerance) -> np.ndarray:
    big = np.abs(expected) >= BIG_COUNT
    if not big.any():
        return given == expected
    unit = 2 * half_unit(expected, tol.sigfigs or COUNT_SIGFIGS)
    return np.where(big, within(given, expected, unit), given == expected)


def relabs(given: np.ndarray, expected: np.ndarray, tol: Tolerance) -> np.ndarray:
    """Pass when |x - x*| <= max(rtol * |x*|, atol)."""
    return within(given, expected, np.maximum(tol.atol, tol.rtol * np.abs(expected)))


def sigfigs(given: np.ndarray, expected: np.ndarray, tol: Tolerance) -> np.ndarray:
    """Within half a unit of the last asked digit of the true value (an interval)."""
    return within(given, expected, half_unit(expected, tol.sigfigs or 3))


COMPARATORS: dict[Mode, Callable[[np.ndarray, np.ndarray, Tolerance], np.ndarray]] = {
    Mode.EXACT: exact,
    Mode.COUNT: count,
    Mode.RELABS: relabs,
    Mode.SIGFIGS: sigfigs,
}


def entries_match(tol: Tolerance, given: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Which entries of ``given`` pass against ``expected`` under ``tol``.

    >>> entries_match(Tolerance(Mode.SIGFIGS, sigfigs=3), np.array([20.3, 0.2595]),
    ...               np.array([20.25, 0.259496])).tolist()
    [True, True]
    """
    return COMPARATORS[tol.mode](np.asarray(given, dtype=float),
                                 np.asarray(expected, dtype=float), tol)


# -- the same comparisons on plain lists, as bitmasks --------------------------------
#
# The grader compares a few numbers at a time, thousands of times per class: numpy's
# per-call cost dominates there. ``matches`` gives entries_match's answer for lists of
# floats as an int whose bit i says whether entry i passes (tests hold the two equal).
# Each mode's rule is written out in both loops below: a per-entry function call, shared
# by both, made a class's grading 10-20 % slower.

def matches(tol: Tolerance, given: list[float], expected: list[float]) -> int:
    """Bit i set when ``given[i]`` passes against ``expected[i]`` under ``tol``.

    >>> bin(matches(Tolerance(Mode.SIGFIGS, sigfigs=3), [20.3, 0.2595, 1.0], [20.25, 0.259496, 2.0]))
    '0b11'
    """
    mode, bits, bit = tol.mode, 0, 1
    if mode is Mode.RELABS:  # (the most common mode: _within written out here as well)
        rtol, atol, stretch = tol.rtol, tol.atol, 1 + _SLACK
        for g, e in zip(given, expected):
            if e - e == 0:  # e is finite
                size = abs(e)
                bound = rtol * size
                if abs(g - e) <= (bound if bound > atol else atol) * stretch + \
                        _SLACK * (size if size >= 1e-300 else 1e-300):
                    bits |= bit
            bit <<= 1
    elif mode is Mode.EXACT:
        for g, e in zip(given, expected):
            if g == e and _finite(e):
                bits |= bit
            bit <<= 1
    elif mode is Mode.SIGFIGS:
        figures = tol.sigfigs or 3
        for g, e in zip(given, expected):
            if _finite(e) and _within(g, e, _half_unit(e, figures)):
                bits |= bit
            bit <<= 1
    else:  # COUNT
        figures = tol.sigfigs or COUNT_SIGFIGS
        for g, e in zip(given, expected):
            if g == e if abs(e) < BIG_COUNT else \
                    _finite(e) and _within(g, e, 2 * _half_unit(e, figures)):
                bits |= bit
            bit <<= 1
    return bits


def all_match(tol: Tolerance, given: list[float], expected: list[float]) -> bool:
    """Whether every entry passes (:func:`matches` is all ones), stopping at the first
    that does not: most candidates a grader tries fail at once."""
    mode = tol.mode
    if mode is Mode.RELABS:  # (written out as in matches: a grader asks this most)
        rtol, atol, stretch = tol.rtol, tol.atol, 1 + _SLACK
        for g, e in zip(given, expected):
            if e - e != 0:  # e is not finite
                return False
            size = abs(e)
            bound = rtol * size
            if not abs(g - e) <= (bound if bound > atol else atol) * stretch + \
                    _SLACK * (size if size >= 1e-300 else 1e-300):
                return False
        return True
    if mode is Mode.EXACT:
        return all(g == e and _finite(e) for g, e in zip(given, expected))
    if mode is Mode.SIGFIGS:
        figures = tol.sigfigs or 3
        return all(_finite(e) and _within(g, e, _half_unit(e, figures))
                   for g, e in zip(given, expected))
    figures = tol.sigfigs or COUNT_SIGFIGS
    for g, e in zip(given, expected):
        if not (g == e if abs(e) < BIG_COUNT else
                _finite(e) and _within(g, e, 2 * _half_unit(e, figures))):
            return False
    return True


def _finite(x: float) -> bool:
    return x - x == 0  # False for inf and NaN


def _within(g: float, e: float, bound: float) -> bool:
    """:func:`within` for one entry."""
    if not _finite(e):
        return False
    return abs(g - e) <= bound * (1 + _SLACK) + _SLACK * max(abs(e), 1e-300)


def _half_unit(e: float, figures: int) -> float:
    """:func:`half_unit` for one finite entry."""
    if e == 0:
        return 0.0
    return 0.5 * 10.0 ** (math.floor(math.log10(abs(e))) - figures + 1)
