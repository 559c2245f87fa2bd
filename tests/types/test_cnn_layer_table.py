"""cnn_layer_table against torch.nn (shapes by running zeros through, counts from .parameters()),
its steps, its slips, the weights that keep constant answers from earning points, and blanks
(a layer's setting asked back) against brute force."""

import collections
import functools
from dataclasses import replace

import numpy as np
import pytest

from deepdrill.errors import ParamError
from deepdrill.generator.blanks import Blank, notation, parse_blank
from deepdrill.generator.exercise import get, make_variant
from deepdrill.generator.layers import (BatchNorm, Conv, Dense, Flatten, ReLU,
                                        parse_layers)
from deepdrill.generator.render import Question, Sheet, render_document
from deepdrill.generator.steps import NotApplicable
from deepdrill.generator.types.cnn_layer_table import INPUT_SHAPES
from deepdrill.grader.score import CreditPolicy, grade_question
from torch_layers import torch_rows

TYPE = "cnn_layer_table"
SEEDS = range(300)
LENET = ["CONV5-6(1,0)", "POOL-2", "CONV5-16(1,0)", "POOL-2", "FLATTEN", "FC-120", "FC-84",
         "FC-10"]
MAX_CONSTANT_SHARE = 0.10  # of the points, for an answer that does no work


@functools.cache
def variant(seed, mults=False):
    return make_variant(TYPE, seed, options={"multiplications": mults})


def torch_table(input_shape, layer_specs):
    """output_shapes, layer_params and layer_multiplications computed with torch.nn."""
    rows = torch_rows(input_shape, parse_layers(layer_specs))
    return [list(s) for s, _, _ in rows], [p for _, p, _ in rows], [m for _, _, m in rows]


def test_seed_sweep_against_torch():
    for seed in SEEDS:
        v = variant(seed)
        shapes, params, mults = torch_table(v.params["input_shape"], v.params["layers"])
        assert v.answers == {"output_shapes": shapes, "layer_params": params,
                             "total_params": sum(params)}
        assert v.field("output_shapes").shape == [[len(s)] for s in shapes]
        w = variant(seed, True)
        assert w.params == {**v.params, "multiplications": True}
        assert w.answers == {**v.answers, "layer_multiplications": mults}


def test_draws_are_realistic_and_deterministic():
    inexact = 0
    for seed in SEEDS:
        v = variant(seed)
        layers = parse_layers(v.params["layers"])
        assert tuple(v.params["input_shape"]) in INPUT_SHAPES
        assert 6 <= len(layers) <= 12
        assert all(isinstance(x, str) for x in v.params["layers"])  # canonical strings
        assert isinstance(layers[-1], Dense) and any(isinstance(x, Flatten) for x in layers)
        assert 2 <= sum(isinstance(x, Conv) for x in layers) <= 3
        flat = v.answers["output_shapes"][[type(x) for x in layers].index(Flatten)][0]
        assert flat <= 4096
        inexact += "ceil_not_floor" in {m.name for m in v.mistakes}
    assert inexact >= len(SEEDS) // 3, "too few variants where floor vs ceil matters"
    assert all(variant(s) == make_variant(TYPE, s) for s in range(20))


def test_lenet_by_hand():
    v = make_variant(TYPE, 0, {"input_shape": [1, 32, 32], "layers": LENET,
                               "multiplications": True})
    assert v.answers == {
        "output_shapes": [[6, 28, 28], [6, 14, 14], [16, 10, 10], [16, 5, 5], [400], [120],
                          [84], [10]],
        "layer_params": [156, 0, 2416, 0, 0, 48120, 10164, 850],
        "total_params": 61706,
        "layer_multiplications": [117600, 0, 240000, 0, 0, 48000, 10080, 840],
    }
    by = {m.name: m.answers for m in v.mistakes}
    assert by["forgot_biases"] == {"layer_params": [150, 0, 2400, 0, 0, 48000, 10080, 840],
                                   "total_params": 61706 - (6 + 16 + 120 + 84 + 10)}
    assert by["pooling_params"]["layer_params"][:4] == [156, 6 * 4, 2416, 16 * 4]
    assert by["forgot_input_channels"]["layer_params"][2] == 16 * 25 + 16
    assert by["forgot_input_channels"]["layer_multiplications"][2] == 10 * 10 * 16 * 25
    assert by["forgot_plus_one"]["output_shapes"][:5] == [[6, 27, 27], [6, 12, 12],
                                                           [16, 7, 7], [16, 2, 2], [64]]
    assert by["forgot_plus_one"]["layer_params"][5] == 16 * 2 * 2 * 120 + 120
    assert by["forgot_plus_one"]["layer_multiplications"][0] == 27 * 27 * 6 * 25
    # every size division is exact and no layer is padded: those two slips change nothing
    assert "ceil_not_floor" not in by and "forgot_padding" not in by


