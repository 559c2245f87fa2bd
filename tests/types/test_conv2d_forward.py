"""conv2d_forward against torch.nn.functional.conv2d (float64), its slips, its draws (no
free points), and hand-checked cases."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.exercise import get, make_variant
from deepdrill.generator.render import Question, Sheet, render_document
from deepdrill.generator.steps import NotApplicable
from deepdrill.generator.types.conv2d_forward import CLIPPED_WEIGHT
from deepdrill.grader.score import grade_question
from deepdrill.model.tolerance import entries_match
from deepdrill.model.variant import Variant


TYPE = "conv2d_forward"
EX = get(TYPE)
RELU = {"activation": "relu"}
# (options, pinned): channels 1-3, bias on/off, stride 2, padding 1, ReLU, true convolution
CONFIGS = [
    ({}, {}),
    ({"in_channels": 2}, {}),
    ({"in_channels": 3, "out_channels": 2, "bias": True}, {}),
    ({"out_channels": 3, "bias": True}, RELU),
    ({}, {"stride": 2}),
    ({}, {"padding": 1}),
    ({"in_channels": 2, "out_channels": 2}, {"stride": 2, "padding": 1, **RELU}),
    ({}, {"flip_kernel": True}),
    ({"in_channels": 2, "bias": True}, {"flip_kernel": True, **RELU}),
    ({"bias": True}, RELU),
    ({"out_channels": 2}, {"padding": 1, "flip_kernel": True}),
    ({"kernel_size": 2, "size": 5}, {"stride": 2, "bias": 1}),
]
SEEDS_PER_CONFIG = 25  # 300 variants in all
# The options of the no-free-points sweep: defaults, and ReLU with padding, bias, 2 channels.
BOUNDED = [({}, {}), ({}, RELU), ({"in_channels": 2, "bias": True}, {"padding": 1, **RELU}),
           ({"bias": True}, {"padding": 1, **RELU})]
BOUND_SEEDS = range(300)
MAX_CONSTANT_SCORE = 0.1  # of the question's points
GRADED = 12  # the highest-scoring constant answers of a sweep, graded by the real grader


def torch_forward(params):
    """(pre-activation (C_out, H, W), output shaped as the exercise answers it) from torch."""
    x = torch.tensor(params["input"], dtype=torch.float64)
    k = torch.tensor(params["kernel"], dtype=torch.float64)
    two_d = x.ndim == 2 and k.ndim == 2
    x = x[None, None] if x.ndim == 2 else x[None]
    k = k[None, None] if k.ndim == 2 else k
    if params["flip_kernel"]:
        k = torch.flip(k, dims=(2, 3))
    b = params["bias"]
    b = None if b is None else torch.tensor(np.atleast_1d(b), dtype=torch.float64)
    z = F.conv2d(x, k, b, stride=params["stride"], padding=params["padding"])[0]
    y = F.relu(z) if params["activation"] == "relu" else z
    return z.numpy(), (y[0] if two_d else y).numpy()


@pytest.fixture(scope="module")
def sweep():
    """(variant, options, pinned) for every config and its seeds, made once."""
    return [(make_variant(TYPE, seed, pinned, options), options, pinned)
            for i, (options, pinned) in enumerate(CONFIGS)
            for seed in range(i * 1000, i * 1000 + SEEDS_PER_CONFIG)]


def test_seed_sweep_against_torch(sweep):
    assert len(sweep) >= 200
    for v, options, pinned in sweep:
        p = v.params
        assert {k: p[k] for k in pinned} == pinned, "pinned parameters are kept"
        _, want = torch_forward(p)
        assert np.shape(v.answers["output"]) == want.shape
        assert v.field("output").shape == list(want.shape)
        np.testing.assert_allclose(v.answers["output"], want, rtol=1e-12, atol=1e-12,
                                   err_msg=f"seed {v.seed}, {options}, {pinned}")
        channels = np.shape(p["input"])[0] if np.ndim(p["input"]) == 3 else 1
        assert channels == options.get("in_channels", 1)
        assert (p["bias"] is not None) == (options.get("bias", False) or "bias" in pinned)


def test_draws_are_hand_friendly(sweep):
    for v, _, _ in sweep:
        x, k = np.asarray(v.params["input"]), np.asarray(v.params["kernel"])
        assert x.shape[-1] <= 6 and x.dtype.kind == "i" and k.dtype.kind == "i"
        assert np.abs(k).max() <= 2 and 0 <= x.min() and x.max() <= 3
        z, y = torch_forward(v.params)
        assert len(np.unique(y)) >= min(3, y.size), f"seed {v.seed}: nearly constant"
        if v.params["activation"] == "relu":  # ReLU'(0) is a tie rule: never reached
            assert np.all(z != 0) and np.any(z < 0) and np.any(z > 0), f"seed {v.seed}"


def constant_answers(v):
    """All zeros, all ones, and the input copied where it has the answer's shape."""
    shape = np.shape(v.answers["output"])
    out = {"zeros": np.zeros(shape, dtype=int).tolist(),
           "ones": np.ones(shape, dtype=int).tolist()}
    if np.shape(v.params["input"]) == shape:
        out["input"] = v.params["input"]
    return out


