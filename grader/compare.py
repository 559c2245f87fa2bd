"""Tolerance comparisons: small pure functions, one per mode.

Each takes arrays of the student's values and of the expected values (same shape)
and returns a boolean array saying which entries pass.
"""

from __future__ import annotations

from collections.abc import Callable
import numpy as np

from deepdrill.generator.fields import Mode, Tolerance

# Float slack so that a value exactly on the tolerance boundary is not failed by
# binary rounding (0.1 + 0.2 and friends).
_SLACK = 1e-12


def exact(given: np.ndarray, expected: np.ndarray, tol: Tolerance) -> np.ndarray:
    return given == expected


def relabs(given: np.ndarray, expected: np.ndarray, tol: Tolerance) -> np.ndarray:
    """Pass when |x - x*| <= max(atol, rtol * |x*|), the catalogue's rule."""
    bound = np.maximum(tol.atol, tol.rtol * np.abs(expected))
    return np.abs(given - expected) <= bound * (1 + _SLACK) + _SLACK


def round_sigfigs(x: np.ndarray, sigfigs: int) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    mag = np.floor(np.log10(np.where(x == 0, 1.0, np.abs(x))))
    scale = 10.0 ** (sigfigs - 1 - mag)
    return np.round(x * scale) / scale


def sigfigs(given: np.ndarray, expected: np.ndarray, tol: Tolerance) -> np.ndarray:
    n = tol.sigfigs or 3
    a, b = round_sigfigs(given, n), round_sigfigs(expected, n)
    return np.abs(a - b) <= _SLACK * np.maximum(np.abs(b), 1.0)


COMPARATORS: dict[Mode, Callable[[np.ndarray, np.ndarray, Tolerance], np.ndarray]] = {
    Mode.EXACT: exact,
    Mode.RELABS: relabs,
    Mode.SIGFIGS: sigfigs,
}


def entries_match(tol: Tolerance, given: np.ndarray, expected: np.ndarray) -> np.ndarray:
    return COMPARATORS[tol.mode](given, expected, tol)