def test_the_steps_of_a_table():
    ex = get(TYPE)
    params = {"input_shape": [3, 8, 8], "layers": ["CONV3-4", "BN", "POOL-2", "FC-2"],
              "multiplications": True}
    values = ex.values(params)
    assert [values[f"shape_{i}"] for i in (1, 2, 3, 4)] == [(4, 8, 8), (4, 8, 8), (4, 4, 4), (2,)]
    assert (values["weights_1"], values["biases_1"], values["positions_1"]) == (108, 4, 64)
    assert (values["weights_2"], values["biases_2"]) == (4, 4)  # gamma and beta
    assert values["mults_1"] == 64 * 108 and values["mults_4"] == values["weights_4"] == 128
    assert values["total_params"] == 112 + 8 + 0 + 130
    fields = {f.name: f for f in ex.fields(params, ex.values(params))}
    assert fields["output_shapes"].parts == ("shape_1", "shape_2", "shape_3", "shape_4")
    assert fields["layer_params"].parts[0] == "params_1"
    assert fields["layer_multiplications"].parts[-1] == "mults_4"
    assert ex.answers(list(fields.values()), values)["output_shapes"][2] == [4, 4, 4]


def test_later_steps_follow_a_students_shape():
    ex = get(TYPE)
    params = {"input_shape": [1, 32, 32], "layers": LENET, "multiplications": True}
    own = ex.values(params, given={"shape_3": np.array([16, 12, 12])})
    assert own["shape_3"] == (16, 10, 10)  # a given step is recomputed from its own inputs
    assert own["shape_4"] == (16, 6, 6) and own["shape_5"] == (576,)
    assert own["params_6"] == 576 * 120 + 120 and own["mults_6"] == 576 * 120
    own = ex.values(params, given={f"params_{i}": np.int64(1) for i in range(1, 9)})
    assert own["total_params"] == 8
    own = ex.values(params, given={"shape_2": np.array([6, 15, 15]),
                                   "shape_3": np.array([16, 11, 11])})
    assert own["mults_3"] == 11 * 11 * 16 * 25 * 6 and own["params_3"] == 2416


@pytest.mark.parametrize("given, left_out", [
    ({"shape_2": np.array([6, 3, 3])}, "shape_3"),  # too small for the next 5x5 kernel
    ({"shape_1": np.array([6, 0, 28])}, "shape_2"),  # not a shape
    ({"shape_3": np.array([400])}, "shape_4"),  # a vector into pooling
    ({f"params_{i}": np.int64(0) for i in range(1, 9)}, "total_params"),  # only zeros to add
])
def test_student_values_that_cannot_feed_a_step_leave_it_out(given, left_out):
    own = get(TYPE).values({"input_shape": [1, 32, 32], "layers": LENET,
                            "multiplications": True}, given=given)
    assert left_out not in own and "params_1" in own


def test_slips_combine_when_they_swap_different_steps():
    ex = get(TYPE)
    params = {"input_shape": [3, 9, 9], "layers": ["CONV3-4(2,1)", "POOL-2", "FC-2"],
              "multiplications": False}
    s = {slip.name: slip for slip in ex.slips(params)}
    v = ex.values(params, [s["forgot_plus_one"], s["forgot_biases"]])
    assert [v["shape_1"], v["shape_2"]] == [(4, 4, 4), (4, 1, 1)]
    assert [v["params_1"], v["params_3"], v["total_params"]] == [108, 8, 116]
    v = ex.values(params, [s["forgot_input_channels"], s["forgot_biases"]])
    assert v["params_1"] == 4 * 9
    v = ex.values(params, [s["forgot_input_channels"], s["pooling_params"]])
    assert (v["params_1"], v["params_2"]) == (40, 4 * 4)
    with pytest.raises(NotApplicable, match="swaps a step"):
        ex.values(params, [s["forgot_plus_one"], s["ceil_not_floor"]])


@pytest.mark.parametrize("input_shape, layers, name, shapes", [
    ([1, 7, 7], ["POOL-2", "FLATTEN", "FC-3"], "ceil_not_floor", [[1, 4, 4], [16], [3]]),
    ([3, 32, 32], ["CONV3-8", "POOL-2", "FC-2"], "forgot_padding", [[8, 30, 30], [8, 15, 15], [2]]),
    ([3, 32, 32], ["CONV3-8(2,1)", "FC-2"], "ceil_not_floor", [[8, 17, 17], [2]]),
])
def test_size_mistakes_by_hand(input_shape, layers, name, shapes):
    v = make_variant(TYPE, 0, {"input_shape": input_shape, "layers": layers})
    assert {m.name: m.answers for m in v.mistakes}[name]["output_shapes"] == shapes


