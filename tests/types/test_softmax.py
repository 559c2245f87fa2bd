"""softmax against torch.softmax on hundreds of random variants, its steps and slips, the
no-free-points bound, and hand-checked cases."""

import json
import math

import numpy as np
import pytest
import torch
from deepdrill.generator.exercise import get, make_variant
from deepdrill.generator.render import Question, Sheet, render_document
from deepdrill.generator.steps import NotApplicable
from deepdrill.grader.score import grade_question
from sweeps import near, sweep

from deepdrill.errors import ParamError
from deepdrill.model.variant import Variant

TYPE = "softmax"
SEEDS = range(300)
FEW_SEEDS = range(60)
OPTIONS = [{}, {"batch": 3}, {"batch": 1}, {"classes": 2}, {"classes": 6, "batch": 2},
           {"classes": 2, "batch": 6}]
SWEPT = [{}, {"batch": 3}]  # the full 300-seed sweeps; the other options get FEW_SEEDS
MAX_CONSTANT_SCORE = 0.1  # of the question's points


def variants(options):
    """The sweep's variants for these options, made once for every test that reads them."""
    return sweep(TYPE, options, len(SEEDS) if options in SWEPT else len(FEW_SEEDS))


def torch_softmax(logits):
    return torch.softmax(torch.tensor(logits, dtype=torch.float64), dim=-1).numpy()


@pytest.mark.parametrize("options", OPTIONS)
def test_seed_sweep_against_torch(options):
    for v in variants(options):
        expected = torch_softmax(v.params["logits"])
        assert np.shape(v.answers["probabilities"]) == expected.shape  # 2-D stays 2-D
        np.testing.assert_allclose(v.answers["probabilities"], expected, rtol=1e-12)
        assert v.field("probabilities").shape == list(expected.shape)


def test_options_set_the_shape():
    assert np.shape(make_variant(TYPE, 1).params["logits"]) in [(3,), (4,)]
    assert np.shape(make_variant(TYPE, 1, options={"batch": 1}).params["logits"])[0] == 1
    assert np.shape(make_variant(TYPE, 1, options={"classes": 5, "batch": 4})
                    .params["logits"]) == (4, 5)


@pytest.mark.parametrize("options", OPTIONS)
def test_draws_are_hand_friendly_and_clear_of_constants(options):
    for v in variants(options):
        z = np.atleast_2d(v.params["logits"])
        assert np.all(np.round(z * 10) == z * 10), "more than one decimal"
        assert z.min() >= -2 and z.max() <= 3
        top = np.sort(z, axis=-1)
        assert np.all(top[:, -1] > top[:, -2]), "tie for the largest logit"
        assert np.all(np.abs(z.sum(axis=-1)) > 1e-9), "ratio-of-logits mistake undefined"
        s = torch_softmax(z)
        for constant in (0, 1, 1 / z.shape[1], z):
            assert not near(s, constant).any(), (v.seed, constant)


def test_deterministic_per_seed_and_json_round_trip():
    for seed in range(20):
        for options in ({}, {"batch": 2}):
            v = make_variant(TYPE, seed, options=options)
            assert v == make_variant(TYPE, seed, options=options)
            assert Variant.from_json(json.loads(json.dumps(v.to_json()))) == v
    assert len({str(v.params) for v in variants({})}) > 200


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
    v = make_variant(TYPE, 0, {"logits": logits})
    assert v.params["logits"] == logits  # pinned values are kept as given
    np.testing.assert_allclose(v.answers["probabilities"], probs, rtol=1e-12)
    assert np.shape(v.answers["probabilities"]) == np.shape(logits)


def test_steps_are_the_exponentials_their_sum_and_the_ratios():
    values = get(TYPE).values({"logits": [[0, math.log(3)], [math.log(2), math.log(2)]]})
    np.testing.assert_allclose(values["exps"], [[1, 3], [2, 2]])
    np.testing.assert_allclose(values["total"], [4, 4])
    np.testing.assert_allclose(values["probabilities"], [[0.25, 0.75], [0.5, 0.5]])


def slips_by_name(params):
    return {s.name: s for s in get(TYPE).slips(params)}


def test_slips_reproduce_their_errors():
    v = make_variant(TYPE, 0, {"logits": [1, 2, 1]})
    by = {m.name: m.answers["probabilities"] for m in v.mistakes}
    np.testing.assert_allclose(by["ratio_of_logits"], [0.25, 0.5, 0.25])
    np.testing.assert_allclose(by["log_softmax"], np.log(torch_softmax([1.0, 2, 1])))
    batch = make_variant(TYPE, 0, {"logits": [[1, 3], [2, 2]]})
    by = {m.name: m.answers["probabilities"] for m in batch.mistakes}
    np.testing.assert_allclose(by["ratio_of_logits"], [[0.25, 0.75], [0.5, 0.5]])
    np.testing.assert_allclose(by["log_softmax"], np.log(torch_softmax([[1.0, 3], [2, 2]])))


