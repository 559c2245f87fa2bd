"""cnn_layer_table: the table of output shape and parameter count per layer of a CNN.

Parameters: ``input_shape`` (C, H, W), ``layers`` in the notation of
:mod:`deepdrill.generator.layers` (stored as canonical strings, or dicts for layers
without bias), ``multiplications`` (default false; the option of the same name
sets it for drawn variants): with it the table also asks each layer's multiplications,
and ``asks`` (default none): a blank, below.

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

A blank (``asks``, inverse questions; its forms are in :mod:`deepdrill.generator.blanks`:
``"CONV?-96(3,0)"`` or ``{"layer": 1, "setting": "k", "accept_all": true}``, stored as
the latter; the option ``blank``, one of none, k, filters, stride, padding or any, draws
one): one setting of a conv or pool layer is left out and asked in the field ``blank``.
The sheet gives the blanked layer's input and output shapes (the rows before and of that
layer: their entries weigh nothing, and later rows start again from them); the step
``blank`` solves for the setting from them, and the layer's counts use it. A blank that
several values fit is refused unless ``accept_all``; then ``blank`` lists the others as
``alternatives``, and every other field the whole answer counted with each of them.
Drawn blanks are one value of at least 2 (a constant answer earns nothing). Mistakes:
the +1 or the padding left out when solving.

Figure: the worked solution draws the network as a strip of blocks, one per layer
(:func:`network_strip`), each drawn to its output shape (height: the side H; width: the
channels C, on a log scale; a vector a thin bar) and labelled with the layer: where the
maps shrink, where the channels grow and where the network flattens, at a glance. The
problem sheet has none: a strip labelled with the layers only would repeat its table
row by row, and one drawn to the shapes would give the answers away.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any


from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.blanks import (BLANK, SETTINGS, WHAT, Blank, blank_steps, draw_blank,
                                        no_blank_in, parse_blank, shape_parts,
                                        slips_with_blank, valid_values)
from deepdrill.generator.exercise import Exercise, jsonable, register, require
from deepdrill.generator.layer_tex import (blank_stated, blank_worked, label, mults_tex,
                                           params_tex, size_tex, sum_tex)
from deepdrill.generator.layers import (BatchNorm, Conv, Dense, Dropout, Flatten, Layer,
                                        LayerRow, Pool, ReLU, Shape, as_shape, chain_steps,
                                        has_bias, multiplies, names, no_biases, output_size,
                                        parse_layer, parse_layers, rows, shape_after, swaps,
                                        total, trace, weights_one_channel)
from deepdrill.generator.networks import INPUT_SHAPES, draw_network, fitting_input
from deepdrill.generator.steps import Slip, Step
from deepdrill.model.fields import integer

# Entry weights: the work an entry needs.
UNCHANGED, LITTLE, READ_OFF, WORKED_OUT = 0.0, 0.1, 0.5, 1.0  # a shape entry (shape_weights)
PARAM_WORK = {Conv: 1.0, Dense: 1.0, BatchNorm: 0.5, Pool: 0.2}  # other layers: 0
BLANK_OPTIONS = ("none", *SETTINGS[Conv], "any")  # the option blank: a setting to draw, or any
BLANK_WEIGHT = 2.0  # the blank's share, as a whole column of the table
# The strip (cm): blocks STEP apart (less when many share STRIP_WIDTH), heights from
# LOW to LOW + SPAN (H, or a vector's length on a log scale), widths from THIN to
# THIN + WIDE (C on a log scale), a vector BAR wide.
STRIP_WIDTH, STEP, LOW, SPAN, THIN, WIDE, BAR = 15.0, 0.9, 0.5, 1.8, 0.2, 0.4, 0.12
LABEL_RISE = 0.06  # cm: a label's baseline below its slot's middle, to centre its capitals
STRIP_COLORS = {"conv": "blue", "pool": "red", "avgpool": "red", "fc": "green!60!black",
                "flatten": "gray", "relu": "orange", "bn": "violet", "dropout": "brown"}


@functools.lru_cache(maxsize=256)  # the grader re-runs a variant's graph for every slip
def table_graph(layers: tuple[Layer, ...], blank: Blank | None = None,
                input_shape: Shape = ()) -> tuple[Step, ...]:
    """The layers' steps (with a blank: its given shapes and its step), then ``total_params``.

    >>> from deepdrill.generator.steps import run
    >>> v = run(table_graph(parse_layers(["CONV5-6(1,0)", "POOL-2", "FC-10"])),
    ...         {"input_shape": [1, 32, 32]})
    >>> v["shape_2"], v["weights_1"], v["biases_1"], v["params_3"], v["total_params"]
    ((6, 14, 14), 150, 6, 11770, 11926)
    """
    steps = chain_steps(layers)
    if blank is not None:
        shapes = [r.output_shape for r in trace(input_shape, layers)]
        steps = blank_steps(steps, layers, blank, shapes)
    every = tuple(names(i).params for i in range(1, len(layers) + 1))
    return (*steps, Step("total_params", total, every))


def graph_of_strings(specs: Sequence[str]) -> tuple[Step, ...]:
    """:func:`table_graph` without a blank, of stored layer strings: put together from each
    row's steps, made once per layer string and row (the grader asks for the graph of
    every variant it re-runs; a class's networks differ, their rows recur)."""
    steps: list[Step] = []
    for i, spec in enumerate(specs, 1):
        steps += _row_steps(spec, i)
    return (*steps, _total_step(len(specs)))


