"""softmax_regression against torch autograd (F.cross_entropy on W @ x, float64), the sympy
derivation against autograd, hand-checked cases, its slips, the draws and refusals."""

import numpy as np
import pytest
import sympy
import torch
import torch.nn.functional as F
from deepdrill.generator.exercise import get, make_variant
from deepdrill.generator.render import Question, Sheet, render_document
from deepdrill.generator.steps import by_hand, run
from deepdrill.generator.types.softmax_regression import GRAPH, derivation
from deepdrill.grader.score import grade_question
from sweeps import near, sweep

from deepdrill.errors import ParamError

TYPE = "softmax_regression"
SWEPT = [{}, {"classes": 2}, {"classes": 5, "features": 4}]  # 200 seeds each
FEW = [{"features": 1}, {"classes": 6, "features": 5}, {"classes": 3, "features": 2}]  # 40


def variants(options):
    return sweep(TYPE, options, 200 if options in SWEPT else 40)


def torch_oracle(weights, x, target):
    """Every answer field from torch: the loss by F.cross_entropy, the gradients by autograd."""
    w = torch.tensor(weights, dtype=torch.float64, requires_grad=True)
    xt = torch.tensor(x, dtype=torch.float64)
    z = w @ xt
    z.retain_grad()
    t = int(np.argmax(target)) if np.ndim(target) else int(target)
    loss = F.cross_entropy(z[None], torch.tensor([t]))
    loss.backward()
    return {"logits": z.detach().numpy(), "probabilities": torch.softmax(z, 0).detach().numpy(),
            "loss": loss.item(), "grad_logits": z.grad.numpy(), "grad_weights": w.grad.numpy()}


@pytest.mark.parametrize("options", SWEPT + FEW)
def test_seed_sweep_against_torch(options):
    for v in variants(options):
        want = torch_oracle(v.params["weights"], v.params["x"], v.params["target"])
        for name, value in want.items():
            assert np.shape(v.answers[name]) == np.shape(value), name
            assert v.field(name).shape == list(np.shape(value)), name
            np.testing.assert_allclose(v.answers[name], value, rtol=1e-10, atol=1e-14,
                                       err_msg=f"{name}, seed {v.seed}")


def test_sympy_jacobian_and_gradient_agree_with_autograd():
    rng = np.random.default_rng(0)
    for m in (2, 3):
        d = derivation(m, 2)
        _, s_syms, y_syms = d["symbols"]
        jac = sympy.lambdify([*s_syms], d["jacobian"])
        grad = sympy.lambdify([*s_syms, *y_syms], d["gradient"])
        for _ in range(20):
            z = torch.tensor(rng.normal(size=m) * 2, dtype=torch.float64)
            y = np.eye(m)[rng.integers(m)]
            s = torch.softmax(z, 0).numpy()
            auto = torch.autograd.functional.jacobian(lambda v: torch.softmax(v, 0), z)
            np.testing.assert_allclose(np.asarray(jac(*s), dtype=float), auto.numpy(),
                                       atol=1e-14)
            zg = z.clone().requires_grad_(True)
            F.cross_entropy(zg[None], torch.tensor(y)[None]).backward()
            np.testing.assert_allclose(np.asarray(grad(*s, *y), dtype=float),
                                       zg.grad.numpy(), atol=1e-14)


def test_derivation_is_sympys_and_cached():
    d = derivation(3, 2)
    _, (s0, s1, s2), (y0, y1, y2) = d["symbols"]
    assert d["gradient"] == [s0 - y0, s1 - y1, s2 - y2]
    assert d["tex_chained"] == r"s_{0} \left(y_{0} + y_{1} + y_{2}\right) - y_{0}"
    assert r"s_{0} \left(1 - s_{0}\right)" in d["tex_jacobian"]
    assert d["outer"].shape == (3, 2)
    assert derivation(3, 2) is d and derivation.cache_info().hits >= 1


LN2, LN3, LN5 = np.log(2), np.log(3), np.log(5)


@pytest.mark.parametrize("weights, x, target, answers", [
    # logits (0, ln 3): s = (1/4, 3/4)
    ([[0], [LN3]], [1], 1, {"probabilities": [0.25, 0.75], "loss": np.log(4 / 3),
                            "grad_logits": [0.25, -0.25], "grad_weights": [[0.25], [-0.25]]}),
    # logits (ln 2, 0, ln 5): s = (2, 1, 5) / 8
    ([[LN2, 0], [0, 0], [0, LN5]], [1, 1], 2,
     {"probabilities": [0.25, 0.125, 0.625], "loss": np.log(8 / 5),
      "grad_logits": [0.25, 0.125, -0.375],
      "grad_weights": [[0.25, 0.25], [0.125, 0.125], [-0.375, -0.375]]}),
    # x = 0: equal logits, uniform s, and no weight gradient at all
    ([[1, 2], [3, 4]], [0, 0], 0, {"logits": [0, 0], "probabilities": [0.5, 0.5],
                                   "loss": np.log(2), "grad_logits": [-0.5, 0.5],
                                   "grad_weights": [[0, 0], [0, 0]]}),
    # a one-hot target, and x scales the rows of dL/dW: row j is (s_j - y_j) x
    ([[0, 0], [LN3, 0]], [2, -1], [1, 0],
     {"logits": [0, 2 * LN3], "probabilities": [0.1, 0.9], "loss": np.log(10),
      "grad_logits": [-0.9, 0.9], "grad_weights": [[-1.8, 0.9], [1.8, -0.9]]}),
])
def test_hand_checked(weights, x, target, answers):
    v = make_variant(TYPE, 0, {"weights": weights, "x": x, "target": target})
    for name, value in answers.items():
        np.testing.assert_allclose(v.answers[name], value, rtol=1e-12, atol=1e-15)