def share_of_points(v, answer):
    """The share of the points an answer earns entry by entry, weighed as the field says
    (fast: the sweep grades only the highest of these with the real grader)."""
    f = v.field("output")
    right = entries_match(f.tolerance, np.ravel(answer).astype(float),
                          np.ravel(v.answers["output"]).astype(float))
    w = np.asarray(f.entry_weights or np.ones(len(right)))
    return float(w @ right / w.sum())


@pytest.mark.parametrize("options, pinned", BOUNDED)
def test_a_constant_answer_earns_at_most_a_tenth(options, pinned):
    scored = []
    for seed in BOUND_SEEDS:
        v = make_variant(TYPE, seed, pinned, options)
        scored += [(share_of_points(v, a), seed, name, v, a)
                   for name, a in constant_answers(v).items()]
    scored.sort(key=lambda t: t[:2])
    assert scored[-1][0] <= MAX_CONSTANT_SCORE, scored[-1][:3]
    assert scored[-1][0] > 0  # the bound is met with constants that do match some entries
    for share, seed, name, v, answer in scored[-GRADED:]:
        score = grade_question(v, {"output": answer}, 10).score
        assert score == pytest.approx(10 * share), (seed, name)
    if not options.get("in_channels") and pinned.get("padding"):
        assert any(name == "input" for _, _, name, _, _ in scored)  # "same" maps: copies tried


def test_clipped_entries_weigh_less():
    v = make_variant(TYPE, 0, {"input": [[1, 0, 2], [-1, 3, 1], [0, 2, -2]],
                               "kernel": [[1, -1], [0, 1]], "bias": 0.5, "activation": "relu"})
    assert v.answers["output"] == [[4.5, 0], [0, 0.5]]
    assert v.field("output").entry_weights == (1, CLIPPED_WEIGHT, CLIPPED_WEIGHT, 1)
    assert make_variant(TYPE, 0).field("output").entry_weights is None  # no ReLU: all equal
    # a blank answer earns the clipped entries' weighted share
    score = grade_question(v, {"output": [[0, 0], [0, 0]]}, 10).score
    assert score == pytest.approx(10 * 2 * CLIPPED_WEIGHT / (2 + 2 * CLIPPED_WEIGHT))


@pytest.mark.parametrize("options, pinned, words", [
    ({"size": 2, "kernel_size": 2}, RELU, r"ReLU exercise needs an output of at least 2x2 "
                                          r".*1 x 1x1.*use a larger size"),
    ({"in_channels": 2}, {"input": [[[1, 2], [3, 1]]] * 2, **RELU}, "at least 2x2"),
    ({"kernel_size": 1}, RELU, "found no draw for these options .* at most 10% .* with the "
                               "ReLU clipping at least one entry; use a larger size"),
    ({}, {"kernel": [[1, 1], [1, 2]], **RELU}, "found no draw.*or pin fewer"),
    ({}, {"input": [[0, 0, 0]] * 3}, "found no draw.*pin fewer"),
    ({"kernel_size": 2}, {"padding": 2}, "padding 2 and a 2x2 kernel the outer output entries "
                                         "see only padding zeros"),
])
def test_tight_options_are_refused_not_drawn_badly(options, pinned, words):
    for seed in range(3):
        with pytest.raises(ParamError, match=words):
            make_variant(TYPE, seed, pinned, options)


