"""conv_cost: multiplications and parameters of parallel convolution branches.

Parameters: ``input_shape`` (C, H, W); ``branches``, a list of layer chains in the
notation of :mod:`deepdrill.generator.layers` (stored canonically); ``compare``
(default false; the option of the same name sets it for drawn variants).

Inside a branch every layer keeps H x W: a convolution has stride 1 and "same"
padding floor(k/2) (the notation's default, so an odd k); a pooling layer such as
``POOL-3(1)`` has stride 1 and padding floor(k/2), whatever padding the notation
gives it. A layer that would change H x W is refused, and so are FC and FLATTEN
layers. ReLU, batch norm and dropout multiply nothing; batch norm has 2 parameters
per channel.

``compare: false`` (an Inception-style module): each branch's multiplications and
parameters, their totals, and the shape of the outputs concatenated along the
channels (a pooling-only branch keeps the input's channels). ``compare: true`` (the
saving of a cheaper alternative): two branches, the direct one first and the cheaper
one second (say a 1x1 bottleneck before the k x k convolution), with the same
output shape; each branch's counts, that ``output_shape``, and ``savings_factor``,
the first's multiplications over the second's (no totals: the branches are
alternatives).

The steps: branch b's layers are counted by
:func:`~deepdrill.generator.layers.chain_steps` (``shape_b.i``, ``weights_b.i``,
``biases_b.i``, ``positions_b.i``, ``mults_b.i``) and summed into ``branch_mults_b``
and ``branch_params_b`` (the items of the two branch fields); the totals, the savings
factor and the output shape come from those. Each mistake swaps one kind of step, so
any two of them combine.

The problem sheet draws two or more branches (:func:`module_figure`): the input on
top, each branch a column of boxes labelled with its layers, and below them the
concatenation (a module) or each alternative's own output (``compare``); no count or
output shape, which are the answers.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.exercise import Exercise, jsonable, register, require
from deepdrill.generator.layer_tex import label, mults_tex, params_tex, sum_tex
from deepdrill.generator.layers import (BatchNorm, Conv, Dense, Flatten, Layer, Pool, Shape, add,
                                        as_shape, chain_steps, count, has_bias, multiplies, names,
                                        no_biases, parse_layers, rows, swaps, total, trace,
                                        weights_one_channel)
from deepdrill.generator.randomness import choice, draw_until
from deepdrill.generator.steps import NotApplicable, Slip, Step, run
from deepdrill.model.fields import integer, real

SIZES = (7, 14, 28)
CHANNELS = (64, 128, 192, 256, 480, 512)
NAIVE_SHARE = 0.25  # share of drawn modules without 1x1 reductions (the "naive" Inception)
FOUR_BRANCH_SHARE = 0.6
MAX_DRAWS = 100
# The figure: branches side by side share FIGURE_WIDTH cm, a column at most COLUMN cm
# wide; more than MAX_FIGURE_BRANCHES (pinned) are only listed.
FIGURE_WIDTH, COLUMN, MAX_FIGURE_BRANCHES = 15.0, 3.4, 6
# Rows (cm): a box is 2 * HALF high, layers ROW apart starting at FIRST_ROW below the
# input, the bus joining the input to the columns at BUS; boxes BOX_GAP narrower than
# their column.
HALF, ROW, FIRST_ROW, BUS, BOX_GAP = 0.3, 1.0, -1.6, -0.65, 0.5


# -- the steps ------------------------------------------------------------------

def computed(layers: Sequence[Layer]) -> tuple[Layer, ...]:
    """The branch's layers as computed: pooling padded by floor(k/2)."""
    return tuple(Pool(x.k, x.stride, x.k // 2, x.mode) if isinstance(x, Pool) else x
                 for x in layers)


def concatenated(*shapes: Any) -> Shape:
    """The branches' outputs stacked along the channels (all keep the same H x W)."""
    dims = [as_shape(s) for s in shapes]
    return (sum(d[0] for d in dims), *dims[0][1:])


def savings(direct: Any, alternative: Any) -> float:
    """The direct branch's multiplications over the alternative's.

    Two equal counts give 1 without any work: no carried-forward credit for that
    (it would reward an answer of all ones).
    """
    d, a = count(direct), count(alternative)
    if a <= 0 or a == d:
        raise NotApplicable(f"{d} / {a} multiplications is no savings factor to compute")
    return d / a


@functools.lru_cache(maxsize=256)  # the grader re-runs a variant's graph for every slip
def module_graph(branches: tuple[tuple[Layer, ...], ...], compare: bool) -> tuple[Step, ...]:
    """Each branch's layer steps and sums, then the totals (or the savings factor) and the
    output shape.

    >>> v = run(module_graph((parse_layers(["CONV5-32"]), parse_layers(["CONV1-16", "CONV5-32"])),
    ...                      True), {"input_shape": [192, 28, 28]})
    >>> v["branch_mults_1"], v["branch_mults_2"], round(v["savings_factor"], 3)
    (120422400, 12443648, 9.677)
    """
    steps: list[Step] = []
    for b, layers in enumerate(branches, 1):
        each = [names(f"{b}.{i}") for i in range(1, len(layers) + 1)]
        steps += [*chain_steps(layers, branch=b),
                  Step(f"branch_mults_{b}", add, tuple(n.mults for n in each)),
                  Step(f"branch_params_{b}", add, tuple(n.params for n in each))]
    mults, params = _branch_names(len(branches))
    last = tuple(names(f"{b}.{len(x)}").shape for b, x in enumerate(branches, 1))
    if compare:
        return (*steps, Step("output_shape", concatenated, last[:1]),
                Step("savings_factor", savings, mults))
    return (*steps, Step("total_multiplications", total, mults),
            Step("total_params", total, params), Step("output_shape", concatenated, last))


def graph_of_strings(branches: tuple[tuple[str, ...], ...], compare: bool) -> tuple[Step, ...]:
    """:func:`module_graph` of stored layer strings, put together from steps made once per
    branch (the grader asks for the graph of every variant it re-runs; a class's modules
    differ, their branches recur)."""
    steps: list[Step] = []
    last = []
    for b, specs in enumerate(branches, 1):
        each, shape = _branch_graph(b, specs)
        steps += each
        last.append(shape)
    return (*steps, *_module_end(len(branches), compare, tuple(last)))


@functools.lru_cache(maxsize=4096)
def _branch_graph(b: int, specs: tuple[str, ...]) -> tuple[tuple[Step, ...], str]:
    """Branch b's steps as :func:`module_graph` makes them, and its output shape's name."""
    layers = computed(parse_layers(specs))
    each = [names(f"{b}.{i}") for i in range(1, len(layers) + 1)]
    return (*chain_steps(layers, branch=b),
            Step(f"branch_mults_{b}", add, tuple(n.mults for n in each)),
            Step(f"branch_params_{b}", add, tuple(n.params for n in each))), each[-1].shape


@functools.lru_cache(maxsize=64)
def _module_end(n: int, compare: bool, last: tuple[str, ...]) -> tuple[Step, ...]:
    mults, params = _branch_names(n)
    if compare:
        return (Step("output_shape", concatenated, last[:1]), Step("savings_factor", savings, mults))
    return (Step("total_multiplications", total, mults), Step("total_params", total, params),
            Step("output_shape", concatenated, last))


def _branch_names(n: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (tuple(f"branch_mults_{b}" for b in range(1, n + 1)),
            tuple(f"branch_params_{b}" for b in range(1, n + 1)))


def mults_k_not_k_squared(layer: Conv, positions: Any, weights: Any) -> int:
    return count(positions) * count(weights) // layer.k


def one_position(layer: Conv, shape: Any) -> int:
    return 1


def module_slips(branches: Sequence[Sequence[Layer]]) -> list[Slip]:
    def everywhere(step: str, fn: Any, which: Any) -> dict[str, Any]:
        return {k: v for b, layers in enumerate(branches, 1)
                for k, v in swaps(layers, step, fn, which, branch=b).items()}

    def convs(layer: Layer) -> bool:
        return isinstance(layer, Conv)

    return [
        Slip("forgot_input_channels", "you left out the input channels: each output value of "
             "a convolution sums k*k products over every input channel (k*k*C_in)",
             everywhere("weights", weights_one_channel, convs)),
        Slip("k_not_k_squared", "you counted a k x k filter as k multiplications; it has k*k "
             "weights per input channel", everywhere("mults", mults_k_not_k_squared, convs)),
        Slip("per_position", "you counted the work of one output position; multiply by the "
             "H_out*W_out positions of the map", everywhere("positions", one_position, convs)),
        Slip("forgot_biases", "you left out the biases, one per filter",
             everywhere("biases", no_biases, has_bias)),
    ]


# -- random draws ---------------------------------------------------------------------

def draw_input(rng: np.random.Generator) -> list[int]:
    size = choice(rng, SIZES)
    return [choice(rng, CHANNELS), size, size]


def draw_inception(rng: np.random.Generator, channels: int) -> list[list[str]]:
    """Three or four Inception branches: 1x1; (1x1 then) 3x3; (1x1 then) 5x5; pool (then 1x1)."""
    naive = rng.random() < NAIVE_SHARE

    def filters(options: Sequence[int], above: int = 0) -> int:
        return choice(rng, [f for f in options if f > above] or [max(options)])

    def reduction(options: Sequence[int]) -> int:
        return choice(rng, [f for f in options if f < channels] or [min(options)])

    r3, r5 = reduction((32, 48, 64, 96, 128, 160, 192)), reduction((16, 24, 32, 48, 64))
    b3, b5 = filters((64, 96, 128, 192, 208, 256), r3), filters((32, 48, 64, 96, 128), r5)
    one, proj = filters((16, 32, 64, 96, 128, 192, 256)), filters((16, 32, 64, 128))
    branches = [
        [f"CONV1-{one}"],
        [f"CONV3-{b3}"] if naive else [f"CONV1-{r3}", f"CONV3-{b3}"],
        [f"CONV5-{b5}"] if naive else [f"CONV1-{r5}", f"CONV5-{b5}"],
        ["POOL-3(1)"] if naive else ["POOL-3(1)", f"CONV1-{proj}"],
    ]
    if rng.random() >= FOUR_BRANCH_SHARE:
        del branches[int(rng.integers(4))]
    return branches


def draw_comparison(rng: np.random.Generator, channels: int) -> list[list[str]]:
    """A direct k x k convolution against a 1x1 bottleneck followed by the same k x k one."""
    k = choice(rng, [3, 5])
    n = choice(rng, [32, 64, 96, 128, 192, 256])
    r = choice(rng, [x for x in (16, 32, 48, 64) if x <= channels // 4 and x < n] or [16])
    return [[f"CONV{k}-{n}"], [f"CONV1-{r}", f"CONV{k}-{n}"]]


# -- the exercise ----------------------------------------------------------------------

@register
class ConvCost(Exercise):
    id = "conv_cost"
    title = "Cost of convolution branches"
    summary = "multiplications and parameters of conv branches: Inception module, 1x1 bottleneck"
    params = ("input_shape", "branches", "compare")
    options = {"compare": False}
    work_space = "7cm"
    packages = ("tikz",)  # the branches drawn on the problem sheet
    need_space = r"20\baselineskip"  # the figure stays with the text around it

    def sample(self, rng, pinned, options):
        p = {"compare": bool(options["compare"]), **pinned}
        if "input_shape" not in p:
            p["input_shape"] = draw_input(rng)
        shape = as_shape(p["input_shape"])
        if "branches" not in p and len(shape) == 3:  # else check() says what is wrong
            draw = draw_comparison if p["compare"] is True else draw_inception
            p["branches"] = draw_until(
                rng, functools.partial(draw, channels=shape[0]),
                functools.partial(self._changes_channels, p), tries=MAX_DRAWS,
                refusal=f"no module of this kind suits input_shape {list(shape)}; give the "
                        f"branches")
        return p

    def _changes_channels(self, params: dict[str, Any], branches: list[list[str]]) -> bool:
        """A valid module whose output shape is not the input's (copying it earns nothing)."""
        try:
            p = self.check({**params, "branches": branches})
        except ParamError:
            return False
        return run(self.graph(p), p)["output_shape"][0] != p["input_shape"][0]

    def check(self, params):
        require(params, "input_shape", "branches")
        shape = as_shape(params["input_shape"])
        if len(shape) != 3:
            raise ParamError("input_shape must be a feature map (C, H, W)")
        compare = params.get("compare", False)
        if not isinstance(compare, bool):
            raise ParamError(f"compare must be true or false, not {compare!r}")
        branches = _parse_branches(params["branches"])
        tables = [check_branch(shape, layers, i) for i, layers in enumerate(branches, 1)]
        mults = [sum(r.multiplications for r in t) for t in tables]
        if compare:
            _check_comparison([t[-1].output_shape for t in tables], mults)
        elif not any(mults):
            raise ParamError("the branches multiply nothing, so there is nothing to count; "
                             "give one a convolution")
        return jsonable({"input_shape": list(shape), "compare": compare,
                         "branches": [[x.to_json() for x in b] for b in branches]})

    def graph(self, params):
        branches = params["branches"]
        if all(type(x) is str for b in branches for x in b):  # stored: one string per layer
            return graph_of_strings(tuple(map(tuple, branches)), params["compare"])
        return module_graph(tuple(computed(b) for b in _parse_branches(branches)),
                            params["compare"])

    def fields(self, params, values):
        branches = _parse_branches(params["branches"])
        mults, counted = _branch_names(len(branches))
        # a branch that obviously has nothing to count (pooling only) weighs nothing
        out = [integer("branch_multiplications", "the multiplications of each branch",
                       [len(branches)], parts=mults,
                       entry_weights=[float(any(map(multiplies, b))) for b in branches]),
               integer("branch_params", "the parameters of each branch", [len(branches)],
                       parts=counted, entry_weights=[
                           float(any(isinstance(x, (Conv, BatchNorm)) for x in b))
                           for b in branches])]
        output = integer("output_shape", "the output shape of either branch, [C, H, W]"
                         if params["compare"] else "the shape of the concatenated output, "
                         "[C, H, W]", [3], entry_weights=[1, 0, 0])  # H and W are the input's
        if params["compare"]:
            return out + [output, real("savings_factor", "the first branch's multiplications "
                                       "divided by the second's", [])]
        return out + [integer("total_multiplications", "the multiplications of the module", []),
                      integer("total_params", "the parameters of the module", []), output]

    def slips(self, params):
        return module_slips([computed(b) for b in _parse_branches(params["branches"])])

    def problem(self, params):
        branches = _parse_branches(params["branches"])
        pools = {str(x): y for b in branches for x, y in zip(b, computed(b)) if isinstance(x, Pool)}
        return {
            "input": latex.shape(params["input_shape"]),
            "size": latex.Tex(r"{}\times {}".format(*params["input_shape"][1:])),
            "branches": [[label(x) for x in b] for b in branches],
            "pools": [{"name": name, "k": p.k, "padding": p.padding,
                       "mode": "max" if p.mode == "max" else "average"}
                      for name, p in pools.items()],
            "bn": any(isinstance(x, BatchNorm) for b in branches for x in b),
            "figure": module_figure([[label(x) for x in b] for b in branches],
                                    params["compare"]),
        }

    def worked(self, params, values):
        branches = _parse_branches(params["branches"])
        tables = [rows(values, computed(b), branch=j) for j, b in enumerate(branches, 1)]
        mults, counted = _branch_names(len(branches))
        out = {"branches": [_branch_steps(b, t, values[m], values[p])
                            for b, t, m, p in zip(branches, tables, mults, counted)],
               "mults": [latex.count(values[m]) for m in mults],
               "params": [latex.count(values[p]) for p in counted],
               "output": latex.shape(values["output_shape"])}
        if params["compare"]:
            out["savings_value"] = latex.num(values["savings_factor"])
            out["savings"] = latex.Tex(f"{out['mults'][0]} / {out['mults'][1]} = "
                                       f"{out['savings_value']}")
        else:
            out["total_mults"] = latex.count(values["total_multiplications"])
            out["total_params"] = latex.count(values["total_params"])
            out["channels"] = latex.Tex(" + ".join(str(t[-1].output_shape[0]) for t in tables))
            out["out_channels"] = values["output_shape"][0]
        return out


def module_figure(branches: list[list[str]], compare: bool) -> dict[str, Any] | None:
    """Coordinates (cm, y up, the input box centred at the origin) of the branches'
    figure: a column per branch, a box per layer, and the row below them (the
    concatenation, or each alternative's output); None for a single branch or more
    than MAX_FIGURE_BRANCHES."""
    if not 2 <= len(branches) <= MAX_FIGURE_BRANCHES:
        return None
    width = min(COLUMN, FIGURE_WIDTH / len(branches))
    box = width - BOX_GAP
    middle = (len(branches) - 1) / 2
    depth = max(map(len, branches))
    columns = []
    for b, layers in enumerate(branches):
        ys = [FIRST_ROW - ROW * i for i in range(len(layers))]
        columns.append({"x": round((b - middle) * width, 3), "top": ys[0] + HALF,
                        "title": f"({'ab'[b]})" if compare else f"branch {b + 1}",
                        "layers": [{"y": y, "label": x, "font": _box_font(x, box)}
                                   for y, x in zip(ys, layers)],
                        "arrows": [(y1 - HALF, y2 + HALF) for y1, y2 in pairwise(ys)],
                        "end": ys[-1] - HALF,
                        # arrowhead tips: each box's top, and the bottom row's
                        "heads": [*(y + HALF for y in ys), FIRST_ROW - ROW * depth + HALF]})
    bottom = FIRST_ROW - ROW * depth
    return {"box": round(box, 3), "half": HALF, "bus": BUS, "compare": compare,
            "span": round(width * len(branches) - BOX_GAP, 3), "columns": columns,
            "bottom": bottom, "bottom_top": bottom + HALF}


def _box_font(text: str, box: float) -> latex.Tex:
    """The largest of small, footnotesize, scriptsize typewriter that fits the box."""
    for size, char in ((r"\small", 0.2), (r"\footnotesize", 0.17)):
        if len(text) * char <= box:
            return latex.Tex(size)
    return latex.Tex(r"\scriptsize")


def _parse_branches(value: Any) -> list[tuple[Layer, ...]]:
    if not isinstance(value, list) or not value or not all(isinstance(b, list) for b in value):
        raise ParamError('branches must be a non-empty list of layer lists, e.g. '
                         '[["CONV1-64"], ["CONV1-96", "CONV3-128"], ["POOL-3(1)", "CONV1-32"]]')
    out = []
    for i, b in enumerate(value, 1):
        if not b:
            raise ParamError(f"branch {i} is empty; give it at least one layer")
        try:
            out.append(parse_layers(b))
        except ParamError as err:
            raise ParamError(f"branch {i}, {err.message}") from None
    return out


def check_branch(input_shape: Shape, layers: Sequence[Layer], index: int) -> tuple[Any, ...]:
    """The branch's rows; ParamError unless every layer keeps H x W."""
    for j, layer in enumerate(layers, 1):
        if isinstance(layer, (Dense, Flatten)):
            raise ParamError(f"branch {index}, layer {j} ({layer}): FC and FLATTEN layers do "
                             f"not belong in a branch; each branch maps the (C, H, W) input "
                             f"to a (C', H, W) map")
    try:
        table = trace(input_shape, computed(layers))
    except ParamError as err:
        raise ParamError(f"branch {index}, {err.message}") from None
    for j, row in enumerate(table, 1):
        (_, h, w), (_, ho, wo) = row.input_shape, row.output_shape
        if (ho, wo) != (h, w):
            raise ParamError(f"branch {index}, layer {j} ({layers[j - 1]}) turns {h}x{w} into "
                             f"{ho}x{wo}; every layer in a branch keeps H x W: an odd kernel, "
                             f"stride 1 and padding floor(k/2), e.g. CONV3-64 or POOL-3(1)")
    return table


def _check_comparison(outputs: list[Shape], mults: list[int]) -> None:
    if len(outputs) != 2:
        raise ParamError(f"compare: true needs exactly two branches, the direct one first and "
                         f"the cheaper alternative second; got {len(outputs)}")
    if outputs[0] != outputs[1]:
        raise ParamError(f"the two branches must give the same output shape to be compared; "
                         f"they give {outputs[0]} and {outputs[1]}")
    if mults[1] == 0:
        raise ParamError("the second branch multiplies nothing, so there is no savings factor; "
                         "give it a convolution")
    if mults[1] >= mults[0]:
        raise ParamError(f"the second branch ({mults[1]} multiplications) is no cheaper than "
                         f"the first ({mults[0]}); give the direct branch first and the cheaper "
                         f"alternative second")


def _branch_steps(layers: Sequence[Layer], table: Sequence[Any], mults: int,
                  params: int) -> dict[str, Any]:
    def terms(counts: list[int]) -> latex.Tex | None:  # written out when there are several
        return sum_tex(counts) if sum(map(bool, counts)) > 1 else None

    return {"rows": [{"layer": label(x), "shape": latex.shape(r.output_shape),
                      "mults": mults_tex(r), "params": params_tex(r)}
                     for x, r in zip(layers, table)],
            "sum_mults": terms([r.multiplications for r in table]),
            "sum_params": terms([r.params for r in table]),
            "mults": latex.count(mults), "params": latex.count(params)}