def test_every_mistake_differs_from_the_answer():
    for seed in range(60):
        v = variant(seed, True)
        assert {"forgot_biases", "forgot_input_channels"} <= {m.name for m in v.mistakes}
        for m in v.mistakes:
            assert m.answers and all(m.answers[k] != v.answers[k] for k in m.answers)


def test_a_slip_that_breaks_the_network_is_not_offered():
    # without the +1 the 2x2 pool of a 2x2 map leaves nothing: no student answers that
    v = make_variant(TYPE, 0, {"input_shape": [1, 4, 4], "layers": ["POOL-2", "POOL-2", "FC-2"]})
    assert "forgot_plus_one" not in {m.name for m in v.mistakes}


# -- no free points -------------------------------------------------------------------

def constant_answers(v):
    """Answers that do no work: all zeros, all ones, the input shape in every row, each row's
    own input shape as its output (the right table shifted down by one row)."""
    shapes, n = v.answers["output_shapes"], len(v.answers["layer_params"])
    inputs = [v.params["input_shape"], *shapes[:-1]]
    tables = {"zeros": [[0] * len(s) for s in shapes], "ones": [[1] * len(s) for s in shapes],
              "input": [v.params["input_shape"]] * n, "own input": inputs}
    for name, table in tables.items():
        count = int(name == "ones")
        answers = {"output_shapes": table, "layer_params": [count] * n, "total_params": count}
        if v.params["multiplications"]:
            answers["layer_multiplications"] = [count] * n
        yield name, answers


@pytest.mark.parametrize("mults", [False, True])
def test_constant_answers_earn_almost_nothing(mults):
    for seed in SEEDS:
        v = variant(seed, mults)
        for name, answers in constant_answers(v):
            score = grade_question(v, answers, 1).score
            assert score <= MAX_CONSTANT_SHARE, (seed, name, score)


def test_entries_weigh_the_work_they_need():
    v = make_variant(TYPE, 0, {"input_shape": [3, 32, 32], "multiplications": True,
                               "layers": ["CONV3-8", "RELU", "POOL-2", "DROPOUT", "FLATTEN",
                                          "BN", "FC-10"]})
    # a conv's filters: read off; its kept H and W: little; a ReLU's row, a pool's
    # channels: nothing; a pool's H and W: worked out; FLATTEN and FC sizes: read off
    assert v.field("output_shapes").entry_weights == (0.5, 0.1, 0.1, 0, 0, 0, 0, 1, 1, 0, 0, 0,
                                                      0.5, 0, 0.5)
    assert v.field("layer_params").entry_weights == (1, 0, 0.2, 0, 0, 0.5, 1)
    assert v.field("layer_multiplications").entry_weights == (1, 0, 0, 0, 0, 0, 1)
    assert grade_question(v, v.answers, 10).score == pytest.approx(10)
    pooled = dict(v.answers, layer_params=[224, 0, 8 * 4, 0, 0, 4096, 20490])
    assert grade_question(v, pooled, 10).score < 10  # pooling parameters still cost
    unpadded = {m.name: m.answers for m in v.mistakes}["forgot_padding"]
    assert unpadded["output_shapes"][0] == [8, 30, 30]
    # the later rows are right for the student's own first row: only that row costs
    assert 9 < grade_question(v, {**v.answers, **unpadded}, 10).score < 10


# -- parameters -------------------------------------------------------------------------

def test_pinned_params_are_kept():
    v = make_variant(TYPE, 3, {"input_shape": [3, 100, 80]})
    assert v.params["input_shape"] == [3, 100, 80]
    assert v.answers["output_shapes"] == torch_table([3, 100, 80], v.params["layers"])[0]
    v = make_variant(TYPE, 3, {"layers": ["conv3-4 (1,1)", "FC-3"]})
    assert v.params["layers"] == ["CONV3-4", "FC-3"]
    assert tuple(v.params["input_shape"]) in INPUT_SHAPES
    v = make_variant(TYPE, 3, {"input_shape": [20]})  # a vector: an MLP
    assert all(isinstance(x, (Dense, BatchNorm, ReLU)) for x in parse_layers(v.params["layers"]))
    v = make_variant(TYPE, 3, {"multiplications": False}, options={"multiplications": True})
    assert not v.params["multiplications"] and "layer_multiplications" not in v.answers
    v = make_variant(TYPE, 0, {"input_shape": [1, 4, 4], "layers": ["POOL-2", "POOL-2", "FC-2"]})
    assert v.answers["output_shapes"] == [[1, 2, 2], [1, 1, 1], [2]]