def test_tight_but_possible_options_always_give_a_good_draw():
    """A 2x2 output under a ReLU (one clipped entry of four) is drawn, never faked."""
    for seed in range(60):
        v = make_variant(TYPE, seed, {**RELU}, {"size": 3, "kernel_size": 2})
        z, y = torch_forward(v.params)
        assert np.shape(y) == (2, 2) and np.sum(z < 0) == 1 and np.all(z != 0)


def test_deterministic_per_seed_and_json_round_trip():
    for seed in range(4):
        for options, pinned in CONFIGS:
            v = make_variant(TYPE, seed, pinned, options)
            assert v == make_variant(TYPE, seed, pinned, options)
            assert Variant.from_json(json.loads(json.dumps(v.to_json()))) == v
    assert len({str(make_variant(TYPE, s).params["input"]) for s in range(100)}) > 90


def test_single_channel_round_trip_is_2d():
    for seed in range(20):
        v = make_variant(TYPE, seed, options={"bias": True})
        assert np.ndim(v.params["input"]) == 2 and np.ndim(v.params["kernel"]) == 2
        assert np.ndim(v.params["bias"]) == 0
        assert np.ndim(v.answers["output"]) == 2 and len(v.field("output").shape) == 2
        again = make_variant(TYPE, 0, v.params)  # the stored parameters solve the same
        assert again.answers == v.answers and again.params == v.params


ISSUE_INPUT = [[1, 2, 0], [0, 1, 3], [2, 1, 1]]
ISSUE_KERNEL = [[1, -1], [0, 2]]


@pytest.mark.parametrize("pinned, output", [
    # the README example: cross-correlation, no flip
    ({"input": ISSUE_INPUT, "kernel": ISSUE_KERNEL}, [[1, 8], [1, 0]]),
    # the same with true convolution: the kernel rotated is [[2, 0], [-1, 1]]
    ({"input": ISSUE_INPUT, "kernel": ISSUE_KERNEL, "flip_kernel": True}, [[3, 6], [-1, 2]]),
    # padding 1: the 2x2 identity kernel adds each padded pixel to its lower-right neighbour
    ({"input": [[1, 2], [3, 4]], "kernel": [[1, 0], [0, 1]], "padding": 1},
     [[1, 2, 0], [3, 5, 2], [0, 3, 4]]),
    # stride 2: sums of the four 2x2 blocks
    ({"input": [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]],
      "kernel": [[1, 1], [1, 1]], "stride": 2}, [[14, 22], [46, 54]]),
    # bias + ReLU: pre-activations [[4, -1], [-2, 0]] + 0.5
    ({"input": [[1, 0, 2], [-1, 3, 1], [0, 2, -2]], "kernel": [[1, -1], [0, 1]], "bias": 0.5,
      "activation": "relu"}, [[4.5, 0], [0, 0.5]]),
    # two input channels summed, minus the bias: (1 + 4) + (0 + 1 + 1 + 0) - 2
    ({"input": [[[1, 2], [3, 4]], [[0, 1], [1, 0]]],
      "kernel": [[[[1, 0], [0, 1]], [[1, 1], [1, 1]]]], "bias": [-2]}, [[[5]]]),
])
def test_hand_checked(pinned, output):
    v = make_variant(TYPE, 0, pinned)
    assert v.answers["output"] == output
    assert {k: v.params[k] for k in pinned} == pinned


# -- slips ------------------------------------------------------------------------------

# Each slip as torch computes it, changing the parameters independently of the type's code.
SLIP_PARAMS = {
    "flipped_kernel": lambda p: {**p, "flip_kernel": True},
    "did_not_flip": lambda p: {**p, "flip_kernel": False},
    "ignored_padding": lambda p: {**p, "padding": 0},
    "ignored_stride": lambda p: {**p, "stride": 1},
    "dropped_bias": lambda p: {**p, "bias": None},
    "forgot_relu": lambda p: {**p, "activation": "none"},
    "one_channel_only": lambda p: {**p, "input": p["input"][:1],
                                   "kernel": [k[:1] for k in p["kernel"]]},
}
EVERY_SLIP = [({"in_channels": 2, "out_channels": 2, "bias": True, "size": 5},
               {"padding": 1, "stride": 2, **RELU}),
              ({"in_channels": 3, "bias": True, "size": 5},
               {"padding": 1, "stride": 2, "flip_kernel": True, **RELU})]


