"""activation_gradients against torch autograd through the chain a_l = f(w_l a_(l-1) + b_l)
(float64), sympy's derivatives against autograd, hand-checked cases, slips, draws, refusals."""

import math
from fractions import Fraction

import numpy as np
import pytest
import sympy
import torch
from deepdrill.generator.exercise import get, make_variant
from deepdrill.generator.latex import escape
from deepdrill.generator.render import Question, Sheet, render_document
from deepdrill.generator.types.activation_gradients import (FORMS, LOG_BASES, WEIGHT_SIZES, Z,
                                                            derivation, log_base, z_tex)
from deepdrill.grader.score import grade_question
from sweeps import near, sweep

from deepdrill.errors import ParamError

TYPE = "activation_gradients"
SWEPT = [{}, {"layers": 6}, {"layers": 2}]  # 200 seeds each
TORCH_F = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}
A0 = 0.7  # the chain's input; the biases are set so the pre-activations are the given z


def relu_variants(options=None):
    return [make_variant(TYPE, s, {"activation": "relu"}, options or {}) for s in range(100)]


def torch_oracle(activation, z, weights):
    """f'(z_l) by autograd at each z_l, and da_L/da_0 by autograd through the whole chain."""
    f = TORCH_F[activation]
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    f(zt).sum().backward()
    a0 = torch.tensor(A0, dtype=torch.float64, requires_grad=True)
    a = a0
    for zl, wl in zip(z, weights):
        bias = zl - wl * a.item()  # a constant: only its value matters
        pre = wl * a + bias
        assert pre.item() == pytest.approx(zl, abs=1e-12)
        a = f(pre)
    a.backward()
    return zt.grad.numpy(), a0.grad.item()


def assert_matches_torch(v):
    local, product = torch_oracle(v.params["activation"], v.params["z"], v.params["weights"])
    assert v.field("local_derivatives").shape == [len(v.params["z"])]
    np.testing.assert_allclose(v.answers["local_derivatives"], local, rtol=1e-12, atol=1e-15)
    assert v.answers["gradient_product"] == pytest.approx(product, rel=1e-10, abs=1e-15)


@pytest.mark.parametrize("options", SWEPT)
def test_seed_sweep_against_torch(options):
    for v in sweep(TYPE, options, 200):
        assert_matches_torch(v)


@pytest.mark.parametrize("layers", [None, 5])
def test_relu_sweep_against_torch(layers):
    for v in relu_variants({"layers": layers} if layers else {}):
        assert_matches_torch(v)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_sympy_derivative_agrees_with_autograd(activation):
    d = derivation(activation)
    fp = sympy.lambdify(Z, sympy.diff(FORMS[activation], Z))
    z = torch.linspace(-4, 4, 41, dtype=torch.float64, requires_grad=True)
    TORCH_F[activation](z).sum().backward()
    np.testing.assert_allclose([fp(v) for v in z.detach().numpy()], z.grad.numpy(), atol=1e-14)
    assert d["in_f"] == {"sigmoid": r"s \left(1 - s\right)", "tanh": r"1 - t^{2}"}[activation]
    assert derivation(activation) is d


def test_derivation_at_ln_k():
    assert derivation("sigmoid")["at_ln"] == [r"\frac{k}{k + 1}", r"\frac{k}{\left(k + 1\right)^{2}}"]
    assert derivation("tanh")["at_ln"][0] == r"\frac{k^{2} - 1}{k^{2} + 1}"
    assert derivation("relu")["raw"] == \
        r"\begin{cases} 1 & \text{for}\: z > 0 \\0 & \text{otherwise} \end{cases}"


L2, L3 = math.log(2), math.log(3)


@pytest.mark.parametrize("activation, z, weights, local, product", [
    ("sigmoid", [0, L3], [2, -1], [0.25, 3 / 16], -3 / 32),
    ("sigmoid", [-L3, L2, -L2], [4, 1.5, 3], [3 / 16, 2 / 9, 2 / 9], 4 * 1.5 * 3 * 3 / 16 * 4 / 81),
    ("tanh", [L2, -L3], [1, 2], [16 / 25, 9 / 25], 288 / 625),
    ("tanh", [0], [-0.5], [1], -0.5),
    ("relu", [1.5, -0.5, 2], [2, 3, -1], [1, 0, 1], 0),
    ("relu", [0.5, 2], [-2, 1.5], [1, 1], -3),
])
def test_hand_checked(activation, z, weights, local, product):
    v = make_variant(TYPE, 0, {"activation": activation, "z": z, "weights": weights})
    np.testing.assert_allclose(v.answers["local_derivatives"], local, rtol=1e-12)
    assert v.answers["gradient_product"] == pytest.approx(product, rel=1e-12, abs=1e-15)


