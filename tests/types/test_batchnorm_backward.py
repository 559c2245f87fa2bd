"""batchnorm_backward against torch autograd through F.batch_norm (training mode, float64)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepdrill.errors import ParamError
from deepdrill.generator.backward import MAX_CONSTANT_SHARE, free_share, survives_rounding
from deepdrill.generator.exercise import get, make_variant
from deepdrill.generator.render import Question, Sheet, render_document
from deepdrill.generator.steps import run
from deepdrill.generator.types.batchnorm_backward import GRAPH, derivation
from sweeps import sweep

TYPE = "batchnorm_backward"
TINY = torch.finfo(torch.float64).tiny  # torch refuses eps = 0 in training; this adds nothing
SLIPS = ["mean_variance_constant", "forgot_mean_path", "forgot_variance_path",
         "grad_gamma_with_x"]


def torch_oracle(x, gamma, beta, eps, grad_output):
    """dL/dgamma, dL/dbeta, dL/dx by autograd, shaped like the answers (1-D x: one feature)."""
    t = torch.tensor(np.asarray(x, dtype=float).reshape(len(x), -1), requires_grad=True)
    d = t.shape[1]
    g = torch.tensor(np.broadcast_to(np.asarray(gamma, dtype=float), (d,)).copy(),
                     requires_grad=True)
    b = torch.tensor(np.broadcast_to(np.asarray(beta, dtype=float), (d,)).copy(),
                     requires_grad=True)
    y = F.batch_norm(t, None, None, weight=g, bias=b, training=True, eps=float(eps) or TINY)
    y.backward(torch.tensor(np.asarray(grad_output, dtype=float).reshape(t.shape)))
    out = {"grad_gamma": g.grad, "grad_beta": b.grad, "grad_input": t.grad}
    one_feature = np.ndim(x) == 1
    return {k: (v.numpy()[..., 0] if one_feature else v.numpy()) for k, v in out.items()}


def assert_matches_torch(v):
    want = torch_oracle(*(v.params[k] for k in ("x", "gamma", "beta", "eps", "grad_output")))
    for name, value in want.items():
        assert v.field(name).shape == list(value.shape), name
        np.testing.assert_allclose(v.answers[name], value, rtol=1e-9, atol=1e-12,
                                   err_msg=f"{name}, seed {v.seed}")


@pytest.mark.parametrize("options, seeds", [
    ({}, 200), ({"features": 2}, 100), ({"n": 3}, 50), ({"n": 4, "features": 3}, 30),
])
def test_seed_sweep_against_torch(options, seeds):
    for v in sweep(TYPE, options, seeds):
        assert_matches_torch(v)


@pytest.mark.parametrize("pinned", [
    {"eps": 0.5}, {"eps": 1e-5}, {"gamma": -2, "beta": 0.3},
    {"x": [[1.5, -2], [2.5, 7], [0, 1]], "gamma": [1, -2]},
    {"grad_output": [[1, 2], [-1, 0], [3, -2], [0, 3]]},
    {"x": [[1, 2], [3, -1], [2, 2]], "gamma": 2, "grad_output": [[1, 0], [0, 1], [2, 2]]},
])
def test_pinned_against_torch(pinned):
    for seed in range(20):
        assert_matches_torch(make_variant(TYPE, seed, pinned))


@pytest.mark.parametrize("options, seeds", [({}, 200), ({"features": 2}, 100), ({"n": 3}, 50)])
def test_draws_are_hand_friendly_and_fair(options, seeds):
    for v in sweep(TYPE, options, seeds):
        p = v.params
        g, x = np.asarray(p["grad_output"], dtype=float), np.asarray(p["x"], dtype=float)
        assert g.shape == x.shape and np.all(g == np.round(g)) and np.all(g != 0)
        assert np.abs(g).max() <= 3 and np.all(x * 2 == np.round(x * 2))
        dx = np.asarray(v.answers["grad_input"], dtype=float).reshape(len(x), -1)
        assert np.all(np.abs(dx) >= 0.05 * np.abs(dx).max(axis=0)), "no entry near 0"
        assert [m.name for m in v.mistakes] == SLIPS, v.seed
        values = run(GRAPH, p)
        assert free_share(GRAPH, p, v.fields, values) <= MAX_CONSTANT_SHARE
        assert survives_rounding(GRAPH, p, v.fields, values)


def test_draws_vary():
    draws = sweep(TYPE, {}, 200)
    assert len({str(v.params["grad_output"]) for v in draws}) > 150
    assert {len(v.params["x"]) for v in draws} == {4, 5, 6}


GAMMA_X = [2, 4, 4, 4, 5, 5, 7, 9]  # mean 5, sigma 2, x_hat = (x - 5) / 2
XHAT = np.array([-1.5, -0.5, -0.5, -0.5, 0, 0, 1, 2])


@pytest.mark.parametrize("x, gamma, g, answers", [
    # two examples: x_hat is always (-1, 1), whatever x is, so nothing flows back to x
    ([1, 3], 1, [1, 0], {"grad_beta": 1, "grad_gamma": -1, "grad_input": [0, 0]}),
    # the same gradient for every example: shifting x changes nothing after normalising
    (GAMMA_X, 2, [3] * 8, {"grad_beta": 24, "grad_gamma": 0, "grad_input": [0] * 8}),
    # a gradient along x_hat: scaling x changes nothing either (sum x_hat^2 = N)
    (GAMMA_X, 1.5, list(XHAT), {"grad_beta": 0, "grad_gamma": 8, "grad_input": [0] * 8}),
    # dL/dx_i = gamma / (N sigma) (N g_i - sum g - x_hat_i sum g x_hat), by hand:
    # sum g = 0, sum g x_hat = -1.5 - 2 = -3.5, gamma / (N sigma) = 2 / 16
    (GAMMA_X, 2, [1, 0, 0, 0, 0, 0, 0, -1],
     {"grad_beta": 0, "grad_gamma": -3.5, "grad_input": (8 * np.array(
         [1, 0, 0, 0, 0, 0, 0, -1]) + 3.5 * XHAT) / 8}),
    # one feature per column, gamma per feature
    ([[0, 1], [2, 3]], [1, 2], [[1, 1], [0, -1]],
     {"grad_beta": [1, 0], "grad_gamma": [-1, -2], "grad_input": [[0, 0], [0, 0]]}),
])
def test_hand_checked(x, gamma, g, answers):
    v = make_variant(TYPE, 0, {"x": x, "gamma": gamma, "beta": 0.5, "grad_output": g})
    for name, value in answers.items():
        np.testing.assert_allclose(v.answers[name], value, rtol=1e-12, atol=1e-12)


def by_name(v):
    return {m.name: m.answers for m in v.mistakes}


def test_mistakes_reproduce_their_errors():
    g = np.array([1, 0, 2, 0, 0, 0, 0, -1])
    v = make_variant(TYPE, 0, {"x": GAMMA_X, "gamma": 2, "beta": 0, "grad_output": list(g)})
    m = by_name(v)
    sum_g, sum_gx = 2, -1.5 - 1 - 2
    np.testing.assert_allclose(m["mean_variance_constant"]["grad_input"], 2 * g / 2)
    np.testing.assert_allclose(m["forgot_mean_path"]["grad_input"],
                               2 / 16 * (8 * g - XHAT * sum_gx))
    np.testing.assert_allclose(m["forgot_variance_path"]["grad_input"], 2 / 16 * (8 * g - sum_g))
    with_x = float(g @ np.array(GAMMA_X))
    assert m["grad_gamma_with_x"]["grad_gamma"] == with_x
    np.testing.assert_allclose(m["grad_gamma_with_x"]["grad_input"],
                               2 / 16 * (8 * g - sum_g - XHAT * with_x))
    assert set(m["mean_variance_constant"]) == {"grad_input"}


@pytest.mark.parametrize("pinned, words", [
    ({"grad_output": [1, 2]}, "grad_output pinned without x sets the shape"),
    ({"x": [1, 2, 4, 0], "grad_output": [1, 2]}, "shape of x, 4, not 2"),
    ({"x": [1, 2, 4], "grad_output": [[1], [2], [3]]}, "shape of x, 3, not 3 x 1"),
    ({"x": [1, 2, 4], "grad_output": 3}, "not a single number"),
    ({"grad_output": "up"}, "grad_output must be made of finite numbers"),
    ({"x": [1, 2, 4], "grad_output": [1, 1e9, 0]}, "of a sheet's size"),
    ({"x": [1, 1, 1], "grad_output": [1, 2, 3]}, "zero variance"),
    ({"grad_input": [1]}, "unknown parameter"),
    ({"x": list(range(9)), "gamma": 1, "grad_output": [1] * 9}, "at most 8 examples"),
])
def test_bad_params(pinned, words):
    with pytest.raises(ParamError, match=words):
        make_variant(TYPE, 0, pinned)


def test_no_fair_draw_is_refused_with_a_message():
    # N = 3 with two equal values: every grad_output gives dL/dx a 0 in the middle
    with pytest.raises(ParamError, match="pin x, gamma and grad_output to take the problem"):
        make_variant(TYPE, 1, {"x": [[1, 2], [3, -1], [2, 2]], "gamma": 2})
    # dL/dbeta = 1 would give a constant answer of ones its points
    with pytest.raises(ParamError, match="pin fewer parameters"):
        make_variant(TYPE, 1, {"grad_output": [2, 0, -2, 1]})


def test_check_needs_grad_output():
    with pytest.raises(ParamError, match="missing parameter 'grad_output'"):
        get(TYPE).check({"x": [1, 2, 4], "gamma": 1, "beta": 0})


@pytest.mark.parametrize("options, words", [
    ({"n": 9}, "option n must be a whole number from 3 to 6"),
    ({"features": 7}, "option features"), ({"batch": 2}, "unknown option"),
])
def test_bad_options(options, words):
    with pytest.raises(ParamError, match=words):
        make_variant(TYPE, 0, options=options)


def test_derivation_once_per_batch_size():
    assert derivation(4) is derivation(4)
    d = derivation(5)
    assert r"\sum_{j=1}^{5}" in d["compact"] and r"\frac{1}{5}" == d["dmu_dx"]
    assert d["direct"] == r"\frac{g_{1} \gamma}{\sigma}"
    assert "g_{5} {\\hat{x}}_5" in d["variance_path"]


def render(v, solutions):
    return render_document([Sheet("T", "C", [Question(1, 4, v)])], solutions=solutions)


@pytest.mark.parametrize("options, pinned", [({}, {}), ({"features": 2}, {}), ({"n": 3},
                                                                              {"eps": 0.5})])
def test_templates_render(options, pinned):
    v = make_variant(TYPE, 2, pinned, options)
    problem, solution = render(v, False), render(v, True)
    assert r"\ddfield{grad\_input}" in problem or "grad_input" in problem
    assert "derived with sympy" in solution and "derived with sympy" not in problem
    assert "through the mean" in solution and "through the variance" in solution
    assert solution.count(r"\toprule") == (options.get("features") or 1)
    assert (r"\sqrt{\sigma^2 + \varepsilon}" in solution.split("Numbers")[1]) == \
        bool(pinned.get("eps"))


def test_worked_solution_shows_the_numbers():
    # mean 1.5, sigma 1.5, x_hat = (-1, -1/3, -1/3, 5/3)
    v = make_variant(TYPE, 0, {"x": [0, 1, 1, 4], "gamma": 2, "beta": 0,
                               "grad_output": [1, 0, 2, -1]})
    text = render(v, True)
    assert r"= 1 + 0 + 2 - 1 = \mathbf{2}" in text
    assert r"1\cdot (-1) + 0\cdot (-0.3333) + 2\cdot (-0.3333) - 1\cdot 1.667" in text
    assert r"\approx \mathbf{-3.333}" in text  # dL/dgamma = -10/3
    assert r"\sum_{j=1}^{4}" in text