@pytest.mark.parametrize("options, pinned", EVERY_SLIP)
def test_each_slip_against_torch(options, pinned):
    seen = set()
    for seed in range(30):
        v = make_variant(TYPE, seed, pinned, options)
        for m in v.mistakes:
            _, want = torch_forward(SLIP_PARAMS[m.name](v.params))
            np.testing.assert_allclose(m.answers["output"], want, rtol=1e-12, atol=1e-12,
                                       err_msg=f"{m.name}, seed {seed}")
            seen.add(m.name)
    flip = "did_not_flip" if pinned.get("flip_kernel") else "flipped_kernel"
    assert seen == set(SLIP_PARAMS) - {"flipped_kernel", "did_not_flip"} | {flip}


def test_every_mistake_differs_from_the_answer(sweep):
    names = set()
    for v, _, _ in sweep:
        right = np.asarray(v.answers["output"])
        for m in v.mistakes:
            names.add(m.name)
            wrong = np.asarray(m.answers["output"])
            assert wrong.shape != right.shape or \
                not np.allclose(wrong, right, rtol=1e-2, atol=1e-3), (m.name, v.seed)
    assert names == set(SLIP_PARAMS)


def slip(params, name):
    return next(s for s in EX.slips(params) if s.name == name)


def test_a_pair_of_slips_composes():
    v = make_variant(TYPE, 4, {"padding": 1, **RELU}, {"in_channels": 2, "bias": True})
    p = v.params
    for a, b in [("flipped_kernel", "dropped_bias"), ("one_channel_only", "forgot_relu"),
                 ("ignored_padding", "flipped_kernel")]:
        got = EX.answers(v.fields, EX.values(p, [slip(p, a), slip(p, b)]))["output"]
        _, want = torch_forward(SLIP_PARAMS[b](SLIP_PARAMS[a](p)))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=f"{a} + {b}")


def test_mistakes_reproduce_their_errors():
    # padded 5x5, stride 2: windows at (0,0), (0,2), (2,0), (2,2); pre-activations without
    # the bias [[2, 0], [4, 0]]; with the rotated kernel [[2, 0], [-1, 1]] [[1, -2], [2, 2]]
    v = make_variant(TYPE, 0, {"input": ISSUE_INPUT, "kernel": ISSUE_KERNEL, "bias": -1,
                               "padding": 1, "stride": 2, "activation": "relu"})
    by = {m.name: m.answers["output"] for m in v.mistakes}
    assert v.answers["output"] == [[1, 0], [3, 0]]
    assert by["forgot_relu"] == [[1, -1], [3, -1]]
    assert by["dropped_bias"] == [[2, 0], [4, 0]]
    assert by["flipped_kernel"] == [[0, 0], [1, 1]]
    assert by["ignored_padding"] == [[0]]  # one window, [[1, 2], [0, 1]]: 1 - 2 + 2 - 1
    assert np.shape(by["ignored_stride"]) == (4, 4)
    assert "one_channel_only" not in by and "did_not_flip" not in by
    two = make_variant(TYPE, 0, {"input": [[[1, 2], [3, 4]], [[0, 1], [1, 0]]],
                                 "kernel": [[[[1, 0], [0, 1]], [[1, 1], [1, 1]]]]})
    assert {m.name: m.answers["output"] for m in two.mistakes}["one_channel_only"] == [[[5]]]


def test_kernel_larger_than_input_with_padding():
    """Ignoring the padding here leaves no room for the kernel: that slip cannot be made,
    alone or in a pair."""
    v = make_variant(TYPE, 0, {"input": [[1, 2], [3, 4]], "padding": 1,
                               "kernel": [[1, 0, 1], [0, 1, 0], [1, 0, 1]]})
    assert v.answers["output"] == [[5, 5], [5, 5]]
    assert "ignored_padding" not in {m.name for m in v.mistakes}
    with pytest.raises(NotApplicable, match="does not fit"):
        EX.values(v.params, [slip(v.params, "ignored_padding"),
                             slip(v.params, "flipped_kernel")])


# -- parameters ---------------------------------------------------------------------------

