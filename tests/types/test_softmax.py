"""softmax against torch.softmax on hundreds of random variants, and hand-checked cases."""

import json
import math

import numpy as np
import pytest
import torch

from deepdrill.errors import ParamError
from deepdrill.generator.exercise import get, make_variant
from deepdrill.generator.render import Question, Sheet, render_document
from deepdrill.model.variant import Variant

SEEDS = range(250)
OPTIONS = [{}, {"batch": 3}, {"batch": 1}, {"classes": 2}, {"classes": 6, "batch": 2}]




def torch_softmax(logits):
    return torch.softmax(torch.tensor(logits, dtype=torch.float64), dim=-1).numpy()


@pytest.mark.parametrize("options", OPTIONS)
def test_seed_sweep_against_torch(options):
    for seed in SEEDS:
        v = make_variant("softmax", seed, options=options)
        expected = torch_softmax(v.params["logits"])
        assert np.shape(v.answers["probabilities"]) == expected.shape  # 2-D stays 2-D
        np.testing.assert_allclose(v.answers["probabilities"], expected, rtol=1e-12)
        assert v.field("probabilities").shape == list(expected.shape)


def test_options_set_the_shape():
    assert np.shape(make_variant("softmax", 1).params["logits"]) in [(3,), (4,)]
    assert np.shape(make_variant("softmax", 1, options={"batch": 1}).params["logits"])[0] == 1
    assert np.shape(make_variant("softmax", 1, options={"classes": 5, "batch": 4})
                    .params["logits"]) == (4, 5)


@pytest.mark.parametrize("options", [{}, {"batch": 4}])
def test_draws_are_hand_friendly(options):
    for seed in SEEDS:
        z = np.atleast_2d(make_variant("softmax", seed, options=options).params["logits"])
        assert np.all(np.round(z * 10) == z * 10), "more than one decimal"
        assert z.min() >= -2 and z.max() <= 3
        top = np.sort(z, axis=-1)
        assert np.all(top[:, -1] > top[:, -2]), "tie for the largest logit"
        assert np.all(np.abs(z.sum(axis=-1)) > 1e-9), "ratio-of-logits mistake undefined"


def test_deterministic_per_seed_and_json_round_trip():
    for seed in range(20):
        for options in ({}, {"batch": 2}):
            v = make_variant("softmax", seed, options=options)
            assert v == make_variant("softmax", seed, options=options)
            assert Variant.from_json(json.loads(json.dumps(v.to_json()))) == v
    assert len({str(make_variant("softmax", s).params) for s in SEEDS}) > 150


@pytest.mark.parametrize("logits, probs", [
    ([0, 0], [0.5, 0.5]),
    ([1, 1, 1, 1], [0.25] * 4),  # pinned values may be uniform; only draws avoid it
    ([math.log(1), math.log(3)], [0.25, 0.75]),
    ([0, math.log(2), math.log(5)], [0.125, 0.25, 0.625]),
    ([[0, math.log(2), math.log(5)]], [[0.125, 0.25, 0.625]]),
    ([[0, 0], [math.log(4), 0]], [[0.5, 0.5], [0.8, 0.2]]),
    ([50, 0], [1 / (1 + math.exp(-50)), math.exp(-50) / (1 + math.exp(-50))]),
])
def test_hand_checked(logits, probs):
    v = make_variant("softmax", 0, {"logits": logits})
    assert v.params["logits"] == logits  # pinned values are kept as given
    np.testing.assert_allclose(v.answers["probabilities"], probs, rtol=1e-12)
    assert np.shape(v.answers["probabilities"]) == np.shape(logits)


def test_mistakes_reproduce_their_errors():
    v = make_variant("softmax", 0, {"logits": [1, 2, 1]})
    by = {m.name: m.answers["probabilities"] for m in v.mistakes}
    np.testing.assert_allclose(by["ratio_of_logits"], [0.25, 0.5, 0.25])
    np.testing.assert_allclose(by["log_softmax"], np.log(torch_softmax([1.0, 2, 1])))
    batch = make_variant("softmax", 0, {"logits": [[1, 3], [2, 2]]})
    by = {m.name: m.answers["probabilities"] for m in batch.mistakes}
    np.testing.assert_allclose(by["ratio_of_logits"], [[0.25, 0.75], [0.5, 0.5]])


@pytest.mark.parametrize("logits", [[1, -1], [[1, 2], [-3, 3]], [1.7, -0.6, -1.1]])
def test_ratio_mistake_only_when_the_sum_is_not_zero(logits):
    names = {m.name for m in make_variant("softmax", 0, {"logits": logits}).mistakes}
    assert names == {"log_softmax"}


def test_every_mistake_differs_from_the_answer():
    for seed in SEEDS:
        v = make_variant("softmax", seed, options={"batch": 2} if seed % 2 else {})
        assert {m.name for m in v.mistakes} == {"log_softmax", "ratio_of_logits"}
        for m in v.mistakes:
            assert not np.allclose(m.answers["probabilities"], v.answers["probabilities"],
                                   rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("logits, message", [
    ([1], "at least 2 numbers"),
    ([], "at least 2 numbers"),
    ([[[1, 2]]], "at least 2 numbers"),
    ([[1, 2], [3]], "rows of equal length"),
    (["1", "2"], "made of numbers"),
    ("x", "made of numbers"),
    ([float("nan"), 1], "finite"),
    ([1, 100], "|z| <= 50"),
])
def test_bad_logits(logits, message):
    with pytest.raises(ParamError, match=message.replace("|", r"\|")):
        make_variant("softmax", 0, {"logits": logits})


@pytest.mark.parametrize("options, message", [
    ({"classes": 1}, "classes must be a whole number from 2 to 6"),
    ({"classes": "4"}, "classes must be a whole number"),
    ({"batch": 0}, "batch must be a whole number from 1 to 6"),
    ({"batch": 7}, "batch must be"),
    ({"size": 3}, "unknown option"),
])
def test_bad_options(options, message):
    with pytest.raises(ParamError, match=message):
        make_variant("softmax", 0, options=options)


def test_missing_logits():
    with pytest.raises(ParamError, match="missing parameter 'logits'"):
        get("softmax").check({})


def test_templates_render_one_example():
    v = make_variant("softmax", 0, {"logits": [0, 1, 2]})
    sheet = Sheet("T", "C", [Question(1, 2, v)])
    problem = render_document([sheet], solutions=False)
    assert r"z = \left(0,\ 1,\ 2\right)" in problem and "entries $z_0$ to $z_{2}$" in problem
    assert "denominator" not in problem
    solution = render_document([sheet], solutions=True)
    assert r"\sum_j e^{z_j} = 1 + 2.718 + 7.389 = 11.11" in solution
    assert r"2 & $2$ & $7.389$ & $7.389 / 11.11 = \mathbf{0.6652}$" in solution
    assert r"\texttt{probabilities} = \left(0.09003,\ 0.2447,\ 0.6652\right)" in solution


def test_templates_render_a_batch():
    v = make_variant("softmax", 0, {"logits": [[0, 1], [2, 2]]})
    sheet = Sheet("T", "C", [Question(1, 2, v)])
    problem = render_document([sheet], solutions=False)
    assert r"Z = \begin{bmatrix}0 & 1 \\ 2 & 2\end{bmatrix}" in problem
    solution = render_document([sheet], solutions=True)
    assert r"\emph{Example 2}" in solution and "each row sums to 1" in solution
    assert r"\begin{bmatrix}0.2689 & 0.7311 \\ 0.5 & 0.5\end{bmatrix}" in solution
