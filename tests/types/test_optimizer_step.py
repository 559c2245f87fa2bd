"""optimizer_step against torch.optim (float64): one update of SGD, SGD with momentum or Adam
with the state injected so torch performs exactly update number ``step``; then chains of
updates, each variant's answers fed to the next as its state; hand-checked cases, slips,
draws and refusals."""

import functools

import numpy as np
import pytest
import torch
from deepdrill.generator.exercise import get, make_variant
from deepdrill.generator.render import Question, Sheet, render_document
from deepdrill.generator.steps import run
from deepdrill.generator.types.optimizer_step import RATES, constant_share
from deepdrill.grader.score import grade_question

from deepdrill.errors import ParamError

TYPE = "optimizer_step"
OPTIMIZERS = ("sgd", "momentum", "adam")
SLIPS = {"sgd": ["sign_error"], "momentum": ["sign_error", "lr_in_velocity"],
         "adam": ["sign_error", "no_bias_correction", "forgot_sqrt"]}
SIZES = [({}, 120), ({"size": 2}, 50), ({"size": 4}, 50)]  # 220 variants per optimizer


@functools.cache
def variants(optimizer, size=None, seeds=120):
    options = {} if size is None else {"size": size}
    return [make_variant(TYPE, s, {"optimizer": optimizer}, options) for s in range(seeds)]


def swept(optimizer):
    return [v for options, n in SIZES for v in variants(optimizer, options.get("size"), n)]


def tensor(x):
    return torch.tensor(np.asarray(x, dtype=float), dtype=torch.float64)


def torch_step(p, empty_first=True):
    """One optimizer.step() on a real tensor with .grad set and the state before the update
    injected; the new state as torch keeps it. ``empty_first``: at a first update leave the
    state empty (torch initialises it) instead of injecting zeros."""
    theta = tensor(p["params"]).requires_grad_()
    theta.grad = tensor(p["grads"])
    opt, lr = p["optimizer"], p["learning_rate"]
    if opt == "adam":
        o = torch.optim.Adam([theta], lr=lr, betas=(p["beta1"], p["beta2"]), eps=p["eps"])
        if p["step"] > 1 or not empty_first:
            o.state[theta].update(step=torch.tensor(float(p["step"] - 1)),
                                  exp_avg=tensor(p["m"]), exp_avg_sq=tensor(p["v"]))
    else:
        o = torch.optim.SGD([theta], lr=lr, momentum=p.get("momentum", 0))
        if opt == "momentum" and (np.any(p["velocity"]) or not empty_first):
            o.state[theta]["momentum_buffer"] = tensor(p["velocity"])
    o.step()
    out = {"updated_params": theta.detach().numpy()}
    state = o.state[theta]
    if opt == "momentum":
        out["velocity"] = state["momentum_buffer"].numpy()
    if opt == "adam":
        t = int(state["step"].item())
        assert t == p["step"], "torch performed another update than number `step`"
        out.update(m=state["exp_avg"].numpy(), v=state["exp_avg_sq"].numpy(),
                   m_hat=state["exp_avg"].numpy() / (1 - p["beta1"] ** t),
                   v_hat=state["exp_avg_sq"].numpy() / (1 - p["beta2"] ** t))
    return out