@pytest.mark.parametrize("pinned, options, words", [
    ({"input": [[[1, 2], [3, 4]]] * 2, "kernel": [[[[1]]] * 3]}, {},
     "input has 2 channel.* but the kernel expects 3"),
    ({"input": [[[1, 2], [3, 4]]] * 2, "kernel": [[[[1]]] * 3]}, {"bias": True},
     "input has 2 channel.* but the kernel expects 3"),
    ({"input": [[1, 2], [3, 4]], "kernel": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}, {},
     "3x3 kernel does not fit the 2x2 input"),
    ({"input": [[1, 2, 3], [3, 4, 5], [1, 1, 1]]}, {"kernel_size": 4}, "does not fit"),
    ({"input": [[1, 2], [3, 4]], "kernel": [[1]], "activation": "tanh"}, {},
     "activation must be one of none, relu"),
    ({"input": [1, 2, 3], "kernel": [[1]]}, {}, "input must be 2-D"),
    ({"input": [1, 2, 3]}, {}, "input must be 2-D"),
    ({"kernel": [[[1]]]}, {}, "kernel must be 2-D"),
    ({"input": [[1, 2], [3]]}, {}, "input must be made of finite numbers"),
    ({"input": [[1, "a"], [3, 4]], "kernel": [[1]]}, {}, "finite numbers"),
    ({"kernel": [[1, float("nan")]]}, {}, "kernel must be made of finite numbers"),
    ({"input": [[]], "kernel": [[1]]}, {}, "input must be 2-D"),
    ({"bias": "big"}, {}, "bias must be made of finite numbers"),
    ({"stride": 1.5}, {}, "stride and padding must be whole numbers"),
    ({"padding": True}, {}, "whole numbers"),
    ({"flip_kernel": "yes"}, {}, "flip_kernel must be true or false"),
    ({"activation": ["relu"]}, {}, "activation must be one of"),
    ({}, {"size": 20}, "option size must be a whole number"),
    ({}, {"in_channels": 0}, "option in_channels must be a whole number from 1 to 4"),
    ({"dilation": 2}, {}, "unknown parameter"),
])
def test_bad_params(pinned, options, words):
    with pytest.raises(ParamError, match=words):
        make_variant(TYPE, 0, pinned, options)


def test_check_reports_mismatched_channels():
    """check() (used on stored or instructor-written parameter sets) says the same."""
    with pytest.raises(ParamError, match="input has 1 channel.* kernel expects 2"):
        EX.check({"input": [[1, 2], [3, 4]], "kernel": [[[[1]], [[1]]]]})
    with pytest.raises(ParamError, match="bias needs one value per output channel"):
        EX.check({"input": [[1, 2], [3, 4]], "kernel": [[1]], "bias": [1, 2]})


@pytest.mark.parametrize("change", [{"stride": 0}, {"padding": -1},
                                    {"padding": -1, "input": [[1, 2, 3]] * 3}])
def test_bad_stride_or_padding_is_a_clear_error(change):
    with pytest.raises(ParamError, match="stride must be at least 1 and padding at least 0"):
        make_variant(TYPE, 0, {"input": [[1, 2], [3, 4]], "kernel": [[1]], **change})


def test_wrong_bias_length_is_a_clear_error():
    with pytest.raises(ParamError, match=r"bias needs one value per output channel \(1\)"):
        make_variant(TYPE, 0, {"input": [[1, 2], [3, 4]], "kernel": [[1]], "bias": [1, 2]})


# -- the sheets ---------------------------------------------------------------------------

def render(v, solutions):
    return render_document([Sheet("T", "C", [Question(1, 4, v)])], solutions=solutions)


def test_templates_render_for_many_draws():
    for seed in range(40):
        options, pinned = CONFIGS[seed % len(CONFIGS)]
        v = make_variant(TYPE, seed, pinned, options)
        assert r"\ddfield{output}" in render(v, False)
        solution = render(v, True)
        assert solution.count(r"\mathbf{") == np.size(v.answers["output"])


def test_templates_render_2d():
    v = make_variant(TYPE, 0, {"input": ISSUE_INPUT, "kernel": ISSUE_KERNEL, "padding": 1,
                               "bias": 1, "activation": "relu", "flip_kernel": True})
    problem, solution = render(v, False), render(v, True)
    for text in (problem, solution):
        assert r"X = \begin{bmatrix}1 & 2 & 0 \\ 0 & 1 & 3 \\ 2 & 1 & 1\end{bmatrix}" in text
        assert r"K = \begin{bmatrix}1 & -1 \\ 0 & 2\end{bmatrix}" in text  # as given
        assert "followed by a ReLU" in text and r"\emph{true} convolution" in text
    assert "Rotated by" not in problem and "Solution" not in problem
    assert r"\begin{bmatrix}2 & 0 \\ -1 & 1\end{bmatrix}" in solution  # the rotated kernel
    assert "1 ring of zeros" in solution and r"\mathrm{ReLU}" in solution
    assert r"z_{1,1} = 0\cdot 2 + 0\cdot 0 + 0\cdot (-1) + 1\cdot 1 + 1 = \mathbf{2}" in solution


