"""Hand-friendly mini-batches: small numbers whose mean and standard deviation are exact.

Random batches come from precomputed *shapes*: small integer batches whose mean is
whole (half for N = 4, which has too few otherwise) and whose standard deviation is a
whole or half number (never 1), so every step can be done exactly by hand. A shape is
shifted, shuffled and sometimes halved. N = 3 cannot be made exact: with deviations
(a, b, -a - b) a rational sigma needs a^2 + ab + b^2 = 6 t^2, impossible but for 0
(a^2 + ab + b^2 holds the factor 2 an even number of times, 6 t^2 an odd number). So
N = 3 is drawn only on request, with a whole variance and sigma = sqrt(variance) to
four figures.
"""

from __future__ import annotations

import functools
import itertools
import math
from fractions import Fraction

import numpy as np

from .randomness import choice

MAX_SPAN = 12  # largest minus smallest value of a drawn batch (squares stay small)
MIN_DISTINCT = 3  # at least three different values, so normalised values are not just +-1
MIN_SHAPES = 8  # fewer shapes with a whole mean than this: half means are allowed too
MEAN_LOW, MEAN_HIGH = -1, 5  # whole part of a drawn feature's mean
HALVED_SHARE = 0.25  # share of batches drawn as halves (values like 1.5)


@functools.cache
def batch_shapes(n: int) -> tuple[tuple[int, ...], ...]:
    """Sorted batches of n integers from 0 to MAX_SPAN, starting at 0, that are exact by hand.

    N >= 4: a whole mean (a half one only where whole means give fewer than MIN_SHAPES
    shapes: N = 4 has just two) and a standard deviation that is a whole or half number
    other than 1 (so dividing by the variance is a visibly different mistake). N = 3: a
    whole mean and a whole variance, the best there is (see the module docstring).
    """
    whole = _exact_shapes(n, half_means=False)
    return whole if len(whole) >= MIN_SHAPES or n == 3 else _exact_shapes(n, half_means=True)


def _exact_shapes(n: int, half_means: bool) -> tuple[tuple[int, ...], ...]:
    out = []
    for rest in itertools.combinations_with_replacement(range(MAX_SPAN + 1), n - 1):
        x = (0, *rest)
        mean = Fraction(sum(x), n)
        if len(set(x)) < MIN_DISTINCT or ((2 if half_means else 1) * mean).denominator != 1:
            continue
        var = sum((v - mean) ** 2 for v in x) / n
        if n == 3:
            exact = var.denominator == 1
        else:
            four_var = 4 * var  # (2 sigma)^2 must be a perfect square
            root = math.isqrt(four_var.numerator)
            exact = four_var.denominator == 1 and root * root == four_var and root != 2
        if exact:
            out.append(x)
    return tuple(out)


def shifted_shape(rng: np.random.Generator, n: int) -> np.ndarray:
    """A batch of n values: an exact shape shuffled and shifted, sometimes halved."""
    x = np.array(choice(rng, batch_shapes(n)), dtype=float)
    rng.shuffle(x)
    x += int(rng.integers(MEAN_LOW, MEAN_HIGH, endpoint=True)) - math.floor(x.mean())
    sd = x.std()
    # Halve only where the mean stays a whole or half number and sigma / 2 is not 1.
    halvable = n > 3 and x.mean().is_integer() and sd.is_integer() and sd != 2
    if halvable and rng.random() < HALVED_SHARE:
        x /= 2
    return x