def mistakes(v):
    return {m.name: m.answers for m in v.mistakes}


def test_mistakes_reproduce_their_errors():
    v = make_variant(TYPE, 0, {"weights": [[1, 0, 2], [0, -1, 1]], "x": [1, 2, -1],
                               "target": 0})
    s, g = np.array(v.answers["probabilities"]), np.array(v.answers["grad_logits"])
    x, y = np.array([1, 2, -1]), np.array([1, 0])
    by = mistakes(v)
    np.testing.assert_allclose(by["transposed_outer_product"]["grad_weights"], np.outer(x, g))
    np.testing.assert_allclose(by["sign_error"]["grad_logits"], y - s)
    np.testing.assert_allclose(by["sign_error"]["grad_weights"], np.outer(y - s, x))
    assert by["log10"] == {"loss": pytest.approx(-np.log10(s[0]))}
    np.testing.assert_allclose(by["grad_is_s"]["grad_logits"], s)
    np.testing.assert_allclose(by["grad_is_s"]["grad_weights"], np.outer(s, x))


def test_one_feature_has_no_transposed_mistake():
    """A 3 x 1 gradient written 1 x 3 holds the same numbers: the grader accepts it."""
    v = make_variant(TYPE, 0, options={"features": 1})
    assert "transposed_outer_product" not in mistakes(v)
    assert {"sign_error", "log10", "grad_is_s"} <= set(mistakes(v))


@pytest.mark.parametrize("options", SWEPT)
def test_every_mistake_is_kept_and_differs(options):
    for v in variants(options):
        assert set(mistakes(v)) == {"transposed_outer_product", "sign_error", "log10",
                                    "grad_is_s"}, v.seed
        for m in v.mistakes:
            for name, value in m.answers.items():
                if np.shape(value) == np.shape(v.answers[name]):
                    assert not np.allclose(value, v.answers[name], rtol=1e-2, atol=1e-3)


def test_transposed_and_sign_error_together():
    ex = get(TYPE)
    params = {"weights": [[1, 0], [0, -1], [2, 1]], "x": [1, 2], "target": 1}
    by = {s.name: s for s in ex.slips(params)}
    values = ex.values(params, [by["transposed_outer_product"], by["sign_error"]])
    s = values["probabilities"]
    np.testing.assert_allclose(values["grad_weights"], np.outer([1, 2], np.eye(3)[1] - s))


def test_later_fields_follow_a_students_own_values():
    ex, v = get(TYPE), make_variant(TYPE, 4)
    own = np.array([0.5, -0.25, -0.25][:len(v.answers["logits"])] +
                   [0.0] * (len(v.answers["logits"]) - 3))
    values = ex.values(v.params, given={"grad_logits": own})
    np.testing.assert_allclose(values["grad_weights"], np.outer(own, v.params["x"]))
    values = ex.values(v.params, given={"logits": np.zeros(len(own))})
    np.testing.assert_allclose(values["probabilities"], np.full(len(own), 1 / len(own)))
    # an all-zero dL/dz needs no work: it feeds no dL/dW (no carried-forward credit)
    values = ex.values(v.params, given={"grad_logits": np.zeros(len(own))})
    assert "grad_weights" not in values


def test_an_all_zero_answer_earns_nothing_carried_forward():
    v = make_variant(TYPE, 7)
    zeros = {f.name: np.zeros(f.shape).tolist() if f.shape else 0 for f in v.fields}
    r = grade_question(v, zeros, 10)
    assert r.score == 0 and r.carried == 0


