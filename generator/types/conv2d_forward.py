"""conv2d_forward: a (multi-channel) convolution, optionally with bias and ReLU.

Convolution is what deep-learning frameworks compute (cross-correlation); with
``flip_kernel: true`` the kernel is rotated by 180 degrees first (true convolution).
A single-channel problem is given and answered as 2-D lists; otherwise the input
is (C, H, W), the kernel (C_out, C_in, kH, kW) and the output (C_out, H_out, W_out).

No free points: a constant answer (all zeros, all ones, the input copied where the
shapes fit) earns at most ``MAX_CONSTANT_SHARE`` of the points on every drawn variant.

* **Entry weights.** Under a ReLU an entry clipped to 0 weighs ``CLIPPED_WEIGHT`` of a
  positive one: the student still finds its sign, but writes a 0 that a blank answer
  holds too, so it cannot be worth a full entry. Without a ReLU all entries weigh the same.
* **Draws.** A candidate is kept only when each constant answer matches at most
  ``MAX_CONSTANT_SHARE`` of the weighted entries: under a ReLU, at least one entry clipped
  (the ReLU matters) but few, and no pre-activation exactly 0 (the ReLU'(0) tie); without
  one, few exact zeros or ones. The output also takes ``MIN_DISTINCT`` different values.
  Options that leave no such draw (a 1x1 output under a ReLU) raise ParamError saying what
  to change; a fully pinned problem is kept as the instructor gave it.

The worked solution draws the sliding window (:func:`window_figure`): every input
channel as a grid (the padding ring greyed), the first output entry's window shaded and
the next one's dashed, and the output map of filter 1 with those two cells marked.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.conv import (activate, array, as_map, bias_vector, check_fit,
                                      check_layer, convolve, orient, pad)
from deepdrill.generator.exercise import Exercise, int_option, jsonable, register, require
from deepdrill.generator.randomness import choice, draw_batch_until, ints
from deepdrill.generator.steps import Slip, Step
from deepdrill.model.fields import real

DEFAULTS = {"bias": None, "stride": 1, "padding": 0, "activation": "none", "flip_kernel": False}
KERNEL_SIZES = (2, 3)  # of a random kernel
OUT_SIZES = {1: (3, 4), 2: (2, 3)}  # a random output side: one input channel / more
MIN_SIZE, MAX_SIZE = 2, 6  # a random input side
MAX_CHANNELS = 4
INPUT_LOW, INPUT_HIGH = 0, 3  # 1 to 3 under a ReLU: fewer windows that sum to 0
KERNEL_LOW, KERNEL_HIGH = -2, 2  # without 0 under a ReLU
BIAS_LOW, BIAS_HIGH = -3, 3  # without 0
MAX_CONSTANT_SHARE = 0.1  # of the points a constant answer may earn
CLIPPED_WEIGHT = 0.25  # an entry a ReLU clips to 0, relative to a positive one
MIN_DISTINCT = 3  # different values in a random output (fewer entries: all different)
BATCH, MAX_BATCHES = 128, 30  # candidates tested at once, and batches before refusing
# Fewest output entries under a ReLU: one clipped, and a blank answer still within the bound
# (CLIPPED_WEIGHT / (CLIPPED_WEIGHT + n - 1) <= MAX_CONSTANT_SHARE): 4, a 2x2 map.
MIN_RELU_ENTRIES = math.ceil(1 + CLIPPED_WEIGHT * (1 / MAX_CONSTANT_SHARE - 1))
# The problem's matrices: a line of LINE_WIDTH cm, a matrix column and the rest (name,
# brackets, space) in cm, for how many fit side by side.
LINE_WIDTH, MATRIX_COLUMN, MATRIX_EXTRA = 16.0, 0.5, 2.2
# The window figure: its width in cells (grids, gaps, the arrow) shares FIGURE_WIDTH cm;
# a cell is at most MAX_CELL cm, and below MIN_CELL (a large pinned input) no figure.
FIGURE_WIDTH, MAX_CELL, MIN_CELL = 14.0, 0.6, 0.32
# In whole cells (so every grid line falls on the step): between grids, before the output.
GRID_GAP, ARROW_GAP = 1, 2
INSET, LABEL_GAP = 0.1, 0.15  # in cells: the dashed window inside its cells, a label below
LABEL_HEIGHT = 0.45  # cm below a grid's label gap that its label (X_1) takes
DIGIT = 0.25  # cm, about a digit's width at the figure's font (with some room)
FONTS = ((0.52, r"\small"), (0.42, r"\footnotesize"), (0.0, r"\scriptsize"))


# -- the steps (the kernels are shared: deepdrill.generator.conv) ------------------

def activate_single(preactivation: Any, activation: str) -> np.ndarray:
    """The one output map of a single-channel problem, 2-D as the problem is."""
    return activate(preactivation, activation)[0]


STEPS = (
    Step("x", as_map, ("input",)),
    Step("filters", orient, ("kernel", "flip_kernel")),
    Step("biases", bias_vector, ("bias", "filters")),
    Step("padded", pad, ("x", "padding")),
    Step("preactivation", convolve, ("padded", "filters", "biases", "stride")),
)
GRAPH = (*STEPS, Step("output", activate, ("preactivation", "activation")))
GRAPH_2D = (*STEPS, Step("output", activate_single, ("preactivation", "activation")))


def first_channel(params: dict[str, Any]) -> dict[str, Any]:
    return {"input": params["input"][:1], "kernel": [k[:1] for k in params["kernel"]]}


def is_2d(params: dict[str, Any]) -> bool:
    return np.ndim(params["input"]) == 2 and np.ndim(params["kernel"]) == 2


def entry_weights(z: np.ndarray, relu: bool) -> np.ndarray:
    """Per output entry: CLIPPED_WEIGHT where a ReLU clips it to 0, else 1."""
    return np.where(z <= 0, CLIPPED_WEIGHT, 1.0) if relu else np.ones_like(z)


@register
class Conv2dForward(Exercise):
    id = "conv2d_forward"
    title = "Convolution layer: forward pass"
    summary = "compute a (multi-channel) convolution, optionally with bias and ReLU"
    params = ("input", "kernel", "bias", "stride", "padding", "activation", "flip_kernel")
    options = {"size": None, "kernel_size": None, "in_channels": 1, "out_channels": 1,
               "bias": False}
    work_space = "7cm"
    solution_packages = ("tikz",)  # the sliding window in the worked solution: problem sheets compile without it

    def sample(self, rng, pinned, options):
        p = {**DEFAULTS, **pinned}
        check_layer(p)
        x_pin = as_map(array(pinned["input"], "input")) if "input" in pinned else None
        k_pin = orient(array(pinned["kernel"], "kernel"), False) if "kernel" in pinned else None
        draw_bias = p["bias"] is None and bool(options["bias"])
        if x_pin is not None and k_pin is not None and not draw_bias:
            return jsonable(p)  # nothing to draw: the instructor's problem, as given
        shapes = _shapes(rng, p, x_pin, k_pin, options)
        batch, i = draw_batch_until(
            rng, lambda r: _candidates(r, p, x_pin, k_pin, shapes, draw_bias),
            lambda b: _hand_friendly(*b, p), tries=MAX_BATCHES,
            refusal=_refusal(p, bool(pinned.keys() & {"input", "kernel", "bias"})))
        xs, ks, bs = (None if a is None else a[i] for a in batch)
        single = shapes[0][0] == shapes[1][0] == 1 and all(
            np.ndim(pinned.get(n, [[]])) == 2 for n in ("input", "kernel"))
        if x_pin is None:
            p["input"] = xs[0] if single else xs
        if k_pin is None:
            p["kernel"] = ks[0, 0] if single else ks
        if draw_bias:
            p["bias"] = bs[0] if single else bs
        return jsonable(p)

    def check(self, params):
        p = {**DEFAULTS, **params}
        require(p, "input", "kernel")
        x, k = as_map(array(p["input"], "input")), orient(array(p["kernel"], "kernel"), False)
        if x.shape[0] != k.shape[1]:
            raise ParamError(f"the input has {x.shape[0]} channel(s) but the kernel expects "
                             f"{k.shape[1]}")
        p["stride"], p["padding"] = check_layer(p, k.shape[0])
        check_fit(x.shape[1:], k.shape[2:], p)
        p["flip_kernel"] = bool(p["flip_kernel"])
        return jsonable(p)

    def graph(self, params):
        return GRAPH_2D if is_2d(params) else GRAPH

    def fields(self, params, values):
        z = values["preactivation"]
        shape = list(z.shape[1:] if is_2d(params) else z.shape)
        relu = params["activation"] == "relu"
        return [real("output", "the output feature map", shape,
                     entry_weights=entry_weights(z, relu).ravel() if relu else None)]

    def slips(self, params):
        flip = params["flip_kernel"]
        slips = [
            Slip("did_not_flip", "you did not flip the kernel, but this exercise asks for "
                 "true convolution", change={"flip_kernel": False}) if flip else
            Slip("flipped_kernel", "you flipped the kernel; deep-learning convolution is "
                 "cross-correlation, with no flip", change={"flip_kernel": True}),
            Slip("ignored_padding", "you ignored the zero padding", change={"padding": 0}),
            Slip("ignored_stride", "you moved the kernel by 1 instead of the stride",
                 change={"stride": 1}),
            Slip("dropped_bias", "you left out the bias", change={"bias": None}),
            Slip("forgot_relu", "you did not apply the ReLU", change={"activation": "none"}),
        ]
        if np.ndim(params["input"]) == 3 and len(params["input"]) > 1:
            slips.append(Slip("one_channel_only", "you used only the first input channel; a "
                              "filter sums its products over all input channels",
                              change=first_channel))
        return slips

    def problem(self, params):
        x, k = as_map(params["input"]), orient(params["kernel"], False)
        bias = params["bias"]
        return {"two_d": is_2d(params), "inputs": [latex.matrix(c) for c in x],
                "per_line": {"inputs": per_line(x.shape[0], x.shape[2]),
                             "kernels": per_line(k.shape[1], k.shape[3])},
                "kernels": [[latex.matrix(kc) for kc in ko] for ko in k],
                "bias": None if bias is None else [latex.num(b) for b in np.ravel(bias)]}

    def worked(self, params, values):
        padded, filters, biases, z = (values[n] for n in ("padded", "filters", "biases",
                                                          "preactivation"))
        y = np.reshape(values["output"], z.shape)
        s, (kh, kw) = params["stride"], filters.shape[2:]
        entries = []
        for (o, i, j), value in np.ndenumerate(z):
            window = padded[:, i * s:i * s + kh, j * s:j * s + kw]
            sums = [latex.dot(list(zip(w.ravel(), k.ravel())))  # one per input channel
                    for w, k in zip(window, filters[o])]
            text = latex.Tex(" + ".join(rf"\big({t}\big)" for t in sums) if len(sums) > 1
                             else sums[0])
            if params["bias"] is not None:
                text = latex.Tex(f"{text} + {latex.term(biases[o])}")
            entries.append({"channel": o + 1, "row": i + 1, "col": j + 1, "sum": text,
                            "value": latex.num(value), "relu": latex.num(y[o, i, j])})
        x = values["x"]
        figure = window_figure(padded, int(params["padding"]), s, (kh, kw), z[0],
                               not is_2d(params))
        return {"two_d": is_2d(params), "entries": entries, "figure": figure,
                "padded": [latex.matrix(c) for c in padded] if params["padding"] else [],
                "flipped": [[latex.matrix(kc) for kc in ko] for ko in filters]
                if params["flip_kernel"] else [],
                "out_h": z.shape[1], "out_w": z.shape[2], "h": x.shape[1], "w": x.shape[2],
                "kh": kh, "kw": kw, "output": [latex.matrix(m) for m in y]}


def per_line(count: int, columns: int) -> int:
    """Matrices of ``columns`` columns a displayed line holds, spread evenly over the
    lines (four 6x6 channels: 2 + 2, not 3 + 1)."""
    room = max(1, int(LINE_WIDTH // (columns * MATRIX_COLUMN + MATRIX_EXTRA)))
    lines = -(-count // room)
    return -(-count // lines)


# -- the window figure ------------------------------------------------------------

def window_figure(padded: np.ndarray, padding: int, stride: int, kernel: tuple[int, int],
                  z: np.ndarray, per_filter: bool = False) -> dict[str, Any] | None:
    """The padded input channels side by side, each with the window of the first output
    entry and, when the output has another entry, of the next one (along the row, else
    down the column), then the output map ``z`` of filter 1 with those two entries
    marked (named z_{1,i,j} when the problem is given ``per_filter``, as (C, H, W)
    arrays). Coordinates in cm, y up, grouped by how they are drawn (every grey area in
    one list, every grid in one...) so the template draws each group as one path. None
    when the cells would be too small to read (a large pinned input)."""
    c, hp, wp = padded.shape
    h_out, w_out = z.shape
    out_left, out_top = c * wp + (c - 1) * GRID_GAP + ARROW_GAP, (hp - h_out) // 2
    unit = min(MAX_CELL, FIGURE_WIDTH / (out_left + w_out))
    if unit < MIN_CELL:
        return None
    cell = _Cells(unit)
    lefts = [ch * (wp + GRID_GAP) for ch in range(c)]
    step = (0, 1) if w_out > 1 else (1, 0) if h_out > 1 else None
    nxt = [] if step is None else \
        [cell.rect(x + step[1] * stride + INSET, step[0] * stride + INSET,
                   kernel[1] - 2 * INSET, kernel[0] - 2 * INSET) for x in lefts] + \
        [cell.rect(out_left + step[1] + INSET, out_top + step[0] + INSET, 1 - 2 * INSET,
                   1 - 2 * INSET)]
    windows = [cell.rect(x, 0, kernel[1], kernel[0]) for x in lefts] + \
        [cell.rect(out_left, out_top, 1, 1)]
    value = latex.num(z[0, 0])
    return {
        "font": latex.Tex(next(f for u, f in FONTS if unit >= u)), "step": cell.cm(1),
        "width": latex.Tex(f"{cell.cm(1)}cm"), "kh": kernel[0], "kw": kernel[1], "channels": c,
        "grey": [cell.rect(x, 0, wp, hp) for x in lefts] if padding else [],
        "white": [cell.rect(x + padding, padding, wp - 2 * padding, hp - 2 * padding)
                  for x in lefts] if padding else [],
        "shaded": windows, "solid": windows, "dashed": nxt,
        "grids": [cell.rect(x, 0, wp, hp) for x in lefts] +
                 [cell.rect(out_left, out_top, w_out, h_out)],
        "rows": [{**cell.text(x, i + 0.5), "cells": [latex.num(v) for v in padded[ch, i]]}
                 for ch, x in enumerate(lefts) for i in range(hp)],
        "labels": [{**cell.text(x + wp / 2, hp + LABEL_GAP),
                    "text": latex.Tex(f"X_{{{ch + 1}}}" if c > 1 else "X")}
                   for ch, x in enumerate(lefts)] +
                  [{**cell.text(out_left + w_out / 2, out_top + h_out + LABEL_GAP),
                    "text": latex.Tex("Z_1" if per_filter else "Z")}],
        "value": {**cell.text(out_left + 0.5, out_top + 0.5), "text": value,
                  "font": value_font(value, unit)},
        "bbox": {**cell.rect(0, 0, out_left + w_out, hp + LABEL_GAP),
                 "y0": round(-(hp + LABEL_GAP) * unit - LABEL_HEIGHT, 3)},
        "arrow": {"from": cell.point(out_left - ARROW_GAP + 0.25, hp / 2),
                  "to": cell.point(out_left - 0.5, hp / 2),
                  "head": [cell.point(out_left - 0.5, hp / 2 - 0.15),
                           cell.point(out_left - 0.2, hp / 2),
                           cell.point(out_left - 0.5, hp / 2 + 0.15)]},
        "entry": entry_name(per_filter, 1, 1),
        "next": None if step is None else {
            "along": "columns" if step[1] else "rows",
            "entry": entry_name(per_filter, 1 + step[0], 1 + step[1])}}


class _Cells:
    """Cell coordinates (column x, row y, counted down) as cm with y up."""

    def __init__(self, unit: float) -> None:
        self.unit = unit

    def cm(self, v: float) -> float:
        return round(v * self.unit, 3)

    def point(self, x: float, y: float) -> dict[str, float]:
        return {"x": self.cm(x), "y": self.cm(-y)}

    def text(self, x: float, y: float) -> dict[str, float]:
        """Where a text goes in the figure's one text: x, and ``down`` from the top."""
        return {"x": self.cm(x), "down": self.cm(y)}

    def rect(self, x: float, y: float, w: float, h: float) -> dict[str, float]:
        return {"x0": self.cm(x), "y0": self.cm(-(y + h)), "x1": self.cm(x + w),
                "y1": self.cm(-y)}


