"""How a worked solution writes a layer and its counts: shared by the types that count with layers.

Each function takes a :class:`~deepdrill.generator.layers.LayerRow` (a layer, the
shape it receives and its counted values, read from the solution's steps) and
returns trusted inline math with the numbers filled in, the way a TA writes the
count on the board: ``$6\\cdot(5\\cdot 5\\cdot 1) + 6 = 156$``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from . import latex
from .blanks import SYMBOL, WHAT, Blank, Fit, fit, notation, side_fit
from .layers import BatchNorm, Conv, Dense, Flatten, Layer, LayerRow, Pool, Shape


def label(layer: Layer, blank: str | None = None) -> str:
    """The layer as the sheet prints it: its notation (with ``?`` for the setting ``blank``),
    and "no bias" when it has none."""
    text = notation(layer, blank) if blank else str(layer)
    return f"{text} (no bias)" if getattr(layer, "bias", True) is False else text


def params_tex(row: LayerRow) -> latex.Tex:
    """The parameter count: weights per filter or unit, plus the biases."""
    layer, shape = row.layer, row.input_shape
    if isinstance(layer, Conv):
        weights = rf"{layer.filters}\cdot({layer.k}\cdot {layer.k}\cdot {shape[0]})"
        expr = weights + (rf" + {layer.filters}" if layer.bias else "")
    elif isinstance(layer, Dense):
        expr = rf"{math.prod(shape)}\cdot {layer.units}" + \
            (rf" + {layer.units}" if layer.bias else "")
    elif isinstance(layer, BatchNorm):
        expr = rf"2\cdot {shape[0]}"
    else:
        return latex.Tex("$0$")
    return latex.Tex(f"${expr} = {latex.count(row.params)}$")


def mults_tex(row: LayerRow) -> latex.Tex:
    """The multiplications: H_out*W_out*C_out*k*k*C_in for a conv, inputs*units for FC."""
    layer, shape = row.layer, row.input_shape
    if isinstance(layer, Conv):
        _, ho, wo = row.output_shape
        factors = [ho, wo, layer.filters, layer.k, layer.k, shape[0]]
    elif isinstance(layer, Dense):
        factors = [math.prod(shape), row.output_shape[0]]
    else:
        return latex.Tex("$0$")
    return latex.Tex(f"${product(factors)} = {latex.count(row.multiplications)}$")


def product(factors: Sequence[int]) -> str:
    """``a\\cdot b\\cdot c`` (math mode, no result)."""
    return r"\cdot ".join(str(int(f)) for f in factors)


def size_tex(row: LayerRow) -> latex.Tex:
    """How the output shape comes about, as inline math (or words)."""
    layer, shape = row.layer, row.input_shape
    if isinstance(layer, (Conv, Pool)):
        (_, h, w), (_, ho, wo) = shape, row.output_shape
        formula = _size_formula(h, layer, ho)
        if h == w:
            return latex.Tex(f"${formula}$")
        return latex.Tex(rf"\begin{{tabular}}[t]{{@{{}}l@{{}}}}$H{{:}}\ {formula}$ \\ "
                         rf"$W{{:}}\ {_size_formula(w, layer, wo)}$\end{{tabular}}")
    if isinstance(layer, (Flatten, Dense)) and len(shape) == 3:
        flat = rf"{product(shape)} = {latex.count(math.prod(shape))}"
        return latex.Tex(f"${flat}$" if isinstance(layer, Flatten) else f"flattens ${flat}$")
    if isinstance(layer, Dense):
        return latex.Tex(f"{layer.units} units")
    return latex.Tex("unchanged")


def _size_formula(n: int, layer: Conv | Pool, out: int) -> str:
    return (rf"\lfloor ({n} + 2\cdot {layer.padding} - {layer.k})/{layer.stride} \rfloor + 1"
            rf" = {out}")


def sum_tex(terms: Sequence[int]) -> latex.Tex:
    """The nonzero terms of a total, as a TA adds them up: ``156 + 2\\,416``."""
    return latex.Tex(" + ".join(latex.count(t) for t in terms if t) or "0")


# -- a blank solved ----------------------------------------------------------------

def blank_stated(row: LayerRow, blank: Blank, valid: Sequence[int]) -> dict[str, Any]:
    """What the sheet says of a blank: the layer with its ?, the setting, the given shapes,
    and whether any of several values is accepted."""
    return {"i": blank.layer, "layer": label(row.layer, blank.setting),
            "what": latex.Tex(f"{WHAT[blank.setting]} ${SYMBOL[blank.setting]}$"),
            "input": latex.shape(row.input_shape), "output": latex.shape(row.output_shape),
            "any": len(valid) > 1}


def blank_worked(row: LayerRow, blank: Blank, valid: Sequence[int], key: int) -> dict[str, Any]:
    """The blank solved: the size equation per side, the values that fit, the answer."""
    return {**blank_stated(row, blank, valid),
            "lines": blank_tex(row.layer, blank.setting, row.input_shape, row.output_shape),
            "result": blank_result(blank.setting, valid, key), "answer": latex.count(key),
            "others": ", ".join(str(v) for v in valid if v != key)}


def blank_tex(layer: Conv | Pool, setting: str, before: Shape, after: Shape) -> list[latex.Tex]:
    """How a TA solves for the blank: the size equation per side (one line when H and W
    agree), then the values both sides and the layer's limits leave."""
    sym = SYMBOL[setting]
    if setting == "filters":
        return [latex.Tex(rf"The output has ${after[0]}$ channels, one per filter: "
                          rf"${sym} = {after[0]}$.")]
    square = before[1] == before[2] and after[1] == after[2]
    sides = [("", before[1], after[1])] if square else \
        [("H{:}\\ ", before[1], after[1]), ("W{:}\\ ", before[2], after[2])]
    lines = [latex.Tex(f"${tag}{_side_tex(setting, n, out, layer)}$") for tag, n, out in sides]
    raw = _both(side_fit(setting, n, out, layer) for _, n, out in sides)
    f = fit(layer, setting, before, after)
    if f != raw:
        lines.append(latex.Tex(rf"and ${_limit_tex(layer, setting)}$: "
                               rf"${_between(f.lo, sym, f.hi)}$"))
    elif not square:
        lines.append(latex.Tex(rf"both: ${_between(f.lo, sym, f.hi)}$"))
    return lines


