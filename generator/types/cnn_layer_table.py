"""cnn_layer_table: the table of output shape and parameter count per layer of a CNN.

Parameters: ``input_shape`` (C, H, W), ``layers`` in the notation of
:mod:`deepdrill.generator.layers` (stored as canonical strings, or dicts for layers
without bias), and ``multiplications`` (default false; the option of the same name
sets it for drawn variants): with it the table also asks each layer's multiplications.

Each recognised mistake is a whole wrong table, computed by the same solver with
one slip: a wrong output-size rule (no +1, ceil, no padding), which then carries
through every later shape and count, or a wrong count per layer (no biases, no
input channels, k*k weights per channel for pooling).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.exercise import Exercise, jsonable, register, require
from deepdrill.model.fields import integer
from deepdrill.generator.layer_tex import label, mults_tex, params_tex, product
from deepdrill.generator.layers import (RIGHT, BatchNorm, Conv, Dense, Dropout, Flatten, Layer,
                                        LayerRow, Pool, ReLU, Shape, Slip, as_shape,
                                        count_without_bias, count_without_input_channels,
                                        output_size, parse_layers, trace)
from deepdrill.generator.randomness import choice
from deepdrill.model.variant import Mistake

INPUT_SHAPES = ((1, 28, 28), (3, 32, 32), (3, 64, 64), (1, 32, 32))
MIN_LAYERS, MAX_LAYERS = 6, 12
MAX_FEATURES = 4096  # at most this many inputs to the first FC layer (hand-friendly products)
MIN_MAP = 2  # the last feature map is at least 2x2
INEXACT_SHARE = 0.5  # share of draws made to contain a size division that is not exact
MAX_DRAWS = 200
HIDDEN_UNITS = (32, 64, 84, 100, 120, 128, 256)
CLASSES = (2, 5, 10, 10, 100)


# -- the solver and its slips ----------------------------------------------------

def count_pool_weights(row: LayerRow) -> tuple[int, int]:
    """Pooling counted as if it had a k x k kernel per channel."""
    if isinstance(row.layer, Pool):
        return row.input_shape[0] * row.layer.k ** 2, row.multiplications
    return row.params, row.multiplications


def size_without_plus_one(n: int, k: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - k) // stride


def size_with_ceil(n: int, k: int, stride: int, padding: int) -> int:
    return -((k - n - 2 * padding) // stride) + 1


def size_without_padding(n: int, k: int, stride: int, padding: int) -> int:
    return output_size(n, k, stride, 0)


SLIPS = (
    Slip("forgot_plus_one", "you left out the +1 in the output size floor((H + 2P - k)/S) + 1",
         size_rule=size_without_plus_one),
    Slip("ceil_not_floor", "you rounded (H + 2P - k)/S up; the output-size formula rounds down",
         size_rule=size_with_ceil),
    Slip("forgot_padding", "you left out the padding P in the output-size formula",
         size_rule=size_without_padding),
    Slip("forgot_biases", "you left out the biases: one per filter of a convolution and one "
         "per unit of a fully connected layer", count=count_without_bias),
    Slip("forgot_input_channels", "you counted k*k weights per filter; a filter has k*k "
         "weights for each input channel, k*k*C_in in all", count=count_without_input_channels),
    Slip("pooling_params", "you gave pooling layers parameters; pooling has no weights",
         count=count_pool_weights),
)


def layer_table(input_shape: Sequence[int], layers: Sequence[Layer],
                slip: Slip = RIGHT) -> dict[str, Any]:
    """Every answer field of the table (multiplications included) under ``slip``.

    >>> t = layer_table((1, 32, 32), parse_layers(["CONV5-6(1,0)", "POOL-2", "FC-10"]))
    >>> t["output_shapes"], t["layer_params"], t["total_params"]
    ([[6, 28, 28], [6, 14, 14], [10]], [156, 0, 11770], 11926)
    """
    rows = trace(input_shape, layers, slip.size_rule)
    counts = [slip.count(r) for r in rows]
    return {
        "output_shapes": [list(r.output_shape) for r in rows],
        "layer_params": [p for p, _ in counts],
        "total_params": sum(p for p, _ in counts),
        "layer_multiplications": [m for _, m in counts],
    }


def is_inexact(row: LayerRow) -> bool:
    """Whether a conv or pool layer divides by its stride with a remainder (floor matters)."""
    layer = row.layer
    if not isinstance(layer, (Conv, Pool)):
        return False
    return any((n + 2 * layer.padding - layer.k) % layer.stride for n in row.input_shape[1:])


# -- random networks -------------------------------------------------------------

def draw_network(rng: np.random.Generator, input_shape: Shape) -> list[Layer]:
    """A realistic small network for ``input_shape``, every size valid.

    A CNN of 2-3 conv blocks (conv, maybe BN, ReLU, usually pooling), FLATTEN and
    1-3 FC layers for a feature map; FC layers alone for a vector. Half the draws
    are made to contain a division by the stride that is not exact.
    """
    want_inexact = rng.random() < INEXACT_SHARE
    fallback = None
    for _ in range(MAX_DRAWS):
        layers = _draw_mlp(rng) if len(input_shape) == 1 else _draw_cnn(rng, input_shape[0])
        try:
            rows = trace(input_shape, layers)
        except ParamError:
            continue
        if not _fits_a_sheet(rows):
            continue
        fallback = fallback or layers
        if not want_inexact or any(is_inexact(r) for r in rows):
            return layers
    return fallback or [Conv(3, 8), ReLU(), Flatten(), Dense(10)]


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


def _fits_a_sheet(rows: Sequence[LayerRow]) -> bool:
    """6-12 layers, a last feature map of at least 2x2, a first FC layer of moderate size."""
    if not MIN_LAYERS <= len(rows) <= MAX_LAYERS:
        return False
    maps = [r.output_shape for r in rows if len(r.output_shape) == 3]
    if maps and min(maps[-1][1:]) < MIN_MAP:
        return False
    dense_inputs = [int(np.prod(r.input_shape)) for r in rows if isinstance(r.layer, Dense)]
    return not dense_inputs or dense_inputs[0] <= MAX_FEATURES


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


# -- the exercise ------------------------------------------------------------------

@register
class CnnLayerTable(Exercise):
    id = "cnn_layer_table"
    title = "Shapes and parameters of a CNN"
    summary = "fill in each layer's output shape and parameter count (optionally multiplications)"
    params = ("input_shape", "layers", "multiplications")
    options = {"multiplications": False}
    work_space = "1cm"  # the problem's own table is the work space

    def sample(self, rng, pinned, options):
        p = {"multiplications": bool(options["multiplications"]), **pinned}
        if "layers" not in p:
            shape = as_shape(p["input_shape"]) if "input_shape" in p else \
                INPUT_SHAPES[int(rng.integers(len(INPUT_SHAPES)))]
            p["input_shape"] = list(shape)
            p["layers"] = [layer.to_json() for layer in draw_network(rng, shape)]
        elif "input_shape" not in p:
            p["input_shape"] = fitting_input(rng, parse_layers(p["layers"]))
        return p

    def check(self, params):
        require(params, "input_shape", "layers")
        shape = as_shape(params["input_shape"])
        layers = parse_layers(params["layers"])
        if not layers:
            raise ParamError("layers must list at least one layer")
        trace(shape, layers)
        mults = params.get("multiplications", False)
        if not isinstance(mults, bool):
            raise ParamError(f"multiplications must be true or false, not {mults!r}")
        return jsonable({"input_shape": list(shape), "layers": [x.to_json() for x in layers],
                         "multiplications": mults})

    def solve(self, params):
        answers = layer_table(params["input_shape"], parse_layers(params["layers"]))
        return _asked(answers, params)

    def fields(self, params):
        rows = trace(params["input_shape"], parse_layers(params["layers"]))
        n = len(rows)
        out = [integer("output_shapes", "the output shape of each layer, [C, H, W] or [N]",
                       [[len(r.output_shape)] for r in rows], weight=2),
               integer("layer_params", "the number of parameters of each layer", [n], weight=2),
               integer("total_params", "the total number of parameters", [])]
        if params["multiplications"]:
            out.append(integer("layer_multiplications", "the multiplications of each layer",
                               [n], weight=2))
        return out

    def mistakes(self, params):
        layers = parse_layers(params["layers"])
        out = []
        for slip in SLIPS:
            try:
                wrong = layer_table(params["input_shape"], layers, slip)
            except ParamError:  # the slip makes some layer impossible: no one answers that
                continue
            out.append(Mistake(slip.name, slip.feedback, _asked(wrong, params)))
        return out

    def problem(self, params):
        layers = parse_layers(params["layers"])
        kinds = {x.kind for x in layers}
        return {
            "input": latex.shape(params["input_shape"]),
            "layers": [label(x) for x in layers],
            "kinds": sorted(kinds),
            "implicit_flatten": any(isinstance(r.layer, Dense) and len(r.input_shape) == 3
                                    for r in trace(params["input_shape"], layers)),
            "mults": params["multiplications"],
        }

    def steps(self, params, answers):
        rows = trace(params["input_shape"], parse_layers(params["layers"]))
        counted = [r.params for r in rows if r.params]
        weighted = [(i, r) for i, r in enumerate(rows, 1) if r.multiplications]
        return {
            "rows": [table_row(i, r) for i, r in enumerate(rows, 1)],
            "total_sum": latex.Tex(" + ".join(latex.count(p) for p in counted) or "0"),
            "total": latex.count(answers["total_params"]),
            "mults": [{"i": i, "layer": label(r.layer), "product": mults_tex(r)}
                      for i, r in weighted] if params["multiplications"] else [],
            "output_shapes": [latex.shape(s) for s in answers["output_shapes"]],
            "layer_params": [latex.count(p) for p in answers["layer_params"]],
            "layer_multiplications": [latex.count(m) for m in
                                      answers.get("layer_multiplications", [])],
        }


def _asked(answers: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    if params["multiplications"]:
        return answers
    return {k: v for k, v in answers.items() if k != "layer_multiplications"}


# -- the worked table ------------------------------------------------------------------

def table_row(i: int, row: LayerRow) -> dict[str, Any]:
    return {"i": i, "layer": label(row.layer), "size": size_tex(row),
            "shape": latex.shape(row.output_shape), "params": params_tex(row)}


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
        flat = rf"{product(shape)} = {latex.count(int(np.prod(shape)))}"
        return latex.Tex(f"${flat}$" if isinstance(layer, Flatten) else f"flattens ${flat}$")
    if isinstance(layer, Dense):
        return latex.Tex(f"{layer.units} units")
    return latex.Tex("unchanged")


def _size_formula(n: int, layer: Conv | Pool, out: int) -> str:
    return (rf"\lfloor ({n} + 2\cdot {layer.padding} - {layer.k})/{layer.stride} \rfloor + 1"
            rf" = {out}")
