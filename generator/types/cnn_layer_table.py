"""cnn_layer_table: the table of output shape and parameter count per layer of a CNN.

Parameters: ``input_shape`` (C, H, W), ``layers`` in the notation of
:mod:`deepdrill.generator.layers` (stored as canonical strings, or dicts for layers
without bias), and ``multiplications`` (default false; the option of the same name
sets it for drawn variants): with it the table also asks each layer's multiplications.

The solution is :func:`~deepdrill.generator.layers.chain_steps`: layer i's
``shape_i`` from ``shape_{i-1}``, its ``weights_i`` and ``biases_i`` from
``shape_{i-1}``, ``params_i`` their sum, ``mults_i`` from both shapes, then
``total_params`` from every ``params_i``. A wrong size rule swaps every conv and
pool shape step (the error carries through every later shape and count); a wrong
count swaps the weights or biases steps of the layers it concerns.

Entries weigh the work they need (:func:`shape_weights`, ``PARAM_WORK``): the shape
entries a layer never changes (a ReLU's row, a pool's channels) and the 0 parameters
of a ReLU, dropout or flatten layer weigh nothing; a pool's 0 weighs a little (giving
pooling parameters is a mistake). No constant answer earns more than a few per cent,
carried-forward credit included.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.exercise import Exercise, jsonable, register, require
from deepdrill.generator.layer_tex import label, mults_tex, params_tex, size_tex, sum_tex
from deepdrill.generator.layers import (BatchNorm, Conv, Dense, Dropout, Flatten, Layer,
                                        LayerRow, Pool, ReLU, Shape, as_shape, chain_steps,
                                        has_bias, multiplies, names, no_biases, output_size,
                                        parse_layers, rows, shape_after, swaps, total, trace,
                                        weights_one_channel)
from deepdrill.generator.randomness import choice, draw_until
from deepdrill.generator.steps import Slip, Step
from deepdrill.model.fields import integer

INPUT_SHAPES = ((1, 28, 28), (3, 32, 32), (3, 64, 64), (1, 32, 32))
MIN_LAYERS, MAX_LAYERS = 6, 12
MAX_FEATURES = 4096  # at most this many inputs to the first FC layer (hand-friendly products)
MIN_MAP = 2  # the last feature map is at least 2x2
INEXACT_SHARE = 0.5  # share of draws made to contain a size division that is not exact
MAX_DRAWS = 200
HIDDEN_UNITS = (32, 64, 84, 100, 120, 128, 256)
CLASSES = (2, 5, 10, 10, 100)
# Entry weights: the work an entry needs.
UNCHANGED, LITTLE, READ_OFF, WORKED_OUT = 0.0, 0.1, 0.5, 1.0  # a shape entry (shape_weights)
PARAM_WORK = {Conv: 1.0, Dense: 1.0, BatchNorm: 0.5, Pool: 0.2}  # other layers: 0


@functools.lru_cache(maxsize=256)  # the grader re-runs a variant's graph for every slip
def table_graph(layers: tuple[Layer, ...]) -> tuple[Step, ...]:
    """The layers' steps, then ``total_params``.

    >>> from deepdrill.generator.steps import run
    >>> v = run(table_graph(parse_layers(["CONV5-6(1,0)", "POOL-2", "FC-10"])),
    ...         {"input_shape": [1, 32, 32]})
    >>> v["shape_2"], v["weights_1"], v["biases_1"], v["params_3"], v["total_params"]
    ((6, 14, 14), 150, 6, 11770, 11926)
    """
    every = tuple(names(i).params for i in range(1, len(layers) + 1))
    return (*chain_steps(layers), Step("total_params", total, every))


# -- slips -------------------------------------------------------------------------

def size_without_plus_one(n: int, k: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - k) // stride


def size_with_ceil(n: int, k: int, stride: int, padding: int) -> int:
    return -((k - n - 2 * padding) // stride) + 1


def size_without_padding(n: int, k: int, stride: int, padding: int) -> int:
    return output_size(n, k, stride, 0)


def pool_weights(layer: Pool, before: Any) -> int:
    """Pooling counted as if it had a k x k kernel per channel."""
    return as_shape(before)[0] * layer.k ** 2


SIZE_SLIPS = (
    ("forgot_plus_one", "you left out the +1 in the output size floor((H + 2P - k)/S) + 1",
     size_without_plus_one),
    ("ceil_not_floor", "you rounded (H + 2P - k)/S up; the output-size formula rounds down",
     size_with_ceil),
    ("forgot_padding", "you left out the padding P in the output-size formula",
     size_without_padding),
)


def table_slips(layers: Sequence[Layer]) -> list[Slip]:
    """The catalogue's mistakes; each count slip swaps different steps, so they combine
    with each other and with any one size slip."""
    def slides(layer: Layer) -> bool:
        return isinstance(layer, (Conv, Pool))

    return [
        *(Slip(name, feedback,
               swaps(layers, "shape", functools.partial(shape_after, size_rule=rule), slides))
          for name, feedback, rule in SIZE_SLIPS),
        Slip("forgot_biases", "you left out the biases: one per filter of a convolution and "
             "one per unit of a fully connected layer",
             swaps(layers, "biases", no_biases, has_bias)),
        Slip("forgot_input_channels", "you counted k*k weights per filter; a filter has k*k "
             "weights for each input channel, k*k*C_in in all",
             swaps(layers, "weights", weights_one_channel, lambda x: isinstance(x, Conv))),
        Slip("pooling_params", "you gave pooling layers parameters; pooling has no weights",
             swaps(layers, "weights", pool_weights, lambda x: isinstance(x, Pool))),
    ]


# -- entry weights ---------------------------------------------------------------------

def shape_weights(rows: Sequence[LayerRow]) -> list[float]:
    """Per entry of the output shapes, the work it needs:

    * nothing for an entry the layer never changes (a ReLU's row, a pool's channels);
    * little for one it happens to keep (a "same" convolution's H and W: copying the
      input gets it, but forgetting the padding must still cost something), and for a
      row the layer would also give one row early (a stride-2 convolution keeping the
      channels after a 2x2 pool): a table shifted down by a row, each layer's input
      copied as its output, is consistent there and would earn carried-forward credit;
    * half for one read off the notation (filters, units) or a plain product (FLATTEN);
    * all for one worked out with the size formula.
    """
    out = []
    for before, r in zip((None, *rows), rows):
        repeated = before is not None and _applied(r.layer, before.input_shape) == r.input_shape
        for e in range(len(r.output_shape)):
            if _never_changes(r, e):
                out.append(UNCHANGED)
            elif repeated or _is_kept(r, e):
                out.append(LITTLE)
            elif isinstance(r.layer, (Dense, Flatten)) or (isinstance(r.layer, Conv) and e == 0):
                out.append(READ_OFF)
            else:
                out.append(WORKED_OUT)
    return out


def _never_changes(row: LayerRow, e: int) -> bool:
    """Whether the layer copies entry e of any input (nothing to work out)."""
    return isinstance(row.layer, (ReLU, BatchNorm, Dropout)) or \
        (isinstance(row.layer, Pool) and e == 0) or \
        (isinstance(row.layer, Flatten) and len(row.input_shape) == 1)


def _is_kept(row: LayerRow, e: int) -> bool:
    return len(row.input_shape) == len(row.output_shape) and \
        row.input_shape[e] == row.output_shape[e]


def _applied(layer: Layer, shape: Shape) -> Shape | None:
    try:
        return layer.output_shape(shape)
    except ParamError:
        return None


# -- random networks -------------------------------------------------------------

def draw_network(rng: np.random.Generator, input_shape: Shape) -> list[Layer]:
    """A realistic small network for ``input_shape``, every size valid.

    A CNN of 2-3 conv blocks (conv, maybe BN, ReLU, usually pooling), FLATTEN and
    1-3 FC layers for a feature map; FC layers alone for a vector. Half the draws
    of a feature map are made to contain a division by the stride that is not exact
    (where the input allows one).
    """
    want_inexact = rng.random() < INEXACT_SHARE and len(input_shape) == 3
    draw = _draw_mlp if len(input_shape) == 1 else \
        functools.partial(_draw_cnn, channels=input_shape[0])
    fits = functools.partial(_fits_a_sheet, input_shape)
    refusal = (f"no network of {MIN_LAYERS}-{MAX_LAYERS} layers fits input_shape "
               f"{tuple(input_shape)}; give a larger input or the layers")
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


def _fits_a_sheet(input_shape: Shape, layers: list[Layer], inexact: bool = False) -> bool:
    """6-12 valid layers, a last feature map of at least 2x2, a first FC layer of moderate
    size; with ``inexact``, a size division with a remainder."""
    try:
        table = trace(input_shape, layers)
    except ParamError:
        return False
    maps = [r.output_shape for r in table if len(r.output_shape) == 3]
    dense_inputs = [int(np.prod(r.input_shape)) for r in table if isinstance(r.layer, Dense)]
    return MIN_LAYERS <= len(table) <= MAX_LAYERS and \
        (not maps or min(maps[-1][1:]) >= MIN_MAP) and \
        (not dense_inputs or dense_inputs[0] <= MAX_FEATURES) and \
        (not inexact or any(is_inexact(r) for r in table))


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
        if not any(r.params for r in trace(shape, layers)):
            raise ParamError("these layers have no parameters to count; add a CONV, FC or BN "
                             "layer")
        mults = params.get("multiplications", False)
        if not isinstance(mults, bool):
            raise ParamError(f"multiplications must be true or false, not {mults!r}")
        if mults and not any(multiplies(x) for x in layers):
            raise ParamError("multiplications: true needs a CONV or FC layer; no other layer "
                             "multiplies")
        return jsonable({"input_shape": list(shape), "layers": [x.to_json() for x in layers],
                         "multiplications": mults})

    def graph(self, params):
        return table_graph(parse_layers(params["layers"]))

    def fields(self, params, values):
        table = trace(params["input_shape"], parse_layers(params["layers"]))
        each = [names(i) for i in range(1, len(table) + 1)]
        shapes = shape_weights(table)
        out = [integer("output_shapes", "the output shape of each layer, [C, H, W] or [N]",
                       [[len(r.output_shape)] for r in table], weight=2,
                       entry_weights=shapes if any(shapes) else None,  # else all alike
                       parts=tuple(n.shape for n in each)),
               integer("layer_params", "the number of parameters of each layer", [len(table)],
                       weight=2, parts=tuple(n.params for n in each),
                       entry_weights=[PARAM_WORK.get(type(r.layer), 0.0) for r in table]),
               integer("total_params", "the total number of parameters", [])]
        if params["multiplications"]:
            out.append(integer("layer_multiplications", "the multiplications of each layer",
                               [len(table)], weight=2, parts=tuple(n.mults for n in each),
                               entry_weights=[float(multiplies(r.layer)) for r in table]))
        return out

    def slips(self, params):
        return table_slips(parse_layers(params["layers"]))

    def problem(self, params):
        layers = parse_layers(params["layers"])
        first = next((x for x in layers if isinstance(x, (Dense, Flatten))), None)
        return {
            "input": latex.shape(params["input_shape"]),
            "layers": [label(x) for x in layers],
            "kinds": sorted({x.kind for x in layers}),
            "implicit_flatten": len(params["input_shape"]) == 3 and isinstance(first, Dense),
            "mults": params["multiplications"],
        }

    def worked(self, params, values):
        table = rows(values, parse_layers(params["layers"]))
        asked = params["multiplications"]
        return {
            "rows": [{"i": i, "layer": label(r.layer), "size": size_tex(r),
                      "shape": latex.shape(r.output_shape), "params": params_tex(r)}
                     for i, r in enumerate(table, 1)],
            "total_sum": sum_tex([r.params for r in table]),
            "total": latex.count(values["total_params"]),
            "mults": [{"i": i, "layer": label(r.layer), "product": mults_tex(r)}
                      for i, r in enumerate(table, 1) if r.multiplications] if asked else [],
            "output_shapes": [latex.shape(r.output_shape) for r in table],
            "layer_params": [latex.count(r.params) for r in table],
            "layer_multiplications": [latex.count(r.multiplications) for r in table]
            if asked else [],
        }
