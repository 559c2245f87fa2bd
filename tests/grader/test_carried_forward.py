"""Carried-forward credit along each type's chain, on cases worked out by hand."""

import math

import pytest

from deepdrill.generator.exercise import make_variant
from deepdrill.grader.score import CreditPolicy, grade_question

# (type, parameters, the student's answers, the wrong root fields, the carried fields and the
# values each carried field is consistent with)
CASES = [
    # mean 5 instead of 4; the variance from it: deviations -4, -2, 0, 2 give 24 / 4 = 6;
    # the normalised values (x - 5) / sqrt(6); gamma 2, beta 1 give the outputs from them.
    ("batchnorm_forward", {"x": [1, 3, 5, 7], "gamma": 2, "beta": 1},
     {"mean": 5, "variance": 6,
      "normalized": [-4 / math.sqrt(6), -2 / math.sqrt(6), 0, 2 / math.sqrt(6)],
      "output": [1 - 8 / math.sqrt(6), 1 - 4 / math.sqrt(6), 1, 1 + 4 / math.sqrt(6)]},
     {"mean"}, {"variance": {"mean": 5}, "normalized": {"mean": 5, "variance": 6}}),
    # the variance left blank: the normalised values still follow from the mean, through it
    ("batchnorm_forward", {"x": [1, 3, 5, 7], "gamma": 2, "beta": 1},
     {"mean": 5, "normalized": [-4 / math.sqrt(6), -2 / math.sqrt(6), 0, 2 / math.sqrt(6)]},
     {"mean"}, {"normalized": {"mean": 5}}),
    # probabilities (0.4, 0.6) instead of (0.5, 0.5): loss -ln 0.6, gradient (0.4, -0.4)
    ("cross_entropy", {"logits": [0, 0], "target": 1},
     {"probabilities": [0.4, 0.6], "loss": -math.log(0.6), "grad_logits": [0.4, -0.4]},
     {"probabilities"}, {"loss": {"probabilities": [0.4, 0.6]},
                         "grad_logits": {"probabilities": [0.4, 0.6]}}),
    # 27 instead of 28 after the 5x5 convolution; pooling 27 gives floor(25/2) + 1 = 13; the
    # FC layer then has 6*13*13*10 + 10 = 10150 parameters, the total 156 + 10150 = 10306
    ("cnn_layer_table", {"input_shape": [1, 32, 32], "layers": ["CONV5-6(1,0)", "POOL-2", "FC-10"]},
     {"output_shapes": [[6, 27, 27], [6, 13, 13], [10]], "layer_params": [156, 0, 10150],
      "total_params": 10306},
     {"output_shapes"}, {"total_params": {"layer_params": [156, 0, 10150]}}),
    # branch multiplications 1000 and 250 instead: the savings factor 4 follows from them
    ("conv_cost", {"input_shape": [192, 28, 28], "branches": [["CONV5-32"], ["CONV1-16", "CONV5-32"]],
                   "compare": True},
     {"branch_multiplications": [1000, 250], "branch_params": [153632, 15920],
      "output_shape": [32, 28, 28], "savings_factor": 4},
     {"branch_multiplications"}, {"savings_factor": {"branch_multiplications": [1000, 250]}}),
]


@pytest.mark.parametrize("type_id, params, answers, wrong, carried", CASES)
def test_later_fields_are_credited_from_the_students_own_values(type_id, params, answers, wrong,
                                                                 carried):
    v = make_variant(type_id, 0, params)
    full = grade_question(v, answers, 10)
    for name in wrong:
        assert full.fields[name].score < full.fields[name].max_score
    for name, consistent in carried.items():
        f = full.fields[name]
        assert f.score == pytest.approx(f.max_score) and f.carried == pytest.approx(f.score), \
            (name, f.feedback)
        assert f.consistent_with == consistent and "carried forward" in f.feedback
    half = grade_question(v, answers, 10, CreditPolicy(carry_forward=0.5))
    none = grade_question(v, answers, 10, CreditPolicy(carry_forward=0.0))
    for name in carried:
        assert half.fields[name].score == pytest.approx(full.fields[name].score / 2)
        assert none.fields[name].score == 0 and none.fields[name].carried == 0
    assert full.carried == pytest.approx(2 * half.carried) and full.carried > 0


def test_the_layer_table_carries_a_wrong_shape_down_the_rows():
    v = make_variant("cnn_layer_table", 0, {"input_shape": [1, 32, 32],
                                            "layers": ["CONV5-6(1,0)", "POOL-2", "FC-10"]})
    r = grade_question(v, CASES[3][2], 10)
    shapes, counts = r.fields["output_shapes"], r.fields["layer_params"]
    assert "right for your output_shapes[0] [6, 27, 27]" in shapes.feedback
    assert counts.carried > 0 and "output_shapes[1] [6, 13, 13]" in counts.feedback


def test_a_value_that_cannot_feed_a_step_gives_no_credit_and_no_error():
    v = make_variant("batchnorm_forward", 0, {"x": [1, 3, 5, 7], "gamma": 2, "beta": 1})
    r = grade_question(v, {"mean": 4, "variance": -1, "normalized": [0, 0, 0, 0]}, 10)
    assert r.fields["normalized"].carried == 0 and r.fields["normalized"].score < 2.5
    r = grade_question(v, {"mean": "four", "variance": 5, "normalized": [1, 2, 3, 4]}, 10)
    assert r.fields["variance"].correct and r.fields["normalized"].carried == 0


def test_answers_rounded_from_right_values_are_simply_correct():
    # s = (0.98547, 0.01453) rounded to (0.985, 0.0145): -ln 0.985 is 1.5 % off the exact loss,
    # but right from the student's rounded probabilities, which were right: full credit.
    v = make_variant("cross_entropy", 0, {"logits": [4.2, 0], "target": 0})
    rounded = [float(f"{p:.3g}") for p in v.answers["probabilities"]]
    loss = -math.log(rounded[0])
    assert abs(loss - v.answers["loss"]) > 0.012 * v.answers["loss"]  # fails plain 1 %
    r = grade_question(v, {"probabilities": rounded, "loss": loss,
                           "grad_logits": [rounded[0] - 1, rounded[1]]}, 10)
    assert r.score == pytest.approx(10) and r.carried == 0
    assert "right from your own values" in r.fields["loss"].feedback
