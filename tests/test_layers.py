"""The layer notation: parsing, printing back, and shapes/counts against torch.nn."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepdrill.errors import ParamError
from deepdrill.generator.blanks import SETTINGS, Blank, fit, notation, parse_blank
from deepdrill.generator.layers import (BatchNorm, Conv, Dense, Dropout, Flatten, Pool, ReLU,
                                        as_shape, chain_steps, count, names, output_size,
                                        parse_layer, parse_layers, rows, swaps, total, trace,
                                        weights_one_channel)
from deepdrill.generator.steps import NotApplicable, rerun, run
from torch_layers import torch_rows

LENET = ["CONV5-6(1,0)", "POOL-2", "CONV5-16(1,0)", "POOL-2", "FLATTEN", "FC-120", "FC-84",
         "FC-10"]


# -- parsing ------------------------------------------------------------------------

@pytest.mark.parametrize("text, layer, canonical", [
    ("CONV5-6", Conv(5, 6, 1, 2), "CONV5-6"),
    ("conv3-16 (1, 1)", Conv(3, 16), "CONV3-16"),
    ("CONV5-6(1,0)", Conv(5, 6, 1, 0), "CONV5-6(1,0)"),
    ("Conv3-32(2,1)", Conv(3, 32, 2, 1), "CONV3-32(2,1)"),
    ("CONV1-64", Conv(1, 64, 1, 0), "CONV1-64"),
    ("POOL-2", Pool(2, 2), "POOL-2"),
    ("pool-3(2)", Pool(3, 2), "POOL-3(2)"),
    ("POOL-2(2)", Pool(2), "POOL-2"),
    ("MAXPOOL-2", Pool(2), "POOL-2"),
    ("POOL-3(1,1)", Pool(3, 1, 1), "POOL-3(1,1)"),
    ("AVGPOOL-2", Pool(2, mode="avg"), "AVGPOOL-2"),
    ("avgpool - 3 (1)", Pool(3, 1, mode="avg"), "AVGPOOL-3(1)"),
    (" relu ", ReLU(), "RELU"), ("bn", BatchNorm(), "BN"), ("Dropout", Dropout(), "DROPOUT"),
    ("FLATTEN", Flatten(), "FLATTEN"), ("fc-10", Dense(10), "FC-10"),
])
def test_strings(text, layer, canonical):
    assert parse_layer(text) == layer
    assert layer.to_json() == canonical == str(layer)


@pytest.mark.parametrize("spec, layer", [
    ({"conv": {"k": 5, "filters": 6, "stride": 1, "padding": 0, "bias": True}}, Conv(5, 6, 1, 0)),
    ({"conv": {"k": 3, "filters": 8}}, Conv(3, 8, 1, 1)),
    ({"CONV": {"k": 3, "filters": 8, "padding": 0}}, Conv(3, 8, 1, 0)),
    ({"pool": {"k": 2}}, Pool(2, 2)),
    ({"pool": {"k": 3, "stride": 1, "padding": 1}}, Pool(3, 1, 1)),
    ({"avgpool": {"k": 2, "stride": 1}}, Pool(2, 1, mode="avg")),
    ({"fc": {"units": 10}}, Dense(10)),
    ({"relu": {}}, ReLU()), ({"bn": None}, BatchNorm()), ({"dropout": {}}, Dropout()),
    ({"flatten": {}}, Flatten()),
])
def test_dicts(spec, layer):
    assert parse_layer(spec) == layer
    assert parse_layer(layer.to_json()) == layer


def test_no_bias_stays_a_dict():
    conv = parse_layer({"conv": {"k": 3, "filters": 4, "bias": False}})
    assert conv.to_json() == {"conv": {"k": 3, "filters": 4, "stride": 1, "padding": 1,
                                       "bias": False}}
    assert parse_layer(conv.to_json()) == conv and not conv.bias
    fc = parse_layer({"fc": {"units": 10, "bias": False}})
    assert fc.to_json() == {"fc": {"units": 10, "bias": False}}


def pools(max_k, max_stride):
    modes = st.sampled_from(["max", "avg"])
    return st.integers(1, max_k).flatmap(lambda k: st.builds(
        Pool, st.just(k), st.integers(1, max_stride), st.integers(0, k // 2), modes))


layer_strategy = st.one_of(
    st.builds(Conv, st.integers(1, 7), st.integers(1, 512), st.integers(1, 4),
              st.one_of(st.none(), st.integers(0, 3)), st.booleans()),
    pools(5, 4),
    st.builds(Dense, st.integers(1, 4096), st.booleans()),
    st.sampled_from([ReLU(), BatchNorm(), Dropout(), Flatten()]),
)


@given(layer_strategy)
def test_every_layer_round_trips(layer):
    assert parse_layer(layer.to_json()) == layer
    with_bias = replace(layer, bias=True) if hasattr(layer, "bias") else layer
    assert parse_layer(layer.notation().lower().replace("-", " - ")) == with_bias


# -- shapes and counts ----------------------------------------------------------------

def test_lenet_by_hand():
    rows = trace((1, 32, 32), parse_layers(LENET))
    assert [r.output_shape for r in rows] == [(6, 28, 28), (6, 14, 14), (16, 10, 10),
                                               (16, 5, 5), (400,), (120,), (84,), (10,)]
    assert [r.params for r in rows] == [156, 0, 2416, 0, 0, 48120, 10164, 850]
    assert [r.multiplications for r in rows] == [117600, 0, 240000, 0, 0, 48000, 10080, 840]
    assert [r.input_shape for r in rows][4] == (16, 5, 5)


@pytest.mark.parametrize("input_shape, specs, shapes, params", [
    ((3, 32, 32), ["CONV3-16", "BN", "POOL-3(2)"], [(16, 32, 32)] * 2 + [(16, 15, 15)],
     [448, 32, 0]),
    ((16, 5, 5), ["FC-10"], [(10,)], [4010]),  # implicit flatten
    ((20,), ["BN", "FC-5", "DROPOUT"], [(20,), (5,), (5,)], [40, 105, 0]),
    ((1, 7, 7), ["POOL-2", "AVGPOOL-2(1)", "FLATTEN", "FLATTEN"],
     [(1, 3, 3), (1, 2, 2), (4,), (4,)], [0, 0, 0, 0]),
    ((2, 6, 9), ["CONV3-4(2,0)"], [(4, 2, 4)], [76]),
])
def test_small_cases_by_hand(input_shape, specs, shapes, params):
    rows = trace(input_shape, parse_layers(specs))
    assert [r.output_shape for r in rows] == shapes
    assert [r.params for r in rows] == params


def test_weight_shapes():
    conv, fc = parse_layers(["CONV5-6", "FC-10"])
    assert conv.weight_shape((3, 32, 32)) == (6, 3, 5, 5)
    assert fc.weight_shape((16, 5, 5)) == (10, 400)
    assert ReLU().weight_shape((4,)) is None


def test_weight_and_bias_counts():
    conv, fc, bn = parse_layers(["CONV3-4", "FC-10", "BN"])
    assert (conv.weight_count((2, 8, 8)), conv.bias_count((2, 8, 8))) == (72, 4)
    assert (fc.weight_count((4, 2, 2)), fc.bias_count((4, 2, 2))) == (160, 10)
    assert (bn.weight_count((6,)), bn.bias_count((6,))) == (6, 6)
    assert parse_layer({"fc": {"units": 3, "bias": False}}).bias_count((5,)) == 0
    assert Pool(2).weight_count((3, 4, 4)) == ReLU().bias_count((3,)) == 0


def test_size_rule_is_swappable():
    pool = parse_layer("POOL-2")
    assert pool.output_shape((1, 7, 7)) == (1, 3, 3)
    ceil = lambda n, k, s, p: -((k - n - 2 * p) // s) + 1  # noqa: E731
    assert pool.output_shape((1, 7, 7), ceil) == (1, 4, 4)
    assert output_size(7, 2, 2, 0) == 3


spatial = st.one_of(
    st.builds(Conv, st.integers(1, 5), st.integers(1, 8), st.integers(1, 3),
              st.one_of(st.none(), st.integers(0, 2)), st.booleans()),
    pools(4, 3),
    st.sampled_from([ReLU(), BatchNorm(), Dropout()]),
)
head = st.lists(st.one_of(st.builds(Dense, st.integers(1, 20), st.booleans()),
                          st.sampled_from([ReLU(), BatchNorm(), Dropout(), Flatten()])), max_size=3)


@settings(max_examples=100, deadline=None)
@given(st.tuples(st.integers(1, 4), st.integers(1, 20), st.integers(1, 20)),
       st.lists(spatial, min_size=1, max_size=5), head)
def test_against_torch(input_shape, convs, dense):
    layers = convs + dense
    try:
        rows = trace(input_shape, layers)
    except ParamError as err:
        assert str(err).startswith("layer ")
        with pytest.raises(RuntimeError):
            torch_rows(input_shape, layers)
        return
    expected = torch_rows(input_shape, layers)
    assert [(r.output_shape, r.params, r.multiplications) for r in rows] == expected


# -- the steps --------------------------------------------------------------------------

def test_chain_steps_name_each_layers_quantities():
    graph = chain_steps(parse_layers(["CONV3-4(2,1)", "RELU", "FC-2"]))
    assert [s.name for s in graph[:6]] == ["shape_1", "weights_1", "biases_1", "params_1",
                                          "positions_1", "mults_1"]
    by = {s.name: s.inputs for s in graph}
    assert by["shape_1"] == by["weights_1"] == ("input_shape",)
    assert by["shape_2"] == ("shape_1",) and by["mults_1"] == ("positions_1", "weights_1")
    assert by["positions_1"] == ("shape_1",) and by["mults_3"] == ("weights_3",)
    assert by["mults_2"] == () and by["params_3"] == ("weights_3", "biases_3")
    assert names("2.1").weights == "weights_2.1"
    branch = chain_steps(parse_layers(["CONV1-8", "CONV3-8"]), branch=2)
    assert branch[0].name == "shape_2.1"
    assert {s.name: s.inputs for s in branch}["shape_2.2"] == ("shape_2.1",)


def test_steps_take_a_students_numpy_values():
    layers = parse_layers(["CONV3-4", "POOL-2", "FC-2"])
    graph, params = chain_steps(layers), {"input_shape": [3, 8, 8]}
    own = rerun(graph, params, {"shape_1": np.array([4, 6, 6], dtype=np.int64)})
    assert own["shape_2"] == (4, 3, 3) and own["params_3"] == 36 * 2 + 2
    assert [r.output_shape for r in rows(run(graph, params), layers)] == \
        [(4, 8, 8), (4, 4, 4), (2,)]


@pytest.mark.parametrize("given, left_out", [
    ({"shape_1": np.array([4, 1, 1])}, "shape_2"),  # the 2x2 window is larger
    # layer 1's own multiplications read its output positions from the given shape first
    ({"shape_1": np.array([64])}, "mults_1"),  # CONV3-4 needs a (C, H, W) feature map
    ({"shape_1": np.array([4, -1, 6])}, "shape_2"),  # not a shape
    ({"shape_1": np.array([[4], [6], [6]])}, "shape_2"),
])
def test_a_value_a_layer_cannot_take_leaves_its_step_out(given, left_out):
    """No credit and no error: the step (and what needs it) is not recomputed."""
    graph = chain_steps(parse_layers(["CONV3-4", "POOL-2"]))
    out = rerun(graph, {"input_shape": [3, 8, 8]}, given)
    assert left_out not in out and "params_1" in out
    with pytest.raises(NotApplicable):
        run(graph, {"input_shape": [3, 8, 8]}, {"shape_1": lambda before: given["shape_1"]})


def test_swaps_replace_the_steps_of_the_chosen_layers():
    layers = parse_layers(["CONV3-4", "POOL-2", "CONV3-8"])
    swapped = swaps(layers, "weights", weights_one_channel, lambda x: isinstance(x, Conv))
    assert sorted(swapped) == ["weights_1", "weights_3"]
    values = run(chain_steps(layers), {"input_shape": [3, 8, 8]}, swapped)
    assert (values["weights_1"], values["weights_3"]) == (4 * 9, 8 * 9)
    assert values["mults_3"] == 16 * 8 * 9
    assert sorted(swaps(layers, "shape", weights_one_channel, bool, branch=2)) == \
        ["shape_2.1", "shape_2.2", "shape_2.3"]


def test_counts_and_totals():
    assert count(np.int64(7)) == count(np.array([7])) == count(7) == 7
    assert total(1, np.int64(2), 0) == 3
    with pytest.raises(NotApplicable, match="only zeros"):
        total(0, np.int64(0))
    with pytest.raises(NotApplicable):
        count(np.array([1, 2]))


# -- errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("specs, words", [
    (["RELU", "CONV-5"], ["layer 2", "unknown layer 'CONV-5'", "CONV5-6"]),
    (["FC10"], ["layer 1", "unknown layer"]),
    ([{"conv": {"k": 3}}], ["layer 1", "missing filters"]),
    ([{"conv": {"k": 3, "filters": 2, "kernel": 3}}], ["unknown kernel", "conv takes k, filters"]),
    ([{"conv": {"k": 3, "filters": 2}, "relu": {}}], ["exactly one key"]),
    ([{"lstm": {}}], ["unknown layer kind 'lstm'"]),
    ([{"fc": {"units": 2.5}}], ["units must be a whole number"]),
    ([{"fc": {"units": 2, "bias": "no"}}], ["bias must be true or false"]),
    (["CONV0-3"], ["k must be a whole number of at least 1"]),
    (["POOL-3(1,2)"], ["padding 2 is more than half"]),
    ([3], ["is not a layer"]),
])
def test_parse_errors(specs, words):
    with pytest.raises(ParamError) as err:
        parse_layers(specs)
    for w in words:
        assert w in str(err.value)


@pytest.mark.parametrize("shape, specs, words", [
    ((1, 4, 4), ["CONV5-6(1,0)"], ["layer 1", "CONV5-6(1,0)", "5x5 kernel is larger than its 4x4"]),
    ((1, 4, 4), ["RELU", "CONV7-2(1,1)"], ["layer 2", "6x6 with padding 1"]),
    ((1, 8, 8), ["FC-10", "CONV3-4"], ["layer 2", "CONV3-4 needs a (C, H, W) feature map",
                                       "vector of 10"]),
    ((1, 8, 8), ["FLATTEN", "POOL-2"], ["layer 2", "POOL-2 needs a (C, H, W)"]),
    ((1, 2, 2), ["POOL-3"], ["3x3 window"]),
])
def test_shape_errors(shape, specs, words):
    with pytest.raises(ParamError) as err:
        trace(shape, parse_layers(specs))
    for w in words:
        assert w in str(err.value)


def test_shapes_from_numpy():
    assert as_shape(np.array([16, 15, 15])) == (16, 15, 15)
    assert as_shape([np.int64(3), 4, 4]) == (3, 4, 4)
    assert type(as_shape(np.array([3]))[0]) is int


@pytest.mark.parametrize("shape", [(1, 2), (0, 3, 3), (3, 2.5, 2), "abc", 5, (True, 2, 2),
                                   np.array([[1], [2], [3]]), np.array([3.0, 0.5, 1.0])])
def test_bad_shapes(shape):
    with pytest.raises(ParamError, match="a shape must be"):
        as_shape(shape)


def test_layers_must_be_a_list():
    with pytest.raises(ParamError, match="must be a list"):
        parse_layers("CONV3-4")


# -- blanks: a setting solved back from the shapes around its layer ----------------------

def brute_force(layer, setting, before, after, top):
    """Every value of ``setting`` below ``top`` for which the layer maps before to after."""
    found = []
    for v in range(0 if setting == "padding" else 1, top):
        try:
            if replace(layer, **{setting: v}).output_shape(before) == tuple(after):
                found.append(v)
        except ParamError:
            pass
    return found


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.builds(Conv, st.integers(1, 7), st.integers(1, 9), st.integers(1, 5),
                           st.integers(0, 3)), pools(7, 5)),
       st.integers(1, 40), st.integers(1, 40))
def test_every_value_that_fits_is_found(layer, h, w):
    before = (3, h + layer.k, w + layer.k)  # room for the kernel
    after = layer.output_shape(before)
    top = 3 * max(before) + 4 * layer.k + 10
    for setting in SETTINGS[type(layer)]:
        f = fit(layer, setting, before, after)
        assert getattr(layer, setting) in f
        expected = brute_force(layer, setting, before, after, top)
        if f.hi is None:  # a 1x1 output: every stride from lo up
            assert setting == "stride" and expected == list(range(f.lo, top))
        else:
            assert list(f.values) == expected, (layer, setting, before, after)


@pytest.mark.parametrize("layer, setting, before, after, values", [
    (Conv(10, 96, 3, 0), "k", (10, 205, 205), (96, 66, 66), [8, 9, 10]),  # the homework
    (Conv(10, 96, 3, 0), "k", (10, 205, 206), (96, 66, 66), [9, 10]),  # W leaves two of them
    (Conv(5, 16, 1, 0), "k", (3, 32, 32), (16, 28, 28), [5]),
    (Conv(3, 16, 2, 1), "stride", (3, 32, 32), (16, 16, 16), [2]),
    (Conv(3, 8, 2, 0), "stride", (3, 6, 6), (8, 2, 2), [2, 3]),  # a small output
    (Conv(5, 16, 1, 2), "padding", (3, 32, 32), (16, 32, 32), [2]),
    (Conv(3, 8, 3, 1), "padding", (3, 30, 30), (8, 10, 10), [0, 1]),  # stride 3
    (Conv(3, 16, 1, 1), "filters", (3, 8, 8), (16, 8, 8), [16]),
    (Conv(1, 8, 3, 0), "k", (3, 4, 4), (8, 2, 2), [1]),  # k = -1..1, a kernel is at least 1
    (Pool(3, 2), "k", (8, 8, 9), (8, 3, 4), [3]),  # H fits 3 or 4, W 2 or 3
    (Pool(2), "k", (8, 32, 32), (8, 16, 16), [1, 2]),
    (Pool(2), "stride", (8, 16, 16), (8, 8, 8), [2]),
    (Pool(3, 2, 1), "padding", (8, 16, 16), (8, 8, 8), [1]),  # at most half the window
])
def test_values_that_fit_by_hand(layer, setting, before, after, values):
    assert list(fit(layer, setting, before, after).values) == values
    assert brute_force(layer, setting, before, after, 300) == values


def test_a_1x1_output_leaves_the_stride_open():
    f = fit(Conv(3, 8, 2, 0), "stride", (3, 4, 4), (8, 1, 1))
    assert f == (2, None) and 2 in f and 1000 in f and 1 not in f
    with pytest.raises(NotApplicable, match="every value from 2 up"):
        f.values


@pytest.mark.parametrize("layer, setting, text", [
    (Conv(10, 96, 3, 0), "k", "CONV?-96(3,0)"),
    (Conv(5, 96, 3, 0), "stride", "CONV5-96(?,0)"),
    (Conv(5, 96, 3, 0), "filters", "CONV5-?(3,0)"),
    (Conv(3, 64), "filters", "CONV3-?"),  # "same" padding says nothing about the blank
    (Conv(3, 64), "k", "CONV?-64(1,1)"),  # ... but a blank k must not hide the padding
    (Conv(3, 64), "padding", "CONV3-64(1,?)"),
    (Pool(2), "k", "POOL-?(2)"),
    (Pool(2), "stride", "POOL-2(?)"),
    (Pool(3, 2, 1), "padding", "POOL-3(2,?)"),
    (Pool(3, 2, 1), "k", "POOL-?(2,1)"),
    (Pool(2, mode="avg"), "stride", "AVGPOOL-2(?)"),
])
def test_blank_notation_round_trips(layer, setting, text):
    assert notation(layer, setting) == text
    layers = (ReLU(), layer, Flatten())
    assert parse_blank(text, layers) == Blank(2, setting)
    assert parse_blank(text.lower().replace("(", " ( "), layers) == Blank(2, setting)
    stored = Blank(2, setting).to_json()
    assert stored == {"layer": 2, "setting": setting, "accept_all": False}
    assert parse_blank(stored, layers) == Blank(2, setting)
    assert parse_blank({"layer": text, "accept_all": True}, layers) == Blank(2, setting, True)


def test_a_blank_matches_the_layer_with_its_value():
    net = parse_layers(["CONV3-64", "POOL-2", "CONV3-64(1,0)", {"conv": {"k": 5, "filters": 8,
                                                                      "bias": False}}])
    assert parse_blank("CONV?-64", net) == Blank(1, "k")  # ? = 3: CONV3-64, padding 1
    assert parse_blank("CONV?-64(1,0)", net) == Blank(3, "k")
    assert parse_blank("CONV5-?", net) == Blank(4, "filters")  # bias is not in the notation
    assert parse_blank("MAXPOOL-?(2)", net) == Blank(2, "k")
    assert parse_blank(None, net) is None


@pytest.mark.parametrize("spec, words", [
    ("CONV3-64", ["one ? for the blank", "'CONV?-96(3,0)'"]),
    ("CONV?-?", ["one ? for the blank"]),
    ("FC-?", ["one ? for the blank"]),
    ("CONV?-32", ["no layer is 'CONV?-32'", "CONV3-64, POOL-2, CONV3-64"]),
    ("CONV3-?", ["matches layers 1 and 3", '{"layer": 3, "setting": "filters"}']),
    ("AVGPOOL-?(2)", ["no layer is"]),
    ({"layer": 4, "setting": "k"}, ["layer must be a layer's position, 1 to 3"]),
    ({"layer": True, "setting": "k"}, ["layer must be a layer's position"]),
    ({"layer": 2, "setting": "filters"}, ["setting of layer 2 (POOL-2)", "k, stride, padding"]),
    ({"layer": 1, "setting": "kernel"}, ["k, filters, stride, padding", "not 'kernel'"]),
    ({"layer": 1}, ["must be one of", "not None"]),
    ({"setting": "k"}, ["asks takes layer, setting and accept_all", "no layer"]),
    ({"layer": 1, "setting": "k", "blank": 3}, ["not blank"]),
    ({"layer": 1, "setting": "k", "accept_all": "yes"}, ["accept_all must be true or false"]),
    ({"layer": "POOL-?(2)", "setting": "stride"}, ["stands for k, not 'stride'"]),
    (3, ["asks must name a layer's setting"]),
])
def test_bad_blanks(spec, words):
    net = parse_layers(["CONV3-64", "POOL-2", "CONV3-64"])
    with pytest.raises(ParamError) as err:
        parse_blank(spec, net)
    for w in words:
        assert w in str(err.value)
