"""cnn_layer_table against torch.nn (shapes by running zeros through, counts from .parameters())."""


import pytest

from deepdrill.errors import ParamError
from deepdrill.generator.exercise import make_variant
from deepdrill.generator.layers import (BatchNorm, Conv, Dense, Flatten, ReLU,
                                        parse_layers)
from deepdrill.generator.render import Question, Sheet, render_document
from deepdrill.generator.types.cnn_layer_table import INPUT_SHAPES
from torch_layers import torch_rows

SEEDS = range(250)
LENET = ["CONV5-6(1,0)", "POOL-2", "CONV5-16(1,0)", "POOL-2", "FLATTEN", "FC-120", "FC-84",
         "FC-10"]


def torch_table(input_shape, layer_specs):
    """output_shapes, layer_params and layer_multiplications computed with torch.nn."""
    rows = torch_rows(input_shape, parse_layers(layer_specs))
    return [list(s) for s, _, _ in rows], [p for _, p, _ in rows], [m for _, _, m in rows]


def test_seed_sweep_against_torch():
    for seed in SEEDS:
        v = make_variant("cnn_layer_table", seed)
        shapes, params, mults = torch_table(v.params["input_shape"], v.params["layers"])
        assert v.answers == {"output_shapes": shapes, "layer_params": params,
                             "total_params": sum(params)}
        assert v.field("output_shapes").shape == [[len(s)] for s in shapes]
        w = make_variant("cnn_layer_table", seed, options={"multiplications": True})
        assert w.params == {**v.params, "multiplications": True}
        assert w.answers == {**v.answers, "layer_multiplications": mults}


def test_draws_are_realistic_and_deterministic():
    inexact = 0
    for seed in SEEDS:
        v = make_variant("cnn_layer_table", seed)
        layers = parse_layers(v.params["layers"])
        assert tuple(v.params["input_shape"]) in INPUT_SHAPES
        assert 6 <= len(layers) <= 12
        assert all(isinstance(x, str) for x in v.params["layers"])  # canonical strings
        assert isinstance(layers[-1], Dense) and any(isinstance(x, Flatten) for x in layers)
        convs = sum(isinstance(x, Conv) for x in layers)
        assert 2 <= convs <= 3
        flat = v.answers["output_shapes"][[type(x) for x in layers].index(Flatten)][0]
        assert flat <= 4096
        assert v.answers["total_params"] > 0
        inexact += "ceil_not_floor" in {m.name for m in v.mistakes}
        assert v == make_variant("cnn_layer_table", seed)
    assert inexact >= len(SEEDS) // 3, "too few variants where floor vs ceil matters"


def test_lenet_by_hand():
    v = make_variant("cnn_layer_table", 0, {"input_shape": [1, 32, 32], "layers": LENET,
                                            "multiplications": True})
    assert v.answers == {
        "output_shapes": [[6, 28, 28], [6, 14, 14], [16, 10, 10], [16, 5, 5], [400], [120],
                          [84], [10]],
        "layer_params": [156, 0, 2416, 0, 0, 48120, 10164, 850],
        "total_params": 61706,
        "layer_multiplications": [117600, 0, 240000, 0, 0, 48000, 10080, 840],
    }
    by = {m.name: m.answers for m in v.mistakes}
    assert by["forgot_biases"]["total_params"] == 61706 - (6 + 16 + 120 + 84 + 10)
    assert by["pooling_params"]["layer_params"][:4] == [156, 6 * 4, 2416, 16 * 4]
    assert by["forgot_input_channels"]["layer_params"][2] == 16 * 25 + 16
    assert by["forgot_input_channels"]["layer_multiplications"][2] == 10 * 10 * 16 * 25
    assert by["forgot_plus_one"]["output_shapes"][:4] == [[6, 27, 27], [6, 12, 12],
                                                           [16, 7, 7], [16, 2, 2]]
    assert by["forgot_plus_one"]["layer_params"][5] == 16 * 2 * 2 * 120 + 120
    # every size division is exact and no layer is padded: those two slips change nothing
    assert "ceil_not_floor" not in by and "forgot_padding" not in by


@pytest.mark.parametrize("input_shape, layers, name, shapes", [
    ([1, 7, 7], ["POOL-2", "FLATTEN", "FC-3"], "ceil_not_floor", [[1, 4, 4], [16], [3]]),
    ([3, 32, 32], ["CONV3-8", "POOL-2", "FC-2"], "forgot_padding", [[8, 30, 30], [8, 15, 15], [2]]),
    ([3, 32, 32], ["CONV3-8(2,1)", "FC-2"], "ceil_not_floor", [[8, 17, 17], [2]]),
])
def test_size_mistakes_by_hand(input_shape, layers, name, shapes):
    v = make_variant("cnn_layer_table", 0, {"input_shape": input_shape, "layers": layers})
    assert {m.name: m.answers for m in v.mistakes}[name]["output_shapes"] == shapes