def value_font(text: str, unit: float) -> latex.Tex:
    """A font for a number inside one cell: smaller as it gets longer (-32, 0.375)."""
    width = len(text.replace("-", "")) + 0.6 * text.startswith("-")  # in digits
    fits = unit / DIGIT  # digits of the figure's font a cell holds
    return latex.Tex("" if width <= fits else r"\scriptsize " if width <= 1.4 * fits
                     else r"\tiny ")


def entry_name(per_filter: bool, row: int, col: int) -> latex.Tex:
    """z_{i,j}, or z_{1,i,j} (filter 1), as the solution names the entries."""
    return latex.Tex(f"z_{{{'1,' if per_filter else ''}{row},{col}}}")


# -- drawing ------------------------------------------------------------------------

def _shapes(rng: np.random.Generator, p: dict[str, Any], x_pin: np.ndarray | None,
            k_pin: np.ndarray | None, options: dict[str, Any]) -> tuple[tuple, tuple]:
    """(C_in, H, W) and (C_out, C_in, kH, kW): pinned, from the options, or drawn so that
    the output side is one of OUT_SIZES; ParamError when they cannot make a good exercise."""
    opt = {n: options[n] if options[n] is None else int_option(n, options[n], 1, high)
           for n, high in (("size", MAX_SIZE + 2), ("kernel_size", 5),
                           ("in_channels", MAX_CHANNELS), ("out_channels", MAX_CHANNELS))}
    c_in = x_pin.shape[0] if x_pin is not None else \
        k_pin.shape[1] if k_pin is not None else opt["in_channels"]
    c_out = k_pin.shape[0] if k_pin is not None else opt["out_channels"]
    if x_pin is not None and k_pin is not None and c_in != k_pin.shape[1]:
        raise ParamError(f"the input has {c_in} channel(s) but the kernel expects "
                         f"{k_pin.shape[1]}")
    stride, padding = int(p["stride"]), int(p["padding"])
    size = min(x_pin.shape[1:]) if x_pin is not None else opt["size"]
    if k_pin is not None:
        kh, kw = k_pin.shape[2:]
    else:
        fits = [k for k in KERNEL_SIZES
                if k > padding and (size is None or k <= size + 2 * padding)]
        kh = kw = opt["kernel_size"] or choice(rng, fits or [padding + 1])
    if size is None:  # the input side that gives each output side, if not too large
        sides = [max(MIN_SIZE, (o - 1) * stride + max(kh, kw) - 2 * padding)
                 for o in (2, *OUT_SIZES[min(c_in, 2)])]
        size = choice(rng, [n for n in sides[1:] if n <= MAX_SIZE] or sides[:1])
    h, w = x_pin.shape[1:] if x_pin is not None else (size, size)
    check_layer(p, c_out)
    _check_room(p, c_out, check_fit((h, w), (kh, kw), p), (kh, kw))
    return (c_in, h, w), (c_out, c_in, kh, kw)