def test_layers_without_bias_are_stored_as_dicts():
    no_bias = {"conv": {"k": 3, "filters": 4, "stride": 1, "padding": 1, "bias": False}}
    v = make_variant(TYPE, 0, {"input_shape": [2, 8, 8],
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
    ({"input_shape": [1, 8, 8], "layers": ["POOL-2", "RELU"]}, ["no parameters to count"]),
    ({"input_shape": [4], "layers": ["BN"], "multiplications": True}, ["needs a CONV or FC"]),
])
def test_bad_params(params, words):
    with pytest.raises(ParamError) as err:
        make_variant(TYPE, 0, params)
    for w in words:
        assert w in str(err.value)


def test_options_that_leave_no_network_are_refused():
    with pytest.raises(ParamError, match="no network of 6-12 layers fits input_shape"):
        make_variant(TYPE, 0, {"input_shape": [1, 3, 3]})


def test_unknown_option():
    with pytest.raises(ParamError, match="unknown option"):
        make_variant(TYPE, 0, options={"blocks": 3})


# -- sheets -------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"multiplications": True}])
def test_templates_render(options):
    v = make_variant(TYPE, 2, options=options)
    sheet = Sheet("T", "C", [Question(1, 3, v)])
    problem = render_document([sheet], solutions=False)
    assert r"\toprule" in problem and "Total:" not in problem
    assert ("multiplications" in problem) == bool(options)
    solution = render_document([sheet], solutions=True)
    assert "Total:" in solution and r"\rfloor + 1 =" in solution
    assert ("Multiplications (every other" in solution) == bool(options)
    assert f"{v.answers['total_params'] % 1000:03d}" in solution


def test_many_variants_render():
    for seed in range(0, 300, 7):
        for mults in (False, True):
            v = variant(seed, mults)
            sheet = Sheet("T", "C", [Question(1, 3, v)])
            assert r"\begin{tabular}" in render_document([sheet], solutions=True)


# -- blanks: a setting asked back from the shapes around its layer ------------------------

HOMEWORK = {"input_shape": [10, 205, 205], "layers": ["CONV10-96(3,0)", "RELU", "FC-10"]}
BLANK_SEEDS = range(240)


def brute_force(layer, setting, before, after):
    """Every value of the setting (tried up to well past the input) that gives ``after``."""
    found = []
    for v in range(0 if setting == "padding" else 1, 4 * max(before) + 20):
        try:
            if replace(layer, **{setting: v}).output_shape(tuple(before)) == tuple(after):
                found.append(v)
        except ParamError:
            pass
    return found


def params_with_k(k, filters=96, c_in=10):
    return filters * k * k * c_in + filters


def test_the_homework_kernel_size():
    """205 x 205 x 10 to 66 x 66 x 96, stride 3, no padding: floor((205 - k)/3) = 65, so
    195 <= 205 - k <= 197: k is 8, 9 or 10."""
    with pytest.raises(ParamError) as err:
        make_variant(TYPE, 0, {**HOMEWORK, "asks": "CONV?-96(3,0)"})
    for words in ("layer 1", "CONV?-96(3,0)", "(10, 205, 205) to (96, 66, 66)",
                  "kernel size 8, 9 or 10 all fit", "accept_all: true"):
        assert words in str(err.value)
    v = make_variant(TYPE, 0, {**HOMEWORK, "asks": {"layer": "CONV?-96(3,0)",
                                                     "accept_all": True}})
    assert v.params["asks"] == {"layer": 1, "setting": "k", "accept_all": True}
    assert v.answers["blank"] == 10 and v.field("blank").alternatives == (8, 9)
    assert v.answers["layer_params"][0] == params_with_k(10) == 96_096
    assert v.field("layer_params").alternatives == ()  # counts follow the student's own k
    assert brute_force(Conv(10, 96, 3, 0), "k", (10, 205, 205), (96, 66, 66)) == [8, 9, 10]


@pytest.mark.parametrize("k", [8, 9, 10])
def test_every_valid_kernel_size_scores_full_marks(k):
    v = make_variant(TYPE, 0, {**HOMEWORK, "asks": {"layer": 1, "setting": "k",
                                                     "accept_all": True}})
    fc = 96 * 66 * 66 * 10 + 10
    answers = {"blank": str(k), "output_shapes": [[96, 66, 66], [96, 66, 66], [10]],
               "layer_params": [params_with_k(k), 0, fc], "total_params": params_with_k(k) + fc}
    for policy in (CreditPolicy(), CreditPolicy(carry_forward=0), CreditPolicy(per_entry=False)):
        r = grade_question(v, answers, 10, policy)
        assert r.score == pytest.approx(10) and all(f.correct for f in r.fields.values())