@functools.lru_cache(maxsize=4096)
def _row_steps(spec: str, i: int) -> tuple[Step, ...]:
    return chain_steps([parse_layer(spec)], before=names(i - 1).shape if i > 1 else
                       "input_shape", first=i)


@functools.lru_cache(maxsize=64)
def _total_step(n: int) -> Step:
    return Step("total_params", total, tuple(names(i).params for i in range(1, n + 1)))


def stored_blank(params: dict[str, Any]) -> Blank | None:
    """The checked parameters' blank (stored as a complete dict), if any."""
    return None if params.get("asks") is None else Blank(**params["asks"])


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


def table_slips(layers: Sequence[Layer], blank: Blank | None = None) -> list[Slip]:
    """The catalogue's mistakes; each count slip swaps different steps, so they combine
    with each other and with any one size slip. With a blank, the given shapes are not
    swapped, and solving for the blank has its own slips."""
    slips = _table_slips(layers)
    return slips if blank is None else slips_with_blank(slips, layers, blank)


def _table_slips(layers: Sequence[Layer]) -> list[Slip]:
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

def shape_weights(rows: Sequence[LayerRow], given: Sequence[int] = ()) -> list[float]:
    """Per entry of the output shapes, the work it needs:

    * nothing for an entry the layer never changes (a ReLU's row, a pool's channels), or
      in a row the sheet gives (``given``: 1-based rows, around a blank);
    * little for one it happens to keep (a "same" convolution's H and W: copying the
      input gets it, but forgetting the padding must still cost something), and for a
      row the layer would also give one row early (a stride-2 convolution keeping the
      channels after a 2x2 pool): a table shifted down by a row, each layer's input
      copied as its output, is consistent there and would earn carried-forward credit;
    * half for one read off the notation (filters, units) or a plain product (FLATTEN);
    * all for one worked out with the size formula.
    """
    out = []
    for i, (before, r) in enumerate(zip((None, *rows), rows), 1):
        repeated = before is not None and _applied(r.layer, before.input_shape) == r.input_shape
        for e in range(len(r.output_shape)):
            if i in given or _never_changes(r, e):
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


# -- the figure ---------------------------------------------------------------------------

def network_strip(input_shape: Shape, table: Sequence[LayerRow]) -> dict[str, Any] | None:
    """Blocks (cm, centred on y = 0) for the input and each layer, drawn to the output
    shapes (H linear, C and a vector's length on log scales), with the layer's label
    and colour; None for a network of vectors only (nothing shrinks or flattens)."""
    if len(input_shape) == 1:
        return None
    shapes = [tuple(input_shape), *(r.output_shape for r in table)]
    top = max((s[1] for s in shapes if len(s) == 3), default=1)
    depth = _log_scale([s[0] for s in shapes if len(s) == 3])
    length = _log_scale([s[0] for s in shapes if len(s) == 1])
    step = min(STEP, STRIP_WIDTH / len(shapes))
    kinds = ["input", *(r.layer.kind for r in table)]
    labels = ["input", *(label(r.layer) for r in table)]
    blocks = []
    for i, (shape, kind, name) in enumerate(zip(shapes, kinds, labels)):
        tall = LOW + SPAN * (shape[1] / top if len(shape) == 3 else length(shape[0]))
        wide = THIN + WIDE * depth(shape[0]) if len(shape) == 3 else BAR
        blocks.append({"x0": round(i * step - wide / 2, 3), "x1": round(i * step + wide / 2, 3),
                       "y0": round(-tall / 2, 3), "y1": round(tall / 2, 3), "x": round(i * step, 3),
                       "color": STRIP_COLORS.get(kind, "gray"), "label": name})
    return {"blocks": blocks, "below": round(-(LOW + SPAN) / 2 - 0.08, 3),
            "labels_at": round(-step / 2, 3),  # the labels: one text, a slot of step each
            "above": latex.Tex(f"{step / 2 + LABEL_RISE:.3f}cm"),
            "beneath": latex.Tex(f"{step / 2 - LABEL_RISE:.3f}cm")}


