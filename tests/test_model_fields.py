import pytest

from deepdrill.model.fields import (Tolerance, describe_shape, flatten, shape_of, size,
                                        skeleton)


@pytest.mark.parametrize("value, shape", [
    (2.5, []),
    ([1, 2, 3], [3]),
    ([[1, 2], [3, 4]], [2, 2]),
    ([[3, 28, 28], [6], [6]], [[3], [1], [1]]),
    ([[[1, 2]], [[3, 4]]], [2, 1, 2]),
    ([[1, [2]], [3, 4]], [[[], [1]], [2]]),
    ([], [0]),
])
def test_shape_of(value, shape):
    assert shape_of(value) == shape


@pytest.mark.parametrize("shape", [[], [3], [2, 2], [[3], [1], [3]], [2, 1, 3]])
def test_skeleton_has_the_shape_and_only_nulls(shape):
    blank = skeleton(shape)
    assert shape_of(blank) == shape or (shape == [] and blank is None)
    assert all(v is None for v in flatten(blank))
    assert len(flatten(blank)) == size(shape)


def test_describe_shape_reads_like_the_sheet():
    assert describe_shape([]) == "a number"
    assert describe_shape([4]) == "a list of 4 numbers"
    assert describe_shape([2, 3]) == "a 2x3 matrix"
    assert describe_shape([2, 2, 2]) == "an array of shape 2x2x2"
    assert describe_shape([[3], [1], [3]]) == "a list of 3 lists of 1 or 3 numbers"
    assert describe_shape([[2, 2], [1]]) == "a list of 2 items of different shapes"


def test_tolerance_overrides_and_round_trip():
    t = Tolerance().overridden(rtol=0.05)
    assert (t.rtol, t.atol) == (0.05, 1e-3)
    s = Tolerance().overridden(sigfigs=3)
    assert s.mode.value == "sigfigs" and s.sigfigs == 3
    assert Tolerance.exact().overridden(rtol=0.5) == Tolerance.exact()
    assert Tolerance.from_json(s.to_json()) == s