def mistakes(v):
    return {m.name: m.answers for m in v.mistakes}


def test_mistakes_reproduce_their_errors():
    z, w = [L3, -L2], [2, -1]
    by = mistakes(make_variant(TYPE, 0, {"activation": "sigmoid", "z": z, "weights": w}))
    np.testing.assert_allclose(by["used_activation"]["local_derivatives"], [3 / 4, 1 / 3])
    assert by["used_activation"]["gradient_product"] == pytest.approx(-0.5)
    assert by["forgot_weights"] == {"gradient_product": pytest.approx(3 / 16 * 2 / 9)}
    np.testing.assert_allclose(by["derivative_at_z"]["local_derivatives"],
                               [L3 * (1 - L3), -L2 * (1 + L2)])
    by = mistakes(make_variant(TYPE, 0, {"activation": "tanh", "z": z, "weights": w}))
    np.testing.assert_allclose(by["tanh_unsquared"]["local_derivatives"], [1 - 0.8, 1 + 0.6])
    np.testing.assert_allclose(by["derivative_at_z"]["local_derivatives"],
                               [1 - L3 ** 2, 1 - L2 ** 2])
    assert "tanh_unsquared" not in mistakes(make_variant(
        TYPE, 0, {"activation": "sigmoid", "z": z, "weights": w}))
    by = mistakes(make_variant(TYPE, 0, {"activation": "relu", "z": [2.5, 0.5],
                                         "weights": [2, 3]}))
    assert set(by) == {"used_activation", "forgot_weights"}
    assert by["used_activation"]["gradient_product"] == pytest.approx(7.5)
    assert by["forgot_weights"] == {"gradient_product": 1}


def test_a_dead_unit_hides_forgotten_weights():
    by = mistakes(make_variant(TYPE, 0, {"activation": "relu", "z": [2.5, -0.5],
                                         "weights": [2, 3]}))
    assert set(by) == {"used_activation"}  # forgetting the weights also gives 0


@pytest.mark.parametrize("options", SWEPT)
def test_every_mistake_is_kept(options):
    for v in sweep(TYPE, options, 200):
        want = {"used_activation", "forgot_weights", "derivative_at_z"} | \
            ({"tanh_unsquared"} if v.params["activation"] == "tanh" else set())
        assert set(mistakes(v)) == want, v.seed


def test_product_follows_a_students_own_derivatives():
    ex = get(TYPE)
    params = {"activation": "sigmoid", "z": [L2, L3, 0], "weights": [2, -1, 4]}
    values = ex.values(params, given={"local_derivatives": np.array([0.2, 0.5, 0.25])})
    assert values["gradient_product"] == pytest.approx(2 * 0.2 * -0.5 * 4 * 0.25)
    # all-zero derivatives need no work: no product to credit
    values = ex.values(params, given={"local_derivatives": np.zeros(3)})
    assert "gradient_product" not in values
    v = make_variant(TYPE, 0, params)
    r = grade_question(v, {"local_derivatives": [0.2, 0.5, 0.25],
                           "gradient_product": -0.2}, 10)
    assert r.score == pytest.approx(5 + 5 / 3) and r.carried == pytest.approx(5)  # 0.25 right
    r = grade_question(v, {"local_derivatives": [0, 0, 0], "gradient_product": 0}, 10)
    assert r.score == 0


@pytest.mark.parametrize("options", SWEPT)
def test_draws_are_exact_by_hand(options):
    for v in sweep(TYPE, options, 200):
        p = v.params
        assert p["activation"] in ("sigmoid", "tanh")
        assert len(p["z"]) == (options.get("layers") or len(p["z"])) and 2 <= len(p["z"]) <= 6
        ks = [log_base(z) for z in p["z"]]
        assert all(k in LOG_BASES or (k == 1 and p["activation"] == "sigmoid") for k in ks)
        assert ks.count(1) <= 1 and len({k for k in ks}) > 1
        assert all(abs(w) in WEIGHT_SIZES for w in p["weights"])
        for z, d in zip(p["z"], v.answers["local_derivatives"]):  # the fraction on the sheet
            k = Fraction(log_base(z))
            exact = k / (k + 1) ** 2 if p["activation"] == "sigmoid" else \
                4 * k ** 2 / (k ** 2 + 1) ** 2
            assert d == pytest.approx(float(exact), rel=1e-12)
            assert not near(d, 1.0) and not near(d, 0.0)
        product = v.answers["gradient_product"]
        assert not near(abs(product), 1.0) and product != 0
        assert not near(abs(np.prod(p["weights"])), 1.0)