@pytest.mark.parametrize("k", [7, 11, 0, "ten"])
def test_a_wrong_kernel_size_does_not(k):
    v = make_variant(TYPE, 0, {**HOMEWORK, "asks": {"layer": 1, "setting": "k",
                                                     "accept_all": True}})
    r = grade_question(v, {**v.answers, "blank": k}, 10)
    assert not r.fields["blank"].correct and r.fields["blank"].score == 0
    assert r.score == pytest.approx(10 - r.fields["blank"].max_score)
    if k == 7:  # (205 - k)/3 = 66: the +1 left out
        assert r.fields["blank"].mistake == "blank_forgot_plus_one"


@pytest.mark.parametrize("input_shape, layers, asks, answer", [
    ([3, 32, 32], ["CONV5-16(1,0)", "FC-2"], "CONV?-16(1,0)", 5),
    ([3, 32, 32], ["CONV3-16(2,1)", "FC-2"], "CONV3-16(?,1)", 2),
    ([3, 32, 32], ["CONV5-16", "FC-2"], "CONV5-16(1,?)", 2),
    ([3, 32, 32], ["CONV5-16", "FC-2"], "CONV5-?", 16),
    ([8, 8, 9], ["CONV3-4", "POOL-3(2)", "FC-2"], "POOL-?(2)", 3),  # only both sides fix it
    ([3, 16, 16], ["CONV3-4", "POOL-2", "FC-2"], "POOL-2(?)", 2),
    ([3, 16, 16], ["CONV3-4", "AVGPOOL-3(2,1)", "FC-2"], {"layer": 2, "setting": "padding"}, 1),
    ([3, 4, 4], ["CONV1-8(3,0)", "FC-2"], {"layer": 1, "setting": "k"}, 1),  # k >= 1 fixes it
])
def test_every_kind_of_blank_by_hand(input_shape, layers, asks, answer):
    v = make_variant(TYPE, 0, {"input_shape": input_shape, "layers": layers, "asks": asks})
    blank = Blank(**v.params["asks"])
    layer = parse_layers(layers)[blank.layer - 1]
    before = [input_shape, *v.answers["output_shapes"]][blank.layer - 1]
    after = v.answers["output_shapes"][blank.layer - 1]
    assert v.answers["blank"] == getattr(layer, blank.setting) == answer
    assert brute_force(layer, blank.setting, before, after) == [answer]
    assert v.field("blank").alternatives == ()
    assert grade_question(v, v.answers, 10).score == pytest.approx(10)
    assert grade_question(v, {**v.answers, "blank": answer + 1}, 10).score < 10


@pytest.mark.parametrize("asks, setting, right, slip", [
    ("CONV?-16(1,0)", "k", 5, ("blank_forgot_plus_one", 4)),  # 32 - k = 28
    ("CONV?-16(1,2)", "k", 5, ("blank_forgot_padding", 1)),  # 32 - k + 1 = 32
    ("CONV1-16(?,0)", "stride", 4, ("blank_forgot_plus_one", 3)),  # 16/S = 5
])
def test_slips_in_solving_for_the_blank(asks, setting, right, slip):
    layer = {"k": "CONV5-16(1,0)", "stride": "CONV1-16(4,0)"}[setting]
    layer = "CONV5-16" if "(1,2)" in asks else layer
    v = make_variant(TYPE, 0, {"input_shape": [3, 32, 32] if setting == "k" else [3, 17, 17],
                               "layers": [layer, "FC-2"], "asks": asks})
    assert v.answers["blank"] == right
    mistakes = {m.name: m.answers for m in v.mistakes}
    assert mistakes[slip[0]]["blank"] == slip[1]
    r = grade_question(v, {**v.answers, **mistakes[slip[0]]}, 10)
    assert r.fields["blank"].mistake == slip[0] and r.score < 10


def test_a_wrong_blank_carries_forward_to_its_layers_count():
    v = make_variant(TYPE, 0, {"input_shape": [3, 32, 32], "layers": ["CONV5-16(1,0)", "FC-2"],
                               "asks": "CONV?-16(1,0)", "multiplications": True})
    fc_params, fc_mults = v.answers["layer_params"][1], v.answers["layer_multiplications"][1]
    own = {"blank": 4, "layer_params": [16 * 4 * 4 * 3 + 16, fc_params],
           "layer_multiplications": [28 * 28 * 16 * 4 * 4 * 3, fc_mults]}
    own["total_params"] = sum(own["layer_params"])
    r = grade_question(v, {**v.answers, **own}, 10)
    assert r.fields["layer_params"].consistent_with == {"blank": 4}
    assert r.fields["layer_params"].carried > 0
    assert r.score == pytest.approx(10 - r.fields["blank"].max_score)


