"""xavier_init against torch.nn.init: fans from _calculate_fan_in_and_fan_out on the weights
of real torch layers (shapes from a forward pass), bounds and stds from xavier_uniform_ /
xavier_normal_ statistically; the sympy derivation; slips, chains, draws and refusals."""

import math

import numpy as np
import pytest
import sympy
import torch
from deepdrill.generator.exercise import make_variant
from deepdrill.generator.layers import parse_layers
from deepdrill.generator.render import Question, Sheet, render_document
from deepdrill.generator.types.xavier_init import derivation
from deepdrill.grader.score import grade_question
from sweeps import sweep
from torch import nn
from torch_layers import torch_module

from deepdrill.errors import ParamError

TYPE = "xavier_init"
OPTION_SETS = [({}, 200), ({"network": "mlp"}, 40), ({"distribution": "normal"}, 80),
               ({"weighted": 5}, 30), ({"network": "cnn", "weighted": 3}, 30)]
SAMPLES = 10_000  # weights drawn per layer for the statistical checks


def torch_weights(input_shape, layers):
    """The weight tensors (meta device: shapes only) of the conv and FC layers, in order."""
    x = torch.zeros((1, *input_shape), device="meta", dtype=torch.float64)
    weights = []
    for layer in parse_layers(layers):
        module = torch_module(layer, tuple(x.shape[1:])).eval()  # BN on a batch of one
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                weights.append(m.weight)
        x = module(x)
    return weights


def torch_fans(weights):
    return [nn.init._calculate_fan_in_and_fan_out(w) for w in weights]


@pytest.mark.parametrize("options, seeds", OPTION_SETS)
def test_seed_sweep_against_torch(options, seeds):
    for v in sweep(TYPE, options, seeds):
        p = v.params
        fans = torch_fans(torch_weights(p["input_shape"], p["layers"]))
        assert v.answers["fan_in"] == [a for a, _ in fans], v.seed
        assert v.answers["fan_out"] == [b for _, b in fans], v.seed
        uniform = p["distribution"] == "uniform"
        name = "bounds" if uniform else "stds"
        assert {f.name for f in v.fields} == {"fan_in", "fan_out", name}
        want = [p["gain"] * math.sqrt((6 if uniform else 2) / (a + b)) for a, b in fans]
        np.testing.assert_allclose(v.answers[name], want, rtol=1e-12)


