"""pooling against torch max_pool2d / avg_pool2d + autograd (float64), its slips, its draws
(no tied maxima, overlaps that add up, no free points), hand-checked cases, refusals."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepdrill.errors import ParamError
from deepdrill.generator.exercise import get, make_variant
from deepdrill.generator.pool import windows
from deepdrill.generator.render import Question, Sheet, render_document
from deepdrill.grader.score import grade_question

TYPE = "pooling"
EX = get(TYPE)
CONFIGS = [  # (options, pinned)
    ({}, {"mode": "max"}),
    ({}, {"mode": "avg"}),
    ({"overlap": True}, {"mode": "max"}),
    ({"overlap": True}, {"mode": "avg"}),
    ({"channels": 2}, {}),
    ({"overlap": True, "channels": 2}, {}),
    ({"input_size": 6}, {"size": 3}),
    ({"input_size": 5}, {"mode": "max", "size": 2, "stride": 1}),
]
SEEDS = 30  # per config: 240 variants


def torch_pool(params):
    """output and grad_input from torch autograd, shaped as the exercise answers them."""
    x = torch.tensor(params["input"], dtype=torch.float64, requires_grad=True)
    xx = x[None] if x.ndim == 2 else x
    fn = F.max_pool2d if params["mode"] == "max" else F.avg_pool2d
    y = fn(xx[None], params["size"], params["stride"])[0]
    out = {"output": y[0] if x.ndim == 2 else y}
    if params["grad_output"] is not None:
        y.backward(torch.tensor(params["grad_output"], dtype=torch.float64).reshape(y.shape))
        out["grad_input"] = x.grad
    return {k: v.detach().numpy() for k, v in out.items()}


@pytest.fixture(scope="module")
def variants():
    return [(v, options, pinned) for options, pinned in CONFIGS
            for v in (make_variant(TYPE, seed, pinned, options) for seed in range(SEEDS))]


def test_seed_sweep_against_torch_autograd(variants):
    assert len(variants) >= 200
    for v, options, pinned in variants:
        want = torch_pool(v.params)
        assert set(v.answers) == set(want) == {"output", "grad_input"}
        for name, value in want.items():
            np.testing.assert_allclose(v.answers[name], value, rtol=1e-12, atol=1e-12,
                                       err_msg=f"{name}, seed {v.seed}, {options}, {pinned}")
        assert {k: v.params[k] for k in pinned} == pinned


def test_draws_are_hand_friendly_and_never_tied(variants):
    for v, options, _ in variants:
        p = v.params
        x = np.asarray(p["input"], dtype=float)
        assert np.all(x == np.round(x)) and x.shape[-1] <= 6
        assert np.ndim(x) == (3 if options.get("channels", 1) > 1 else 2)
        w = windows(x if x.ndim == 3 else x[None], p["size"], p["stride"])
        flat = w.reshape(*w.shape[:-2], -1)
        if p["mode"] == "max":  # a unique maximum in every window: no tie rule needed
            assert np.all(np.sum(flat == flat.max(-1, keepdims=True), -1) == 1), v.seed
        assert np.all(np.asarray(p["grad_output"]) != 0)
        y = np.ravel(v.answers["output"])
        assert len(np.unique(y)) >= min(3, y.size)


def test_overlapping_max_windows_share_a_maximum(variants):
    """Under overlap the draws make some entry the maximum of two windows: its gradient
    is a sum, and the slip of not summing shows."""
    seen = 0
    for v, options, pinned in variants:
        if v.params["mode"] == "max" and v.params["stride"] < v.params["size"]:
            assert "overlap_not_summed" in {m.name for m in v.mistakes}, v.seed
            seen += 1
    assert seen >= 40


def test_default_is_a_small_non_overlapping_max_or_avg_pool():
    modes = set()
    for seed in range(30):
        v = make_variant(TYPE, seed)
        assert (v.params["size"], v.params["stride"]) == (2, 2)
        assert np.shape(v.params["input"]) == (4, 4)
        modes.add(v.params["mode"])
    assert modes == {"max", "avg"}


def test_constant_answers_earn_at_most_a_tenth(variants):
    for v, _, _ in variants[::2]:
        for c in (0, 1):
            answers = {f.name: np.full(f.shape, c).tolist() for f in v.fields}
            assert grade_question(v, answers, 10).score <= 1.0 + 1e-9, (v.seed, c)


# -- slips ---------------------------------------------------------------------------------

def test_each_slip_against_torch(variants):
    seen = set()
    for v, _, _ in variants:
        p = v.params
        k = p["size"]
        for m in v.mistakes:
            seen.add(m.name)
            if m.name == "overlap_not_summed":
                continue  # checked by hand below
            # spreading dL/dy over a window is avg pooling's backward times k^2
            scale = k * k if m.name in ("gradient_spread_over_window",
                                        "not_divided_by_window_size") else 1
            want = torch_pool({**p, "mode": "avg"})["grad_input"] * scale
            np.testing.assert_allclose(m.answers["grad_input"], want, rtol=1e-12, atol=1e-12,
                                       err_msg=f"{m.name}, seed {v.seed}")
    assert seen == {"gradient_spread_over_window", "gradient_averaged_over_window",
                    "not_divided_by_window_size", "overlap_not_summed"}


def test_overlap_not_summed_by_hand():
    # 3x3 input, 2x2 max windows, stride 1: the centre 9 is the maximum of all four
    v = make_variant(TYPE, 0, {"input": [[1, 2, 3], [4, 9, 5], [6, 7, 8]], "mode": "max",
                               "size": 2, "stride": 1, "grad_output": [[1, 2], [3, 4]]})
    assert v.answers["output"] == [[9, 9], [9, 9]]
    assert v.answers["grad_input"] == [[0, 0, 0], [0, 10, 0], [0, 0, 0]]
    by = {m.name: m.answers["grad_input"] for m in v.mistakes}
    assert by["overlap_not_summed"] == [[0, 0, 0], [0, 4, 0], [0, 0, 0]]  # the last window
    assert by["gradient_spread_over_window"] == [[1, 3, 2], [4, 10, 6], [3, 7, 4]]


def test_wrong_maximum_routed_consistently_earns_carried_forward_credit():
    v = make_variant(TYPE, 0, {"input": [[1, 5, 2, 0], [3, 4, 6, 1], [7, 2, 8, 3], [0, 1, 2, 9]],
                               "mode": "max", "grad_output": [[2, -1], [3, -2]]})
    assert v.answers["output"] == [[5, 6], [7, 9]]
    # the student took 4 (not 5) as the first window's maximum and routed its gradient there
    answers = {"output": [[4, 6], [7, 9]],
               "grad_input": [[0, 0, 0, 0], [0, 2, -1, 0], [3, 0, 0, 0], [0, 0, 0, -2]]}
    r = grade_question(v, answers, 10)
    assert not r.fields["output"].correct and r.fields["grad_input"].carried > 0
    assert r.fields["grad_input"].score == pytest.approx(r.fields["grad_input"].max_score)


@pytest.mark.parametrize("pinned, answers", [
    # the textbook 4x4 example: 2x2 max pooling, stride 2
    ({"input": [[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], "mode": "max",
      "grad_output": [[1, 2], [3, 4]]},
     {"output": [[6, 8], [3, 4]],
      "grad_input": [[0, 0, 0, 0], [0, 1, 0, 2], [3, 0, 0, 0], [0, 0, 0, 4]]}),
    ({"input": [[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]], "mode": "avg",
      "grad_output": [[4, 8], [-4, 2]]},
     {"output": [[3.25, 5.25], [2, 2]],
      "grad_input": [[1, 1, 2, 2], [1, 1, 2, 2], [-1, -1, 0.5, 0.5], [-1, -1, 0.5, 0.5]]}),
    # forward only: grad_output pinned to null
    ({"input": [[1, 2], [3, 4]], "mode": "avg", "grad_output": None}, {"output": [[2.5]]}),
])
def test_hand_checked(pinned, answers):
    v = make_variant(TYPE, 0, pinned)
    assert v.answers == answers


def test_forward_only_option():
    v = make_variant(TYPE, 0, options={"backward": False})
    assert v.params["grad_output"] is None and set(v.answers) == {"output"}


@pytest.mark.parametrize("pinned, options, words", [
    ({"mode": "min"}, {}, "mode must be one of max, avg"),
    ({"size": 0}, {}, "size must be a whole number from 1 to 8"),
    ({"stride": 1.5}, {}, "stride must be a whole number"),
    ({"input": [[1, 2], [3, 4]], "size": 3}, {}, "3x3 window does not fit the 2x2 input"),
    ({"input": [[1, 2], [3, 4]], "grad_output": [[1, 2]]}, {}, "grad_output must have the "
                                                              "output's shape 1x1"),
    ({"input": [1, 2, 3]}, {}, "input must be 2-D"),
    ({"input": np.ones((9, 9)).tolist()}, {}, "at most 8"),
    ({"input": [[1e300, 1], [1, 1]]}, {}, "of a sheet's size"),
    ({}, {"channels": 5}, "option channels must be a whole number from 1 to 3"),
    ({}, {"overlap": "yes"}, "option overlap must be true or false"),
])
def test_bad_params(pinned, options, words):
    with pytest.raises(ParamError, match=words):
        make_variant(TYPE, 0, pinned, options)


def test_templates_render_with_a_figure():
    for options, pinned in CONFIGS:
        v = make_variant(TYPE, 2, pinned, options)
        problem = render_document([Sheet("T", "C", [Question(1, 5, v)])], False)
        solution = render_document([Sheet("T", "C", [Question(1, 5, v)])], True)
        assert r"\usepackage{tikz}" in problem and r"\begin{tikzpicture}" in problem
        windows_drawn = np.prod(np.shape(v.answers["output"]))
        assert problem.count("rounded corners") == windows_drawn
        assert "Solution" in solution and r"\texttt{grad\_input}" in solution