def test_every_mistake_differs_from_the_answer():
    for seed in range(60):
        v = make_variant("cnn_layer_table", seed, options={"multiplications": True})
        names = [m.name for m in v.mistakes]
        assert {"forgot_biases", "forgot_input_channels"} <= set(names)
        for m in v.mistakes:
            assert m.answers and all(m.answers[k] != v.answers[k] for k in m.answers)


def test_a_slip_that_breaks_the_network_is_not_offered():
    # without the +1 the 2x2 pool of a 2x2 map leaves nothing: no student answers that
    v = make_variant("cnn_layer_table", 0, {"input_shape": [1, 4, 4],
                                            "layers": ["POOL-2", "POOL-2", "FC-2"]})
    assert "forgot_plus_one" not in {m.name for m in v.mistakes}


def test_pinned_params_are_kept():
    v = make_variant("cnn_layer_table", 3, {"input_shape": [3, 100, 80]})
    assert v.params["input_shape"] == [3, 100, 80]
    assert v.answers["output_shapes"] == torch_table([3, 100, 80], v.params["layers"])[0]
    v = make_variant("cnn_layer_table", 3, {"layers": ["conv3-4 (1,1)", "FC-3"]})
    assert v.params["layers"] == ["CONV3-4", "FC-3"]
    assert tuple(v.params["input_shape"]) in INPUT_SHAPES
    v = make_variant("cnn_layer_table", 3, {"input_shape": [20]})  # a vector: an MLP
    assert all(isinstance(x, (Dense, BatchNorm, ReLU)) for x in parse_layers(v.params["layers"]))
    v = make_variant("cnn_layer_table", 3, {"multiplications": False},
                     options={"multiplications": True})
    assert not v.params["multiplications"] and "layer_multiplications" not in v.answers


def test_layers_without_bias_are_stored_as_dicts():
    no_bias = {"conv": {"k": 3, "filters": 4, "stride": 1, "padding": 1, "bias": False}}
    v = make_variant("cnn_layer_table", 0, {"input_shape": [2, 8, 8],
                                            "layers": [no_bias, {"relu": {}}, "FC-2"]})
    assert v.params["layers"] == [no_bias, "RELU", "FC-2"]
    assert v.answers["layer_params"] == [4 * 9 * 2, 0, 4 * 64 * 2 + 2]
    sheet = render_document([Sheet("T", "C", [Question(1, 2, v)])], solutions=True)
    assert r"CONV3{-}4 (no bias)" in sheet and r"4\cdot(3\cdot 3\cdot 2) = 72" in sheet


@pytest.mark.parametrize("params, words", [
    ({"input_shape": [1, 28, 28], "layers": ["CONV3-8", "CONV-3"]}, ["layer 2", "unknown layer"]),
    ({"input_shape": [1, 4, 4], "layers": ["CONV5-8(1,0)"]}, ["layer 1", "larger than"]),
    ({"input_shape": [1, 28, 28], "layers": ["FC-10", "POOL-2"]}, ["layer 2", "feature map"]),
    ({"input_shape": [1, 28], "layers": ["FC-10"]}, ["(C, H, W)"]),
    ({"input_shape": [1, 28, 28], "layers": []}, ["at least one layer"]),
    ({"input_shape": [1, 28, 28], "layers": "CONV3-8"}, ["must be a list"]),
    ({"input_shape": [1, 28, 28], "layers": ["FC-2"], "multiplications": "yes"}, ["true or false"]),
    ({"layers": ["CONV3-8(1,0)"] * 40}, ["give input_shape"]),
])
def test_bad_params(params, words):
    with pytest.raises(ParamError) as err:
        make_variant("cnn_layer_table", 0, params)
    for w in words:
        assert w in str(err.value)


def test_unknown_option():
    with pytest.raises(ParamError, match="unknown option"):
        make_variant("cnn_layer_table", 0, options={"blocks": 3})


@pytest.mark.parametrize("options", [{}, {"multiplications": True}])
def test_templates_render(options):
    v = make_variant("cnn_layer_table", 2, options=options)
    sheet = Sheet("T", "C", [Question(1, 3, v)])
    problem = render_document([sheet], solutions=False)
    assert r"\toprule" in problem and "Total:" not in problem
    assert ("multiplications" in problem) == bool(options)
    solution = render_document([sheet], solutions=True)
    assert "Total:" in solution and r"\rfloor + 1 =" in solution
    assert ("Multiplications (every other" in solution) == bool(options)
    assert f"{v.answers['total_params'] % 1000:03d}" in solution