def test_given_shapes_earn_nothing():
    v = make_variant(TYPE, 0, {"input_shape": [3, 32, 32], "asks": "CONV?-16(1,1)",
                               "layers": ["CONV3-8", "RELU", "POOL-2", "CONV3-16", "FC-2"]})
    assert v.params["asks"]["layer"] == 4
    weights = v.field("output_shapes").entry_weights
    assert weights[6:12] == (0,) * 6 and weights[12] == 0.5  # rows 3 and 4 are given
    wrong = [list(s) for s in v.answers["output_shapes"]]
    wrong[2], wrong[3] = [0, 0, 0], [0, 0, 0]
    assert grade_question(v, {**v.answers, "output_shapes": wrong}, 10).score == \
        pytest.approx(10)
    # every row given: the field weighs nothing at all
    one = make_variant(TYPE, 0, {"input_shape": [3, 8, 8], "layers": ["CONV3-4"],
                                 "asks": "CONV?-4(1,1)"})
    assert one.field("output_shapes").weight == 0


def test_the_blanks_shapes_stay_given_when_a_student_slips_before_it():
    ex = get(TYPE)
    layers = ["CONV3-8(1,0)", "POOL-2", "CONV3-16", "FC-2"]
    params = make_variant(TYPE, 0, {"input_shape": [3, 32, 32], "asks": "CONV?-16(1,1)",
                                    "layers": layers}).params
    s = {slip.name: slip for slip in ex.slips(params)}
    v = ex.values(params, [s["forgot_padding"]])
    assert v["shape_1"] == (8, 30, 30)  # layer 1 had no padding: no change
    v = ex.values(params, [s["forgot_plus_one"]])
    assert v["shape_1"] == (8, 29, 29) and v["shape_2"] == (8, 15, 15)  # given: unchanged
    assert v["shape_3"] == (16, 15, 15) and v["blank"] == 3


@pytest.mark.parametrize("params, options, words", [
    ({**HOMEWORK, "layers": ["CONV3-8(3,1)", "FC-2"], "input_shape": [3, 30, 30],
      "asks": "CONV3-8(3,?)"}, {}, ["padding 0 or 1 all fit", "accept_all"]),
    ({"input_shape": [3, 4, 4], "layers": ["CONV3-8(2,0)", "FC-2"], "asks": "CONV3-8(?,0)"}, {},
     ["every stride from 2 up", "1x1"]),
    ({"asks": {"layer": 1, "setting": "k"}}, {}, ["give layers too", "option blank"]),
    ({"input_shape": [3, 8, 8], "layers": ["CONV?-4(1,1)", "FC-2"]}, {},
     ["layer 1", "a blank goes in asks, not in layers"]),
    ({}, {"blank": "kernel"}, ["option blank must be one of none, k, filters, stride, "
                               "padding, any"]),
    ({"input_shape": [20]}, {"blank": "any"}, ["vector", "fully connected"]),
    ({"input_shape": [3, 8, 8], "layers": ["CONV3-4", "FC-2"]}, {"blank": "stride"},
     ["option blank='stride'", "one value of at least 2", "pin asks"]),
    ({"input_shape": [1, 5, 5]}, {"blank": "padding"}, ["with a blank padding"]),
])
def test_blanks_refused_with_a_reason(params, options, words):
    with pytest.raises(ParamError) as err:
        make_variant(TYPE, 0, params, options)
    for w in words:
        assert w in str(err.value)


def test_drawn_blanks_are_unique_by_brute_force():
    kinds = collections.Counter()
    for seed in BLANK_SEEDS:
        option = ("any", "k", "stride", "padding", "filters")[seed % 5]
        v = make_variant(TYPE, seed, options={"blank": option})
        blank = Blank(**v.params["asks"])
        assert not blank.accept_all and option in (blank.setting, "any")
        layer = parse_layers(v.params["layers"])[blank.layer - 1]
        shapes = [v.params["input_shape"], *v.answers["output_shapes"]]
        before, after = shapes[blank.layer - 1], shapes[blank.layer]
        assert brute_force(layer, blank.setting, before, after) == [v.answers["blank"]]
        assert v.answers["blank"] == getattr(layer, blank.setting) >= 2
        assert v.field("blank").alternatives == ()
        # the notation with ? names this layer back, unless it fits another layer as well
        try:
            assert parse_blank(notation(layer, blank.setting),
                               parse_layers(v.params["layers"])) == blank
        except ParamError as err:
            assert "matches layers" in str(err) and str(blank.layer) in str(err)
        kinds[blank.setting] += 1
    assert set(kinds) == {"k", "stride", "padding", "filters"}, kinds


