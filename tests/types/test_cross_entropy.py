"""cross_entropy against torch (F.cross_entropy and autograd), and the sympy derivation."""

import numpy as np
import pytest
import sympy
import torch
import torch.nn.functional as F

from deepdrill.errors import ParamError
from deepdrill.generator.exercise import make_variant
from deepdrill.generator.render import Question, Sheet, render_document
from deepdrill.generator.types.cross_entropy import derivation, one_hot

SEEDS = range(250)


def torch_oracle(logits, target):
    z = torch.tensor(np.atleast_2d(logits), dtype=torch.float64, requires_grad=True)
    y = torch.tensor(one_hot(target, logits), dtype=torch.float64)
    loss = F.cross_entropy(z, y.argmax(-1), reduction="mean")
    loss.backward()
    s = torch.softmax(z, -1).detach().numpy()
    g = z.grad.numpy()
    if np.ndim(logits) == 1:
        s, g = s[0], g[0]
    return s, loss.item(), g


@pytest.mark.parametrize("options", [{}, {"batch": 3}, {"one_hot": True}, {"batch": 2, "one_hot": True}])
def test_seed_sweep_against_torch(options):
    for seed in SEEDS:
        v = make_variant("cross_entropy", seed, options=options)
        s, loss, g = torch_oracle(v.params["logits"], v.params["target"])
        np.testing.assert_allclose(v.answers["probabilities"], s, rtol=1e-12)
        assert v.answers["loss"] == pytest.approx(loss, rel=1e-12)
        np.testing.assert_allclose(v.answers["grad_logits"], g, rtol=1e-10, atol=1e-14)


def test_sympy_derivative_agrees_with_autograd():
    d = derivation()
    (z1, z2, z3), (y1, y2, y3) = d["symbols"]
    raw = sympy.lambdify([z1, z2, z3, y1, y2, y3], d["raw"])
    simple = sympy.lambdify([z1, z2, z3, y1, y2, y3], d["gradient"])
    rng = np.random.default_rng(0)
    for _ in range(100):
        z = rng.normal(size=3) * 2
        t = int(rng.integers(3))
        y = np.eye(3)[t]
        _, _, g = torch_oracle(z, t)
        assert raw(*z, *y) == pytest.approx(g[0], abs=1e-12)
        assert simple(*z, *y) == pytest.approx(g[0], abs=1e-12)
    assert sympy.simplify(d["gradient"] - (sympy.exp(z1) / sum(map(sympy.exp, (z1, z2, z3))) - y1)) == 0


@pytest.mark.parametrize("logits, target, loss, grad", [
    ([0, 0], 1, np.log(2), [0.5, -0.5]),
    ([np.log(1), np.log(3)], [1, 0], np.log(4), [-0.75, 0.75]),
    ([[0, 0], [0, 0]], [0, 1], np.log(2), [[-0.25, 0.25], [0.25, -0.25]]),
])
def test_hand_checked(logits, target, loss, grad):
    v = make_variant("cross_entropy", 0, {"logits": logits, "target": target})
    assert v.answers["loss"] == pytest.approx(loss)
    np.testing.assert_allclose(v.answers["grad_logits"], grad, atol=1e-12)


def test_mistakes_reproduce_their_errors():
    v = make_variant("cross_entropy", 0, {"logits": [2, 1, 0], "target": 1})
    by = {m.name: m.answers for m in v.mistakes}
    s = v.answers["probabilities"]
    assert by["log10"]["loss"] == pytest.approx(-np.log10(s[1]))
    assert by["wrong_class"]["loss"] == pytest.approx(-np.log(s[0]))
    np.testing.assert_allclose(by["grad_is_s"]["grad_logits"], s)
    batch = make_variant("cross_entropy", 3, options={"batch": 2})
    assert "no_batch_mean" in {m.name for m in batch.mistakes}


@pytest.mark.parametrize("target", [3, -1, [0, 1], [0.5, 0.5, 0], [1, 1, 0], "a"])
def test_bad_targets(target):
    with pytest.raises(ParamError):
        make_variant("cross_entropy", 0, {"logits": [1, 2, 3], "target": target})


@pytest.mark.parametrize("options", [{}, {"batch": 2}])
def test_templates_render(options):
    v = make_variant("cross_entropy", 1, options=options)
    sheet = Sheet("T", "C", [Question(1, 3, v)])
    solution = render_document([sheet], solutions=True)
    assert r"\frac{\partial L}{\partial z_1}" in solution and "s_1 - y_1" in solution
    assert "sympy" not in render_document([sheet], solutions=False)
