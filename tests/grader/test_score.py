"""Scoring a question: right answers earn full marks, wrong ones lose the right points,
typical mistakes are named, and garbage never raises."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepdrill.generator.exercise import all_types, make_variant
from deepdrill.grader.numbers import NonFinite
from deepdrill.grader import score
from deepdrill.grader.score import CreditPolicy, grade_question

CONV = {"input": [[1, 2, 0], [0, 1, 3], [2, 1, 1]], "kernel": [[1, -1], [0, 2]]}
TYPES = [t.id for t in all_types()]


@pytest.fixture(scope="module")
def conv():
    return make_variant("conv2d_forward", 0, CONV)


@pytest.mark.parametrize("type_id", TYPES)
def test_right_answers_score_full_marks(type_id):
    for seed in range(40):
        v = make_variant(type_id, seed)
        r = grade_question(v, v.answers, 10)
        assert r.score == pytest.approx(10), (seed, {k: f.feedback for k, f in r.fields.items()})
        assert all(f.correct for f in r.fields.values())


@pytest.mark.parametrize("type_id", TYPES)
def test_the_key_handed_in_is_graded_as_reading_every_field_grades_it(type_id, monkeypatch):
    """The shortcut for answers that are the key, JSON for JSON, changes no report."""
    variants = [make_variant(type_id, seed) for seed in range(20)]
    quick = [grade_question(v, v.answers, 7).to_json() for v in variants]
    monkeypatch.setattr(score, "_is_the_key", lambda answers, variant: False)
    assert quick == [grade_question(v, v.answers, 7).to_json() for v in variants]


@pytest.mark.parametrize("type_id", TYPES)
def test_each_mistake_loses_points_and_is_named(type_id):
    named = 0
    for seed in range(40):
        v = make_variant(type_id, seed)
        for m in v.mistakes:
            r = grade_question(v, {**v.answers, **m.answers}, 10)
            assert r.score < 10
            for name in m.answers:
                f = r.fields[name]
                assert not f.correct
                if f.mistake == m.name:
                    named += 1
                    assert m.feedback in f.feedback
    assert named > 0, "no mistake was ever recognised"


def test_right_answers_as_text_and_fractions(conv):
    r = grade_question(conv, {"output": [["1", "8/1"], ["1.0", "0/3"]]}, 10)
    assert r.score == 10


def test_per_entry_credit_and_all_or_nothing(conv):
    half = {"output": [[1, 8], [0, 1]]}
    assert grade_question(conv, half, 10).score == pytest.approx(5)
    assert grade_question(conv, half, 10, CreditPolicy(per_entry=False)).score == 0
    full = grade_question(conv, {"output": [[1, 8], [1, 0]]}, 10, CreditPolicy(per_entry=False))
    assert full.score == 10


def test_flipped_kernel_is_named(conv):
    f = grade_question(conv, {"output": [[3, 6], [-1, 2]]}, 10).fields["output"]
    assert f.mistake == "flipped_kernel"
    assert "flipped the kernel" in f.feedback


@pytest.mark.parametrize("given, named", [
    ([[3, 6], [-1, "?"]], True),  # the flipped answer, one entry not given
    ([[1, 8], [1, 2]], False),  # one wrong entry happens to equal the flipped one
    ([[1, 6], [-1, 2]], False),  # right where the flipped kernel gives 3: not flipped there
])
def test_a_mistake_is_named_only_when_every_given_entry_is_its_answer(conv, given, named):
    f = grade_question(conv, {"output": given}, 10).fields["output"]
    assert (f.mistake == "flipped_kernel") is named, f.feedback
    assert ("flipped the kernel" in f.feedback) is named


@pytest.mark.parametrize("given, words", [
    ([[1, 8, 1, 0]], "expected a 2x2 matrix"),
    ([1, 8, 1, 0], "expected a 2x2 matrix, got a list of 4 numbers"),
    ("1 8 1 0", "expected a 2x2 matrix, got text"),
    ({"a": 1}, "got an object"),
    ([[1, 8], [1, NonFinite("NaN")]], "NaN is not a finite number"),
    ([[1, 8], [1, "zero"]], "'zero' is not a number"),
    ([[1, 8], [1, None]], "no answer given"),
])
def test_bad_values_get_messages_and_partial_credit(conv, given, words):
    f = grade_question(conv, {"output": given}, 4).fields["output"]
    assert words in f.feedback
    assert not f.correct
    assert f.score in (0, 3)


def test_single_channel_wrapped_in_one_more_list_is_accepted(conv):
    assert grade_question(conv, {"output": [[[1, 8], [1, 0]]]}, 1).score == 1


def test_missing_question_and_unknown_fields(conv):
    r = grade_question(conv, None, 5)
    assert r.score == 0 and r.fields["output"].feedback == "no answer"
    r = grade_question(conv, {"output": [[1, 8], [1, 0]], "extra": 1}, 5)
    assert r.score == 5 and "extra" in r.notes[0]
    r = grade_question(conv, [1, 2], 5)
    assert r.score == 0 and "expected an object" in r.notes[0]


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20)
    | st.builds(NonFinite, st.sampled_from(["NaN", "Infinity", "-Infinity"])),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=5), children,
                                                                      max_size=4),
    max_leaves=40)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_garbage_never_raises_and_scores_within_bounds(value):
    v = make_variant("conv2d_forward", 0, CONV)
    for answers in (value, {"output": value}):
        r = grade_question(v, answers, 10)
        assert 0 <= r.score <= 10 and math.isfinite(r.score)
        for f in r.fields.values():
            assert isinstance(f.feedback, str) and f.feedback


def test_a_whole_number_field_says_so_of_a_fraction():
    """A count given as 16.5 is no count: the message says so (a fast path for plain JSON
    numbers must not skip the check); 16.0 is 16."""
    v = make_variant("cnn_layer_table", 0, {"input_shape": [1, 4, 4], "layers": ["FC-1"]})
    f = grade_question(v, {"layer_params": [16.5]}, 1).fields["layer_params"]
    assert not f.correct and "16.5 is not a whole number" in f.feedback
    assert grade_question(v, {"layer_params": [17.0]}, 1).fields["layer_params"].correct


def test_booleans_never_pass_as_numbers():
    v = make_variant("cnn_layer_table", 0, {"input_shape": [1, 4, 4], "layers": ["FC-1"]})
    assert v.answers["layer_params"] == [17]
    one = make_variant("conv2d_forward", 0, {"input": [[1]], "kernel": [[1]]})
    assert one.answers["output"] == [[1]]
    f = grade_question(one, {"output": [[True]]}, 1).fields["output"]
    assert not f.correct and "not a number" in f.feedback


@pytest.mark.parametrize("type_id, params, answers, field, names", [
    # an Inception branch counted as k*k*C_out: input channels and biases both forgotten
    ("conv_cost", {"input_shape": [192, 28, 28], "branches": [["CONV3-64"], ["CONV1-32"]]},
     {"branch_params": [9 * 64, 32]}, "branch_params", {"forgot_input_channels",
                                                        "forgot_biases"}),
    # log base 10 of the predicted class's probability (class 0), not of the target's
    ("cross_entropy", {"logits": [2, 1, 0], "target": 2},
     {"loss": -math.log10(math.exp(2) / (math.exp(2) + math.exp(1) + 1))}, "loss",
     {"log10", "predicted_class"}),
])
def test_compound_mistakes_name_both(type_id, params, answers, field, names):
    v = make_variant(type_id, 0, params)
    f = grade_question(v, answers, 10).fields[field]
    assert set(f.mistake.split("+")) == names, f.feedback
    assert f.feedback.count("It looks like") == 1 and " and you " in f.feedback


def test_one_root_mistake_gets_one_diagnosis_across_fields():
    """A forgotten padding changes the shapes and, through them, the FC parameters: one
    name for both, not "forgot padding" in one and "forgot the +1" in the other."""
    v = make_variant("cnn_layer_table", 0, {"input_shape": [3, 8, 8],
                                            "layers": ["CONV3-4(1,1)", "FC-2"]})
    wrong = next(m for m in v.mistakes if m.name == "forgot_padding")
    r = grade_question(v, {**v.answers, **wrong.answers}, 10)
    named = {f.mistake for f in r.fields.values() if f.mistake}
    assert named == {"forgot_padding"}, {k: f.feedback for k, f in r.fields.items()}


def test_every_valid_value_of_a_blank_is_accepted():
    from dataclasses import replace

    from deepdrill.model.variant import Variant

    v = make_variant("conv2d_forward", 0, CONV)
    field = replace(v.fields[0], alternatives=([[2, 8], [1, 0]],))
    alt = Variant(v.type, v.seed, v.params, v.answers, (field,), v.mistakes, v.version)
    assert grade_question(alt, {"output": [[2, 8], [1, 0]]}, 1).score == 1
    assert grade_question(alt, {"output": [[1, 8], [1, 0]]}, 1).score == 1
    assert grade_question(alt, {"output": [[2, 8], [1, 1]]}, 1).score < 1


def test_entry_weights_are_summed_in_numpys_order():
    """A score on a rounding boundary (1.59375) must round as it always has: the weights'
    sum is numpy's pairwise sum, to the last bit."""
    from deepdrill.grader.score import pairwise_sum
    rng = np.random.default_rng(0)
    for n in list(range(0, 40)) + [127, 128, 129, 200, 300]:
        for _ in range(20):
            values = rng.choice([0.1, 1.0, 0.25, 1 / 3, 0.0, -0.0, rng.random()], size=n)
            assert pairwise_sum(values.tolist()) == float(values.sum())


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.integers(-10 ** 6, 10 ** 6) | st.floats(allow_nan=False, width=64),
    st.lists(st.integers(-99, 99) | st.floats(-1e3, 1e3), max_size=6),
    st.lists(st.lists(st.integers(-99, 99) | st.floats(-1e3, 1e3), max_size=4), max_size=4),
    st.lists(st.integers(-9, 9) | st.lists(st.integers(-9, 9), max_size=3), max_size=4)))