def assert_matches_torch(v, empty_first=True):
    want = torch_step(v.params, empty_first)
    assert set(want) == set(v.answers)
    for name, value in want.items():
        assert v.field(name).shape == list(value.shape), name
        np.testing.assert_allclose(v.answers[name], value, rtol=1e-12, atol=1e-15,
                                   err_msg=f"{name}, seed {v.seed}")


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_seed_sweep_against_torch_optim(optimizer):
    for v in swept(optimizer):
        assert_matches_torch(v)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_first_update_with_zeros_injected_is_torchs_empty_state(optimizer):
    firsts = [v for v in swept(optimizer) if v.params.get("step", 1) == 1 and
              not np.any(v.params.get("velocity", v.params.get("m")))]
    assert len(firsts) >= 20
    for v in firsts:
        assert_matches_torch(v, empty_first=False)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_chains_of_updates_step_by_step_against_torch(optimizer):
    """Three updates: each variant's answers are the next one's state (pinned), and torch
    runs the three .step() calls on one tensor and one optimizer."""
    rng = np.random.default_rng(5)
    for chain in range(40):
        n = int(rng.integers(2, 5))
        grads = np.round(rng.uniform(-2, 2, (3, n)), 1) + 0.05  # never 0
        p = {"optimizer": optimizer, "params": np.round(rng.uniform(-2, 2, n), 1).tolist(),
             "learning_rate": 0.1}
        if optimizer == "momentum":
            p["momentum"] = 0.9
            o_args = {"momentum": 0.9}
        theta = tensor(p["params"]).requires_grad_()
        o = torch.optim.Adam([theta], lr=0.1) if optimizer == "adam" else \
            torch.optim.SGD([theta], lr=0.1, **o_args)
        for t, g in enumerate(grads, 1):
            p["grads"] = g.tolist()
            if optimizer == "adam":
                p["step"] = t
            v = make_variant(TYPE, chain, p)
            theta.grad = tensor(g)
            o.step()
            np.testing.assert_allclose(v.answers["updated_params"], theta.detach().numpy(),
                                       rtol=1e-12, atol=1e-15)
            state = o.state[theta]
            if optimizer == "momentum":
                np.testing.assert_allclose(v.answers["velocity"], state["momentum_buffer"],
                                           rtol=1e-12)
                p["velocity"] = v.answers["velocity"]
            else:
                np.testing.assert_allclose(v.answers["m"], state["exp_avg"], rtol=1e-12)
                np.testing.assert_allclose(v.answers["v"], state["exp_avg_sq"], rtol=1e-12)
                p["m"], p["v"] = v.answers["m"], v.answers["v"]
            p["params"] = v.answers["updated_params"]


E = 1e-8  # PyTorch's eps: 0.1 * 1 / (1 + eps) is 0.1 up to 1e-9


@pytest.mark.parametrize("params, answers", [
    ({"optimizer": "sgd", "params": [1.0, -2.0], "grads": [0.5, -1.0], "learning_rate": 0.1},
     {"updated_params": [0.95, -1.9]}),
    # first momentum update: the buffer becomes g itself
    ({"optimizer": "momentum", "params": [1.0, 2.0], "grads": [0.5, -1.0],
      "learning_rate": 0.1, "momentum": 0.9},
     {"velocity": [0.5, -1.0], "updated_params": [0.95, 2.1]}),
    # v = 0.9 (1, 0.5) + (0.2, -0.4) = (1.1, 0.05); theta - 0.1 v
    ({"optimizer": "momentum", "params": [1.0, 0.5], "grads": [0.2, -0.4],
      "learning_rate": 0.1, "momentum": 0.9, "velocity": [1.0, 0.5]},
     {"velocity": [1.1, 0.05], "updated_params": [0.89, 0.495]}),
    # Adam's first update: m_hat = g, v_hat = g^2, every parameter moves by lr
    ({"optimizer": "adam", "params": [1.0, -1.0], "grads": [0.5, -2.0], "learning_rate": 0.1},
     {"m": [0.05, -0.2], "v": [0.00025, 0.004], "m_hat": [0.5, -2.0], "v_hat": [0.25, 4.0],
      "updated_params": [1 - 0.1 * 0.5 / (0.5 + E), -1 + 0.1 * 2 / (2 + E)]}),
    # the second of two equal gradients: m = 0.19 g, v = 0.001999 g^2, which bias
    # correction turns back into g and g^2
    ({"optimizer": "adam", "params": [1.0, 2.0], "grads": [1.0, -2.0], "learning_rate": 0.1,
      "m": [0.1, -0.2], "v": [0.001, 0.004], "step": 2},
     {"m": [0.19, -0.38], "v": [0.001999, 0.007996], "m_hat": [1.0, -2.0], "v_hat": [1.0, 4.0],
      "updated_params": [1 - 0.1 / (1 + E), 2 + 0.2 / (2 + E)]}),
    # beta1 = 0.5, beta2 = 0.75 at t = 2: 1 - 0.5^2 = 0.75, 1 - 0.75^2 = 0.4375
    ({"optimizer": "adam", "params": [3.0, 1.0], "grads": [1.0, 2.0], "learning_rate": 0.5,
      "beta1": 0.5, "beta2": 0.75, "eps": 0, "m": [1.0, 0.0], "v": [1.0, 0.0], "step": 2},
     {"m": [1.0, 1.0], "v": [1.0, 1.0], "m_hat": [4 / 3, 4 / 3], "v_hat": [1 / 0.4375] * 2,
      "updated_params": [3 - 0.5 * (4 / 3) * 0.4375 ** 0.5, 1 - 0.5 * (4 / 3) * 0.4375 ** 0.5]}),
])
def test_hand_checked(params, answers):
    v = make_variant(TYPE, 0, params)
    assert set(v.answers) == set(answers)
    for name, value in answers.items():
        np.testing.assert_allclose(v.answers[name], value, rtol=1e-12, atol=1e-15)


