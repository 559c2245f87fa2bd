"""mlp_backward against torch autograd and torch.optim.SGD, the sympy derivations against
autograd, hand-checked cases, its slips alone and in pairs, the draws and the refusals."""

import itertools
import json

import numpy as np
import pytest
import sympy
import torch
import torch.nn.functional as F
from deepdrill.errors import ParamError
from deepdrill.generator import mlp
from deepdrill.generator.exercise import get, make_variant
from deepdrill.generator.types import mlp_backward as B
from deepdrill.grader.score import grade_question
from sweeps import sweep

TYPE = "mlp_backward"
SWEPT = {"{}": 200, '{"hidden_layers": 2, "loss": "mse"}': 100}  # seeds, by options
OTHERS = [{"loss": "cross_entropy", "outputs": 3}, {"loss": "mse", "activation": "tanh",
                                                     "output_activation": "sigmoid"},
          {"activation": "sigmoid"}, {"loss": "mse", "output_activation": "tanh"},
          {"loss": "mse", "output_activation": "relu"}, {"hidden_layers": 2, "width": 3},
          {"inputs": 1, "outputs": 1}]
TORCH = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
         "softmax": lambda z: torch.softmax(z, dim=-1), "none": lambda z: z}


def variants(options):
    return sweep(TYPE, options, SWEPT.get(json.dumps(options, sort_keys=True), 25))


def torch_oracle(p):
    """loss, dL/dz per layer, gradients and the parameters after torch.optim.SGD's step."""
    def t(v, grad=False):
        return torch.tensor(v, dtype=torch.float64, requires_grad=grad)
    ws = [t(layer["weights"], True) for layer in p["layers"]]
    bs = [t(layer["bias"], True) for layer in p["layers"]]
    a, zs = t(p["x"]), []
    for w, b, layer in zip(ws, bs, p["layers"]):
        z = F.linear(a, w, b)
        z.retain_grad()
        zs.append(z)
        a = TORCH[layer["activation"]](z)
    if p["loss"] == "cross_entropy":
        target = int(np.argmax(p["target"])) if isinstance(p["target"], list) else p["target"]
        loss = F.nll_loss(torch.log(a)[None], torch.tensor([target]))  # through the softmax
    else:
        loss = F.mse_loss(a, t(p["target"]))  # the mean over the outputs
    optimizer = torch.optim.SGD([*ws, *bs], lr=p["learning_rate"])
    loss.backward()
    grads = ([z.grad.numpy().copy() for z in zs], [w.grad.numpy().copy() for w in ws],
             [b.grad.numpy().copy() for b in bs])
    optimizer.step()
    return loss.item(), *grads, [w.detach().numpy() for w in ws], [b.detach().numpy() for b in bs]


def close(ours, theirs):
    assert len(ours) == len(theirs)
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o, t, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("options", [{}, {"loss": "mse", "hidden_layers": 2}, *OTHERS])
def test_seed_sweep_against_torch_autograd_and_sgd(options):
    for v in variants(options):
        loss, deltas, gw, gb, new_w, new_b = torch_oracle(v.params)
        assert v.answers["loss"] == pytest.approx(loss, rel=1e-12)
        close(v.answers["deltas"], deltas)
        close(v.answers["grad_weights"], gw)
        close(v.answers["grad_biases"], gb)
        close(v.answers["updated_weights"], new_w)
        close(v.answers["updated_biases"], new_b)


