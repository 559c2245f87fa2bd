"""Seed sweeps shared by the per-type test modules: each (type, options, seeds) made once."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from deepdrill.generator.exercise import make_variant


@functools.cache
def _sweep(type_id: str, options_key: tuple, seeds: int) -> list:
    return [make_variant(type_id, seed, options=dict(options_key)) for seed in range(seeds)]


def sweep(type_id: str, options: dict[str, Any], seeds: int) -> list:
    """The variants of seeds 0 .. seeds-1 for these options, made once per test session."""
    return _sweep(type_id, tuple(sorted(options.items())), seeds)


def near(value: Any, constant: float, margin: float = 0.05) -> np.ndarray:
    """Within a relative margin of a constant (the draws keep clear of such values)."""
    return np.abs(value - constant) <= margin * np.maximum(np.abs(value), np.abs(constant))