def test_mistakes_reproduce_their_errors():
    v = make_variant(TYPE, 0, {"optimizer": "momentum", "params": [1.0, 0.5],
                               "grads": [0.2, -0.4], "learning_rate": 0.1, "momentum": 0.9,
                               "velocity": [1.0, 0.5]})
    m = {x.name: x.answers for x in v.mistakes}
    np.testing.assert_allclose(m["sign_error"]["updated_params"], [1.11, 0.505])
    # v = 0.9 v + 0.1 g = (0.92, 0.41), theta - v
    np.testing.assert_allclose(m["lr_in_velocity"]["velocity"], [0.92, 0.41])
    np.testing.assert_allclose(m["lr_in_velocity"]["updated_params"], [0.08, 0.09])
    v = make_variant(TYPE, 0, {"optimizer": "adam", "params": [1.0, 2.0], "grads": [1.0, -2.0],
                               "learning_rate": 0.1, "m": [0.1, -0.2], "v": [0.001, 0.004],
                               "step": 2})
    m = {x.name: x.answers for x in v.mistakes}
    np.testing.assert_allclose(m["no_bias_correction"]["m_hat"], [0.19, -0.38])
    np.testing.assert_allclose(m["no_bias_correction"]["updated_params"],
                               [1 - 0.1 * 0.19 / (0.001999 ** 0.5 + E),
                                2 + 0.1 * 0.38 / (0.007996 ** 0.5 + E)])
    # divided by v_hat = 1 and 4 instead of sqrt: only the second entry changes
    np.testing.assert_allclose(m["forgot_sqrt"]["updated_params"],
                               [1 - 0.1 / (1 + E), 2 + 0.2 / (4 + E)])
    np.testing.assert_allclose(m["sign_error"]["updated_params"],
                               [1 + 0.1 / (1 + E), 2 - 0.2 / (2 + E)])


def test_carried_forward_from_a_wrong_state_and_named_mistakes():
    v = make_variant(TYPE, 0, {"optimizer": "momentum", "params": [1.0, 0.5],
                               "grads": [0.2, -0.4], "learning_rate": 0.1, "momentum": 0.9,
                               "velocity": [1.0, 0.5]})
    # a wrong velocity (forgot the momentum term: v = g), then a right step from it
    r = grade_question(v, {"velocity": [0.2, -0.4], "updated_params": [0.98, 0.54]}, 10)
    assert r.fields["updated_params"].carried > 0 and r.score == pytest.approx(5)
    assert r.fields["updated_params"].consistent_with == {"velocity[0]": 0.2, "velocity[1]": -0.4}
    r = grade_question(v, {"velocity": [0.92, 0.41], "updated_params": [0.08, 0.09]}, 10)
    assert {f.mistake for f in r.fields.values()} == {"lr_in_velocity"}
    # Adam: no bias correction and the sign flipped together are both named
    v = make_variant(TYPE, 3, {"optimizer": "adam", "step": 2})
    both = get(TYPE).answers(v.fields, get(TYPE).values(
        v.params, [s for s in get(TYPE).slips(v.params)
                   if s.name in ("no_bias_correction", "sign_error")]))
    r = grade_question(v, both, 10)
    # m_hat and v_hat show the missing correction; the step from them, the sign error
    assert r.fields["m_hat"].mistake == r.fields["v_hat"].mistake == "no_bias_correction"
    assert r.fields["updated_params"].mistake == "sign_error"