def test_draws_vary():
    draws = sweep(TYPE, {}, 200)
    assert {v.params["activation"] for v in draws} == {"sigmoid", "tanh"}
    assert {len(v.params["z"]) for v in draws} == {3, 4}
    assert any(0 in v.params["z"] for v in draws)
    assert any(w < 0 for v in draws for w in v.params["weights"])
    assert any(abs(v.answers["gradient_product"]) > 1 for v in draws)  # exploding, too


def test_relu_draws():
    draws = relu_variants({"layers": 4})
    dead = 0
    for v in draws:
        z = np.array(v.params["z"])
        assert np.all(np.abs(z) >= 0.5) and np.all(np.abs(z) <= 3)
        assert np.all(np.round(z * 10) == z * 10) and np.any(z > 0)
        dead += bool(np.any(z < 0))
        if np.all(z > 0):
            assert not near(abs(v.answers["gradient_product"]), 1.0)
    assert 20 < dead < 80  # both lessons: a dead unit blocks, active ones pass


def test_z_is_printed_as_a_logarithm():
    assert z_tex(L3) == r"\ln 3" and z_tex(-math.log(5)) == r"-\ln 5" and z_tex(0) == "0"
    assert z_tex(1.0986) == "1.0986" and z_tex(-1.2) == "-1.2"


def test_pinned_params_are_kept():
    v = make_variant(TYPE, 1, {"activation": "tanh"}, {"layers": 5})
    assert v.params["activation"] == "tanh" and len(v.params["z"]) == 5
    v = make_variant(TYPE, 1, {"z": [0.5, -1, 2]})
    assert v.params["z"] == [0.5, -1, 2] and len(v.params["weights"]) == 3
    v = make_variant(TYPE, 1, {"weights": [1, 2]})
    assert v.params["weights"] == [1, 2] and len(v.params["z"]) == 2


@pytest.mark.parametrize("pinned, words", [
    ({"activation": "softplus"}, "activation must be one of sigmoid, tanh, relu"),
    ({"activation": "relu", "z": [1, 0, 2]}, "no derivative at z = 0"),
    ({"activation": "relu", "z": [-1, -2]}, "at least one positive z"),
    ({"z": [1, 2], "weights": [1]}, "weights must be a list of 2 numbers"),
    ({"z": [[1, 2]], "weights": [1, 2]}, "z must be a list of 1 to 10 numbers"),
    ({"z": list(range(1, 12)), "weights": [1] * 11}, "1 to 10 numbers"),
    ({"z": [1, 2], "weights": [1, 1e6]}, "of a sheet's size"),
    ({"z": [1, 100], "weights": [1, 1]}, "of a sheet's size"),
    ({"z": ["a"], "weights": [1]}, "finite numbers"),
    ({"bias": [1]}, "unknown parameter"),
])
def test_bad_params(pinned, words):
    with pytest.raises(ParamError, match=words):
        make_variant(TYPE, 0, pinned)


@pytest.mark.parametrize("options, words", [
    ({"layers": 7}, "option layers must be a whole number from 2 to 6"),
    ({"layers": 1}, "from 2 to 6"), ({"layers": "3"}, "whole number"),
    ({"depth": 3}, "unknown option"),
])
def test_bad_options(options, words):
    with pytest.raises(ParamError, match=words):
        make_variant(TYPE, 0, options=options)


def render(v, solutions):
    return render_document([Sheet("T", "C", [Question(1, 5, v)])], solutions)


def test_worked_solution_shows_fractions_and_the_product():
    v = make_variant(TYPE, 0, {"activation": "sigmoid", "z": [L3, -L2], "weights": [2, -1]})
    problem, text = render(v, False), render(v, True)
    assert r"\begin{tikzpicture}" in problem and r"$\ln 3$" in problem
    assert r"$-\ln 2$" in problem and "natural logarithms" in problem
    assert "sympy" not in problem
    assert r"\frac{3}{4} \left(1 - \frac{3}{4}\right) = \frac{3}{16} = \mathbf{0.1875}" in text
    assert r"\frac{1}{3} \left(1 - \frac{1}{3}\right) = \frac{2}{9} \approx \mathbf{0.2222}" in text
    assert r"0.375 \cdot (-0.2222) \approx \mathbf{-0.08333}" in text
    assert derivation("sigmoid")["in_f"] in text and "vanishing gradient" in text


