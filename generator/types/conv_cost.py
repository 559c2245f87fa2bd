"""conv_cost: multiplications and parameters of parallel convolution branches.

Parameters: ``input_shape`` (C, H, W); ``branches``, a list of layer chains in the
notation of :mod:`deepdrill.generator.layers` (stored canonically); ``compare``
(default false; the option of the same name sets it for drawn variants).

Inside a branch every layer keeps H x W. A convolution has stride 1 and "same"
padding floor(k/2) (the notation's default, so an odd k); a pooling layer such as
``POOL-3(1)`` is pooling with stride 1 and padding floor(k/2), whatever padding the
notation gives it. A layer that would change H x W (an explicit ``(S,P)`` that does
not keep it, an even kernel, a pooling stride above 1) is refused, and so are FC
and FLATTEN layers. ReLU, batch norm and dropout are allowed; they multiply nothing
and only batch norm has parameters (2 per channel).

``compare: false`` (an Inception-style module): the answers are each branch's
multiplications and parameters, their totals, and the shape of the branches'
outputs concatenated along the channels (a pooling-only branch keeps the input's
channels).

``compare: true`` (the saving of a cheaper alternative): exactly two branches, the
direct one first and the cheaper alternative second (say a 1x1 bottleneck before
the k x k convolution), with the same output shape. The answers are each branch's
multiplications and parameters, that common ``output_shape``, and
``savings_factor``, the first branch's multiplications divided by the second's.
Totals are not asked: the two branches are alternatives, and their sum means nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.exercise import Exercise, jsonable, register, require
from deepdrill.model.fields import integer, real
from deepdrill.generator.layer_tex import label, mults_tex, params_tex
from deepdrill.generator.layers import (BatchNorm, Conv, Count, Dense, Flatten, Layer, LayerRow,
                                        Pool, Shape, Slip, as_shape, count_without_bias,
                                        count_without_input_channels, parse_layers, right_count,
                                        trace)
from deepdrill.generator.randomness import choice
from deepdrill.model.variant import Mistake

SIZES = (7, 14, 28)
CHANNELS = (64, 128, 192, 256, 480, 512)
NAIVE_SHARE = 0.25  # share of drawn modules without 1x1 reductions (the "naive" Inception)
FOUR_BRANCH_SHARE = 0.6


def count_k_not_k2(row: LayerRow) -> tuple[int, int]:
    """A k x k filter counted as k multiplications per input channel, not k*k."""
    params, mults = right_count(row)
    return params, mults // row.layer.k if isinstance(row.layer, Conv) else mults


def count_per_position(row: LayerRow) -> tuple[int, int]:
    """The work of one output position, not of the whole H x W map."""
    params, mults = right_count(row)
    _, h, w = row.output_shape
    return params, mults // (h * w)


SLIPS = (
    Slip("forgot_input_channels", "you left out the input channels: each output value of a "
         "convolution sums k*k products over every input channel (k*k*C_in)",
         count=count_without_input_channels),
    Slip("k_not_k_squared", "you counted a k x k filter as k multiplications; it has k*k "
         "weights per input channel", count=count_k_not_k2),
    Slip("per_position", "you counted the work of one output position; multiply by the "
         "H_out*W_out positions of the map", count=count_per_position),
    Slip("forgot_biases", "you left out the biases, one per filter", count=count_without_bias),
)


# -- the solver -----------------------------------------------------------------

def branch_rows(input_shape: Sequence[int], layers: Sequence[Layer]) -> tuple[LayerRow, ...]:
    """The branch's layers as computed (pooling padded by floor(k/2)), one row each."""
    return trace(input_shape, [same_padded(x) for x in layers])