def blank_result(setting: str, values: Sequence[int], own: int) -> latex.Tex:
    """The conclusion: the one value, or every value that fits (all accepted)."""
    sym = SYMBOL[setting]
    if len(values) == 1:
        return latex.Tex(rf"One whole number fits: ${sym} = \mathbf{{{values[0]}}}$.")
    listed = ", ".join(f"${v}$" for v in values[:-1]) + f" and ${values[-1]}$"
    counted = rf"; the table counts with ${sym} = {own}$" if setting == "k" else ""
    return latex.Tex(f"{len(values)} whole numbers fit, {listed}, and each is accepted"
                     f"{counted}.")


def _side_tex(setting: str, n: int, out: int, layer: Conv | Pool) -> str:
    k, s, p, q = layer.k, layer.stride, layer.padding, out - 1
    then = r" \;\Rightarrow\; "
    f = side_fit(setting, n, out, layer)
    if setting == "k":
        steps = [rf"\lfloor ({n} + 2\cdot {p} - k)/{s} \rfloor + 1 = {out}",
                 _between(s * q, f"{n + 2 * p} - k", s * q + s - 1)]
    elif setting == "padding":
        steps = [rf"\lfloor ({n} + 2P - {k})/{s} \rfloor + 1 = {out}",
                 _between(s * q, f"{n} + 2P - {k}", s * q + s - 1),
                 _between(s * q + k - n, "2P", s * q + s - 1 + k - n)]
    else:
        m = n + 2 * p - k
        steps = [rf"\lfloor ({n} + 2\cdot {p} - {k})/S \rfloor + 1 = {out}",
                 rf"\lfloor {m}/S \rfloor = {q}",
                 rf"S > {m}" if q == 0 else rf"{m}/{q + 1} < S \le {m}/{q}"]
    return then.join([*steps, _between(f.lo, SYMBOL[setting], f.hi)])


def _between(lo: int, expr: str, hi: int | None) -> str:
    if hi is None:
        return rf"{expr} \ge {lo}"
    return f"{expr} = {lo}" if lo == hi else rf"{lo} \le {expr} \le {hi}"


def _both(sides: Iterable[Fit]) -> Fit:
    lo, hi = -(10 ** 9), None
    for f in sides:
        lo = max(lo, f.lo)
        hi = f.hi if hi is None else hi if f.hi is None else min(hi, f.hi)
    return Fit(lo, hi)


def _limit_tex(layer: Conv | Pool, setting: str) -> str:
    if isinstance(layer, Pool) and setting == "k" and layer.padding:
        return rf"k \ge 2P = {2 * layer.padding}"  # a pool pads by at most half its window
    if isinstance(layer, Pool) and setting == "padding":
        return rf"P \ge 0,\ P \le \lfloor k/2 \rfloor = {layer.k // 2}"
    return {"k": r"k \ge 1", "stride": r"S \ge 1", "padding": r"P \ge 0"}[setting]