def test_a_json_value_flattens_as_numpy_flattens_it(value):
    """The grader's plain-Python reading of a stored value (a key, a mistake's answer) gives
    the floats numpy's ravel gives, or None where numpy cannot (ragged deeper down)."""
    from deepdrill.grader.reading import flat

    def by_numpy(v, n):
        try:
            if isinstance(v, list) and any(isinstance(x, list) for x in v):
                out = np.concatenate([np.ravel(np.asarray(x, dtype=float)) for x in v]).tolist()
            else:
                out = np.ravel(np.asarray(v, dtype=float)).tolist()
        except (TypeError, ValueError):
            return None
        return out if len(out) == n else None

    for n in range(0, 20):
        assert flat(value, n) == by_numpy(value, n)


def test_bits_lists_a_masks_set_bits_in_order():
    from deepdrill.grader.reading import bits
    for mask in [0, 1, 2, 5, 2 ** 70 + 3, (1 << 36) - 1]:
        assert bits(mask) == [i for i in range(mask.bit_length()) if mask >> i & 1]


def test_an_entry_is_named_by_its_index_as_numpy_unravels_it():
    """Feedback names wrong entries ``[1, 2]``; vectors and matrices take a short cut."""
    rng = np.random.default_rng(2)
    for _ in range(3000):
        shape = [int(d) for d in rng.integers(1, 9, size=int(rng.integers(1, 4)))]
        flat = int(rng.integers(0, math.prod(shape)))
        expected = "[" + ", ".join(str(int(i)) for i in np.unravel_index(flat, shape)) + "]"
        assert score._index(flat, shape) == expected, (flat, shape)
    assert score._index(4, [[3], [2, 2]]) == "[1][0][1]" and score._index(0, []) == "the value"
