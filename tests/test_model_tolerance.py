"""Tolerances: the issue's measured cases, as intervals a student can trust."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepdrill.model.tolerance import (BIG_COUNT, Mode, Tolerance, default_floor, entries_match,
                                       all_match, half_unit, matches)


def match(tol, given, expected):
    return bool(entries_match(tol, np.array([given], float), np.array([expected], float))[0])


SIG3 = Tolerance(Mode.SIGFIGS, sigfigs=3)


@pytest.mark.parametrize("given, expected, sigfigs, ok", [
    (0.13, 0.125, 2, True),  # half-up: on the boundary, passes
    (20.3, 20.25, 3, True),
    (0.2595, 0.259496, 3, True),  # one digit more than asked never hurts
    (1.825, 1.8250000000000002, 3, True),  # a float key
    (1.825, 1.8250000000000002, 4, True),
    (0.26, 0.259496, 3, False),  # fewer digits and off by more than half a unit
    (0.2590, 0.2596, 3, False),
    (1234.0, 1234.4, 4, True), (0.0, 0.0, 3, True), (0.001, 0.0, 3, False),
])
def test_sigfigs_is_an_interval_around_the_true_value(given, expected, sigfigs, ok):
    assert match(Tolerance(Mode.SIGFIGS, sigfigs=sigfigs), given, expected) is ok


@settings(max_examples=300, deadline=None)
@given(st.floats(1e-6, 1e6), st.integers(1, 6), st.integers(0, 3))
def test_the_true_value_rounded_to_at_least_the_asked_figures_passes(x, sigfigs, more):
    written = float(f"{x:.{sigfigs + more - 1}e}")
    assert match(Tolerance(Mode.SIGFIGS, sigfigs=sigfigs), written, x)


def test_default_real_tolerance_is_fair_at_every_magnitude():
    probs = [0.9, 0.0986, 0.00136]
    tol = Tolerance(atol=default_floor(probs))
    assert not match(tol, 0.0005, 0.00136), "0.0005 is not a probability of 0.00136"
    assert match(tol, 0.00137, 0.00136)
    loss = Tolerance(atol=default_floor([0.0134]))
    assert not match(loss, 0.0125, 0.0134), "7 % off"
    assert match(loss, 0.01345, 0.0134)
    assert match(Tolerance(atol=default_floor([100.0])), 100.9, 100.0)
    assert not match(Tolerance(atol=default_floor([100.0])), 101.1, 100.0)


def test_the_floor_scales_with_the_field():
    outputs = [-2.5, 3.1, 0.004]  # an output that cancels to nearly 0
    tol = Tolerance(atol=default_floor(outputs))
    assert match(tol, 0.005, 0.004) and match(tol, 0.0055, 0.004)
    assert not match(tol, 0.02, 0.004)


def test_counts_are_exact_below_10_8_and_take_3_significant_figures_above():
    count = Tolerance.count()
    assert match(count, 156, 156) and not match(count, 157, 156)
    assert not match(count, 99_999_990, 99_999_999)
    assert match(count, 1.20e8, 120_422_400) and match(count, 1.204e8, 120_422_400)
    assert match(count, 1.21e8, 120_422_400), "within one unit of the third figure"
    assert not match(count, 1.22e8, 120_422_400) and not match(count, 1.2e9, 120_422_400)
    assert BIG_COUNT == 10 ** 8


def test_nothing_matches_a_non_finite_expected_value():
    for tol in (Tolerance(atol=0.1), Tolerance.exact(), SIG3, Tolerance.count()):
        assert not match(tol, 0.0, np.inf) and not match(tol, 1e308, np.nan)


def test_half_unit():
    np.testing.assert_allclose(half_unit(np.array([123456.0, 0.00123456, -2.5, 0.0]), 2),
                               [5000, 0.00005, 0.05, 0])


def test_overrides_and_round_trip():
    t = Tolerance().overridden(rtol=0.05)
    assert (t.mode, t.rtol) == (Mode.RELABS, 0.05)
    s = Tolerance().overridden(sigfigs=3)
    assert s.mode is Mode.SIGFIGS and s.sigfigs == 3
    assert Tolerance.exact().overridden(rtol=0.5) == Tolerance.exact()
    assert Tolerance.count().overridden(sigfigs=2) == Tolerance.count()
    for tol in (t, s, Tolerance.count(), Tolerance(atol=0.003)):
        assert Tolerance.from_json(tol.to_json()) == tol


SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e8, 99999999.0, 123456789.0, 1e-300, 5e-324,
           1000.0, 0.001, 10.0, 100.0]
TOLERANCES = [Tolerance(), Tolerance(Mode.RELABS, 0.01, 0.003), Tolerance.exact(),
              Tolerance.count(), Tolerance(Mode.SIGFIGS, sigfigs=3),
              Tolerance(Mode.SIGFIGS, sigfigs=2)]


def test_the_graders_bitmask_comparison_agrees_with_entries_match():
    """``matches`` (plain floats, as the grader compares) gives entries_match's answer on
    every mode, for keys of every magnitude, boundaries, powers of ten and non-finite
    values, and for answers rounded, nudged, exact or not numbers at all."""
    rng = np.random.default_rng(0)
    for _ in range(3000):
        n = int(rng.integers(1, 12))
        expected = [float(rng.choice(SPECIAL)) if rng.random() < 0.15 else
                    float(rng.integers(-10 ** 9, 10 ** 9)) if rng.random() < 0.3 else
                    float(rng.uniform(-1, 1) * 10.0 ** rng.integers(-6, 10)) for _ in range(n)]
        given = []
        for x in expected:
            roll = rng.random()
            if roll < 0.1 or not np.isfinite(x):
                given.append(float(rng.choice(SPECIAL)) if roll < 0.05 else float(rng.uniform(-5, 5)))
            elif roll < 0.3:
                given.append(x)
            elif roll < 0.65:
                given.append(float(f"{x:.{rng.integers(1, 6)}g}"))
            else:
                given.append(x * (1 + rng.uniform(-0.03, 0.03)))
        for tol in TOLERANCES:
            with np.errstate(all="ignore"):
                ref = entries_match(tol, np.array(given), np.array(expected))
            assert matches(tol, given, expected) == sum(1 << i for i, ok in enumerate(ref) if ok), \
                (tol, given, expected)


def test_all_match_is_matches_all_ones():
    rng = np.random.default_rng(1)
    for _ in range(2000):
        n = int(rng.integers(0, 6))
        expected = [float(rng.choice(SPECIAL)) if rng.random() < 0.2 else
                    float(rng.uniform(-1, 1) * 10.0 ** rng.integers(-3, 10)) for _ in range(n)]
        given = [x if rng.random() < 0.7 else float(f"{x:.2g}") if np.isfinite(x) else 1.0
                 for x in expected]
        for tol in TOLERANCES:
            assert all_match(tol, given, expected) == (matches(tol, given, expected) == 2 ** n - 1)