def test_templates_render_multi_channel():
    v = make_variant(TYPE, 3, options={"in_channels": 2, "out_channels": 3, "bias": True})
    problem, solution = render(v, False), render(v, True)
    assert "2 channels and 3 filters" in problem
    assert r"X_{2} = \begin{bmatrix}" in problem and r"K_{3,2} = \begin{bmatrix}" in problem
    assert "over all input channels, plus the bias" in solution
    assert r"z_{3," in solution and r"Y_{3} = \begin{bmatrix}" in solution
    assert "no flip" not in problem and "the kernel is not flipped" in problem


def test_worked_solution_reads_the_step_values():
    """The worked solution prints the values it is given; it computes none of them again."""
    v = make_variant(TYPE, 0, {"input": ISSUE_INPUT, "kernel": ISSUE_KERNEL})
    values = EX.values(v.params)
    shown = EX.worked(v.params, {**values, "preactivation": values["preactivation"] + 100,
                                 "output": [[7, 7], [7, 7]]})
    assert [e["value"] for e in shown["entries"]] == ["101", "108", "101", "100"]
    assert shown["output"] == [r"\begin{bmatrix}7 & 7 \\ 7 & 7\end{bmatrix}"]


# -- the sliding-window figure of the worked solution ------------------------------------

def figure_of(v):
    return EX.worked(v.params, EX.values(v.params))["figure"]


def cells(rect, unit):
    """A rectangle's corners (cm) in cells."""
    return tuple(round(rect[k] / unit, 6) for k in ("x0", "y0", "x1", "y1"))


def test_window_figure_marks_the_first_entry_and_the_next_by_the_stride():
    v = make_variant(TYPE, 0, {"input": [[1, 2, 0, 1, 3], [0, 1, 3, 2, 1], [2, 1, 1, 0, 2],
                                         [1, 0, 2, 2, 1], [3, 1, 0, 1, 2]],
                               "kernel": [[1, -1, 0], [0, 2, 1], [1, 0, -1]],
                               "stride": 2, "padding": 1})
    f = figure_of(v)
    u = f["step"]  # a cell, in cm; y points up, the input's top left corner at the origin
    assert (f["kh"], f["kw"], f["channels"]) == (3, 3, 1)
    grid, out = f["grids"]
    assert cells(grid, u) == (0, -7, 7, 0)
    assert [cells(r, u) for r in f["white"]] == [(1, -6, 6, -1)]  # inside the padding
    window, first = f["shaded"]
    assert cells(window, u) == (0, -3, 3, 0)  # 3x3 at the top left
    assert out["x1"] - out["x0"] == pytest.approx(3 * u)  # a 3x3 output
    x0, _, _, y1 = cells(out, u)
    assert cells(first, u) == (x0, y1 - 1, x0 + 1, y1) and y1 == -2  # top left, centred
    dashed = f["dashed"][0]  # the next window, stride 2 to the right, inset
    assert dashed["x0"] == pytest.approx(2.1 * u) and dashed["y1"] == pytest.approx(-0.1 * u)
    assert f["next"] == {"along": "columns", "entry": "z_{1,2}"} and f["entry"] == "z_{1,1}"
    assert f["value"]["text"] == latex.num(v.values["preactivation"][0, 0, 0])
    rows = [r["cells"] for r in f["rows"]]
    assert len(rows) == 7 and rows[0] == ["0"] * 7 and rows[-1] == ["0"] * 7
    assert [r[1:-1] for r in rows[1:-1]] == [[latex.num(x) for x in r] for r in v.params["input"]]
    assert all(r[0] == r[-1] == "0" for r in rows)