def _log_scale(values: Sequence[int]) -> Any:
    """x -> log(x) / log(max) in [0, 1] (0 for all when the largest is 1)."""
    top = math.log(max(values, default=1))
    return lambda x: math.log(x) / top if top > 0 else 0.0


# -- the exercise ------------------------------------------------------------------

@register
class CnnLayerTable(Exercise):
    id = "cnn_layer_table"
    title = "Shapes and parameters of a CNN"
    summary = ("fill in each layer's output shape and parameter count (optionally "
               "multiplications, or a layer setting left blank)")
    params = ("input_shape", "layers", "multiplications", "asks")
    options = {"multiplications": False, "blank": "none"}
    work_space = "1cm"  # the problem's own table is the work space
    solution_packages = ("tikz",)  # the strip of blocks in the worked solution: problem sheets compile without it

    def sample(self, rng, pinned, options):
        p = {"multiplications": bool(options["multiplications"]), **pinned}
        blank = options["blank"]
        if blank not in BLANK_OPTIONS:
            raise ParamError(f"option blank must be one of {', '.join(BLANK_OPTIONS)}, "
                             f"not {blank!r}")
        if pinned.get("asks") is not None and "layers" not in pinned:
            raise ParamError("asks names a setting of one of the layers: give layers too, or "
                             "draw a blank with the option blank")
        if "layers" not in p:
            shape = as_shape(p["input_shape"]) if "input_shape" in p else \
                INPUT_SHAPES[int(rng.integers(len(INPUT_SHAPES)))]
            if blank != "none" and len(shape) == 1:
                raise ParamError(f"option blank asks a conv or pool setting, but input_shape "
                                 f"{tuple(shape)} is a vector: its network is fully connected")
            p["input_shape"] = list(shape)
            p["layers"] = [layer.to_json() for layer in draw_network(rng, shape, blank)]
        elif "input_shape" not in p:
            p["input_shape"] = fitting_input(rng, parse_layers(p["layers"]))
        if blank != "none" and "asks" not in pinned:
            table = trace(p["input_shape"], parse_layers(p["layers"]))
            p["asks"] = draw_blank(rng, table, blank).to_json()
        return p

    def check(self, params):
        require(params, "input_shape", "layers")
        shape = as_shape(params["input_shape"])
        no_blank_in(params["layers"])
        layers = parse_layers(params["layers"])
        if not layers:
            raise ParamError("layers must list at least one layer")
        table = trace(shape, layers)
        if not any(r.params for r in table):
            raise ParamError("these layers have no parameters to count; add a CONV, FC or BN "
                             "layer")
        mults = params.get("multiplications", False)
        if not isinstance(mults, bool):
            raise ParamError(f"multiplications must be true or false, not {mults!r}")
        if mults and not any(multiplies(x) for x in layers):
            raise ParamError("multiplications: true needs a CONV or FC layer; no other layer "
                             "multiplies")
        out = {"input_shape": list(shape), "layers": [x.to_json() for x in layers],
               "multiplications": mults}
        blank = parse_blank(params.get("asks"), layers)
        if blank is not None:
            valid_values(table, blank)  # refuses a blank that several values fit
            out["asks"] = blank.to_json()
        return jsonable(out)

    def graph(self, params):
        blank = stored_blank(params)
        if blank is None and all(type(x) is str for x in params["layers"]):
            return graph_of_strings(params["layers"])
        return table_graph(parse_layers(params["layers"]), blank,
                           as_shape(params["input_shape"]) if blank else ())

    def fields(self, params, values):
        table = trace(params["input_shape"], parse_layers(params["layers"]))
        each = [names(i) for i in range(1, len(table) + 1)]
        blank = stored_blank(params)
        shapes = shape_weights(table, blank.given_rows() if blank else ())
        out = [integer("output_shapes", "the output shape of each layer, [C, H, W] or [N]" +
                       ("; copy the given ones" if blank else ""),
                       [[len(r.output_shape)] for r in table], weight=2 if any(shapes) or
                       not blank else 0,  # every row given: nothing to earn
                       entry_weights=shapes if any(shapes) else None,  # else all alike
                       parts=shape_parts(len(table), blank)),
               integer("layer_params", "the number of parameters of each layer", [len(table)],
                       weight=2, parts=tuple(n.params for n in each),
                       entry_weights=[PARAM_WORK.get(type(r.layer), 0.0) for r in table]),
               integer("total_params", "the total number of parameters", [])]
        if params["multiplications"]:
            out.append(integer("layer_multiplications", "the multiplications of each layer",
                               [len(table)], weight=2, parts=tuple(n.mults for n in each),
                               entry_weights=[float(multiplies(r.layer)) for r in table]))
        return self._blank_fields(params, values, table, blank, out) if blank else out

    def _blank_fields(self, params, values, table, blank, fields):
        """The field ``blank`` first; when several values fit, it accepts each (the counts
        of its layer then follow from the student's own value of it)."""
        others = [v for v in valid_values(table, blank) if v != values[BLANK]]
        asked = integer(BLANK, f"the {WHAT[blank.setting]} of layer {blank.layer}, "
                        f"{label(table[blank.layer - 1].layer, blank.setting)}" +
                        (" (any value that fits)" if others else ""), [], weight=BLANK_WEIGHT,
                        alternatives=tuple(others))
        return [asked, *fields]

    def slips(self, params):
        return table_slips(parse_layers(params["layers"]), stored_blank(params))

    def problem(self, params):
        layers = parse_layers(params["layers"])
        first = next((x for x in layers if isinstance(x, (Dense, Flatten))), None)
        blank = stored_blank(params)
        labels = [label(x, blank.setting if blank and i == blank.layer else None)
                  for i, x in enumerate(layers, 1)]
        given, stated = [""] * len(layers), {}
        if blank:  # the sheet gives shapes only around a blank: no trace otherwise
            table = trace(params["input_shape"], layers)
            rows_given = blank.given_rows()
            given = [latex.shape(r.output_shape) if i in rows_given else ""
                     for i, r in enumerate(table, 1)]
            stated = blank_stated(table[blank.layer - 1], blank, valid_values(table, blank))
        return {
            "input": latex.shape(params["input_shape"]),
            "layers": labels,
            "given": given,
            "blank": stated,
            "kinds": sorted({x.kind for x in layers}),
            "pool_padding": any(isinstance(x, Pool) and "," in text
                                for x, text in zip(layers, labels)),
            "implicit_flatten": len(params["input_shape"]) == 3 and isinstance(first, Dense),
            "mults": params["multiplications"],
        }

    def worked(self, params, values):
        table = rows(values, parse_layers(params["layers"]))
        asked = params["multiplications"]
        blank = stored_blank(params)
        given = blank.given_rows() if blank else ()
        return {
            "rows": [{"i": i, "layer": label(r.layer), "size": size_tex(r),
                      "shape": latex.shape(r.output_shape), "params": params_tex(r),
                      "given": i in given}
                     for i, r in enumerate(table, 1)],
            "blank": blank_worked(table[blank.layer - 1], blank, valid_values(table, blank),
                                  values[BLANK]) if blank else {},
            "total_sum": sum_tex([r.params for r in table]),
            "total": latex.count(values["total_params"]),
            "mults": [{"i": i, "layer": label(r.layer), "product": mults_tex(r)}
                      for i, r in enumerate(table, 1) if r.multiplications] if asked else [],
            "strip": network_strip(params["input_shape"], table),
            "output_shapes": [latex.shape(r.output_shape) for r in table],
            "layer_params": [latex.count(r.params) for r in table],
            "layer_multiplications": [latex.count(r.multiplications) for r in table]
            if asked else [],
        }