def filled(shape, distribution, gain, seed):
    """Weights of ``shape`` as torch initialises them, SAMPLES or more of them (the tensor
    filled again as often as needed: its fans stay those of its shape)."""
    torch.manual_seed(seed)
    w = torch.empty(shape, dtype=torch.float64)
    init = nn.init.xavier_uniform_ if distribution == "uniform" else nn.init.xavier_normal_
    draws = [init(w, gain=gain).flatten().clone() for _ in range(-(-SAMPLES // w.numel()))]
    return torch.cat(draws)


@pytest.mark.parametrize("options", [{}, {"distribution": "normal"}])
def test_torch_init_draws_within_the_bound_and_with_the_std(options):
    """xavier_uniform_ fills U(-a, a): every |w| <= a, the largest near a, variance a^2/3;
    xavier_normal_ has std sigma (within 4% on 10,000 draws)."""
    for v in sweep(TYPE, options, 200 if not options else 80)[::20]:
        p = v.params
        weights = torch_weights(p["input_shape"], p["layers"])
        name = "bounds" if p["distribution"] == "uniform" else "stds"
        for i, (w, answer) in enumerate(zip(weights, v.answers[name])):
            drawn = filled(tuple(w.shape), p["distribution"], p["gain"], v.seed * 10 + i)
            if name == "bounds":
                assert drawn.abs().max() <= answer * (1 + 1e-12)
                assert drawn.abs().max() >= 0.99 * answer
                assert drawn.var().item() == pytest.approx(answer ** 2 / 3, rel=0.05)
            else:
                assert drawn.std().item() == pytest.approx(answer, rel=0.04)


@pytest.mark.parametrize("pinned", [{"gain": 1.414}, {"gain": 5 / 3, "distribution": "normal"},
                                    {"gain": 0.5}])
def test_gain_matches_torch(pinned):
    for seed in range(20):
        v = make_variant(TYPE, seed, pinned)
        fans = torch_fans(torch_weights(v.params["input_shape"], v.params["layers"]))
        uniform = v.params["distribution"] == "uniform"
        want = [pinned["gain"] * math.sqrt((6 if uniform else 2) / (a + b)) for a, b in fans]
        np.testing.assert_allclose(v.answers["bounds" if uniform else "stds"], want, rtol=1e-12)


def test_sympy_derivation():
    d = derivation()
    assert d["variance"] == r"\frac{a^{2}}{3}"
    assert d["bound"] == r"\frac{\sqrt{6} g}{\sqrt{n_\text{in} + n_\text{out}}}"
    assert d["std"] == r"\frac{\sqrt{2} g}{\sqrt{n_\text{in} + n_\text{out}}}"
    assert derivation() is d  # built once
    a, w = sympy.symbols("a w", positive=True)
    assert sympy.integrate(w ** 2 / (2 * a), (w, -a, a)) == a ** 2 / 3


@pytest.mark.parametrize("input_shape, layers, fan_in, fan_out, bounds", [
    ([1, 28, 28], ["CONV5-6(1,0)", "POOL-2", "FLATTEN", "FC-10"], [25, 864], [150, 10],
     [math.sqrt(6 / 175), math.sqrt(6 / 874)]),
    ([3, 32, 32], ["CONV3-16", "RELU", "FC-10"], [27, 16384], [144, 10],
     [math.sqrt(6 / 171), math.sqrt(6 / 16394)]),
    ([784], ["FC-256", "RELU", "FC-10"], [784, 256], [256, 10], [0.075955, 0.150188]),
    ([4, 8, 8], ["CONV1-8", "CONV3-2(2,1)", "FC-5"], [4, 72, 32], [8, 18, 5],
     [math.sqrt(6 / 12), math.sqrt(6 / 90), math.sqrt(6 / 37)]),
])
def test_hand_checked(input_shape, layers, fan_in, fan_out, bounds):
    v = make_variant(TYPE, 0, {"input_shape": input_shape, "layers": layers,
                               "distribution": "uniform"})
    assert v.answers["fan_in"] == fan_in and v.answers["fan_out"] == fan_out
    np.testing.assert_allclose(v.answers["bounds"], bounds, rtol=1e-5)


LENET = {"input_shape": [1, 32, 32], "layers": ["CONV5-6(1,0)", "POOL-2", "CONV5-16(1,0)",
                                                 "POOL-2", "FLATTEN", "FC-120", "FC-10"]}


@pytest.mark.parametrize("distribution, gain, name, fans, numerator", [
    ("uniform", 1, "fan_in_only", None, "3/in"),
    ("uniform", 1, "four_not_six", None, 4),
    ("uniform", 1, "bound_std_mixup", None, 2),
    ("uniform", 1, "forgot_square_root", None, "6/"),
    ("uniform", 1, "forgot_receptive_field", ([1, 6, 400, 120], [6, 16, 120, 10]), 6),
    ("normal", 1, "fan_in_only", None, "1/in"),
    ("normal", 1, "bound_std_mixup", None, 6),
    ("normal", 1, "forgot_square_root", None, "2/"),
    ("uniform", 2, "forgot_gain", None, 6),
])
def test_mistakes_by_hand(distribution, gain, name, fans, numerator):
    v = make_variant(TYPE, 0, {**LENET, "distribution": distribution, "gain": gain})
    found = {m.name: m.answers for m in v.mistakes}
    fi, fo = fans or (v.answers["fan_in"], v.answers["fan_out"])
    if fans:
        assert found[name]["fan_in"] == fi and found[name]["fan_out"] == fo
    if numerator == "3/in" or numerator == "1/in":
        want = [math.sqrt(int(numerator[0]) / a) for a in fi]
    elif isinstance(numerator, str):
        want = [int(numerator[0]) / (a + b) for a, b in zip(fi, fo)]
    else:
        want = [math.sqrt(numerator / (a + b)) for a, b in zip(fi, fo)]
    field = "bounds" if distribution == "uniform" else "stds"
    np.testing.assert_allclose(found[name][field], want, rtol=1e-12)
    assert ("four_not_six" in found) == (distribution == "uniform")
    assert ("forgot_gain" in found) == (gain != 1)


def test_no_receptive_field_mistake_without_a_kernel_larger_than_one():
    v = make_variant(TYPE, 0, {"input_shape": [784], "layers": ["FC-100", "FC-10"]})
    assert "forgot_receptive_field" not in {m.name for m in v.mistakes}
    v = make_variant(TYPE, 0, {"input_shape": [8, 4, 4], "layers": ["CONV1-4", "FC-10"]})
    assert "forgot_receptive_field" not in {m.name for m in v.mistakes}


def test_bounds_follow_a_students_own_fans():
    """The catalogue's chain bounds <- fans: a bound right for the student's wrong fans
    earns carried-forward credit, and the feedback says so."""
    v = make_variant(TYPE, 0, {**LENET, "distribution": "uniform"})
    fi, fo = [1, 6, 400, 120], [6, 16, 120, 10]  # the receptive field left out
    answers = {"fan_in": fi, "fan_out": fo,
               "bounds": [math.sqrt(6 / (a + b)) for a, b in zip(fi, fo)]}
    r = grade_question(v, answers, 10)
    assert r.fields["bounds"].carried > 0 and r.fields["bounds"].score == r.fields["bounds"].max_score
    assert r.fields["fan_in"].mistake == "forgot_receptive_field"


def test_a_formula_is_asked_and_its_wrong_forms_named():
    v = make_variant(TYPE, 0, {**LENET, "formula": True, "distribution": "normal"})
    assert v.answers["bound_formula"] == "sqrt(6/(n_in + n_out))"
    forms = {m.name: m.answers.get("bound_formula") for m in v.mistakes}
    assert forms["fan_in_only"] == "sqrt(3/n_in)"
    assert forms["four_not_six"] == "sqrt(4/(n_in + n_out))"  # a formula-only slip here
    assert forms["bound_std_mixup"] == "sqrt(2/(n_in + n_out))"
    assert forms["forgot_square_root"] == "6/(n_in + n_out)"
    for text, score in (("sqrt(6)/sqrt(n_out + n_in)", 1), ("(6/(n_in+n_out))^(1/2)", 1),
                        ("sqrt(3/n_in)", 0)):
        r = grade_question(v, {**v.answers, "bound_formula": text}, 10)
        assert r.fields["bound_formula"].score == pytest.approx(
            score * r.fields["bound_formula"].max_score), text
    r = grade_question(v, {**v.answers, "bound_formula": "sqrt(4/(n_in + n_out))"}, 10)
    assert r.fields["bound_formula"].mistake == "four_not_six"


@pytest.mark.parametrize("options, seeds", OPTION_SETS)
def test_draws_are_fair_networks(options, seeds):
    for v in sweep(TYPE, options, seeds):
        layers = parse_layers(v.params["layers"])
        n = sum(x.kind in ("conv", "fc") for x in layers)
        assert options.get("weighted", n) == n and 3 <= n <= 5
        assert all(a > 1 for a in v.answers["fan_in"]) and all(b > 1 for b in v.answers["fan_out"])
        assert v.params["gain"] == 1 and v.params["formula"] is False
        if options.get("network") == "mlp":
            assert len(v.params["input_shape"]) == 1
        elif options.get("network") == "cnn" or len(v.params["input_shape"]) == 3:
            assert any(x.kind == "conv" and x.k > 1 for x in layers)
        names = {m.name for m in v.mistakes}
        assert {"fan_in_only", "bound_std_mixup", "forgot_square_root"} <= names


@pytest.mark.parametrize("options", [{}, {"distribution": "normal"}])
def test_constant_answers_earn_next_to_nothing(options):
    for v in sweep(TYPE, options, 60):
        for c in (0, 1):
            answers = {f.name: [c] * f.shape[0] for f in v.fields}
            assert grade_question(v, answers, 10).score <= 1.0, (v.seed, c)


def test_pinned_layers_get_an_input_shape_and_are_kept():
    v = make_variant(TYPE, 4, {"layers": ["CONV3-8", "POOL-2", "FC-10"]})
    assert v.params["layers"] == ["CONV3-8", "POOL-2", "FC-10"]
    assert len(v.params["input_shape"]) == 3
    v = make_variant(TYPE, 4, {"layers": [{"conv": {"k": 3, "filters": 4, "bias": False}},
                                          "FC-3"], "input_shape": [2, 6, 6]})
    assert v.params["layers"][0] == {"conv": {"k": 3, "filters": 4, "stride": 1, "padding": 1,
                                              "bias": False}}
    assert v.answers["fan_in"] == [18, 144]


@pytest.mark.parametrize("params, words", [
    ({"input_shape": [3, 8, 8], "layers": ["POOL-2", "RELU"]}, "no weights"),
    ({"input_shape": [1], "layers": ["FC-1"]}, "single weight"),
    ({"input_shape": [3, 8, 8], "layers": ["FC-4"], "distribution": "gaussian"}, "uniform or normal"),
    ({"input_shape": [3, 8, 8], "layers": ["FC-4"], "gain": 0}, "greater than 0"),
    ({"input_shape": [3, 8, 8], "layers": ["FC-4"], "gain": [1, 2]}, "one number"),
    ({"input_shape": [3, 8, 8], "layers": ["FC-4"], "formula": "yes"}, "true or false"),
    ({"input_shape": [3, 8, 8], "layers": ["CONV9-4(1,0)"]}, "larger than"),
    ({"input_shape": [3, 8, 8], "layers": ["CONV3-x"]}, "unknown layer"),
    ({"input_shape": [3, 10 ** 9, 10 ** 9], "layers": ["FC-10"]}, "exceed 2\\^53"),
])
def test_bad_params(params, words):
    with pytest.raises(ParamError, match=words):
        make_variant(TYPE, 0, params)


@pytest.mark.parametrize("options, words", [({"weighted": 2}, "option weighted"),
                                            ({"weighted": 5, "network": "mlp"}, "an MLP has"), ({"weighted": 6}, "from 3 to 5"),
                                            ({"network": "rnn"}, "option network"),
                                            ({"distribution": "cauchy"}, "option distribution")])
def test_bad_options(options, words):
    with pytest.raises(ParamError, match=words):
        make_variant(TYPE, 0, options=options)


def test_templates_render():
    v = make_variant(TYPE, 0, {**LENET, "distribution": "uniform", "gain": 2, "formula": True})
    sheet = Sheet("T", "C", [Question(1, 6, v)])
    problem = render_document([sheet], solutions=False)
    assert r"w \sim U(-a, a)" in problem and "gain $g = 2$" in problem
    assert r"\texttt{CONV5{-}6(1,0)}, \texttt{POOL{-}2}" in problem and "bound\\_formula" in problem
    solution = render_document([sheet], solutions=True)
    d = derivation()
    assert d["integral"] in solution and d["bound"] in solution
    assert r"1\cdot 5\cdot 5 = 25" in solution and r"6\cdot 5\cdot 5 = 150" in solution
    assert r"16\cdot 5\cdot 5 = 400" in solution  # the first FC layer flattens (16, 5, 5)
    assert r"2\cdot \sqrt{6/(25 + 150)}" in solution
    assert r"\to$ $(6, 14, 14)$" in solution
    normal = make_variant(TYPE, 1, options={"distribution": "normal"})
    text = render_document([Sheet("T", "C", [Question(1, 6, normal)])], solutions=True)
    assert r"\texttt{stds}" in text and r"\mathcal{N}(0, \sigma^2)" in text