# -- the derivations ------------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3, 4])
def test_softmax_cross_entropy_delta_is_s_minus_y_as_autograd_says(n):
    d = mlp.output_derivation("cross_entropy", "softmax", n)
    s, y = sympy.symbols(f"s_1:{n + 1}", positive=True), sympy.symbols(f"y_1:{n + 1}", real=True)
    delta = sympy.lambdify([*s, *y], d["delta_exprs"])
    rng = np.random.default_rng(n)
    for _ in range(20):
        z = torch.tensor(rng.normal(size=n), requires_grad=True)
        target = int(rng.integers(n))
        F.cross_entropy(z[None], torch.tensor([target])).backward()
        probs = torch.softmax(z.detach(), dim=-1).numpy()
        np.testing.assert_allclose(delta(*probs, *np.eye(n)[target]), z.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_mse_gradient_is_the_mean_convention(n):
    grad = sympy.lambdify([*sympy.symbols(f"a_1:{n + 1}", real=True),
                           *sympy.symbols(f"y_1:{n + 1}", real=True)],
                          mlp.output_derivation("mse", "none", n)["grad_exprs"])
    a, y = torch.tensor(np.arange(1.0, n + 1), requires_grad=True), torch.zeros(n,
                                                                               dtype=torch.float64)
    F.mse_loss(a, y).backward()
    np.testing.assert_allclose(grad(*a.detach().numpy(), *y.numpy()), a.grad.numpy())


@pytest.mark.parametrize("kind", ["sigmoid", "tanh", "relu", "none"])
def test_activation_derivatives_agree_with_autograd(kind):
    d = mlp.activation_derivative(kind)
    z_sym, a_sym = sympy.symbols("z a", real=True)
    for z in (-1.3, -0.4, 0.7, 2.1):
        zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
        a = TORCH[kind](zt)
        a.backward()
        ours = float(d["expr"].subs({a_sym: a.item(), z_sym: z}))
        assert ours == pytest.approx(zt.grad.item(), rel=1e-12)
        assert B.derivative(kind, z if kind in ("relu", "none") else a.item()) == \
            pytest.approx(zt.grad.item())


def test_hidden_rule_and_weight_rule_match_the_steps():
    h = mlp.hidden_derivation(3, 2)
    assert len(h["exprs"]) == 3 and "W_{11}" in h["delta"][0] and "f'" in h["delta"][0]
    w = mlp.weight_derivation(2, 3)["matrix"]
    assert w.shape == (2, 3) and str(w[1, 2]) == r"\delta_2*a_3"


def test_derivations_are_made_once_per_shape():
    mlp.output_derivation.cache_clear()
    for seed in range(20):
        v = make_variant(TYPE, seed, options={"loss": "cross_entropy", "outputs": 2})
        get(TYPE).worked(v.params, v.values)
    info = mlp.output_derivation.cache_info()
    assert info.misses == 1 and info.hits >= 19


# -- hand-checked cases --------------------------------------------------------------------

def net(*layers):
    return [{"weights": w, "bias": b, "activation": f} for w, b, f in layers]


@pytest.mark.parametrize("params, loss, deltas, grad_w, new_b", [
    # one linear unit, mse: L = (3 - 1)^2 = 4, delta = 2(3 - 1) = 4, dW = 4 * x
    ({"x": [1, 2], "layers": net(([[1, 1]], [0], "none")), "target": [1], "loss": "mse",
      "learning_rate": 0.1}, 4, [[4]], [[[4, 8]]], [[-0.4]]),
    # relu hidden layer, linear output, mse over 1 output
    ({"x": [1, -1], "layers": net(([[1, 0], [0, 1]], [0, 0], "relu"), ([[1, 1]], [0], "none")),
      "target": [0], "loss": "mse", "learning_rate": 0.5}, 1, [[2, 0], [2]],
     [[[2, -2], [0, 0]], [[2, 0]]], [[-1, 0], [-1]]),
    # softmax of two equal logits, class 0: s - y = (-1/2, 1/2)
    ({"x": [1], "layers": net(([[1], [1]], [0, 0], "softmax")), "target": 0,
      "loss": "cross_entropy", "learning_rate": 1}, np.log(2), [[-0.5, 0.5]],
     [[[-0.5], [0.5]]], [[0.5, -0.5]]),
    # the mean over two outputs: delta = 2(a - y)/2 = a - y
    ({"x": [1], "layers": net(([[1], [2]], [0, 0], "none")), "target": [0, 0], "loss": "mse",
      "learning_rate": 0.1}, 2.5, [[1, 2]], [[[1], [2]]], [[-0.1, -0.2]]),
])
def test_hand_checked(params, loss, deltas, grad_w, new_b):
    v = make_variant(TYPE, 0, params)
    assert v.answers["loss"] == pytest.approx(loss)
    close(v.answers["deltas"], deltas)
    close(v.answers["grad_weights"], grad_w)
    close(v.answers["updated_biases"], new_b)


# -- mistakes ------------------------------------------------------------------------

PARAMS = {"x": [2, 1], "layers": net(([[1, -1], [2, 1], [-1, -1]], [1, -1, 1], "relu"),
                                     ([[0.5, -0.5, 0.2], [0.2, 0.1, -0.3], [0.1, 0.3, 0.1]],
                                      [0.1, 0, -0.2], "sigmoid")),
          "target": [0, 1, 0.5], "loss": "mse", "learning_rate": 0.5}


def test_mistakes_reproduce_their_errors():
    v = make_variant(TYPE, 0, PARAMS)
    by = {m.name: m.answers for m in v.mistakes}
    assert set(by) == {"forgot_activation_derivative", "added_gradient",
                       "transposed_outer_product", "half_squared_error"}
    values = B.backward(v.params)
    np.testing.assert_allclose(by["forgot_activation_derivative"]["deltas"][1],
                               values["grad_output"])  # no sigmoid' on the output
    for i in (0, 1):
        w = np.asarray(PARAMS["layers"][i]["weights"])
        np.testing.assert_allclose(by["added_gradient"]["updated_weights"][i],
                                   w + 0.5 * np.asarray(v.answers["grad_weights"][i]))
        np.testing.assert_allclose(by["transposed_outer_product"]["grad_weights"][i],
                                   np.asarray(v.answers["grad_weights"][i]).T)
    a = values["output"]
    np.testing.assert_allclose(by["half_squared_error"]["deltas"][1],
                               (a - [0, 1, 0.5]) * a * (1 - a))


def test_every_pair_of_slips_can_be_made_together():
    ex = get(TYPE)
    slips = ex.slips(PARAMS)
    for a, b in itertools.combinations(slips, 2):
        ex.values(PARAMS, [a, b])
    by = {s.name: s for s in slips}
    both = ex.values(PARAMS, [by["added_gradient"], by["transposed_outer_product"]])
    w = np.asarray(PARAMS["layers"][0]["weights"])
    np.testing.assert_allclose(both["new_W_1"], w + 0.5 * both["grad_W_1"].T)


def test_a_transposed_gradient_is_named_through_the_grader():
    v = make_variant(TYPE, 0, PARAMS)
    wrong = {m.name: m.answers for m in v.mistakes}["transposed_outer_product"]
    r = grade_question(v, {**v.answers, **wrong}, 10)
    assert r.fields["grad_weights"].mistake == "transposed_outer_product"
    # layer 2 is square: its update subtracted the transposed gradient, the same mistake
    assert r.fields["updated_weights"].mistake == "transposed_outer_product"
    assert r.score < 10


# -- draws, constants, refusals ---------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"loss": "mse", "hidden_layers": 2}, *OTHERS])
def test_draws_are_hand_friendly(options):
    for v in variants(options):
        p = v.params
        assert p["learning_rate"] in B.LEARNING_RATES
        values = B.backward(p)
        if p["loss"] == "cross_entropy":
            assert values["output"][p["target"]] <= B.MAX_TARGET_PROBABILITY
        else:
            assert np.all(np.abs(values["output"] - p["target"]) >= B.TARGET_GAP - 1e-9)
        for i in range(1, len(p["layers"]) + 1):
            assert np.any(values[f"delta_{i}"] != 0)  # no layer without a gradient
            assert np.abs(p["learning_rate"] * values[f"grad_W_{i}"]).max() <= B.MAX_STEP


@pytest.mark.parametrize("options", [{}, {"loss": "mse", "hidden_layers": 2}])
def test_constant_answers_earn_next_to_nothing(options):
    for v in variants(options)[::5]:
        for c in (0, 1):
            answers = {f.name: c if not f.shape else
                       [np.full(s, c).tolist() for s in f.shape] for f in v.fields}
            assert grade_question(v, answers, 10).score <= 10 * mlp.MAX_CONSTANT_SHARE + 1e-9


@pytest.mark.parametrize("change, message", [
    ({"loss": "mse"}, "cross_entropy goes with a softmax"),
    ({"loss": "hinge"}, "loss must be one of"),
    ({"target": 3}, "class indices count from 0"),
    ({"learning_rate": -1}, "learning_rate must be"),
    ({"learning_rate": [0.1, 0.2]}, "learning_rate must be"),
])
def test_parameters_are_refused_with_a_message(change, message):
    params = {"x": [1], "layers": net(([[1], [2]], [0, 0], "softmax")), "target": 0,
              "loss": "cross_entropy", "learning_rate": 0.1}
    with pytest.raises(ParamError, match=message):
        make_variant(TYPE, 0, {**params, **change})


def test_a_vanishing_gradient_is_refused():
    params = {"x": [1], "layers": net(([[1]], [-3], "relu"), ([[1]], [1], "none")),
              "target": [0], "loss": "mse"}
    with pytest.raises(ParamError, match="gradient is 0 all through a layer"):
        make_variant(TYPE, 0, params)


def test_mse_target_must_fit_the_outputs():
    params = {"x": [1], "layers": net(([[1], [2]], [0, 0], "none")), "target": [1],
              "loss": "mse"}
    with pytest.raises(ParamError, match="one number per output"):
        make_variant(TYPE, 0, params)


def test_options_that_conflict_are_refused():
    with pytest.raises(ParamError, match="output_activation"):
        make_variant(TYPE, 0, options={"loss": "cross_entropy", "output_activation": "none"})
