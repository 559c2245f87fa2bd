"""mlp_forward against torch (nn.functional layers), its hand-checked cases, its slips, the
draws (hand-friendly, clear of 0 and 1, nothing for constant answers), the figure and the
parameter refusals."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from deepdrill.errors import ParamError
from deepdrill.generator import mlp
from deepdrill.generator.exercise import get, make_variant
from deepdrill.generator.steps import by_hand, run
from deepdrill.grader.score import grade_question
from sweeps import sweep

TYPE = "mlp_forward"
SWEPT = [{}, {"hidden_layers": 2, "width": 3}, {"activation": "sigmoid"}]  # 200 seeds each
OTHERS = [{"activation": "tanh", "output_activation": "tanh"},
          {"output_activation": "softmax", "outputs": 3}, {"output_activation": "none"},
          {"inputs": 1, "outputs": 1}, {"width": 4, "inputs": 4}, {"activation": "none"},
          {"hidden_layers": 3}]
TORCH = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
         "softmax": lambda z: torch.softmax(z, dim=-1), "none": lambda z: z}


def variants(options):
    return sweep(TYPE, options, 200 if options in SWEPT else 25)


def torch_forward(x, layers):
    """z and a of every layer, by torch's own linear layer and activations."""
    a = torch.tensor(x, dtype=torch.float64)
    zs, acts = [], []
    for layer in layers:
        z = F.linear(a, torch.tensor(layer["weights"], dtype=torch.float64),
                     torch.tensor(layer["bias"], dtype=torch.float64))
        a = TORCH[layer["activation"]](z)
        zs.append(z.numpy())
        acts.append(a.numpy())
    return zs, acts


@pytest.mark.parametrize("options", SWEPT + OTHERS)
def test_seed_sweep_against_torch(options):
    for v in variants(options):
        zs, acts = torch_forward(v.params["x"], v.params["layers"])
        assert len(v.answers["pre_activations"]) == len(zs)
        for ours, theirs in zip(v.answers["pre_activations"], zs):
            np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
        for ours, theirs in zip(v.answers["activations"], acts[:-1]):
            np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(v.answers["output"], acts[-1], rtol=1e-12, atol=1e-14)


def net(*layers):
    return [{"weights": w, "bias": b, "activation": f} for w, b, f in layers]


@pytest.mark.parametrize("x, layers, z, a, out", [
    ([1, 2], net(([[1, -1], [2, 1]], [3, -1], "relu"), ([[1, 1]], [0.5], "none")),
     [[2, 3], [5.5]], [[2, 3]], [5.5]),
    ([1, -1], net(([[1, 1], [1, -1]], [-1, 0], "relu"), ([[2, -1]], [1], "none")),
     [[-1, 2], [-1]], [[0, 2]], [-1]),
    ([0.5, 1], net(([[2, 1]], [-1], "tanh"), ([[1], [-1]], [0, 0], "softmax")),
     [[1], [np.tanh(1), -np.tanh(1)]], [[np.tanh(1)]],
     [1 / (1 + np.exp(-2 * np.tanh(1))), 1 / (1 + np.exp(2 * np.tanh(1)))]),
    ([1], net(([[np.log(3)]], [0], "none"), ([[1], [0]], [0, 0], "softmax")),
     [[np.log(3)], [np.log(3), 0]], [[np.log(3)]], [0.75, 0.25]),
    ([2], net(([[1]], [-2], "sigmoid"), ([[2]], [-1], "sigmoid")),
     [[0], [0]], [[0.5]], [0.5]),  # sigmoid(0) = 1/2 is no constant: allowed when pinned
])
def test_hand_checked(x, layers, z, a, out):
    v = make_variant(TYPE, 0, {"x": x, "layers": layers})
    got = v.answers["pre_activations"], v.answers["activations"], v.answers["output"]
    for ours, want in zip(got[0], z):
        np.testing.assert_allclose(ours, want, atol=1e-12)
    for ours, want in zip(got[1], a):
        np.testing.assert_allclose(ours, want, atol=1e-12)
    np.testing.assert_allclose(got[2], out, atol=1e-12)


