import numpy as np
import pytest

from deepdrill.model.fields import Mode, Tolerance
from deepdrill.model.tolerance import entries_match, round_sigfigs


def match(tol, given, expected):
    return bool(entries_match(tol, np.array([given], float), np.array([expected], float))[0])


@pytest.mark.parametrize("given, expected, ok", [
    (100.9, 100.0, True),     # within rtol 1e-2 of 100
    (101.1, 100.0, False),
    (0.0009, 0.0, True),      # atol 1e-3 near zero
    (0.0011, 0.0, False),
    (0.2475, 0.25, True),     # the looser of the two: max(1e-3, 2.5e-3)
    (0.2524, 0.25, True),
    (0.2526, 0.25, False),
])
def test_relabs_is_the_catalogue_rule(given, expected, ok):
    assert match(Tolerance(), given, expected) is ok


def test_relabs_boundary_is_inclusive_despite_binary_rounding():
    assert match(Tolerance(Mode.RELABS, 0.0, 0.1), 0.3, 0.2)


@pytest.mark.parametrize("given, expected, ok", [
    (0.1234, 0.12349, True), (0.1230, 0.1236, False), (1234.0, 1234.4, True), (0.0, 0.0, True),
])
def test_sigfigs(given, expected, ok):
    assert match(Tolerance(Mode.SIGFIGS, sigfigs=3), given, expected) is ok


def test_exact():
    assert match(Tolerance.exact(), 156, 156)
    assert not match(Tolerance.exact(), 157, 156)


def test_round_sigfigs():
    np.testing.assert_allclose(round_sigfigs(np.array([123456.0, 0.00123456, -2.5]), 2),
                               [120000.0, 0.0012, -2.5])
