import pytest

from deepdrill.model.fields import (Field, Kind, describe_shape, flatten, integer, real, shape_of,
                                    size, skeleton)
from deepdrill.model.tolerance import Mode


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


def test_fields_declare_shape_tolerance_weights_and_steps_and_round_trip():
    shapes = integer("output_shapes", "shapes", [[3], [1]], 2, entry_weights=[1, 1, 0, 0.5],
                     parts=("shape_1", "shape_2"))
    assert shapes.tolerance.mode is Mode.COUNT and shapes.kind is Kind.INTEGER
    assert shapes.steps == ("shape_1", "shape_2")
    loss = real("loss", "the loss", [])
    assert loss.steps == ("loss",) and loss.entry_weights is None
    chained = Field("grad", "g", Kind.REAL, [2], loss.tolerance, depends_on=("probabilities",),
                    alternatives=([1, 2],))
    for f in (shapes, loss, chained):
        assert Field.from_json(f.to_json()) == f


def _flatten_by_walking(value):
    """flatten as it was written first: one leaf at a time."""
    if not isinstance(value, list):
        return [value]
    out, stack = [], [iter(value)]
    while stack:
        for v in stack[-1]:
            if isinstance(v, list):
                stack.append(iter(v))
                break
            out.append(v)
        else:
            stack.pop()
    return out


def test_flatten_takes_its_short_cuts_only_where_they_give_the_same_leaves():
    import random

    class Row(list):
        pass

    rng = random.Random(0)

    def value(depth=0):
        if depth > 4 or rng.random() < 0.4:
            return rng.choice([1, 2.5, "x", None, True, [], Row([1, 2])])
        return [value(depth + 1) for _ in range(rng.randrange(5))]

    for _ in range(20_000):
        v = value()
        assert flatten(v) == _flatten_by_walking(v), v