def _check_room(p: dict[str, Any], c_out: int, out: tuple[int, int],
                khw: tuple[int, int]) -> None:
    """ParamError when the shapes leave no room for a good draw."""
    if p["padding"] >= min(khw):
        raise ParamError(f"with padding {p['padding']} and a {khw[0]}x{khw[1]} kernel the "
                         f"outer output entries see only padding zeros; use a padding smaller "
                         f"than the kernel")
    if p["activation"] == "relu" and c_out * out[0] * out[1] < MIN_RELU_ENTRIES:
        raise ParamError(f"a ReLU exercise needs an output of at least 2x2 "
                         f"({MIN_RELU_ENTRIES} entries over all filters) so the ReLU can "
                         f"clip one without a blank answer earning its points; these options "
                         f"give {c_out} x {out[0]}x{out[1]}: use a larger size, a smaller "
                         f"kernel or stride, or more filters")


def _candidates(rng: np.random.Generator, p: dict[str, Any], x_pin: np.ndarray | None,
                k_pin: np.ndarray | None, shapes: tuple, draw_bias: bool) -> tuple:
    """BATCH candidate (input, kernel, bias) triples, pinned values repeated."""
    relu = p["activation"] == "relu"
    xs = _batch(x_pin) if x_pin is not None else \
        ints(rng, (BATCH, *shapes[0]), max(INPUT_LOW, int(relu)), INPUT_HIGH).astype(float)
    ks = _batch(k_pin) if k_pin is not None else \
        ints(rng, (BATCH, *shapes[1]), KERNEL_LOW, KERNEL_HIGH, nonzero=relu).astype(float)
    bs = ints(rng, (BATCH, shapes[1][0]), BIAS_LOW, BIAS_HIGH, nonzero=True).astype(float) \
        if draw_bias else None if p["bias"] is None else _batch(np.atleast_1d(p["bias"]))
    return xs, ks, bs


