"""Seeds and hand-friendly random numbers.

Randomness is always passed in as a ``numpy.random.Generator``; nothing here
reads global random state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from deepdrill.errors import ParamError

T = TypeVar("T")


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any parts, stable across runs, machines and Python versions.

    >>> derive_seed(2026, "s001") == derive_seed(2026, "s001")
    True
    """
    import hashlib  # (here: grading imports this module, and never draws a seed)

    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


def ints(rng: np.random.Generator, shape: Any, low: int, high: int, *,
         nonzero: bool = False) -> np.ndarray:
    """Integers in [low, high], optionally without zeros."""
    if not nonzero or not low <= 0 <= high:
        return rng.integers(low, high, size=shape, endpoint=True)
    values = rng.integers(low, high - 1, size=shape, endpoint=True)
    return values + (values >= 0)  # skip 0: shift the non-negative draws up by one


def decimals(rng: np.random.Generator, shape: Any, low: float, high: float,
             places: int = 1) -> np.ndarray:
    """Numbers in [low, high] with at most ``places`` decimals (exactly as printed)."""
    scale = 10 ** places
    raw = rng.integers(round(low * scale), round(high * scale), size=shape, endpoint=True)
    return np.round(raw / scale, places)


def choice(rng: np.random.Generator, options: list[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def draw_until(rng: np.random.Generator, draw: Callable[[np.random.Generator], T],
               good: Callable[[T], bool], *, tries: int, refusal: str) -> T:
    """The first draw that ``good`` accepts; never a draw that breaks the constraints.

    When ``tries`` draws give nothing good, the options leave too little room:
    :class:`ParamError` with ``refusal``, which says what to change.
    """
    for _ in range(tries):
        candidate = draw(rng)
        if good(candidate):
            return candidate
    raise ParamError(refusal)


def draw_batch_until(rng: np.random.Generator, draw: Callable[[np.random.Generator], T],
                     good: Callable[[T], np.ndarray], *, tries: int,
                     refusal: str) -> tuple[T, int]:
    """As :func:`draw_until` for vectorised draws: ``draw`` returns a batch of candidates
    and ``good`` a boolean mask over it; returns the batch and the first good index."""
    for _ in range(tries):
        batch = draw(rng)
        mask = good(batch)
        if mask.any():
            return batch, int(np.argmax(mask))
    raise ParamError(refusal)