def same_padded(layer: Layer) -> Layer:
    if isinstance(layer, Pool):
        return Pool(layer.k, layer.stride, layer.k // 2, layer.mode)
    return layer


def module_cost(input_shape: Sequence[int], branches: Sequence[Sequence[Layer]],
                compare: bool, count: Count = right_count) -> dict[str, Any]:
    """All answers, counting each layer with ``count`` (a slip reproduces a mistake).

    >>> from deepdrill.generator.layers import parse_layers as p
    >>> cost = module_cost((192, 28, 28), [p(["CONV5-32"]), p(["CONV1-16", "CONV5-32"])], True)
    >>> cost["branch_multiplications"], cost["output_shape"], round(cost["savings_factor"], 3)
    ([120422400, 12443648], [32, 28, 28], 9.677)
    """
    rows = [branch_rows(input_shape, b) for b in branches]
    counts = [[count(r) for r in rs] for rs in rows]
    mults = [sum(m for _, m in c) for c in counts]
    params = [sum(p for p, _ in c) for c in counts]
    outputs = [rs[-1].output_shape for rs in rows]
    if compare:
        return {"branch_multiplications": mults, "branch_params": params,
                "output_shape": list(outputs[0]), "savings_factor": mults[0] / mults[1]}
    _, h, w = input_shape
    return {"branch_multiplications": mults, "branch_params": params,
            "total_multiplications": sum(mults), "total_params": sum(params),
            "output_shape": [sum(o[0] for o in outputs), h, w]}


def check_branch(input_shape: Shape, layers: Sequence[Layer], index: int) -> None:
    """ParamError unless every layer of the branch keeps H x W."""
    for j, layer in enumerate(layers, 1):
        where = f"branch {index}, layer {j} ({layer})"
        if isinstance(layer, (Dense, Flatten)):
            raise ParamError(f"{where}: FC and FLATTEN layers do not belong in a branch; each "
                             f"branch maps the (C, H, W) input to a (C', H, W) map")
    try:
        rows = branch_rows(input_shape, layers)
    except ParamError as err:
        raise ParamError(f"branch {index}, {err.message}") from None
    for j, row in enumerate(rows, 1):
        (_, h, w), (_, ho, wo) = row.input_shape, row.output_shape
        if (ho, wo) != (h, w):
            raise ParamError(f"branch {index}, layer {j} ({layers[j - 1]}) turns {h}x{w} into "
                             f"{ho}x{wo}; every layer in a branch keeps H x W: an odd kernel, "
                             f"stride 1 and padding floor(k/2), e.g. CONV3-64 or POOL-3(1)")


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

    def sample(self, rng, pinned, options):
        p = {"compare": bool(options["compare"]), **pinned}
        if "input_shape" not in p:
            p["input_shape"] = draw_input(rng)
        if "branches" not in p:
            channels = as_shape(p["input_shape"])[0]
            draw = draw_comparison if p["compare"] is True else draw_inception
            p["branches"] = draw(rng, channels)
        return p

    def check(self, params):
        require(params, "input_shape", "branches")
        shape = as_shape(params["input_shape"])
        if len(shape) != 3:
            raise ParamError("input_shape must be a feature map (C, H, W)")
        compare = params.get("compare", False)
        if not isinstance(compare, bool):
            raise ParamError(f"compare must be true or false, not {compare!r}")
        branches = _parse_branches(params["branches"])
        for i, layers in enumerate(branches, 1):
            check_branch(shape, layers, i)
        if compare:
            _check_comparison(shape, branches)
        return jsonable({"input_shape": list(shape), "compare": compare,
                         "branches": [[x.to_json() for x in b] for b in branches]})

    def solve(self, params):
        return module_cost(params["input_shape"], _parse_branches(params["branches"]),
                           params["compare"])

    def fields(self, params):
        n = len(params["branches"])
        out = [integer("branch_multiplications", "the multiplications of each branch", [n]),
               integer("branch_params", "the parameters of each branch", [n])]
        if params["compare"]:
            return out + [integer("output_shape", "the output shape of either branch, "
                                  "[C, H, W]", [3]),
                          real("savings_factor", "the first branch's multiplications divided "
                               "by the second's", [])]
        return out + [integer("total_multiplications", "the multiplications of the module", []),
                      integer("total_params", "the parameters of the module", []),
                      integer("output_shape", "the shape of the concatenated output, [C, H, W]",
                              [3])]

    def mistakes(self, params):
        branches = _parse_branches(params["branches"])
        return [Mistake(s.name, s.feedback,
                        module_cost(params["input_shape"], branches, params["compare"], s.count))
                for s in SLIPS]

    def problem(self, params):
        branches = _parse_branches(params["branches"])
        pools = {str(x): same_padded(x) for b in branches for x in b if isinstance(x, Pool)}
        return {
            "input": latex.shape(params["input_shape"]),
            "size": latex.Tex(r"{}\times {}".format(*params["input_shape"][1:])),
            "branches": [[label(x) for x in b] for b in branches],
            "pools": [{"name": name, "k": p.k, "padding": p.padding,
                       "mode": "max" if p.mode == "max" else "average"}
                      for name, p in pools.items()],
            "bn": any(isinstance(x, BatchNorm) for b in branches for x in b),
        }

    def steps(self, params, answers):
        branches = _parse_branches(params["branches"])
        out = {"branches": [_branch_steps(params["input_shape"], b, i, answers)
                            for i, b in enumerate(branches)],
               "mults": [latex.count(m) for m in answers["branch_multiplications"]],
               "params": [latex.count(p) for p in answers["branch_params"]],
               "output": latex.shape(answers["output_shape"])}
        if params["compare"]:
            m = answers["branch_multiplications"]
            out["savings_value"] = latex.num(answers["savings_factor"])
            out["savings"] = latex.Tex(f"{latex.count(m[0])} / {latex.count(m[1])} = "
                                       f"{out['savings_value']}")
        else:
            out["total_mults"] = latex.count(answers["total_multiplications"])
            out["total_params"] = latex.count(answers["total_params"])
            channels = [rs[-1].output_shape[0] for rs in
                        (branch_rows(params["input_shape"], b) for b in branches)]
            out["channels"] = latex.Tex(" + ".join(map(str, channels)))
            out["out_channels"] = answers["output_shape"][0]
        return out


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


def _check_comparison(shape: Shape, branches: list[tuple[Layer, ...]]) -> None:
    if len(branches) != 2:
        raise ParamError(f"compare: true needs exactly two branches, the direct one first and "
                         f"the cheaper alternative second; got {len(branches)}")
    outs = [branch_rows(shape, b)[-1].output_shape for b in branches]
    if outs[0] != outs[1]:
        raise ParamError(f"the two branches must give the same output shape to be compared; "
                         f"they give {outs[0]} and {outs[1]}")
    if module_cost(shape, branches, False)["branch_multiplications"][1] == 0:
        raise ParamError("the second branch multiplies nothing, so there is no savings factor; "
                         "give it a convolution")


# -- worked steps -----------------------------------------------------------------

def _branch_steps(input_shape: Sequence[int], layers: Sequence[Layer], i: int,
                  answers: dict[str, Any]) -> dict[str, Any]:
    rows = branch_rows(input_shape, layers)
    mults = [r.multiplications for r in rows if r.multiplications]
    params = [r.params for r in rows if r.params]
    return {
        "rows": [{"layer": label(x), "shape": latex.shape(r.output_shape),
                  "mults": mults_tex(r), "params": params_tex(r)}
                 for x, r in zip(layers, rows)],
        "sum_mults": _sum_tex(mults), "sum_params": _sum_tex(params),
        "mults": latex.count(answers["branch_multiplications"][i]),
        "params": latex.count(answers["branch_params"][i]),
    }


def _sum_tex(terms: list[int]) -> latex.Tex | None:
    """The terms of a branch total, when there is more than one."""
    return latex.Tex(" + ".join(latex.count(t) for t in terms)) if len(terms) > 1 else None