def test_worked_solution_for_decimals_and_relu():
    text = render(make_variant(TYPE, 0, {"activation": "tanh", "z": [0.5], "weights": [2]}),
                  True)
    assert r"1 - 0.4621^{2} \approx \mathbf{0.7864}" in text and "natural logarithms" not in text
    text = render(make_variant(TYPE, 0, {"activation": "relu", "z": [1.5, -0.5],
                                         "weights": [2, 3]}), True)
    assert "stops the gradient" in text and r"2 \cdot 0 = \mathbf{0}" in text


# -- the formula option: f'(z) in terms of f(z), typed as text ------------------------------

FORMULA_KEYS = {"sigmoid": ("s*(1 - s)", "s"), "tanh": ("1 - t^2", "t")}


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_the_formula_field_and_its_key(activation):
    key, letter = FORMULA_KEYS[activation]
    v = make_variant(TYPE, 5, {"activation": activation, "formula": True})
    assert v.params["formula"] is True and v.answers["derivative_formula"] == key
    field = v.field("derivative_formula")
    assert field.kind.value == "expression" and field.symbols == (letter,)
    plain = make_variant(TYPE, 5, {"activation": activation})
    assert "formula" not in plain.params  # variants without it are as before
    assert {k: v.params[k] for k in plain.params} == plain.params
    assert {k: v.answers[k] for k in plain.answers} == plain.answers


@pytest.mark.parametrize("activation, written", [
    ("sigmoid", "s - s^2"), ("sigmoid", "s*(1-s)"), ("sigmoid", "-(s^2 - s)"),
    ("tanh", "1-t*t"), ("tanh", "(1 - t)*(1 + t)"),
])
def test_equivalent_formulas_score_full_marks(activation, written):
    v = make_variant(TYPE, 2, {"activation": activation, "formula": True})
    r = grade_question(v, {**v.answers, "derivative_formula": written}, 10)
    assert r.score == pytest.approx(10)


@pytest.mark.parametrize("activation, written, mistake", [
    ("sigmoid", "s", "used_activation"),
    ("sigmoid", "s*(1 + s)", "formula_sign"),
    ("sigmoid", "s+s^2", "formula_sign"),
    ("sigmoid", "1 - s^2", "other_activation_formula"),
    ("tanh", "t", "used_activation"),
    ("tanh", "1 - t", "tanh_unsquared"),
    ("tanh", "1 + t^2", "formula_sign"),
    ("tanh", "t - t^2", "other_activation_formula"),
])
def test_wrong_formulas_are_named(activation, written, mistake):
    v = make_variant(TYPE, 3, {"activation": activation, "formula": True})
    r = grade_question(v, {**v.answers, "derivative_formula": written}, 10)
    f = r.fields["derivative_formula"]
    assert not f.correct and f.mistake == mistake and r.score < 10
    assert r.fields["local_derivatives"].correct and r.fields["gradient_product"].correct


def test_a_numeric_slip_with_a_formula_writes_it_too():
    v = make_variant(TYPE, 3, {"activation": "tanh", "formula": True})
    m = {m.name: m for m in v.mistakes}
    assert m["tanh_unsquared"].answers["derivative_formula"] == "1 - t"
    assert "local_derivatives" in m["tanh_unsquared"].answers
    assert m["formula_sign"].answers == {"derivative_formula": "1 + t^2"}
    assert "derivative_formula" not in m["forgot_weights"].answers


@pytest.mark.parametrize("pinned, words", [
    ({"activation": "relu", "formula": True}, "use sigmoid or tanh"),
    ({"activation": "sigmoid", "formula": "yes"}, "true or false"),
    ({"activation": "tanh", "formula": 1}, "true or false"),
])
def test_formula_refusals(pinned, words):
    with pytest.raises(ParamError, match=words):
        make_variant(TYPE, 0, pinned)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_the_sheets_ask_and_answer_the_formula(activation):
    key, letter = FORMULA_KEYS[activation]
    v = make_variant(TYPE, 1, {"activation": activation, "formula": True})
    sheet = Sheet("T", "C", [Question(1, 5, v, "q1")])
    problem = render_document([sheet], False)
    assert f"as a formula in ${letter} = " in problem and "derivative\\_formula" in problem
    solution = render_document([sheet], True)
    assert f'typed as \\texttt{{"{escape(key)}"}}' in solution
    assert "formula" not in render_document(
        [Sheet("T", "C", [Question(1, 5, make_variant(TYPE, 1, {"activation": activation}),
                                   "q1")])], False).split("Submit")[0]