def test_constant_answers_earn_almost_nothing_with_a_blank():
    """A student's copy of a given shape feeds nothing: the rows after it and the blank are
    checked against the given shapes, so ones everywhere earn no carried-forward credit."""
    for seed in range(0, 120, 2):
        v = make_variant(TYPE, seed, options={"blank": ("filters", "any")[seed % 4 // 2]})
        for name, answers in constant_answers(v):
            count = int(name == "ones")
            score = grade_question(v, {**answers, "blank": count}, 1).score
            assert score <= MAX_CONSTANT_SHARE, (seed, name, score)


def test_drawn_blanks_keep_the_rest_of_the_draw():
    for seed in range(20):
        v, w = variant(seed), make_variant(TYPE, seed, options={"blank": "none"})
        assert v == w and "asks" not in v.params and "blank" not in v.answers
    pinned = make_variant(TYPE, 4, {"input_shape": [3, 32, 32],
                                    "layers": ["CONV5-8", "POOL-2", "CONV3-16(2,1)", "FC-2"]},
                          options={"blank": "any"})
    assert pinned.params["layers"] == ["CONV5-8", "POOL-2", "CONV3-16(2,1)", "FC-2"]
    assert pinned.params["asks"] in [{"layer": 1, "setting": s, "accept_all": False}
                                     for s in ("k", "filters", "padding")] + \
        [{"layer": i, "setting": s, "accept_all": False}
         for i, s in ((2, "stride"), (3, "stride"), (3, "k"), (3, "filters"))]
    kept = make_variant(TYPE, 4, {**pinned.params, "asks": None}, options={"blank": "any"})
    assert "asks" not in kept.params  # a pinned "no blank" wins over the option


def test_a_stored_blank_checks_back_to_itself():
    v = make_variant(TYPE, 5, options={"blank": "any"})
    assert make_variant(TYPE, 99, v.params) == replace(v, seed=99)
    ex = get(TYPE)
    assert "asks" in ex.params and ex.options["blank"] == "none"


def test_the_sheets_print_the_blank_and_solve_it():
    v = make_variant(TYPE, 0, {"input_shape": [10, 205, 206], "layers": HOMEWORK["layers"],
                               "asks": {"layer": 1, "setting": "k", "accept_all": True}})
    sheet = Sheet("T", "C", [Question(1, 3, v)])
    problem = render_document([sheet], solutions=False)
    assert r"\texttt{CONV?{-}96(3,0)} & $(96, 66, 66)$ (given)" in problem
    assert r"it takes a $(10, 205, 206)$ input and gives a $(96, 66, 66)$" in problem
    assert "any one of them is accepted" in problem and "The blank." not in problem
    solution = render_document([sheet], solutions=True)
    for tex in (r"195 \le 205 - k \le 197 \;\Rightarrow\; 8 \le k \le 10",
                r"195 \le 206 - k \le 197 \;\Rightarrow\; 9 \le k \le 11",
                r"both: $9 \le k \le 10$", "2 whole numbers fit, $9$ and $10$",
                "the table counts with $k = 10$", r"\texttt{blank}: $10$ (also accepted: 9)",
                r"\texttt{CONV10{-}96(3,0)}"):
        assert tex in solution, tex


@pytest.mark.parametrize("params, lines", [
    ({"input_shape": [3, 4, 4], "layers": ["CONV1-8(3,0)", "FC-2"],
      "asks": {"layer": 1, "setting": "k"}},
     [r"3 \le 4 - k \le 5 \;\Rightarrow\; -1 \le k \le 1$", r"and $k \ge 1$: $k = 1$",
      r"$k = \mathbf{1}$"]),
    ({"input_shape": [3, 32, 32], "layers": ["CONV3-16(2,1)", "FC-2"], "asks": "CONV3-16(?,1)"},
     [r"\lfloor 31/S \rfloor = 15 \;\Rightarrow\; 31/16 < S \le 31/15 \;\Rightarrow\; S = 2"]),
    ({"input_shape": [3, 32, 32], "layers": ["CONV5-16", "FC-2"], "asks": "CONV5-16(1,?)"},
     [r"32 + 2P - 5 = 31 \;\Rightarrow\; 2P = 4 \;\Rightarrow\; P = 2$"]),
    ({"input_shape": [3, 32, 32], "layers": ["CONV5-16", "FC-2"], "asks": "CONV5-?"},
     [r"The output has $16$ channels, one per filter: $N = 16$."]),
])
def test_worked_solutions_of_each_blank(params, lines):
    v = make_variant(TYPE, 0, params)
    solution = render_document([Sheet("T", "C", [Question(1, 3, v)])], solutions=True)
    for tex in lines:
        assert tex in solution, tex


def test_many_blanks_render():
    for seed in range(0, 240, 9):
        v = make_variant(TYPE, seed, options={"blank": "any", "multiplications": seed % 2 == 0})
        sheet = Sheet("T", "C", [Question(1, 3, v)])
        assert "(given)" in render_document([sheet], solutions=False)
        assert "The blank." in render_document([sheet], solutions=True)


# -- the strip of blocks in the worked solution -------------------------------------------------

def strip_of(v):
    ex = get("cnn_layer_table")
    return ex.worked(v.params, ex.values(v.params))["strip"]


def test_the_strip_has_one_block_per_layer_drawn_to_its_shape():
    v = make_variant("cnn_layer_table", 0, {"input_shape": [1, 32, 32], "layers": [
        "CONV5-6(1,0)", "RELU", "POOL-2", "CONV5-16(1,0)", "POOL-2", "FLATTEN", "FC-120",
        "FC-10"]})
    blocks = strip_of(v)["blocks"]
    assert [b["label"] for b in blocks] == ["input", *v.params["layers"]]
    assert [b["color"] for b in blocks[:4]] == ["gray", "blue", "orange", "red"]
    tall = [b["y1"] - b["y0"] for b in blocks]
    # 32, 28, 28, 14, 10, 5: the maps shrink; a ReLU keeps its input's block
    assert tall[0] > tall[1] == tall[2] > tall[3] > tall[4] > tall[5]
    wide = [b["x1"] - b["x0"] for b in blocks]
    assert wide[0] < wide[1] < wide[4]  # 1, 6, then 16 channels
    assert wide[6] == wide[7] == wide[8] < wide[0]  # vectors: thin bars
    assert tall[6] > tall[7] > tall[8]  # 400, 120, 10 units
    assert all(b["y0"] == -b["y1"] and b["y0"] >= strip_of(v)["below"] for b in blocks)
    xs = [b["x"] for b in blocks]
    assert xs == sorted(xs) and xs[-1] <= 15.0


def test_the_strip_is_in_the_solution_only_and_not_for_dense_networks():
    v = make_variant("cnn_layer_table", 3, options={"multiplications": True})
    problem = render_document([Sheet("T", "C", [Question(1, 3, v)])], solutions=False)
    solution = render_document([Sheet("T", "C", [Question(1, 3, v)])], solutions=True)
    assert "tikzpicture" not in problem and solution.count(r"\begin{tikzpicture}") == 1
    assert r"\node" not in solution and solution.count(r"\pgftext") == 1  # one label text
    dense = make_variant("cnn_layer_table", 0, {"input_shape": [100], "layers": ["FC-50", "FC-10"]})
    assert strip_of(dense) is None
    assert "tikzpicture" not in render_document([Sheet("T", "C", [Question(1, 3, dense)])], True)


def test_strips_of_drawn_networks_fit_the_page():
    for seed in range(60):
        for options in ({}, {"blank": "any"}):
            blocks = strip_of(make_variant("cnn_layer_table", seed, options=options))["blocks"]
            assert blocks[-1]["x1"] <= 15.5 and all(b["y1"] <= 1.2 for b in blocks)


@pytest.mark.slow
@pytest.mark.usefixtures("needs_pdflatex")
def test_the_strips_compile(tmp_path):
    from deepdrill.generator.pdf import compile_tex

    questions = [Question(i, 3, make_variant("cnn_layer_table", i, options=o))
                 for i, o in enumerate([{}, {"blank": "any"}, {"multiplications": True}], 1)]
    pdf = compile_tex(render_document([Sheet("T", "C", questions)], True), tmp_path)
    assert pdf.stat().st_size > 0


def test_the_graph_of_stored_strings_is_the_tables_graph():
    """graph() puts stored networks together from steps cached per row: the same steps."""
    from deepdrill.generator.layers import parse_layers
    from deepdrill.generator.types import cnn_layer_table
    for seed in range(200):
        for mults in (False, True):
            p = make_variant("cnn_layer_table", seed, options={"multiplications": mults}).params
            assert all(type(x) is str for x in p["layers"])
            assert get("cnn_layer_table").graph(p) == \
                cnn_layer_table.table_graph(parse_layers(p["layers"])), seed