def _batch(pinned: np.ndarray) -> np.ndarray:
    return np.broadcast_to(np.asarray(pinned, dtype=float), (BATCH, *np.shape(pinned)))


def _hand_friendly(xs: np.ndarray, ks: np.ndarray, bs: np.ndarray | None,
                   p: dict[str, Any]) -> np.ndarray:
    """Per candidate: a constant answer earns at most MAX_CONSTANT_SHARE; under a ReLU at
    least one entry clipped and none exactly 0; at least MIN_DISTINCT different values."""
    filters = orient(ks, p["flip_kernel"])
    z = convolve(pad(xs, int(p["padding"])), filters, bias_vector(bs, filters), int(p["stride"]))
    relu = p["activation"] == "relu"
    y, w = activate(z, p["activation"]), entry_weights(z, relu)
    copies = [y == xs] if y.shape == xs.shape else []
    good = np.ones(len(z), dtype=bool)
    for match in (y == 0, y == 1, *copies):
        good &= (w * match).sum(axis=(1, 2, 3)) <= MAX_CONSTANT_SHARE * w.sum(axis=(1, 2, 3))
    if relu:
        good &= np.all(z != 0, axis=(1, 2, 3)) & np.any(z < 0, axis=(1, 2, 3))
    flat = np.sort(y.reshape(len(y), -1), axis=1)
    distinct = 1 + np.count_nonzero(np.diff(flat, axis=1), axis=1)
    return good & (distinct >= min(MIN_DISTINCT, flat.shape[1]))


def _refusal(p: dict[str, Any], pinned_arrays: bool) -> str:
    relu = ", with the ReLU clipping at least one entry" if p["activation"] == "relu" else ""
    pin = ", or pin fewer of input, kernel and bias" if pinned_arrays else ""
    return (f"found no draw for these options on which a blank or constant answer earns at "
            f"most {MAX_CONSTANT_SHARE:.0%} of the points{relu}; use a larger size, another "
            f"kernel size or more input channels{pin}")