@pytest.mark.parametrize("options", SWEPT + FEW)
def test_draws_are_hand_friendly(options):
    for v in variants(options):
        w, x = np.array(v.params["weights"], float), np.array(v.params["x"], float)
        z = np.array(v.answers["logits"])
        assert np.all(np.round(w * 10) == w * 10) and np.all(np.round(x * 10) == x * 10)
        assert np.all(w == np.round(w)) or np.all(x == np.round(x)), "one of W, x whole"
        assert np.abs(w).max() <= 2 and np.abs(x).max() <= 2 and np.all(x != 0)
        assert np.all(np.round(z * 10) == z * 10) and np.abs(z).max() <= 3
        assert np.sum(near(z, 0) | near(z, 1)) <= (1 if len(z) > 2 else 0)
        top = np.sort(z)
        assert top[-1] > top[-2], "tie for the largest logit"
        for name in ("probabilities", "grad_logits", "grad_weights"):
            for constant in (0, 1, 1 / len(z))[:3 if name != "grad_weights" else 2]:
                assert not near(np.array(v.answers[name]), constant).any(), (v.seed, name)
        rounded = run(GRAPH, v.params, rounding=by_hand)["probabilities"]
        np.testing.assert_allclose(rounded, v.answers["probabilities"], rtol=0.009)


def test_draws_vary_in_kind_size_and_target():
    draws = variants({})
    kinds = {(np.all(np.array(v.params["weights"]) % 1 == 0),
              np.all(np.array(v.params["x"]) % 1 == 0)) for v in draws}
    assert kinds == {(True, True), (False, True), (True, False)}
    assert {np.shape(v.params["weights"]) for v in draws} == {(3, 2), (3, 3), (4, 2), (4, 3)}
    assert {v.params["target"] for v in draws} == {0, 1, 2, 3}
    assert len({str(v.params) for v in draws}) == len(draws)


def test_pinned_params_are_kept():
    v = make_variant(TYPE, 3, {"weights": [[1, 2], [0, 1], [-1, 0]], "x": [0.5, -1]})
    assert v.params["weights"] == [[1, 2], [0, 1], [-1, 0]] and v.params["target"] in (0, 1, 2)
    v = make_variant(TYPE, 3, {"target": 4})
    assert len(v.params["weights"]) >= 5
    v = make_variant(TYPE, 3, {"x": [1, -2, 1, 2]}, {"classes": 2})
    assert np.shape(v.params["weights"]) == (2, 4) and v.params["x"] == [1, -2, 1, 2]
    v = make_variant(TYPE, 3, {"weights": [[1, -1], [0, 2], [1, 1]]})
    assert len(v.params["x"]) == 2


@pytest.mark.parametrize("pinned, words", [
    ({"weights": [1, 2], "x": [1], "target": 0}, "m x n matrix"),
    ({"weights": [[1, 2]], "x": [1, 1], "target": 0}, "2 to 6 classes"),
    ({"weights": [[1, 2], [3, 4]], "x": [1], "target": 0}, "x must be a list of 2"),
    ({"weights": [[1, 2], [3, 4]], "x": [1, 2], "target": 2}, "from 0 to 1"),
    ({"weights": [[1, 2], [3, 4]], "x": [1, 2], "target": [1, 1]}, "exactly one 1"),
    ({"weights": [[100, 2], [3, 4]], "x": [1, 2], "target": 0}, r"logits W x must be"),
    ({"weights": [[1e300, 2], [3, 4]], "x": [1, 2], "target": 0}, "of a sheet's size"),
    ({"weights": [[1, "a"], [3, 4]], "x": [1, 2], "target": 0}, "finite numbers"),
    ({"target": 9}, "at most 6 classes"),
    ({"bias": [1, 2]}, "unknown parameter"),
])
def test_bad_params(pinned, words):
    with pytest.raises(ParamError, match=words):
        make_variant(TYPE, 0, pinned)


@pytest.mark.parametrize("options, words", [
    ({"classes": 7}, "option classes must be a whole number from 2 to 6"),
    ({"features": 0}, "option features must be a whole number from 1 to 5"),
    ({"features": 2.5}, "whole number"), ({"batch": 2}, "unknown option"),
])
def test_bad_options(options, words):
    with pytest.raises(ParamError, match=words):
        make_variant(TYPE, 0, options=options)


def test_missing_parameter():
    with pytest.raises(ParamError, match="missing parameter 'target'"):
        get(TYPE).check({"weights": [[1], [2]], "x": [1]})


def test_worked_solution_shows_the_derivation_and_the_numbers():
    v = make_variant(TYPE, 0, {"weights": [[1, 0, 2], [0, -1, 1], [-1, 1, 0]], "x": [1, 2, -1],
                               "target": 2})
    problem = render_document([Sheet("T", "C", [Question(1, 5, v)])], False)
    text = render_document([Sheet("T", "C", [Question(1, 5, v)])], True)
    assert r"\ddfield{grad\_weights}" in problem and "derived with sympy" not in problem
    assert r"z_{0} &= 1\cdot 1 + 0\cdot 2 + 2\cdot (-1) = \mathbf{-1}" in text
    assert r"z_{1} &= 0\cdot 1 - 1\cdot 2 + 1\cdot (-1) = \mathbf{-3}" in text
    assert derivation(3, 3)["tex_jacobian"] in text and "derived with sympy" in text
    assert r"-\ln s_{2}" in text