def test_window_figure_of_several_channels_and_a_single_column():
    v = make_variant(TYPE, 2, {}, {"in_channels": 3, "out_channels": 2})
    f = figure_of(v)
    assert [x["text"] for x in f["labels"]] == ["X_{1}", "X_{2}", "X_{3}", "Z_1"]
    assert f["entry"] == "z_{1,1,1}" and f["channels"] == 3
    assert max(r["x1"] for r in f["grids"]) <= 14.0 + 1e-9  # inside the margins
    lefts = [r["x0"] for r in f["grids"]]
    assert lefts == sorted(lefts) and len(f["shaded"]) == len(f["dashed"]) == 4
    column = make_variant(TYPE, 0, {"input": [[1, 2], [3, 4], [5, 6]], "kernel": [[1, -1]]})
    g = figure_of(column)
    assert g["next"]["along"] == "rows"
    assert g["dashed"][0]["y1"] == pytest.approx(-1.1 * g["step"])  # one row down
    single = make_variant(TYPE, 0, {"input": [[1, 2], [3, 4]], "kernel": [[1, 0], [0, 1]]})
    assert figure_of(single)["next"] is None and figure_of(single)["dashed"] == []


def test_grids_lie_on_whole_cells():
    """pgf draws a grid's lines at multiples of its step: every corner must be one."""
    for options, pinned in CONFIGS:
        for seed in range(5):
            f = figure_of(make_variant(TYPE, seed, pinned, options))
            for r in f["grids"]:
                for corner in (r["x0"], r["y0"], r["x1"], r["y1"]):
                    assert corner / f["step"] == pytest.approx(round(corner / f["step"]),
                                                               abs=0.02)


def test_a_large_pinned_input_is_printed_not_drawn():
    x = np.arange(400).reshape(20, 20) % 4
    v = make_variant(TYPE, 0, {"input": x.tolist(), "kernel": [[1, 0], [0, 1]], "padding": 1})
    steps = EX.worked(v.params, EX.values(v.params))
    assert steps["figure"] is None and steps["padded"]
    tex = render_document([Sheet("T", "C", [Question(1, 5, v, "q1")])], True)
    assert "tikzpicture" not in tex and r"\begin{bmatrix}0 & 0" in tex


@pytest.mark.parametrize("options, pinned", [({}, {}), ({"in_channels": 2, "bias": True},
                                                        {"padding": 1, **RELU})])
def test_the_figure_is_in_the_solution_only(options, pinned):
    v = make_variant(TYPE, 4, pinned, options)
    problem = render_document([Sheet("T", "C", [Question(1, 5, v, "q1")])], False)
    solution = render_document([Sheet("T", "C", [Question(1, 5, v, "q1")])], True)
    assert r"\usepackage{tikz}" not in problem and "tikzpicture" not in problem  # loaded for solutions only
    assert r"\usepackage{tikz}" in solution
    assert solution.count(r"\begin{tikzpicture}") == 1
    # cheap to typeset for a class: PGF's basic layer, no TikZ nodes or parsed paths
    assert r"\node" not in solution and r"\draw" not in solution
    assert ("(shaded grey)" in solution) == bool(pinned.get("padding"))


@pytest.mark.parametrize("count, columns, per_line", [(1, 6, 1), (3, 6, 3), (4, 6, 2),
                                                      (4, 3, 4), (4, 5, 2), (2, 8, 2)])
def test_matrices_per_line_of_the_problem(count, columns, per_line):
    from deepdrill.generator.types.conv2d_forward import per_line as fitting

    assert fitting(count, columns) == per_line


@pytest.mark.slow
@pytest.mark.usefixtures("needs_pdflatex")
def test_the_figures_compile(tmp_path):
    """pdflatex takes the figure at one and four channels, padding, stride and a 1x1 output."""
    from deepdrill.generator.pdf import compile_tex

    cases = [({"bias": True, "kernel_size": 2}, {"padding": 1, **RELU}),
             ({"in_channels": 4, "out_channels": 2, "size": 5}, {"padding": 1}),
             ({"in_channels": 2}, {"stride": 2}),
             ({}, {"input": [[1, -2], [3, 4]], "kernel": [[0.5, 0.25], [1, 2]]})]
    questions = [Question(i, 5, make_variant(TYPE, i, pinned, options), f"q{i}")
                 for i, (options, pinned) in enumerate(cases, 1)]
    pdf = compile_tex(render_document([Sheet("T", "C", questions)], True), tmp_path)
    assert pdf.stat().st_size > 0
