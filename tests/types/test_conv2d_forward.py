"""conv2d_forward against torch.nn.functional.conv2d (float64), and hand-checked cases."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepdrill.errors import ParamError
from deepdrill.generator.exercise import make_variant
from deepdrill.generator.render import Question, Sheet, render_document
from deepdrill.model.variant import Variant


TYPE = "conv2d_forward"
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


def test_relu_draws_have_no_zero_pre_activation():
    """ReLU'(0) is a tie rule: drawn ReLU variants never reach it, and ReLU does something."""
    for seed in range(240):
        options, pinned = CONFIGS[seed % len(CONFIGS)]
        v = make_variant(TYPE, seed, {**pinned, **RELU}, options)
        z, _ = torch_forward(v.params)
        assert np.all(z != 0), f"seed {seed}, {options}, {pinned}"
        assert np.any(z > 0) and np.any(z < 0), f"seed {seed}"


def test_draws_are_hand_friendly(sweep):
    for v, _, _ in sweep:
        x, k = np.asarray(v.params["input"]), np.asarray(v.params["kernel"])
        assert x.shape[-1] <= 6 and x.dtype.kind == "i" and k.dtype.kind == "i"
        assert np.abs(k).max() <= 2 and 0 <= x.min() and x.max() <= 3
        z, _ = torch_forward(v.params)
        assert np.mean(z == 0) <= 0.25, f"seed {v.seed}: mostly zeros"


def test_every_mistake_differs_from_the_answer(sweep):
    names = set()
    for v, _, _ in sweep:
        right = np.asarray(v.answers["output"])
        for m in v.mistakes:
            names.add(m.name)
            wrong = np.asarray(m.answers["output"])
            assert wrong.shape != right.shape or \
                not np.allclose(wrong, right, rtol=1e-2, atol=1e-3), (m.name, v.seed)
    assert names == {"flipped_kernel", "did_not_flip", "ignored_padding", "ignored_stride",
                     "dropped_bias", "forgot_relu", "one_channel_only"}


def test_deterministic_per_seed_and_json_round_trip():
    for seed in range(10):
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
    # the case from the issue: cross-correlation, no flip
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


@pytest.mark.parametrize("pinned, options, words", [
    ({"input": [[[1, 2], [3, 4]]] * 2, "kernel": [[[[1]]] * 3]}, {},
     "input has 2 channel.* but the kernel expects 3"),
    ({"input": [[1, 2], [3, 4]], "kernel": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}, {},
     "3x3 kernel does not fit the 2x2 input"),
    ({"input": [[1, 2, 3], [3, 4, 5], [1, 1, 1]]}, {"kernel_size": 4}, "does not fit"),
    ({"input": [[1, 2], [3, 4]], "kernel": [[1]], "activation": "tanh"}, {},
     "activation must be one of none, relu"),
    ({"input": [1, 2, 3], "kernel": [[1]]}, {}, "input must be 2-D"),
    ({"dilation": 2}, {}, "unknown parameter"),
])
def test_bad_params(pinned, options, words):
    with pytest.raises(ParamError, match=words):
        make_variant(TYPE, 0, pinned, options)


def test_check_reports_mismatched_channels():
    """check() (used on stored or instructor-written parameter sets) says the same."""
    from deepdrill.generator.exercise import get

    with pytest.raises(ParamError, match="input has 1 channel.* kernel expects 2"):
        get(TYPE).check({"input": [[1, 2], [3, 4]], "kernel": [[[[1]], [[1]]]]})
    with pytest.raises(ParamError, match="bias needs one value per output channel"):
        get(TYPE).check({"input": [[1, 2], [3, 4]], "kernel": [[1]], "bias": [1, 2]})


# Regressions for bugs this file found: a mistake re-solved with padding 0 where the kernel
# no longer fits crashed the whole variant, and sample() met a bad stride, padding or bias
# length before check() could explain it.

def test_kernel_larger_than_input_with_padding():
    v = make_variant(TYPE, 0, {"input": [[1, 2], [3, 4]], "padding": 1,
                               "kernel": [[1, 0, 1], [0, 1, 0], [1, 0, 1]]})
    assert v.answers["output"] == [[5, 5], [5, 5]]
    assert "ignored_padding" not in {m.name for m in v.mistakes}  # cannot be made here


@pytest.mark.parametrize("change", [{"stride": 0}, {"padding": -1},
                                    {"padding": -1, "input": [[1, 2, 3]] * 3}])
def test_bad_stride_or_padding_is_a_clear_error(change):
    with pytest.raises(ParamError, match="stride must be at least 1 and padding at least 0"):
        make_variant(TYPE, 0, {"input": [[1, 2], [3, 4]], "kernel": [[1]], **change})


def test_wrong_bias_length_is_a_clear_error():
    with pytest.raises(ParamError, match=r"bias needs one value per output channel \(1\)"):
        make_variant(TYPE, 0, {"input": [[1, 2], [3, 4]], "kernel": [[1]], "bias": [1, 2]})


def render(v, solutions):
    return render_document([Sheet("T", "C", [Question(1, 4, v)])], solutions=solutions)


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
