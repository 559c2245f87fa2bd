"""conv2d_backward against torch autograd (conv2d + relu, float64), its slips, its draws, the
sympy derivation, hand-checked cases and parameter refusals."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepdrill.errors import ParamError
from deepdrill.generator.exercise import get, make_variant
from deepdrill.generator.render import Question, Sheet, render_document
from deepdrill.generator.types.conv2d_backward import derivation
from deepdrill.grader.score import grade_question
from sweeps import sweep

TYPE = "conv2d_backward"
EX = get(TYPE)
FIELDS = ("output", "grad_preactivation", "grad_kernel", "grad_bias", "grad_input")
# (options, pinned): the default, channels, stride 2, padding 1, true convolution, no ReLU
CONFIGS = [
    ({}, {}),
    ({"in_channels": 2}, {}),
    ({"out_channels": 2}, {"flip_kernel": True}),
    ({}, {"stride": 2}),
    ({}, {"padding": 1}),
    ({"in_channels": 2, "out_channels": 2}, {"stride": 2, "padding": 1}),
    ({"kernel_size": 3, "size": 5}, {}),
    ({"size": 4}, {"activation": "none"}),
    ({"bias": False, "size": 4}, {}),
]
SEEDS = 30  # per config: 270 variants


def torch_backward(params):
    """Every answer field computed by torch autograd, shaped as the exercise answers it."""
    x = torch.tensor(params["input"], dtype=torch.float64, requires_grad=True)
    k = torch.tensor(params["kernel"], dtype=torch.float64, requires_grad=True)
    two_d = x.ndim == 2 and k.ndim == 2
    b = None if params["bias"] is None else \
        torch.tensor(np.atleast_1d(params["bias"]), dtype=torch.float64, requires_grad=True)
    xx = x[None, None] if x.ndim == 2 else x[None]
    kk = k[None, None] if k.ndim == 2 else k
    if params["flip_kernel"]:
        kk = torch.flip(kk, dims=(2, 3))
    z = F.conv2d(xx, kk, b, stride=params["stride"], padding=params["padding"])
    z.retain_grad()
    y = F.relu(z) if params["activation"] == "relu" else z
    g = torch.tensor(params["grad_output"], dtype=torch.float64)
    y.backward(g.reshape(y.shape))
    out = {"output": y[0, 0] if two_d else y[0], "grad_preactivation":
           z.grad[0, 0] if two_d else z.grad[0], "grad_kernel": k.grad, "grad_input": x.grad}
    if b is not None:
        out["grad_bias"] = b.grad[0] if np.ndim(params["bias"]) == 0 else b.grad
    return {name: t.detach().numpy() for name, t in out.items()}


@pytest.fixture(scope="module")
def variants():
    return [(v, options, pinned) for options, pinned in CONFIGS
            for v in (make_variant(TYPE, seed, pinned, options) for seed in range(SEEDS))]


def test_seed_sweep_against_torch_autograd(variants):
    assert len(variants) >= 200
    for v, options, pinned in variants:
        want = torch_backward(v.params)
        assert set(v.answers) == set(want)
        for name, value in want.items():
            assert np.shape(v.answers[name]) == value.shape, (name, v.seed)
            np.testing.assert_allclose(v.answers[name], value, rtol=1e-12, atol=1e-12,
                                       err_msg=f"{name}, seed {v.seed}, {options}, {pinned}")
        assert {k: v.params[k] for k in pinned} == pinned


def test_the_default_sweep_is_small_and_has_a_relu():
    for v in sweep(TYPE, {}, 40):
        assert np.shape(v.params["input"]) in ((3, 3), (4, 4))
        assert np.shape(v.params["kernel"]) == (2, 2)
        assert v.params["activation"] == "relu" and v.params["bias"] is not None


def test_draws_are_hand_friendly(variants):
    for v, _, _ in variants:
        z = torch_backward({**v.params, "activation": "none"})["output"]
        for name in ("input", "kernel", "grad_output"):
            arr = np.asarray(v.params[name])
            assert arr.dtype.kind == "i" and np.abs(arr).max() <= 3, (name, v.seed)
        assert np.all(np.asarray(v.params["grad_output"]) != 0)
        if v.params["activation"] == "relu":  # clear of the ReLU'(0) tie; some masked, not all
            assert np.all(np.abs(z) >= 0.5) and np.any(z < 0) and np.any(z > 0), v.seed
        for name in ("grad_kernel", "grad_input"):
            values = np.ravel(v.answers[name])
            assert len(np.unique(values)) >= min(3, values.size), (name, v.seed)


def test_constant_answers_earn_at_most_a_tenth(variants):
    for v, _, _ in variants[::3]:
        for c in (0, 1):
            answers = {f.name: np.full(f.shape, c).tolist() for f in v.fields}
            assert grade_question(v, answers, 10).score <= 1.0 + 1e-9, (v.seed, c)


# -- slips, each against torch on changed parameters or gradients ------------------

def rot(a):
    return np.flip(np.asarray(a, dtype=float), axis=(-2, -1))


def filters(params):
    k = np.asarray(params["kernel"], dtype=float)
    k = k[None, None] if k.ndim == 2 else k
    return rot(k) if params["flip_kernel"] else k


def input_gradient(params, weight, grad):
    """dL/dX by torch for the filters ``weight`` (as slid) and dL/dZ ``grad``."""
    x = np.asarray(params["input"], dtype=float)
    shape = (1, 1, *x.shape) if x.ndim == 2 else (1, *x.shape)
    g = torch.tensor(grad, dtype=torch.float64)
    g = g.reshape(1, weight.shape[0], *g.shape[-2:])
    dx = torch.nn.grad.conv2d_input(shape, torch.tensor(weight.copy()), g,
                                    stride=params["stride"], padding=params["padding"])
    return dx.reshape(x.shape).numpy()


def test_each_slip_against_torch(variants):
    seen = set()
    for v, _, _ in variants:
        p, right = v.params, v.answers
        for m in v.mistakes:
            seen.add(m.name)
            got = {**right, **m.answers}
            if m.name == "forgot_relu":
                want = torch_backward({**p, "activation": "none"})
            elif m.name == "ignored_relu_mask":
                unmasked = torch_backward({**p, "activation": "none"})
                want = {**unmasked, "output": right["output"]}
            elif m.name == "rotated_grad_kernel":
                want = {**right, "grad_kernel": rot(right["grad_kernel"])}
            elif m.name == "kernel_not_rotated":  # as if the filters slid were rotated
                want = {**right, "grad_input": input_gradient(p, rot(filters(p)),
                                                              right["grad_preactivation"])}
            else:
                assert m.name == "bias_gradient_averaged"
                n = np.size(right["grad_preactivation"]) / max(1, np.size(right["grad_bias"]))
                want = {**right, "grad_bias": np.asarray(right["grad_bias"]) / n}
            for name in FIELDS:
                if name in right:
                    np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-12,
                                               err_msg=f"{m.name}: {name}, seed {v.seed}")
    assert seen == {"ignored_relu_mask", "forgot_relu", "kernel_not_rotated",
                    "rotated_grad_kernel", "bias_gradient_averaged"}


def test_every_drawn_variant_shows_every_slip(variants):
    for v, options, pinned in variants:
        names = {m.name for m in v.mistakes}
        want = {"kernel_not_rotated", "rotated_grad_kernel"}
        want |= {"ignored_relu_mask", "forgot_relu"} if v.params["activation"] == "relu" else set()
        want |= {"bias_gradient_averaged"} if v.params["bias"] is not None else set()
        assert names == want, (v.seed, options, pinned)


def test_a_student_who_ignored_the_mask_is_named_and_followed():
    v = make_variant(TYPE, 5)
    wrong = next(m for m in v.mistakes if m.name == "ignored_relu_mask").answers
    r = grade_question(v, {**v.answers, **wrong}, 10)
    assert r.fields["grad_preactivation"].mistake == "ignored_relu_mask"
    assert r.fields["output"].correct
    for name in ("grad_kernel", "grad_input"):  # right from their own dL/dZ
        assert r.fields[name].carried > 0


# -- hand-checked ----------------------------------------------------------------------

HAND = {"input": [[1, 2, 0], [0, 1, 3], [2, 1, 1]], "kernel": [[1, -1], [0, 2]], "bias": -1,
        "grad_output": [[1, 2], [-1, 3]]}


@pytest.mark.parametrize("pinned, answers", [
    # z = [[1, 8], [1, 0]] - 1 (the conv2d_forward README example, minus the bias)
    ({**HAND, "activation": "none"},
     {"output": [[0, 7], [0, -1]], "grad_preactivation": [[1, 2], [-1, 3]],
      # dW[k, l] = sum over i, j of dz[i, j] x[i + k, j + l]
      "grad_kernel": [[1 + 4 + 0 + 3, 2 + 0 - 1 + 9], [0 + 2 - 2 + 3, 1 + 6 - 1 + 3]],
      "grad_bias": 1 + 2 - 1 + 3,
      # dX[p, q] = sum over i, j of dz[i, j] K[p - i, q - j]: the full convolution
      "grad_input": [[1, -1 + 2, -2], [0 - 1, 2 + 0 + 1 + 3, 4 - 3], [0, -2 + 0, 6]]}),
    # z = [[0.5, 7.5], [0.5, -0.5]]: the ReLU masks the last entry
    ({**HAND, "activation": "relu", "bias": -0.5},
     {"output": [[0.5, 7.5], [0.5, 0]], "grad_preactivation": [[1, 2], [-1, 0]],
      "grad_kernel": [[1 + 4 + 0, 2 + 0 - 1], [0 + 2 - 2, 1 + 6 - 1]], "grad_bias": 2,
      "grad_input": [[1, -1 + 2, -2], [0 - 1, 2 + 0 + 1 + 0, 4 + 0], [0, -2 + 0, 0]]}),
    # stride 2 on a 4x4 input: every input entry in exactly one window
    ({"input": [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]],
      "kernel": [[1, 0], [0, -1]], "stride": 2, "activation": "none",
      "grad_output": [[1, -1], [2, 3]]},
     {"output": [[-5, -5], [-5, -5]], "grad_preactivation": [[1, -1], [2, 3]],
      "grad_kernel": [[1 - 3 + 18 + 33, 2 - 4 + 20 + 36], [5 - 7 + 26 + 45, 6 - 8 + 28 + 48]],
      "grad_input": [[1, 0, -1, 0], [0, -1, 0, 1], [2, 0, 3, 0], [0, -2, 0, -3]]}),
])
def test_hand_checked(pinned, answers):
    v = make_variant(TYPE, 0, pinned, {"bias": "bias" in pinned})
    for name, value in answers.items():
        np.testing.assert_allclose(v.answers[name], value, err_msg=name)
    assert ("grad_bias" in v.answers) == ("bias" in pinned)


def test_sympy_derivation_is_the_textbook_sum():
    d = derivation(1, 3, 3, 1, 2, 2, 1, 0, False)
    assert d["kernel"][(0, 0, 0, 0)]["sum"] == \
        r"\delta_{11} x_{11} + \delta_{12} x_{12} + \delta_{21} x_{21} + \delta_{22} x_{22}"
    assert d["kernel"][(0, 0, 1, 0)]["sum"] == \
        r"\delta_{11} x_{21} + \delta_{12} x_{22} + \delta_{21} x_{31} + \delta_{22} x_{32}"
    assert d["input"][(0, 0, 0)]["sum"] == r"\delta_{11} w_{11}"
    assert d["input"][(0, 1, 1)]["sum"] == \
        r"\delta_{11} w_{22} + \delta_{12} w_{21} + \delta_{21} w_{12} + \delta_{22} w_{11}"
    padded = derivation(1, 2, 2, 1, 2, 2, 1, 1, False)  # the padding's zeros drop out
    assert padded["kernel"][(0, 0, 0, 0)]["sum"] == \
        r"\delta_{22} x_{11} + \delta_{23} x_{12} + \delta_{32} x_{21} + \delta_{33} x_{22}"
    assert derivation.cache_info().currsize >= 2
    before = derivation.cache_info().misses
    for seed in range(20):  # one shape: derived once
        EX.worked(*(lambda v: (v.params, EX.values(v.params)))(make_variant(TYPE, seed,
                                                                              {**HAND})))
    assert derivation.cache_info().misses <= before + 1


# -- parameters -----------------------------------------------------------------------------

@pytest.mark.parametrize("pinned, options, words", [
    ({**HAND, "grad_output": [[1, 2, 3]]}, {}, "grad_output must have the output's shape 2x2"),
    ({k: v for k, v in HAND.items() if k != "grad_output"} | {"grad_output": None}, {},
     "missing parameter 'grad_output'"),
    ({**HAND, "grad_output": [[0, 0], [0, 0]]}, {}, "no gradient flows back"),
    ({**HAND, "kernel": [[-1, -1], [-1, -1]], "bias": -1, "activation": "relu"}, {},
     "no gradient flows back"),
    ({**HAND, "grad_output": [[1e300, 1], [1, 1]]}, {}, "of a sheet's size"),
    ({"input": np.ones((9, 9)).tolist()}, {}, "at most 8"),
    ({}, {"size": 7}, "option size must be a whole number from 2 to 5"),
    ({}, {"in_channels": 4}, "option in_channels"),
    ({}, {"bias": "yes"}, "option bias must be true or false"),
    ({"activation": "tanh"}, {}, "activation must be one of"),
    ({"stride": 0}, {}, "stride must be at least 1"),
])
def test_bad_params(pinned, options, words):
    with pytest.raises(ParamError, match=words):
        make_variant(TYPE, 0, pinned, options)


def test_a_pinned_grad_output_sets_the_shapes():
    v = make_variant(TYPE, 0, {"grad_output": [[1, -2, 3], [2, 2, -1], [-3, 1, 2]]})
    assert np.shape(v.params["input"]) == (4, 4)


# -- the sheets -----------------------------------------------------------------------------

def render(v, solutions):
    return render_document([Sheet("T", "C", [Question(1, 10, v)])], solutions=solutions)


def test_templates_render():
    for options, pinned in CONFIGS:
        v = make_variant(TYPE, 1, pinned, options)
        problem, solution = render(v, False), render(v, True)
        assert r"\frac{\partial L}{\partial Y" in problem and "Solution" not in problem
        assert r"\delta" in solution and "180" in solution
        for f in v.fields:
            assert "\\ddfield{" + f.name.replace("_", "\\_") + "}" in problem


# -- the kernel gradient as formulas (single-row problems) --------------------------------

FORMULA_PARAMS = {"input": [[1, 2, -1, 3, 0]], "kernel": [[2, -1]], "activation": "none",
                  "formula": True}


@pytest.mark.parametrize("x, k", [([[1, 2, -1, 3, 0]], [[2, -1]]), ([[3, -1, 2, 1]], [[1, 0, -2]]),
                                  ([[2, 1, -2, 1, 3, -1]], [[1, -1, 2]])])
def test_each_kernel_formula_is_the_sum_torch_differentiates(x, k):
    from deepdrill.model.expressions import evaluate, parse

    for seed in range(20):
        v = make_variant(TYPE, seed, {"input": x, "kernel": k, "activation": "none",
                                      "formula": True})
        xt = torch.tensor(v.params["input"], dtype=torch.float64)[None, None]
        kt = torch.tensor(v.params["kernel"], dtype=torch.float64)[None, None].requires_grad_()
        g = torch.tensor(v.params["grad_output"], dtype=torch.float64)[None, None]
        torch.nn.functional.conv2d(xt, kt).backward(g)
        d = np.ravel(v.params["grad_output"])
        point = {**{f"x_{i + 1}": float(a) for i, a in enumerate(np.ravel(x))},
                 **{f"d_{i + 1}": float(a) for i, a in enumerate(d)}}
        f = v.field("grad_kernel_formula_1")
        for j, want in enumerate(kt.grad.ravel().tolist(), 1):
            tree = parse(v.answers[f"grad_kernel_formula_{j}"], f.symbols)
            assert evaluate(tree, point) == pytest.approx(want)


@pytest.mark.parametrize("typed, mistake", [
    ("d_1*x_1 + d_2*x_2 + d_3*x_3 + d_4*x_4", None),
    ("x_1 d_1 + x_2 d_2 + x_3 d_3 + x_4 d_4", None),
    ("d_1*x_2 + d_2*x_3 + d_3*x_4 + d_4*x_5", "rotated_grad_kernel"),
    ("d_1*x_1 + d_2*x_2 + d_3*x_3", "formula_missing_term"),
])
def test_a_kernel_formula_is_graded_by_meaning_and_its_wrong_forms_named(typed, mistake):
    v = make_variant(TYPE, 0, FORMULA_PARAMS)
    r = grade_question(v, {**v.answers, "grad_kernel_formula_1": typed}, 10.0)
    f = r.fields["grad_kernel_formula_1"]
    assert f.correct is (mistake is None) and f.mistake == mistake


@pytest.mark.parametrize("change", [{"stride": 2}, {"padding": 1}, {"activation": "relu"},
                                    {"kernel": [[1, 2, 1, 2]]}, {"input": [[1, 2], [3, 4]]},
                                    {"formula": "yes"}])
def test_formulas_are_refused_where_they_are_not_a_1d_sum(change):
    with pytest.raises(ParamError) as refused:  # by the formula's check, or an earlier one
        make_variant(TYPE, 0, {**FORMULA_PARAMS, "kernel": [[1, -1]], **change})
    if set(change) & {"stride", "activation", "kernel", "formula"}:
        assert "formula" in str(refused.value)


def test_without_the_formula_option_the_stored_parameters_are_as_before():
    assert "formula" not in make_variant(TYPE, 3).params