def test_mistakes_reproduce_their_errors():
    layers = net(([[1, -1], [2, 1]], [1, -1], "relu"), ([[0.5, -0.5], [0.2, 0.1]], [0.1, 0],
                                                         "softmax"))
    v = make_variant(TYPE, 0, {"x": [2, 1], "layers": layers})
    by = {m.name: m.answers for m in v.mistakes}
    z2 = np.array(v.answers["pre_activations"][1])
    s = np.exp(z2) / np.exp(z2).sum()
    np.testing.assert_allclose(by["activation_twice"]["output"],
                               np.exp(s) / np.exp(s).sum())
    np.testing.assert_allclose(by["ratio_of_logits"]["output"], z2 / z2.sum())
    nobias = make_variant(TYPE, 0, {"x": [2, 1], "layers": mlp.without_biases(
        {"layers": layers})["layers"]})
    assert by["forgot_bias"]["pre_activations"] == nobias.answers["pre_activations"]


def test_pairs_of_mistakes_compose():
    """ratio of logits and the activation applied twice: softmax of the ratios."""
    ex = get(TYPE)
    params = {"x": [2, 1], "layers": net(([[1, -1], [2, 1]], [1, -1], "relu"),
                                         ([[0.5, -0.5], [0.2, 0.1]], [0.1, 0], "softmax"))}
    slips = {s.name: s for s in ex.slips(params)}
    for a, b in itertools.combinations(slips, 2):
        ex.values(params, [slips[a], slips[b]])  # every pair can be made together
    values = ex.values(params, [slips["ratio_of_logits"], slips["activation_twice"]])
    r = values["z_2"] / values["z_2"].sum()
    np.testing.assert_allclose(values["output"], np.exp(r) / np.exp(r).sum())


@pytest.mark.parametrize("options", SWEPT + OTHERS)
def test_draws_are_hand_friendly(options):
    for v in variants(options):
        layers = v.params["layers"]
        x = np.asarray(v.params["x"], dtype=float)
        assert np.all(x != 0) and np.allclose(x * 10, np.round(x * 10))
        for i, layer in enumerate(layers, 1):
            w, b = np.asarray(layer["weights"]), np.asarray(layer["bias"])
            assert np.allclose(w * 10, np.round(w * 10)) and np.all(w != 0) and np.all(b != 0)
            z = np.asarray(v.answers["pre_activations"][i - 1])
            assert np.all(np.abs(z) >= mlp.Z_MARGIN), (v.seed, i, z)  # clear of the kink
            assert not np.any(np.isclose(z, 1, rtol=0.05)), (v.seed, i, z)
            if layer["activation"] == "relu":
                assert np.any(z > 0) and np.sum(z < 0) <= len(z) // 2  # no dead layer
            if layer["activation"] in ("sigmoid", "tanh", "softmax"):
                assert np.abs(z).max() <= mlp.Z_LIMIT[layer["activation"]]
        out = np.asarray(v.answers["output"])
        if layers[-1]["activation"] in ("sigmoid", "softmax"):
            assert np.all((out > 0.002) & (out < 0.98))


@pytest.mark.parametrize("options", [{}, {"activation": "tanh", "output_activation": "tanh"}])
def test_constant_answers_and_zeros_earn_next_to_nothing(options):
    """Through the real grader (carried-forward credit included): an all-zero answer is
    carried by nothing (ReLU, tanh and the identity map zeros to zeros)."""
    for v in variants(options)[::5]:
        for c in (0, 1):
            answers = {"pre_activations": [[c] * len(z) for z in v.answers["pre_activations"]],
                       "activations": [[c] * len(a) for a in v.answers["activations"]],
                       "output": [c] * len(v.answers["output"])}
            assert grade_question(v, answers, 10).score <= 10 * mlp.MAX_CONSTANT_SHARE + 1e-9


def test_students_rounding_to_three_figures_lose_nothing_on_deeper_nets():
    ex = get(TYPE)
    for v in variants({"hidden_layers": 2, "width": 3})[:100]:
        values = run(ex.graph(v.params), v.params, rounding=by_hand)
        assert grade_question(v, ex.answers(v.fields, values), 10).score == pytest.approx(10)


