"""Random small networks in the layer notation, every size valid and fit for a sheet.

Shared by the types that ask about a whole network (``cnn_layer_table``; the Xavier
bounds of the catalogue will draw the same networks).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from deepdrill.errors import ParamError

from .blanks import drawable
from .layers import (BatchNorm, Conv, Dense, Dropout, Flatten, Layer, LayerRow, Pool, ReLU, Shape,
                     trace)
from .randomness import choice, draw_until

INPUT_SHAPES = ((1, 28, 28), (3, 32, 32), (3, 64, 64), (1, 32, 32))
MIN_LAYERS, MAX_LAYERS = 6, 12
MAX_FEATURES = 4096  # at most this many inputs to the first FC layer (hand-friendly products)
MIN_MAP = 2  # the last feature map is at least 2x2
INEXACT_SHARE = 0.5  # share of draws made to contain a size division that is not exact
MAX_DRAWS = 200
HIDDEN_UNITS = (32, 64, 84, 100, 120, 128, 256)
CLASSES = (2, 5, 10, 10, 100)


def draw_network(rng: np.random.Generator, input_shape: Shape,
                 blank: str = "none") -> list[Layer]:
    """A realistic small network for ``input_shape``, every size valid.

    A CNN of 2-3 conv blocks (conv, maybe BN, ReLU, usually pooling), FLATTEN and
    1-3 FC layers for a feature map; FC layers alone for a vector. Half the draws
    of a feature map are made to contain a division by the stride that is not exact
    (where the input allows one). With ``blank`` (a setting, or "any"), a network where
    such a blank can be drawn (:func:`~deepdrill.generator.blanks.drawable`).
    """
    want_inexact = rng.random() < INEXACT_SHARE and len(input_shape) == 3
    draw = _draw_mlp if len(input_shape) == 1 else \
        functools.partial(_draw_cnn, channels=input_shape[0])
    fits = functools.partial(_fits_a_sheet, input_shape, blank=blank)
    refusal = (f"no network of {MIN_LAYERS}-{MAX_LAYERS} layers fits input_shape "
               f"{tuple(input_shape)}" + (f" with a blank {blank}" if blank != "none" else "") +
               "; give a larger input or the layers")
    if want_inexact:
        try:
            return draw_until(rng, draw, lambda x: fits(x, inexact=True), tries=MAX_DRAWS,
                              refusal=refusal)
        except ParamError:  # no division with a remainder on this input: any network fits
            pass
    return draw_until(rng, draw, fits, tries=MAX_DRAWS, refusal=refusal)


def _draw_cnn(rng: np.random.Generator, channels: int) -> list[Layer]:
    layers: list[Layer] = []
    filters = choice(rng, [6, 8, 16] if channels == 1 else [16, 32])
    for block in range(choice(rng, [2, 2, 3])):
        k = choice(rng, [3, 5] if block == 0 else [3, 3, 5])
        form = choice(rng, ["same", "same", "valid", "strided"])
        layers.append(Conv(k, filters) if form == "same" else
                      Conv(k, filters, 1, 0) if form == "valid" else Conv(3, filters, 2, 1))
        if rng.random() < 0.3:
            layers.append(BatchNorm())
        layers.append(ReLU())
        if form != "strided" or rng.random() < 0.3:
            layers.append(choice(rng, [Pool(2), Pool(2), Pool(3, 2), Pool(2, mode="avg")]))
        filters = min(filters * choice(rng, [1, 2, 2]), 128)
    return layers + [Flatten(), *_draw_dense_head(rng)]


def _draw_mlp(rng: np.random.Generator) -> list[Layer]:
    classes = choice(rng, CLASSES)
    layers: list[Layer] = []
    for units in _hidden_units(rng, choice(rng, [2, 3]), classes):
        layers += [Dense(units)] + ([BatchNorm()] if rng.random() < 0.3 else []) + [ReLU()]
    return layers + [Dense(classes)]


def _draw_dense_head(rng: np.random.Generator) -> list[Layer]:
    classes = choice(rng, CLASSES)
    layers: list[Layer] = []
    for units in _hidden_units(rng, choice(rng, [0, 1, 1, 2]), classes):
        layers += [Dense(units), ReLU()] + ([Dropout()] if rng.random() < 0.3 else [])
    return layers + [Dense(classes)]


def _hidden_units(rng: np.random.Generator, n: int, classes: int) -> list[int]:
    """Widths of n hidden layers, narrowing towards the (fewer) classes."""
    wider = [u for u in HIDDEN_UNITS if u > classes]
    return sorted((choice(rng, wider) for _ in range(n)), reverse=True)


def _fits_a_sheet(input_shape: Shape, layers: list[Layer], inexact: bool = False,
                  blank: str = "none") -> bool:
    """6-12 valid layers, a last feature map of at least 2x2, a first FC layer of moderate
    size; with ``inexact``, a size division with a remainder; with ``blank``, a blank."""
    try:
        table = trace(input_shape, layers)
    except ParamError:
        return False
    maps = [r.output_shape for r in table if len(r.output_shape) == 3]
    dense_inputs = [int(np.prod(r.input_shape)) for r in table if isinstance(r.layer, Dense)]
    return MIN_LAYERS <= len(table) <= MAX_LAYERS and \
        (not maps or min(maps[-1][1:]) >= MIN_MAP) and \
        (not dense_inputs or dense_inputs[0] <= MAX_FEATURES) and \
        (not inexact or any(is_inexact(r) for r in table)) and \
        (blank == "none" or bool(drawable(table, blank)))


def is_inexact(row: LayerRow) -> bool:
    """Whether a conv or pool layer divides by its stride with a remainder (floor matters)."""
    layer = row.layer
    if not isinstance(layer, (Conv, Pool)):
        return False
    return any((n + 2 * layer.padding - layer.k) % layer.stride for n in row.input_shape[1:])


def fitting_input(rng: np.random.Generator, layers: Sequence[Layer]) -> list[int]:
    """A standard input shape the given layers accept (for pinned layers without one)."""
    for i in rng.permutation(len(INPUT_SHAPES)):
        try:
            trace(INPUT_SHAPES[i], layers)
            return list(INPUT_SHAPES[i])
        except ParamError:
            pass
    shapes = ", ".join(str(s) for s in INPUT_SHAPES)
    raise ParamError(f"give input_shape: these layers fit none of the standard shapes {shapes}")