def test_zero_state_feeds_no_carried_credit():
    v = make_variant(TYPE, 2, {"optimizer": "adam"})
    n = len(v.params["params"])
    blank = {"m": [0] * n, "v": [0] * n, "m_hat": [0] * n, "v_hat": [0] * n,
             "updated_params": v.params["params"]}  # nothing moved: no work
    r = grade_question(v, blank, 10)
    assert r.score == 0 and r.carried == 0


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_draws_are_hand_friendly_and_fair(optimizer):
    ex = get(TYPE)
    for v in swept(optimizer):
        p = v.params
        for name in ("params", "grads") + (("velocity",) if optimizer == "momentum" else ()):
            x = np.asarray(p[name], dtype=float)
            assert np.all(np.round(x * 10) == x * 10) and np.abs(x).max() <= 2, name
        assert np.all(np.asarray(p["grads"]) != 0)
        assert p["learning_rate"] in RATES[optimizer]
        if optimizer == "adam":
            assert p["eps"] == 1e-8 and p["step"] in (1, 2, 3)
            assert p["beta1"] in (0.9, 0.8) and p["beta2"] in (0.999, 0.99)
            for name in ("m", "v"):  # printed to 4 figures: the key is the sheet's numbers
                assert all(float(f"{x:.4g}") == x for x in p[name])
        theta, new = np.asarray(p["params"]), np.asarray(v.answers["updated_params"])
        tol = v.field("updated_params").tolerance
        assert np.all(np.abs(new - theta) > np.maximum(tol.rtol * np.abs(new), tol.atol)), \
            "every parameter moves beyond the tolerance"
        assert [m.name for m in v.mistakes] == SLIPS[optimizer], v.seed
        values = run(ex.graph(p), p)
        assert constant_share(ex.graph(p), p, v.fields, values) <= 0.1


def test_draws_vary_and_follow_options():
    draws = variants("adam") + variants("momentum") + variants("sgd")
    assert len({str(v.params) for v in draws}) == len(draws)
    assert {len(v.params["params"]) for v in draws} == {2, 3}
    assert {v.params["step"] for v in variants("adam")} == {1, 2, 3}
    assert any(not np.any(v.params["velocity"]) for v in variants("momentum"))
    assert {len(v.params["params"]) for v in variants("sgd", 4, 10)} == {4}
    assert {make_variant(TYPE, s).params["optimizer"] for s in range(30)} == set(OPTIMIZERS)
    v = make_variant(TYPE, 0, {"beta2": 0.9})  # Adam's own parameter names the optimizer
    assert v.params["optimizer"] == "adam" and v.params["beta2"] == 0.9


def test_first_momentum_update_weighs_the_copied_velocity_little():
    v = make_variant(TYPE, 0, {"optimizer": "momentum", "velocity": [0, 0]})
    assert v.field("velocity").weight == 0.25
    v = make_variant(TYPE, 0, {"optimizer": "momentum", "params": [1, 2], "grads": [1, 1],
                               "velocity": [0, 1], "learning_rate": 0.1})
    assert v.field("velocity").entry_weights == (0.25, 1.0)