def test_carried_forward_credit_from_a_wrong_hidden_layer():
    v = make_variant(TYPE, 0, {"x": [2, 1], "layers": net(
        ([[1, -1], [2, 1]], [1, -1], "relu"), ([[1, 2]], [0.5], "none"))})
    answers = {"pre_activations": [[3, 4], [11.5]], "activations": [[3, 4]], "output": [11.5]}
    r = grade_question(v, answers, 10)  # z_1[0] wrong (z_1 is (2, 4)), all after it right
    assert r.fields["activations"].carried > 0 and r.fields["output"].carried > 0
    # only z_1[0] is lost: its work, 3 (two products and a bias), of 9.6 in all
    assert r.score == pytest.approx(10 - 10 * 3 / 9.6)


@pytest.mark.parametrize("params, message", [
    ({"x": [1, 2], "layers": net(([[1, 1]], [0], "softmax"), ([[1]], [0], "none"))},
     "softmax is an output activation"),
    ({"x": [1, 2], "layers": net(([[1, 1, 1]], [0], "relu"), ([[1]], [0], "none"))},
     "of 2 numbers each"),
    ({"x": [1, 2], "layers": net(([[1, 1]], [0], "gelu"), ([[1]], [0], "none"))},
     "activation must be one of"),
    ({"x": [1, 2], "layers": net(([[1, 1]], [0], "relu"))}, "2 to 4"),
    ({"x": [1, -1], "layers": net(([[1, 1]], [0], "relu"), ([[1]], [1], "none"))},
     "all 0"),
    ({"x": [1, 2], "layers": net(([[30, 20]], [0], "sigmoid"), ([[1]], [0], "none"))},
     "readable"),
    ({"x": [1, 2], "layers": net(([[1, 1]], [1, 2], "relu"), ([[1]], [0], "none"))},
     "bias must be a list of 1"),
    ({"x": [1e9, 2], "layers": net(([[1, 1]], [0], "relu"), ([[1]], [0], "none"))},
     "sheet's size"),
    ({"x": [1, 2], "layers": [{"weights": [[1, 1]], "bias": [0], "activation": "relu",
                               "dropout": 1}, {"weights": [[1]]}]}, "must be a dict"),
])
def test_parameters_are_refused_with_a_message(params, message):
    with pytest.raises(ParamError, match=message):
        make_variant(TYPE, 0, params)


@pytest.mark.parametrize("options, message", [
    ({"activation": "softmax"}, "option activation"),
    ({"output_activation": "gelu"}, "option output_activation"),
    ({"width": 9}, "option width"),
    ({"output_activation": "softmax", "outputs": 1}, "at least 2 outputs"),
])
def test_options_are_refused_with_a_message(options, message):
    with pytest.raises(ParamError, match=message):
        make_variant(TYPE, 0, options=options)


def test_pinned_layers_get_a_drawn_input_that_fits():
    layers = net(([[1, -1], [2, 1]], [1, -1], "relu"), ([[0.2, -0.3]], [0.1], "sigmoid"))
    for seed in range(10):
        v = make_variant(TYPE, seed, {"layers": layers})
        assert v.params["layers"] == layers and mlp.layers_fit(v.params["x"], layers)


@pytest.mark.parametrize("sizes", [(a, b) for a in (1, 2, 3) for b in (1, 2, 3)])
def test_figure_weight_labels_never_overlap(sizes):
    """Label boxes (about 0.75 x 0.36 cm of a scriptsize number) apart for every pair of
    layer sizes up to MAX_LABELLED."""
    x = [1] * sizes[0]
    layers = net(([[1] * sizes[0]] * sizes[1], [1] * sizes[1], "relu"))
    fig = mlp.figure(x, layers)
    where = {n["name"]: (n["x"], n["y"]) for n in fig["nodes"]}
    spots = []
    for e in fig["edges"]:
        (xa, ya), (xb, yb) = where[e["a"]], where[e["b"]]
        spots.append((xa + e["pos"] * (xb - xa), ya + e["pos"] * (yb - ya)))
    for (x1, y1), (x2, y2) in itertools.combinations(spots, 2):
        assert abs(x1 - x2) >= 0.75 or abs(y1 - y2) >= 0.36


def test_figure_labels_edges_up_to_three_units_only():
    assert mlp.figure([1, 2, 3], net(([[1] * 3] * 3, [1] * 3, "relu")))["labelled"]
    wide = mlp.figure([1] * 4, net(([[1] * 4] * 2, [1] * 2, "relu")))
    assert not wide["labelled"] and all(e["w"] is None for e in wide["edges"])
