"""batchnorm_forward against torch.nn.functional.batch_norm (training mode, float64)."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepdrill.errors import ParamError
from deepdrill.generator.exercise import make_variant
from deepdrill.generator.render import Question, Sheet, render_document
from deepdrill.generator.batches import batch_shapes
from deepdrill.generator.types.batchnorm_forward import GAMMAS, NEGATIVE_GAMMAS
from deepdrill.model.variant import Variant


TYPE = "batchnorm_forward"
SEEDS = range(200)
FEW_SEEDS = range(40)
TINY = torch.finfo(torch.float64).tiny  # torch refuses eps = 0 in training; this adds nothing


def torch_oracle(x, gamma, beta, eps):
    """mean, variance, normalized and output from torch, shaped like x (1-D x: one feature)."""
    t = torch.tensor(np.asarray(x, dtype=float).reshape(len(x), -1), dtype=torch.float64)
    d = t.shape[1]
    g = torch.tensor(np.broadcast_to(np.asarray(gamma, dtype=float), (d,)).copy())
    b = torch.tensor(np.broadcast_to(np.asarray(beta, dtype=float), (d,)).copy())
    eps = float(eps) or TINY
    out = {
        "mean": t.mean(0),
        "variance": torch.var(t, 0, unbiased=False),
        "normalized": F.batch_norm(t, None, None, training=True, momentum=0.0, eps=eps),
        "output": F.batch_norm(t, None, None, weight=g, bias=b, training=True, momentum=0.0,
                               eps=eps),
    }
    one_feature = np.ndim(x) == 1
    return {k: (v.numpy()[..., 0] if one_feature else v.numpy()) for k, v in out.items()}


def assert_matches_torch(v):
    p = v.params
    want = torch_oracle(p["x"], p["gamma"], p["beta"], p["eps"])
    for name, value in want.items():
        assert np.shape(v.answers[name]) == value.shape, name
        assert v.field(name).shape == list(value.shape), name
        np.testing.assert_allclose(v.answers[name], value, rtol=1e-9, atol=1e-12,
                                   err_msg=f"{name}, seed {v.seed}")


@pytest.mark.parametrize("options", [{}, {"features": 3}])
def test_seed_sweep_against_torch(options):
    for seed in SEEDS:
        assert_matches_torch(make_variant(TYPE, seed, options=options))


@pytest.mark.parametrize("options, pinned", [
    ({"n": 3}, {}), ({"n": 4}, {}), ({"n": 6, "features": 2}, {}), ({"features": 1}, {}),
    ({"features": 4}, {}), ({}, {"eps": 0.5}), ({"features": 2}, {"eps": 1e-5}),
    ({"n": 3}, {"eps": 2}), ({}, {"gamma": -1.5, "beta": 0.3}),
    ({}, {"x": [[1.5, -2, 0.1], [2.5, 7, 0.2], [0, 1, 0.3]], "gamma": [1, -2, 0.5]}),
])
def test_more_options_against_torch(options, pinned):
    for seed in FEW_SEEDS:
        assert_matches_torch(make_variant(TYPE, seed, pinned, options))


def features_of(x):
    return np.asarray(x, dtype=float).reshape(len(x), -1).T


@pytest.mark.parametrize("options", [{}, {"features": 3}, {"n": 4, "features": 2}])
def test_draws_are_hand_friendly(options):
    for seed in SEEDS:
        v = make_variant(TYPE, seed, options=options)
        assert len(v.params["x"]) in (4, 5, 6) and v.params["eps"] == 0
        for col in features_of(v.params["x"]):
            assert np.all(col * 2 == np.round(col * 2)), "values are whole or half numbers"
            assert col.max() - col.min() <= 12 and len(set(col)) >= 3
            mean, std = col.mean(), col.std()
            assert 2 * mean == round(2 * mean), "mean is a whole or half number"
            assert 10 * std == pytest.approx(round(10 * std), abs=1e-9), "sigma has one decimal"
            assert std > 1 and std != pytest.approx(1), "sigma = 1 hides divided_by_variance"
        for g, b in zip(np.ravel(v.params["gamma"]), np.ravel(v.params["beta"])):
            assert g in GAMMAS + NEGATIVE_GAMMAS
            assert 10 * b == round(10 * b) and -2 <= b <= 3
            assert not (abs(g) == 1 and b == 0), "normalising gamma x + beta would be right"
        # every mistake is reproducible and told apart from the answer on these draws
        assert [m.name for m in v.mistakes] == ["sample_variance", "divided_by_variance",
                                                "affine_before_normalising"]


def test_n_3_has_a_whole_variance():
    """Three rational values never have a rational sigma, so N = 3 gets a whole variance."""
    for seed in FEW_SEEDS:
        v = make_variant(TYPE, seed, options={"n": 3})
        assert len(v.params["x"]) == 3 and float(v.answers["variance"]).is_integer()
        assert isinstance(v.answers["mean"], int)
    assert all(len(s) == 3 for s in batch_shapes(3))


def test_random_draws_vary_and_use_negative_gammas():
    draws = [make_variant(TYPE, s) for s in SEEDS]
    assert len({str(v.params["x"]) for v in draws}) > 150
    assert {len(v.params["x"]) for v in draws} == {4, 5, 6}
    assert any(v.params["gamma"] < 0 for v in draws)
    assert any(not float(v.params["beta"]).is_integer() for v in draws)
    assert any(not float(x).is_integer() for v in draws for x in v.params["x"])  # halved


def test_deterministic_per_seed_and_json_round_trip():
    for seed in range(20):
        for options in ({}, {"features": 2}):
            v = make_variant(TYPE, seed, options=options)
            assert v == make_variant(TYPE, seed, options=options)
            assert Variant.from_json(json.loads(json.dumps(v.to_json()))) == v


def test_options_set_the_shape():
    assert np.shape(make_variant(TYPE, 3, options={"n": 5}).params["x"]) == (5,)
    assert np.shape(make_variant(TYPE, 3, options={"n": 4, "features": 3}).params["x"]) == (4, 3)
    assert np.shape(make_variant(TYPE, 3, options={"features": 1}).params["x"])[1:] == (1,)
    v = make_variant(TYPE, 3, {"gamma": [1, 2]})  # a per-feature gamma asks for 2 features
    assert np.shape(v.params["x"])[1:] == (2,) and np.shape(v.params["beta"]) == (2,)
    shape = list(np.shape(v.params["x"]))
    assert [f.shape for f in v.fields] == [[2], [2], shape, shape]


def test_pinned_params_are_kept():
    pinned = {"x": [3, -1, 4, 1.5], "gamma": -2, "beta": 0.25, "eps": 0.01}
    assert make_variant(TYPE, 5, pinned).params == pinned
    v = make_variant(TYPE, 5, {"x": [[1, 2], [3, 5]], "gamma": 3})
    assert v.params["x"] == [[1, 2], [3, 5]] and v.params["gamma"] == 3
    assert np.shape(v.params["beta"]) == (2,)


@pytest.mark.parametrize("x, gamma, beta, eps, answers", [
    ([2, 4, 4, 4, 5, 5, 7, 9], 2, 1, 0,
     {"mean": 5, "variance": 4, "normalized": [-1.5, -.5, -.5, -.5, 0, 0, 1, 2],
      "output": [-2, 0, 0, 0, 1, 1, 3, 5]}),
    ([1, 3], 1, 0, 0, {"mean": 2, "variance": 1, "normalized": [-1, 1], "output": [-1, 1]}),
    # deviations -1.5, -0.5, -0.5, 2.5: squares sum to 9, sigma = 1.5
    ([0, 1, 1, 4], 0.5, -1, 0, {"mean": 1.5, "variance": 2.25,
                                "normalized": [-1, -1 / 3, -1 / 3, 5 / 3],
                                "output": [-1.5, -7 / 6, -7 / 6, -1 / 6]}),
    ([1, 3], 2, 1, 3, {"mean": 2, "variance": 1, "normalized": [-.5, .5], "output": [0, 2]}),
    ([0.1, 0.2, 0.3], 1, 0, 0, {"mean": 0.2, "normalized": [-math.sqrt(1.5), 0,
                                                             math.sqrt(1.5)]}),
    ([[0, 1], [2, 3]], [1, 2], [0, 1], 0,
     {"mean": [1, 2], "variance": [1, 1], "normalized": [[-1, -1], [1, 1]],
      "output": [[-1, -1], [1, 3]]}),
    ([[1, 10], [3, 30]], -1, 0.5, 0,  # one gamma and beta for every feature
     {"mean": [2, 20], "variance": [1, 100], "output": [[1.5, 1.5], [-0.5, -0.5]]}),
])
def test_hand_checked(x, gamma, beta, eps, answers):
    v = make_variant(TYPE, 0, {"x": x, "gamma": gamma, "beta": beta, "eps": eps})
    for name, value in answers.items():
        np.testing.assert_allclose(v.answers[name], value, rtol=1e-12, atol=1e-15)


def test_cancellation_residue_is_an_exact_zero():
    v = make_variant(TYPE, 0, {"x": [0.1, 0.2, 0.3, 0.2], "gamma": 1.5, "beta": 0})
    assert v.answers["normalized"][1] == 0 and v.answers["output"][3] == 0


def by_name(v):
    return {m.name: m.answers for m in v.mistakes}


def test_mistakes_reproduce_their_errors():
    v = make_variant(TYPE, 0, {"x": [2, 4, 4, 4, 5, 5, 7, 9], "gamma": 2, "beta": 1})
    dev = np.array([-3, -1, -1, -1, 0, 0, 2, 4])
    m = by_name(v)
    assert m["sample_variance"]["variance"] == pytest.approx(32 / 7)
    np.testing.assert_allclose(m["sample_variance"]["output"], 2 * dev / math.sqrt(32 / 7) + 1)
    np.testing.assert_allclose(m["divided_by_variance"]["normalized"], dev / 4)
    np.testing.assert_allclose(m["divided_by_variance"]["output"], dev / 2 + 1)
    # gamma x + beta normalised: mean 11 and variance 16 of the scaled values, and an output
    # equal to the right normalised values (so "normalized" itself is not a mistake here)
    assert m["affine_before_normalising"]["mean"] == 11
    assert m["affine_before_normalising"]["variance"] == 16
    np.testing.assert_allclose(m["affine_before_normalising"]["output"], dev / 2)
    assert "normalized" not in m["affine_before_normalising"]


def test_affine_mistake_with_negative_gamma_and_eps():
    x, dev = [2, 4, 4, 4, 5, 5, 7, 9], np.array([-3, -1, -1, -1, 0, 0, 2, 4])
    m = by_name(make_variant(TYPE, 0, {"x": x, "gamma": -2, "beta": 1}))
    np.testing.assert_allclose(m["affine_before_normalising"]["normalized"], -dev / 2)
    m = by_name(make_variant(TYPE, 0, {"x": x, "gamma": 2, "beta": 1, "eps": 1}))
    np.testing.assert_allclose(m["affine_before_normalising"]["output"], 2 * dev / math.sqrt(17))


def test_affine_mistake_only_where_it_differs():
    """|gamma| = 1 and beta = 0: normalising gamma x + beta gives the right output."""
    m = by_name(make_variant(TYPE, 0, {"x": [1, 2, 6], "gamma": 1, "beta": 0}))
    assert "affine_before_normalising" not in m  # the same answer on every field
    m = by_name(make_variant(TYPE, 0, {"x": [1, 2, 6], "gamma": -1, "beta": 0}))
    assert set(m["affine_before_normalising"]) == {"mean", "normalized"}  # -mu, -x_hat


def test_every_mistake_differs_from_the_answer():
    for seed in FEW_SEEDS:
        for options in ({}, {"features": 2}, {"n": 3}):
            v = make_variant(TYPE, seed, options=options)
            for m in v.mistakes:
                assert m.answers
                for name, value in m.answers.items():
                    assert not np.allclose(value, v.answers[name], rtol=1e-2, atol=1e-3), \
                        (m.name, name, seed)


@pytest.mark.parametrize("pinned, words", [
    ({"x": [1]}, "at least 2 numbers"),
    ({"x": [[1, 2]]}, "at least 2 numbers"),
    ({"x": [1, 1, 1]}, "zero variance and eps = 0"),
    ({"x": [[1, 5], [1, 6]]}, r"zero variance \(feature 1\)"),
    ({"x": [[1, 2], [3, 4]], "gamma": [1, 2, 3]}, "one value per feature"),
    ({"x": [1, 2, 3], "gamma": [1, 2]}, "single number when x is one feature"),
    ({"x": [1, 2, 3], "beta": [[1]]}, "single number"),
    ({"eps": -1}, "eps must be a single number, at least 0"),
    ({"eps": [1]}, "eps must be a single number"),
    ({"x": [[1, 2], [3]]}, "x must be made of finite numbers"),
    ({"x": [1, float("nan"), 2]}, "finite numbers"),
    ({"x": "123"}, "finite numbers"),
    ({"gamma": "big"}, "gamma must be made of"),
    ({"mean": 3}, "unknown parameter"),
])
def test_bad_params(pinned, words):
    with pytest.raises(ParamError, match=words):
        make_variant(TYPE, 0, pinned)


@pytest.mark.parametrize("options, words", [
    ({"n": 9}, "option n must be a whole number from 3 to 6"),
    ({"n": 2}, "from 3 to 6"), ({"n": 4.5}, "whole number"), ({"n": True}, "whole number"),
    ({"features": 0}, "option features must be a whole number from 1 to 4"),
    ({"batch": 3}, "unknown option"),
])
def test_bad_options(options, words):
    with pytest.raises(ParamError, match=words):
        make_variant(TYPE, 0, options=options)


def render(v, solutions):
    return render_document([Sheet("T", "C", [Question(1, 4, v)])], solutions=solutions)


@pytest.mark.parametrize("options, pinned", [
    ({}, {}), ({"features": 2}, {}), ({"n": 3}, {"eps": 0.5}), ({"features": 4, "n": 6}, {}),
])
def test_templates_render(options, pinned):
    v = make_variant(TYPE, 2, pinned, options)
    problem, solution = render(v, False), render(v, True)
    for text in (problem, solution):
        assert r"\ddfield{normalized}" in text and "training mode" in text
    assert r"\toprule" in solution and "mean is the sum over the batch" in solution
    assert "mean is the sum" not in problem
    assert solution.count(r"\toprule") == (options.get("features") or 1)
    assert ("we divide by" in solution) == bool(pinned.get("eps"))
    if options.get("n") == 3:  # sigma is irrational for N = 3
        assert r"\approx" in solution


def test_worked_solution_shows_the_arithmetic():
    v = make_variant(TYPE, 0, {"x": [2, 4, 4, 4, 5, 5, 7, 9], "gamma": 2, "beta": -1})
    text = render(v, True)
    assert r"\mu = (2 + 4 + 4 + 4 + 5 + 5 + 7 + 9) / 8 = 40 / 8 = \mathbf{5}" in text
    assert r"\sigma^2 = (9 + 1 + 1 + 1 + 0 + 0 + 4 + 16) / 8 = 32 / 8 = \mathbf{4}" in text
    assert r"\sigma = \sqrt{4} = 2" in text
    assert r"-3 / 2 = \mathbf{-1.5}" in text and r"2\cdot (-1.5) - 1 = \mathbf{-4}" in text


def test_inexact_values_are_approximate():
    text = render(make_variant(TYPE, 0, {"x": [0, 3, 6], "gamma": 1, "beta": 1}), True)
    assert r"\sigma = \sqrt{6} \approx 2.449" in text
    assert r"-3 / 2.449 \approx \mathbf{-1.225}" in text