@pytest.mark.parametrize("pinned, words", [
    ({"optimizer": "rmsprop"}, "optimizer must be one of sgd, momentum, adam"),
    ({"optimizer": "sgd", "momentum": 0.9}, "momentum is no parameter of sgd"),
    ({"optimizer": "momentum", "beta1": 0.9}, "beta1 is no parameter of momentum"),
    ({"params": [1, 2], "grads": [1]}, "grads must be a list of 2 numbers"),
    ({"params": [[1, 2]]}, "params must be a list of 1 to 6 numbers"),
    ({"params": "abc"}, "params must be made of finite numbers"),
    ({"params": [1e9, 1]}, "of a sheet's size"),
    ({"learning_rate": 0}, "learning_rate must be one number more than 0"),
    ({"learning_rate": [0.1]}, "learning_rate must be one number"),
    ({"optimizer": "momentum", "momentum": 0}, "0 is plain sgd"),
    ({"optimizer": "adam", "beta1": 1}, "beta1 must be one number from 0 to below 1"),
    ({"optimizer": "adam", "eps": -1}, "eps must be one number from 0 to 1"),
    ({"optimizer": "adam", "step": 0}, "step must be a whole number from 1"),
    ({"optimizer": "adam", "step": 1.5}, "step must be a whole number"),
    ({"optimizer": "adam", "step": True}, "step must be a whole number"),
    ({"optimizer": "adam", "params": [1, 2], "m": [0.1, 0.2], "step": 1}, "at step 1"),
    ({"optimizer": "adam", "params": [1, 2], "v": [-1, 1], "step": 2}, "must not be negative"),
    ({"optimizer": "momentum", "params": [1, 2], "grads": [0.9, 1], "velocity": [-1, 0],
      "momentum": 0.9, "learning_rate": 0.1}, "the new velocity has a 0 entry"),
    ({"optimizer": "adam", "params": [1, 2], "grads": [0, 1], "learning_rate": 0.1},
     "the new m or v has a 0 entry"),
    ({"bias": [1]}, "unknown parameter"),
])
def test_bad_params(pinned, words):
    with pytest.raises(ParamError, match=words):
        make_variant(TYPE, 0, pinned)


@pytest.mark.parametrize("options, words", [
    ({"size": 5}, "option size must be a whole number from 2 to 4"),
    ({"size": 1}, "from 2 to 4"), ({"size": 2.5}, "whole"), ({"layers": 2}, "unknown option"),
])
def test_bad_options(options, words):
    with pytest.raises(ParamError, match=words):
        make_variant(TYPE, 0, options=options)


def test_no_fair_draw_is_refused_with_a_message():
    # theta = 1000: no step of 0.1 moves it beyond 1 % of its size
    with pytest.raises(ParamError, match="moves visibly"):
        make_variant(TYPE, 0, {"optimizer": "sgd", "params": [1000, 1000]})


def render(v, solutions):
    return render_document([Sheet("T", "C", [Question(1, 4, v)])], solutions=solutions)


@pytest.mark.parametrize("pinned", [{"optimizer": o} for o in OPTIMIZERS] +
                         [{"optimizer": "adam", "step": 1}, {"optimizer": "momentum",
                                                              "velocity": [0, 0, 0]}])
def test_templates_render(pinned):
    v = make_variant(TYPE, 1, pinned)
    problem, solution = render(v, False), render(v, True)
    assert r"\texttt{torch.optim." in problem
    assert r"\textbf{Answers:}" in solution and r"\textbf{Answers:}" not in problem


def test_worked_solution_shows_the_numbers():
    v = make_variant(TYPE, 0, {"optimizer": "adam", "params": [1.0, 2.0], "grads": [1.0, -2.0],
                               "learning_rate": 0.1, "m": [0.1, -0.2], "v": [0.001, 0.004],
                               "step": 2})
    text = render(v, True)
    assert r"m_{1} &= 0.9\cdot 0.1 + 0.1\cdot 1 = \mathbf{0.19}" in text
    assert r"1 - \beta_1^{t} = 1 - 0.9^{2} = 0.19" in text
    assert r"\hat{v}_{2} &= 0.007996 / 0.001999 = \mathbf{4}" in text
    assert r"\theta_{2} &= 2 - \frac{0.1\cdot (-2)}{\sqrt{4} + \varepsilon}" in text
    v = make_variant(TYPE, 0, {"optimizer": "momentum", "params": [1.0, 0.5],
                               "grads": [0.2, -0.4], "learning_rate": 0.1, "momentum": 0.9,
                               "velocity": [1.0, 0.5]})
    text = render(v, True)
    assert r"v_{2} &= 0.9\cdot 0.5 + (-0.4) = \mathbf{0.05}" in text
    assert r"\theta_{1} &= 1 - 0.1\cdot 1.1 = 1 - 0.11 = \mathbf{0.89}" in text
