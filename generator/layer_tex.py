"""How a worked solution writes a layer and its counts: shared by the types that count with layers.

Each function takes a :class:`~deepdrill.generator.layers.LayerRow` (a layer, the
shape it receives and its counted values, read from the solution's steps) and
returns trusted inline math with the numbers filled in, the way a TA writes the
count on the board: ``$6\\cdot(5\\cdot 5\\cdot 1) + 6 = 156$``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from . import latex
from .layers import BatchNorm, Conv, Dense, Flatten, Layer, LayerRow, Pool


def label(layer: Layer) -> str:
    """The layer as the sheet prints it: its notation, and "no bias" when it has none."""
    return f"{layer} (no bias)" if getattr(layer, "bias", True) is False else str(layer)


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
