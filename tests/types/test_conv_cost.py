"""conv_cost against torch.nn (branch shapes from a forward pass, parameters from
.parameters()), its steps, its slips alone and in pairs, and constant answers."""

import functools
import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch

from deepdrill.errors import ParamError
from deepdrill.generator.exercise import get, make_variant
from deepdrill.generator.layers import Conv, Pool, parse_layers
from deepdrill.generator.render import Question, Sheet, render_document
from deepdrill.generator.types.conv_cost import CHANNELS, SIZES
from deepdrill.grader.score import grade_question
from torch_layers import torch_rows

TYPE = "conv_cost"
SEEDS = range(300)
MAX_CONSTANT_SHARE = 0.10
GOOGLENET_3A = [["CONV1-64"], ["CONV1-96", "CONV3-128"], ["CONV1-16", "CONV5-32"],
                ["POOL-3(1)", "CONV1-32"]]
BOTTLENECK = [["CONV5-32"], ["CONV1-16", "CONV5-32"]]


@functools.cache
def variant(seed, compare=False):
    return make_variant(TYPE, seed, options={"compare": compare})


def torch_costs(input_shape, branches):
    """Per branch (multiplications, parameters, output), and the concatenated output shape.

    Pooling in a branch is "same" padded (floor(k/2)), as the exercise says.
    """
    costs = []
    for specs in branches:
        layers = [replace(x, padding=x.k // 2) if isinstance(x, Pool) else x
                  for x in parse_layers(specs)]
        rows = torch_rows(input_shape, layers)
        costs.append((sum(m for _, _, m in rows), sum(p for _, p, _ in rows), list(rows[-1][0])))
    maps = [torch.zeros((1, *out), device="meta") for _, _, out in costs]
    return costs, list(torch.cat(maps, dim=1).shape[1:])


def test_seed_sweep_against_torch():
    for seed in SEEDS:
        v = variant(seed)
        costs, concatenated = torch_costs(v.params["input_shape"], v.params["branches"])
        assert v.answers == {
            "branch_multiplications": [m for m, _, _ in costs],
            "branch_params": [p for _, p, _ in costs],
            "total_multiplications": sum(m for m, _, _ in costs),
            "total_params": sum(p for _, p, _ in costs),
            "output_shape": concatenated,
        }


def test_seed_sweep_compare_against_torch():
    for seed in SEEDS:
        v = variant(seed, True)
        (m1, p1, out1), (m2, p2, out2) = torch_costs(v.params["input_shape"],
                                                     v.params["branches"])[0]
        assert out1 == out2
        assert v.answers == {"branch_multiplications": [m1, m2], "branch_params": [p1, p2],
                             "output_shape": out1, "savings_factor": pytest.approx(m1 / m2,
                                                                                   rel=1e-12)}
        assert v.field("savings_factor").kind.value == "real"


def test_googlenet_3a_by_hand():
    v = make_variant(TYPE, 0, {"input_shape": [192, 28, 28], "branches": GOOGLENET_3A})
    assert v.answers == {
        "branch_multiplications": [9633792, 14450688 + 86704128, 2408448 + 10035200, 4816896],
        "branch_params": [12352, 18528 + 110720, 3088 + 12832, 6176],
        "total_multiplications": 128049152,
        "total_params": 163696,
        "output_shape": [256, 28, 28],
    }


def test_bottleneck_and_its_mistakes_by_hand():
    v = make_variant(TYPE, 0, {"input_shape": [192, 28, 28], "branches": BOTTLENECK,
                                      "compare": True})
    assert v.answers["branch_multiplications"] == [120422400, 12443648]
    assert v.answers["branch_params"] == [153632, 15920]
    assert v.answers["savings_factor"] == pytest.approx(9.6774, rel=1e-4)
    by = {m.name: m.answers for m in v.mistakes}
    assert by["forgot_input_channels"]["branch_multiplications"] == [627200, 12544 + 627200]
    assert by["k_not_k_squared"]["branch_multiplications"] == [120422400 // 5,
                                                                2408448 + 10035200 // 5]
    assert by["per_position"] == {"branch_multiplications": [153600, 3072 + 12800]}
    assert by["forgot_biases"] == {"branch_params": [153600, 15872]}


def test_every_mistake_differs_from_the_answer():
    for seed in range(60):
        for compare in (False, True):
            v = variant(seed, compare)
            assert {m.name for m in v.mistakes} == {"forgot_input_channels", "k_not_k_squared",
                                                    "per_position", "forgot_biases"}
            for m in v.mistakes:
                assert m.answers and all(m.answers[k] != v.answers[k] for k in m.answers)


def test_draws_are_realistic_and_deterministic():
    for seed in SEEDS:
        v = variant(seed)
        c, h, w = v.params["input_shape"]
        assert h == w and h in SIZES and c in CHANNELS and not v.params["compare"]
        assert 3 <= len(v.params["branches"]) <= 4
        for layers in map(parse_layers, v.params["branches"]):
            for x in layers:
                assert isinstance(x, Pool) and x.k == 3 or \
                    isinstance(x, Conv) and x.k in (1, 3, 5) and 16 <= x.filters <= 256
        assert v.answers["output_shape"][0] != c  # no free points for copying the input
        w = variant(seed, True)
        direct, cheap = w.params["branches"]
        assert len(direct) == 1 and len(cheap) == 2 and cheap[1] == direct[0]
        assert cheap[0].startswith("CONV1-") and w.answers["savings_factor"] > 2
        assert w.answers["output_shape"][0] != w.params["input_shape"][0]
    assert all(variant(s) == make_variant(TYPE, s) for s in range(20))


def test_pinned_params_are_kept():
    v = make_variant(TYPE, 1, {"input_shape": [32, 8, 8]}, options={"compare": True})
    assert v.params["input_shape"] == [32, 8, 8] and v.params["compare"]
    v = make_variant(TYPE, 1, {"compare": False}, options={"compare": True})
    assert not v.params["compare"] and "total_params" in v.answers
    v = make_variant(TYPE, 1, {"branches": [["conv3-8"], ["POOL-3(1)"]]})
    assert v.params["branches"] == [["CONV3-8"], ["POOL-3(1)"]]
    c = v.params["input_shape"][0]
    assert v.answers["output_shape"][0] == 8 + c  # the pooling branch keeps the input's channels


def test_other_layers_in_a_branch():
    branches = [["CONV3-8", "BN", "RELU"], ["AVGPOOL-3(1)", "CONV1-4"], ["POOL-5(1,2)"],
                [{"conv": {"k": 1, "filters": 2, "bias": False}}]]
    v = make_variant(TYPE, 0, {"input_shape": [4, 7, 7], "branches": branches})
    costs, concatenated = torch_costs([4, 7, 7], branches)
    assert v.answers["branch_multiplications"] == [m for m, _, _ in costs]
    assert v.answers["branch_params"] == [8 * 36 + 8 + 16, 20, 0, 8]
    assert v.answers["output_shape"] == concatenated == [18, 7, 7]


def test_the_steps_of_a_module():
    ex = get(TYPE)
    params = {"input_shape": [192, 28, 28], "branches": GOOGLENET_3A, "compare": False}
    values = ex.values(params)
    assert values["shape_2.1"] == (96, 28, 28) and values["shape_4.1"] == (192, 28, 28)
    assert (values["weights_2.2"], values["biases_2.2"]) == (128 * 9 * 96, 128)
    assert values["positions_2.2"] == 784 and values["mults_2.2"] == 784 * 128 * 9 * 96
    assert values["branch_mults_2"] == 14450688 + 86704128
    fields = {f.name: f for f in ex.fields(params, ex.values(params))}
    assert fields["branch_multiplications"].parts == tuple(f"branch_mults_{b}" for b in range(1, 5))
    assert fields["branch_params"].parts[-1] == "branch_params_4"
    assert fields["output_shape"].entry_weights == (1, 0, 0)  # H and W are the input's


def test_totals_and_savings_follow_a_students_branch_values():
    ex = get(TYPE)
    module = {"input_shape": [192, 28, 28], "branches": GOOGLENET_3A, "compare": False}
    own = ex.values(module, given={"branch_mults_1": np.int64(10), "branch_params_3": np.int64(5)})
    assert own["total_multiplications"] == 10 + 14450688 + 86704128 + 12443648 + 4816896
    assert own["total_params"] == 12352 + 129248 + 5 + 6176
    pair = {"input_shape": [192, 28, 28], "branches": BOTTLENECK, "compare": True}
    own = ex.values(pair, given={"branch_mults_1": np.int64(120), "branch_mults_2": np.int64(12)})
    assert own["savings_factor"] == 10
    for same in (0, 7):  # a division by nothing, or a factor of 1 that needs no work
        own = ex.values(pair, given={"branch_mults_1": np.int64(same),
                                     "branch_mults_2": np.int64(same)})
        assert "savings_factor" not in own


def test_any_two_slips_combine():
    ex = get(TYPE)
    params = {"input_shape": [192, 28, 28], "branches": BOTTLENECK, "compare": True}
    slips = {s.name: s for s in ex.slips(params)}
    both = ex.values(params, [slips["forgot_input_channels"], slips["forgot_biases"]])
    assert [both["branch_params_1"], both["branch_params_2"]] == [5 * 5 * 32, 16 + 5 * 5 * 32]
    both = ex.values(params, [slips["forgot_input_channels"], slips["k_not_k_squared"]])
    assert both["branch_mults_1"] == 28 * 28 * 32 * 5
    both = ex.values(params, [slips["per_position"], slips["k_not_k_squared"]])
    assert both["branch_mults_1"] == 32 * 5 * 192
    for pair in itertools.combinations(slips.values(), 2):
        assert ex.values(params, pair)["branch_mults_2"] > 0


def constant_answers(v):
    """Answers that do no work: all zeros, all ones, the input shape as the output shape."""
    n, compare = len(v.params["branches"]), v.params["compare"]
    for count, shape in ((0, [0, 0, 0]), (1, [1, 1, 1]), (0, v.params["input_shape"]),
                         (1, v.params["input_shape"])):
        answers = {"branch_multiplications": [count] * n, "branch_params": [count] * n,
                   "output_shape": shape}
        answers.update({"savings_factor": count} if compare else
                       {"total_multiplications": count, "total_params": count})
        yield answers


@pytest.mark.parametrize("compare", [False, True])
def test_constant_answers_earn_almost_nothing(compare):
    for seed in SEEDS:
        v = variant(seed, compare)
        for answers in constant_answers(v):
            score = grade_question(v, answers, 1).score
            assert score <= MAX_CONSTANT_SHARE, (seed, answers, score)


@pytest.mark.parametrize("params, words", [
    ({"branches": [["CONV3-8", "FC-10"]]}, ["branch 1, layer 2 (FC-10)", "do not belong"]),
    ({"branches": [["CONV1-8"], ["FLATTEN"]]}, ["branch 2, layer 1 (FLATTEN)"]),
    ({"branches": [["CONV3-8(1,0)"]]}, ["branch 1, layer 1 (CONV3-8(1,0))", "into 26x26",
                                        "keeps H x W"]),
    ({"branches": [["CONV1-8", "CONV3-8(2,1)"]]}, ["layer 2", "into 14x14"]),
    ({"branches": [["CONV2-8"]]}, ["into 29x29"]),
    ({"branches": [["POOL-3"]]}, ["POOL-3", "into 10x10"]),
    ({"branches": [["CONV3-8"], []]}, ["branch 2 is empty"]),
    ({"branches": [["CONV3-8"], ["CONV-3"]]}, ["branch 2, layer 1", "unknown layer"]),
    ({"branches": ["CONV3-8"]}, ["list of layer lists"]),
    ({"branches": [["CONV3-8"]], "input_shape": [64]}, ["(C, H, W)"]),
    ({"branches": [["CONV3-8"]], "compare": 1}, ["compare must be true or false"]),
    ({"branches": [["CONV3-8"]] * 3, "compare": True}, ["exactly two branches", "got 3"]),
    ({"branches": [["CONV3-8"], ["CONV3-16"]], "compare": True}, ["same output shape"]),
    ({"branches": [["CONV3-64"], ["POOL-3(1)"]], "compare": True}, ["multiplies nothing"]),
    ({"branches": [["CONV1-16", "CONV3-64"], ["CONV3-64"]], "compare": True}, ["no cheaper"]),
    ({"branches": [["POOL-3(1)"], ["BN"]]}, ["multiply nothing"]),
])
def test_bad_params(params, words):
    with pytest.raises(ParamError) as err:
        make_variant(TYPE, 0, {"input_shape": [64, 28, 28], **params})
    for w in words:
        assert w in str(err.value)


@pytest.mark.parametrize("params", [{}, {"compare": True},
                                    {"input_shape": [8, 7, 7], "branches": [["POOL-3(1)"],
                                                                            ["CONV3-4", "BN"]]}])
def test_templates_render(params):
    v = make_variant(TYPE, 3, params)
    sheet = Sheet("T", "C", [Question(1, 3, v)])
    problem = render_document([sheet], solutions=False)
    assert r"\texttt{CONV" in problem and r"\toprule" not in problem
    assert ("savings" in problem) == bool(v.params["compare"])
    solution = render_document([sheet], solutions=True)
    assert r"\toprule" in solution and r"\cdot" in solution
    if v.params["compare"]:
        assert "The savings factor is" in solution
    else:
        assert "Concatenating the branches gives" in solution
    if any("POOL" in x for b in v.params["branches"] for x in b):
        assert r"max pooling with stride 1 and padding 1" in problem


def test_many_variants_render():
    for seed in range(0, 300, 7):
        for compare in (False, True):
            sheet = Sheet("T", "C", [Question(1, 3, variant(seed, compare))])
            assert r"\toprule" in render_document([sheet], solutions=True)


# -- the figure of the branches on the problem sheet -----------------------------------------

def figure_of(v):
    return get(TYPE).problem(v.params)["figure"]


def test_a_module_is_drawn_as_columns_over_the_concatenation():
    v = make_variant(TYPE, 0, {"input_shape": [192, 28, 28],
                               "branches": [["CONV1-64"], ["CONV1-96", "CONV3-128"],
                                            ["CONV1-16", "CONV5-32"], ["POOL-3(1)", "CONV1-32"]]})
    f = figure_of(v)
    assert not f["compare"]
    assert [c["title"] for c in f["columns"]] == [f"branch {b}" for b in range(1, 5)]
    assert [[x["label"] for x in c["layers"]] for c in f["columns"]] == v.params["branches"]
    ys = [x["y"] for x in f["columns"][1]["layers"]]
    assert ys[0] > ys[1] > f["bottom"] and f["columns"][1]["arrows"] == [
        (ys[0] - f["half"], ys[1] + f["half"])]  # one arrow between its two boxes
    assert f["columns"][0]["end"] == ys[0] - f["half"]  # a short branch's line runs down
    assert all(len(c["heads"]) == len(c["layers"]) + 1 for c in f["columns"])
    xs = [c["x"] for c in f["columns"]]
    assert xs == sorted(xs) and sum(xs) == pytest.approx(0)  # centred under the input
    assert f["span"] <= 15.0 and f["box"] < f["span"] / 4
    sheet = Sheet("T", "C", [Question(1, 3, v)])
    problem = render_document([sheet], solutions=False)
    assert problem.count(r"\begin{tikzpicture}") == 1
    assert "concatenation along the channels" in problem and r"\item[1.]" not in problem
    assert "256" not in problem  # 64 + 128 + 32 + 32 output channels: an answer
    assert r"\node" not in problem and r"\draw" not in problem  # cheap: PGF's basic layer
    solution = render_document([sheet], solutions=True)  # its table lists the branches
    assert "tikzpicture" not in solution and r"\item[1.]" in solution


def test_a_comparison_is_drawn_as_two_alternatives():
    v = make_variant(TYPE, 5, {}, {"compare": True})
    f = figure_of(v)
    assert f["compare"] and [c["title"] for c in f["columns"]] == ["(a)", "(b)"]
    problem = render_document([Sheet("T", "C", [Question(1, 3, v)])], solutions=False)
    assert "concatenation" not in problem and problem.count(r"\small output") == 2


@pytest.mark.parametrize("branches, drawn", [
    ([["CONV3-8"]], False),
    ([["CONV3-8"], ["CONV1-4"]], True),
    ([["CONV1-4"]] * 6, True),
    ([["CONV1-4"]] * 7, False),  # listed instead
])
def test_two_to_six_branches_are_drawn(branches, drawn):
    v = make_variant(TYPE, 0, {"input_shape": [16, 7, 7], "branches": branches})
    assert (figure_of(v) is not None) == drawn
    problem = render_document([Sheet("T", "C", [Question(1, 3, v)])], solutions=False)
    assert ("tikzpicture" in problem) == drawn and (r"\item[1.]" in problem) != drawn


def test_drawn_modules_fit_the_page():
    for seed in range(40):
        for compare in (False, True):
            f = figure_of(variant(seed, compare))
            assert f is not None and f["span"] <= 15.0
            assert all(len(x["label"]) <= 16 for c in f["columns"] for x in c["layers"])


@pytest.mark.slow
@pytest.mark.usefixtures("needs_pdflatex")
def test_the_figures_compile(tmp_path):
    from deepdrill.generator.pdf import compile_tex

    questions = [Question(1, 3, variant(0)), Question(2, 3, variant(1, True)),
                 Question(3, 3, make_variant(TYPE, 0, {"input_shape": [16, 7, 7], "branches": [
                     ["CONV1-4"], ["CONV1-4", "BN", "RELU", "CONV3-8"], ["POOL-3(1)"],
                     ["CONV3-4"], ["CONV5-4"],
                     ["CONV1-2", "CONV5-4"]]}))]
    pdf = compile_tex(render_document([Sheet("T", "C", questions)], False), tmp_path)
    assert pdf.stat().st_size > 0


def test_the_graph_of_stored_strings_is_the_modules_graph():
    """graph() puts stored modules together from steps cached per branch: the same steps."""
    from deepdrill.generator.types import conv_cost
    for seed in range(200):
        for compare in (False, True):
            p = make_variant("conv_cost", seed, options={"compare": compare}).params
            assert all(type(x) is str for b in p["branches"] for x in b)
            branches = tuple(conv_cost.computed(b) for b in conv_cost._parse_branches(p["branches"]))
            assert get("conv_cost").graph(p) == conv_cost.module_graph(branches, compare), seed