def test_the_two_slips_swap_different_steps_and_combine():
    ex, params = get(TYPE), {"logits": [1, 3, 2]}
    by = slips_by_name(params)
    assert set(by["log_softmax"].swaps).isdisjoint(by["ratio_of_logits"].swaps)
    both = ex.values(params, [by["log_softmax"], by["ratio_of_logits"]])
    np.testing.assert_allclose(both["probabilities"], np.log([1 / 6, 3 / 6, 2 / 6]))
    # a ratio that is 0 or negative has no logarithm: the pair cannot be made there
    for logits in ([1, 3, -2], [0, 1, 2]):
        with pytest.raises(NotApplicable):
            ex.values({"logits": logits}, [by["log_softmax"], by["ratio_of_logits"]])


@pytest.mark.parametrize("logits", [[1, -1], [[1, 2], [-3, 3]], [1.7, -0.6, -1.1]])
def test_ratio_slip_only_when_the_sum_is_not_zero(logits):
    names = {m.name for m in make_variant(TYPE, 0, {"logits": logits}).mistakes}
    assert names == {"log_softmax"}
    assert set(slips_by_name({"logits": logits})) == {"log_softmax"}


@pytest.mark.parametrize("options", SWEPT)
def test_every_mistake_differs_from_the_answer(options):
    for v in variants(options):
        assert {m.name for m in v.mistakes} == {"log_softmax", "ratio_of_logits"}
        for m in v.mistakes:
            assert not np.allclose(m.answers["probabilities"], v.answers["probabilities"],
                                   rtol=1e-2, atol=1e-3)


def constant_answers(v):
    """What a student writes without working: all zeros, all ones, the uniform 1/n, and
    the logits copied."""
    z = np.asarray(v.params["logits"], dtype=float)
    return {name: np.broadcast_to(np.asarray(c, dtype=float), z.shape).tolist()
            for name, c in (("zeros", 0), ("ones", 1), ("uniform", 1 / z.shape[-1]),
                            ("logits", z))}


@pytest.mark.parametrize("options", SWEPT)
def test_a_constant_answer_earns_at_most_a_tenth(options):
    for v in variants(options):
        for name, answer in constant_answers(v).items():
            score = grade_question(v, {"probabilities": answer}, 10).score
            assert score <= 10 * MAX_CONSTANT_SCORE, (v.seed, name, score)
            assert score == 0  # the draws keep every entry clear of the constant answers


@pytest.mark.parametrize("logits, message", [
    ([1], "at least 2 numbers"),
    ([], "at least 2 numbers"),
    ([[[1, 2]]], "at least 2 numbers"),
    ([[1, 2], [3]], "rows of equal length"),
    (["1", "2"], "made of finite numbers"),
    ("x", "made of finite numbers"),
    ([float("nan"), 1], "finite"),
    ([1, 100], "|z| <= 50"),
])
def test_bad_logits(logits, message):
    with pytest.raises(ParamError, match=message.replace("|", r"\|")):
        make_variant(TYPE, 0, {"logits": logits})


@pytest.mark.parametrize("options, message", [
    ({"classes": 1}, "classes must be a whole number from 2 to 6"),
    ({"classes": "4"}, "classes must be a whole number"),
    ({"batch": 0}, "batch must be a whole number from 1 to 6"),
    ({"batch": 7}, "batch must be"),
    ({"size": 3}, "unknown option"),
])
def test_bad_options(options, message):
    with pytest.raises(ParamError, match=message):
        make_variant(TYPE, 0, options=options)


def test_missing_logits():
    with pytest.raises(ParamError, match="missing parameter 'logits'"):
        get(TYPE).check({})


def render(v, solutions):
    return render_document([Sheet("T", "C", [Question(1, 2, v)])], solutions=solutions)


def test_templates_render_one_example():
    v = make_variant(TYPE, 0, {"logits": [0, 1, 2]})
    problem = render(v, False)
    assert r"z = \left(0,\ 1,\ 2\right)" in problem and "entries $z_0$ to $z_{2}$" in problem
    assert "denominator" not in problem
    solution = render(v, True)
    assert r"\sum_j e^{z_j} = 1 + 2.718 + 7.389 = 11.11" in solution
    assert r"2 & $2$ & $7.389$ & $7.389 / 11.11 = \mathbf{0.6652}$" in solution
    assert r"\texttt{probabilities} = \left(0.09003,\ 0.2447,\ 0.6652\right)" in solution


def test_templates_render_a_batch():
    v = make_variant(TYPE, 0, {"logits": [[0, 1], [2, 2]]})
    assert r"Z = \begin{bmatrix}0 & 1 \\ 2 & 2\end{bmatrix}" in render(v, False)
    solution = render(v, True)
    assert r"\emph{Example 2}" in solution and "each row sums to 1" in solution
    assert r"\begin{bmatrix}0.2689 & 0.7311 \\ 0.5 & 0.5\end{bmatrix}" in solution


def test_worked_solution_reads_the_step_values():
    ex = get(TYPE)
    params = {"logits": [0, 1, 2]}
    values = ex.values(params)
    values["total"] = np.float64(12.5)  # a value no recomputation would give
    values["probabilities"] = np.array([0.125, 0.25, 0.625])
    steps = ex.worked(params, values)
    assert steps["rows"][0]["sum"] == "12.5" and steps["rows"][0]["exps"][2]["p"] == "0.625"
    assert steps["answer"] == r"\left(0.125,\ 0.25,\ 0.625\right)"


@pytest.mark.parametrize("options", OPTIONS)
def test_solutions_render_for_many_variants(options):
    for v in variants(options)[:15]:
        assert r"\texttt{probabilities}" in render(v, True)
