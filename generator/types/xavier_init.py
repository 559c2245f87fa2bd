"""xavier_init: Glorot (Xavier) initialisation of the conv and dense layers of a network.

Parameters: ``input_shape`` (C, H, W) or (N,), ``layers`` in the notation of
:mod:`deepdrill.generator.layers`, ``distribution`` (``uniform``: U(-a, a); ``normal``:
N(0, sigma^2)), ``gain`` (default 1) and ``formula`` (default false).

Every conv and FC layer has weights to initialise (batch norm's scales are set to 1,
not drawn). Fans follow ``torch.nn.init._calculate_fan_in_and_fan_out``: of a weight
tensor (C_out, C_in, k, k), fan_in = C_in k k and fan_out = C_out k k (the receptive
field counts on both sides); of an FC layer (units, inputs), fan_in = inputs (C H W
after a feature map) and fan_out = units. Glorot keeps Var(w) = gain^2 * 2 / (fan_in +
fan_out), so the uniform bound is a = gain * sqrt(6 / (fan_in + fan_out)) (U(-a, a) has
variance a^2 / 3: :func:`derivation`, sympy, once per process) and the normal standard
deviation is gain * sqrt(2 / (fan_in + fan_out)).

Steps, per layer i: ``shape_i`` (as in a layer table), and for a layer with weights
``fan_in_i`` and ``fan_out_i`` from the shape before it, ``glorot_i`` (the value at gain
1) from the two fans, and ``bound_i`` = gain * glorot_i. The fields ``fan_in``, ``fan_out``
and ``bounds`` (uniform) or ``stds`` (normal) read them layer by layer, so a bound
right for a student's own fans earns carried-forward credit. With ``formula: true`` the
field ``bound_formula`` asks the uniform bound at gain 1 as a formula in n_in and n_out.

Mistakes: fan-in only (variance 1/fan_in: sqrt(3/fan_in), or sqrt(1/fan_in) as a
standard deviation); the receptive field left out of a convolution's fans (C_in and
C_out); 4 instead of 6 in the numerator (uniform); the uniform bound and the normal
standard deviation mixed up (6 and 2 swapped); the square root left out; the gain left
out (when it is not 1). The formula's wrong forms go with the slips they come from.

Draws: the networks of :mod:`deepdrill.generator.networks` (those of ``cnn_layer_table``),
kept only when no constant answer earns more than a tenth, every slip shows, and no
wrong answer is the work of two different mistakes (:mod:`deepdrill.generator.backward`).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import sympy
from deepdrill.generator import latex
from deepdrill.generator.backward import (
    MAX_CONSTANT_SHARE,
    free_share,
    slips_show,
    slips_tell_apart,
)
from deepdrill.generator.exercise import (
    Exercise,
    int_option,
    jsonable,
    numbers,
    register,
    require,
)
from deepdrill.generator.layers import (
    Conv,
    Dense,
    Layer,
    LayerStep,
    Shape,
    as_shape,
    count,
    names,
    parse_layers,
    shape_after,
    trace,
)
from deepdrill.generator.networks import draw_network, fitting_input
from deepdrill.generator.randomness import choice, draw_until
from deepdrill.generator.steps import Graph, NotApplicable, Slip, Step, constant

from deepdrill.errors import ParamError
from deepdrill.model.fields import formula, integer, real

DISTRIBUTIONS = ("uniform", "normal")
NUMERATOR = {"uniform": 6, "normal": 2}  # a = sqrt(6/(n_in+n_out)); sigma = sqrt(2/(...))
NETWORKS = ("cnn", "mlp")
CNN_SHARE, UNIFORM_SHARE = 0.75, 0.6  # of drawn variants
VECTOR_INPUTS = ((784,), (256,), (100,), (64,))  # of a drawn MLP
CNN_INPUTS = ((1, 28, 28), (3, 32, 32), (1, 32, 32))
MIN_WEIGHTED, MAX_WEIGHTED = 3, 5  # the option weighted: layers with weights (networks.py)
MLP_MAX_WEIGHTED = 4  # of a drawn MLP (networks.py: 2-3 hidden layers)
MAX_GAIN = 10.0
MAX_DRAWS = 100
READ_OFF = 0.5  # entry weight of an FC layer's fan-out (its units, read off the notation)
FORMULA, FORMULA_SYMBOLS = "sqrt(6/(n_in + n_out))", ("n_in", "n_out")


def has_weights(layer: Layer) -> bool:
    return isinstance(layer, (Conv, Dense))


# -- the steps (pure: the grader feeds them a student's own fans) ------------------------

def fan_in(layer: Layer, before: Any) -> int:
    """Inputs feeding one output: C_in k k (conv) or the inputs (FC)."""
    return math.prod(layer.weight_shape(as_shape(before))[1:])


def fan_out(layer: Layer, before: Any) -> int:
    """Outputs one input feeds: C_out k k (conv) or the units (FC)."""
    shape = layer.weight_shape(as_shape(before))
    return shape[0] * math.prod(shape[2:])


def fans(fan_in: Any, fan_out: Any) -> tuple[int, int]:
    """A student's fans as counts: at least 1 each, and not both 1 (a single weight
    between one input and one output is no layer of these networks, and its std of 1
    would credit an answer of all ones)."""
    n_in, n_out = count(fan_in), count(fan_out)
    if n_in < 1 or n_out < 1 or n_in == n_out == 1:
        raise NotApplicable("fans are counts of at least 1, not both 1")
    return n_in, n_out


def glorot(numerator: int, fan_in: Any, fan_out: Any) -> float:
    """sqrt(numerator / (fan_in + fan_out)): the bound (6) or the std (2) at gain 1."""
    n_in, n_out = fans(fan_in, fan_out)
    return math.sqrt(numerator / (n_in + n_out))


def with_gain(glorot: Any, gain: Any) -> float:
    return float(gain) * float(glorot)


@functools.lru_cache(maxsize=256)
def xavier_graph(layers: tuple[Layer, ...], distribution: str, asks_formula: bool) -> Graph:
    steps: list[Step] = []
    before = "input_shape"
    glorot_at = functools.partial(glorot, NUMERATOR[distribution])
    for i, layer in enumerate(layers, 1):
        shape, where = names(i).shape, f"layer {i}"
        steps.append(Step(shape, LayerStep(shape_after, layer, where), (before,)))
        if has_weights(layer):
            steps += [Step(f"fan_in_{i}", LayerStep(fan_in, layer, where), (before,)),
                      Step(f"fan_out_{i}", LayerStep(fan_out, layer, where), (before,)),
                      Step(f"glorot_{i}", glorot_at, (f"fan_in_{i}", f"fan_out_{i}")),
                      Step(f"bound_{i}", with_gain, (f"glorot_{i}", "gain"))]
        before = shape
    return (*steps, Step("bound_formula", constant(FORMULA), ())) if asks_formula \
        else tuple(steps)


def weighted(layers: tuple[Layer, ...]) -> list[int]:
    """1-based positions of the layers with weights."""
    return [i for i, layer in enumerate(layers, 1) if has_weights(layer)]


# -- mistakes ------------------------------------------------------------------------

def fan_in_only(numerator: int, fan_in: Any, fan_out: Any) -> float:
    """Var = 1/fan_in: sqrt(3/fan_in) as a uniform bound, sqrt(1/fan_in) as a std."""
    n_in, _ = fans(fan_in, fan_out)
    return math.sqrt(numerator / 2 / n_in)


def other_numerator(numerator: int, fan_in: Any, fan_out: Any) -> float:
    return glorot(8 - numerator, fan_in, fan_out)  # 6 <-> 2


def without_root(numerator: int, fan_in: Any, fan_out: Any) -> float:
    n_in, n_out = fans(fan_in, fan_out)
    return numerator / (n_in + n_out)


def without_gain(glorot: Any, gain: Any) -> float:
    return float(glorot)


def channels_in(layer: Layer, before: Any) -> int:
    return layer.weight_shape(as_shape(before))[1]


def channels_out(layer: Layer, before: Any) -> int:
    return layer.weight_shape(as_shape(before))[0]


def _glorot_swaps(layers: tuple[Layer, ...], distribution: str, fn: Any) -> dict[str, Any]:
    at = functools.partial(fn, NUMERATOR[distribution])
    return {f"glorot_{i}": at for i in weighted(layers)}


def xavier_slips(layers: tuple[Layer, ...], distribution: str, gain: float,
                 asks_formula: bool) -> list[Slip]:
    def also(text: str) -> dict[str, Any]:  # the slip's form of the formula, when asked
        return {"bound_formula": constant(text)} if asks_formula else {}

    uniform = distribution == "uniform"
    slips = [
        Slip("fan_in_only", "you used the fan-in only (variance 1/fan_in, LeCun's rule); "
             "Glorot averages the two fans: variance 2/(fan_in + fan_out)",
             swaps={**_glorot_swaps(layers, distribution, fan_in_only), **also("sqrt(3/n_in)")}),
        Slip("bound_std_mixup", "you gave the normal standard deviation sqrt(2/(fan_in + "
             "fan_out)) as the uniform bound; U(-a, a) has variance a^2/3, so a = sqrt(6/"
             "(fan_in + fan_out))" if uniform else "you gave the uniform bound sqrt(6/(fan_in "
             "+ fan_out)) as the standard deviation; the normal std is sqrt(2/(fan_in + "
             "fan_out))", swaps={**_glorot_swaps(layers, distribution, other_numerator),
                                 **also("sqrt(2/(n_in + n_out))")}),
        Slip("forgot_square_root", "you left out the square root: " + (
            "6/(fan_in + fan_out) is a^2, not the bound a" if uniform else
            "2/(fan_in + fan_out) is the variance, not the standard deviation"),
             swaps={**_glorot_swaps(layers, distribution, without_root),
                    **also("6/(n_in + n_out)")}),
    ]
    if uniform or asks_formula:
        slips.append(Slip("four_not_six", "you put 4 in the numerator; the uniform bound is "
                          "sqrt(6/(fan_in + fan_out))", swaps={
                              **(_glorot_swaps(layers, distribution,
                                               lambda n, a, b: glorot(4, a, b))
                                 if uniform else {}), **also("sqrt(4/(n_in + n_out))")}))
    convs = [i for i in weighted(layers) if isinstance(layers[i - 1], Conv) and
             layers[i - 1].k > 1]
    if convs:
        where = {i: f"layer {i}" for i in convs}
        slips.append(Slip("forgot_receptive_field", "you left the k x k receptive field out of "
                          "a convolution's fans; fan_in = C_in k k and fan_out = C_out k k",
                          swaps={**{f"fan_in_{i}": LayerStep(channels_in, layers[i - 1], w)
                                    for i, w in where.items()},
                                 **{f"fan_out_{i}": LayerStep(channels_out, layers[i - 1], w)
                                    for i, w in where.items()}}))
    if gain != 1:  # it claims the glorot steps (unchanged) so that it pairs only with the
        # fans' slip: at the common gain sqrt(2), "4 for 6, no gain" gives sqrt(4/(n_in +
        # n_out)), which is sqrt(2) times the std sqrt(2/(...)): no grader tells them apart
        slips.append(Slip("forgot_gain", "you left out the gain: every " + (
            "bound" if uniform else "standard deviation") + " is multiplied by it", swaps={
                **_glorot_swaps(layers, distribution, glorot),
                **{f"bound_{i}": without_gain for i in weighted(layers)}}))
    return slips


# -- the derivation (sympy, once per process) ------------------------------------------

@functools.cache
def derivation() -> dict[str, latex.Tex]:
    """Var of U(-a, a) by integration, set to Glorot's gain^2 * 2/(n_in + n_out), solved
    for a > 0; and the normal std, the square root of the same variance."""
    w = sympy.Symbol("w", real=True)
    a, g, n_in, n_out = sympy.symbols(r"a g n_\text{in} n_\text{out}", positive=True)
    density = 1 / (2 * a)
    integral = sympy.Integral(w ** 2 * density, (w, -a, a))
    variance = integral.doit()
    target = g ** 2 * 2 / (n_in + n_out)
    bound, = sympy.solve(sympy.Eq(variance, target), a)
    if sympy.simplify(bound - g * sympy.sqrt(6 / (n_in + n_out))) != 0:
        raise AssertionError(f"sympy's bound is not g sqrt(6/(n_in + n_out)): {bound}")
    tex = lambda e: latex.Tex(sympy.latex(e))
    return {"integral": tex(integral), "variance": tex(variance), "target": tex(target),
            "equation": tex(sympy.Eq(variance, target)), "bound": tex(bound),
            "std": tex(sympy.sqrt(target))}


# -- drawing -------------------------------------------------------------------------

def _draw_params(rng: np.random.Generator, p: dict[str, Any], options: dict[str, Any],
                 want: int | None) -> dict[str, Any]:
    """One candidate: a network (of ``want`` weighted layers) for the input shape."""
    if "input_shape" in p:
        shape = as_shape(p["input_shape"])
    else:
        cnn = rng.random() < CNN_SHARE or (want or 0) > MLP_MAX_WEIGHTED
        kind = options["network"] or ("cnn" if cnn else "mlp")
        shape = choice(rng, list(CNN_INPUTS if kind == "cnn" else VECTOR_INPUTS))
    def right_size(layers: list[Layer]) -> bool:
        return want is None or sum(map(has_weights, layers)) == want
    layers = draw_until(rng, lambda r: draw_network(r, shape), right_size, tries=MAX_DRAWS,
                        refusal=f"no drawn network for input_shape {tuple(shape)} has {want} "
                                f"layers with weights; choose weighted from {MIN_WEIGHTED} "
                                f"to {MAX_WEIGHTED} (an MLP has 3 or 4)")
    return {**p, "input_shape": list(shape), "layers": [x.to_json() for x in layers]}


@register
class XavierInit(Exercise):
    id = "xavier_init"
    title = "Xavier (Glorot) initialisation"
    summary = "fan-in, fan-out and the Glorot uniform bound or normal std of every weighted layer"
    params = ("input_shape", "layers", "distribution", "gain", "formula")
    # network None: a CNN mostly, else "cnn" or "mlp"; weighted None: any number (3-5)
    options = {"network": None, "weighted": None, "distribution": None}
    work_space = "6cm"

    def sample(self, rng, pinned, options):
        for name, allowed in (("network", NETWORKS), ("distribution", DISTRIBUTIONS)):
            if options[name] is not None and options[name] not in allowed:
                raise ParamError(f"option {name} must be one of {', '.join(allowed)}, "
                                 f"not {options[name]!r}")
        want = None if options["weighted"] is None else \
            int_option("weighted", options["weighted"], MIN_WEIGHTED, MAX_WEIGHTED)
        p = {"gain": 1, "formula": False, **pinned}
        if "distribution" not in p:
            p["distribution"] = options["distribution"] or \
                ("uniform" if rng.random() < UNIFORM_SHARE else "normal")
        if "layers" in p:
            if "input_shape" not in p:
                p["input_shape"] = fitting_input(rng, parse_layers(p["layers"]))
            return p
        return draw_until(rng, lambda r: _draw_params(r, p, options, want), self.fair,
                          tries=MAX_DRAWS, refusal="no fair network found for these options; "
                                                   "give the layers")

    def fair(self, params: dict[str, Any]) -> bool:
        """No constant answer earns more than a tenth, every slip shows on some field, and
        no wrong answer is the work of two different mistakes."""
        try:  # the formula is the same for every network: judged without it
            params = self.check({**params, "formula": False})
        except ParamError:
            return False
        graph = self.graph(params)
        values = self.values(params, graph=graph)
        fields = self.fields(params, values)
        return free_share(graph, params, fields, values) <= MAX_CONSTANT_SHARE and \
            slips_show(self, params, fields, values) and \
            slips_tell_apart(self, params, fields, values)

    def check(self, params):
        p = {"distribution": "uniform", "gain": 1, "formula": False, **params}
        require(p, "input_shape", "layers")
        shape = as_shape(p["input_shape"])
        layers = parse_layers(p["layers"])
        table = trace(shape, layers)
        if not any(has_weights(x) for x in layers):
            raise ParamError("these layers have no weights to initialise; add a CONV or FC "
                             "layer")
        for i, row in enumerate(table, 1):
            if has_weights(row.layer) and fan_in(row.layer, row.input_shape) == \
                    fan_out(row.layer, row.input_shape) == 1:
                raise ParamError(f"layer {i}, {row.layer}, has a single weight (one input, "
                                 f"one output): give it more inputs or outputs")
        if p["distribution"] not in DISTRIBUTIONS:
            raise ParamError(f"distribution must be uniform or normal, not "
                             f"{p['distribution']!r}")
        gain = numbers(p["gain"], "gain")
        if gain.ndim or not 0 < gain <= MAX_GAIN:
            raise ParamError(f"gain must be one number greater than 0 and at most {MAX_GAIN:g} "
                             f"(1 for linear or sigmoid layers, 1.414 for ReLU, 1.667 for tanh)")
        if not isinstance(p["formula"], bool):
            raise ParamError("formula must be true or false (true also asks for the uniform "
                             "bound as a formula in n_in and n_out)")
        return jsonable({"input_shape": list(shape), "layers": [x.to_json() for x in layers],
                         "distribution": p["distribution"], "gain": p["gain"],
                         "formula": p["formula"]})

    def graph(self, params):
        return xavier_graph(parse_layers(params["layers"]), params["distribution"],
                            params["formula"])

    def fields(self, params, values):
        layers = parse_layers(params["layers"])
        at = weighted(layers)
        n = len(at)
        uniform = params["distribution"] == "uniform"
        out = [integer("fan_in", "the fan-in of each layer with weights, in order", [n],
                       parts=tuple(f"fan_in_{i}" for i in at)),
               integer("fan_out", "the fan-out of each layer with weights, in order", [n],
                       parts=tuple(f"fan_out_{i}" for i in at),
                       entry_weights=[READ_OFF if isinstance(layers[i - 1], Dense) else 1.0
                                      for i in at]),
               real("bounds" if uniform else "stds", ("the bound a of U(-a, a)" if uniform
                                                      else "the standard deviation") +
                    " of each layer with weights, in order", [n], weight=2,
                    parts=tuple(f"bound_{i}" for i in at))]
        if params["formula"]:
            out.append(formula("bound_formula", "the Xavier uniform bound (gain 1) as a "
                               "formula in n_in and n_out", FORMULA_SYMBOLS))
        return out

    def slips(self, params):
        return xavier_slips(parse_layers(params["layers"]), params["distribution"],
                            float(params["gain"]), params["formula"])

    def problem(self, params):
        layers = parse_layers(params["layers"])
        kinds = {x.kind for x in layers}
        first = next((x for x in layers if x.kind in ("fc", "flatten")), None)
        return {"input": latex.shape(params["input_shape"]), "layers": [str(x) for x in layers],
                "uniform": params["distribution"] == "uniform",
                "gain": latex.num(params["gain"]), "has_gain": params["gain"] != 1,
                "conv": "conv" in kinds, "bn": "bn" in kinds, "pool": bool(kinds & {"pool", "avgpool"}),
                "avgpool": "avgpool" in kinds, "formula": params["formula"],
                "implicit_flatten": len(params["input_shape"]) == 3 and first is not None and
                first.kind == "fc"}

    def worked(self, params, values):
        layers = parse_layers(params["layers"])
        numerator = NUMERATOR[params["distribution"]]
        gain = float(params["gain"])
        shapes = [tuple(params["input_shape"])] + [values[names(i).shape]
                                                   for i in range(1, len(layers) + 1)]
        rows = [_row(i, layers[i - 1], shapes[i - 1], values, numerator, gain)
                for i in weighted(layers)]
        return {"derivation": derivation(), "rows": rows, "numerator": numerator,
                "shapes": [latex.shape(s) for s in shapes], "gain": latex.num(gain),
                "has_gain": gain != 1,
                "answers": {"fan_in": _list(r["n_in"] for r in rows),
                            "fan_out": _list(r["n_out"] for r in rows),
                            "bounds": _list(r["bound"] for r in rows)}}


def _row(i: int, layer: Layer, before: Shape, values: dict[str, Any], numerator: int,
         gain: float) -> dict[str, Any]:
    """One weighted layer's line of the worked solution, from its step values."""
    n_in, n_out, bound = values[f"fan_in_{i}"], values[f"fan_out_{i}"], values[f"bound_{i}"]
    if isinstance(layer, Conv):
        k = layer.k
        fan_in_tex = rf"{before[0]}\cdot {k}\cdot {k} = {latex.count(n_in)}"
        fan_out_tex = rf"{layer.filters}\cdot {k}\cdot {k} = {latex.count(n_out)}"
    else:
        flat = len(before) == 3
        fan_in_tex = (r"\cdot ".join(map(str, before)) + " = " if flat else "") + \
            str(latex.count(n_in))
        fan_out_tex = str(latex.count(n_out))
    scaled = rf"{latex.num(gain)}\cdot " if gain != 1 else ""
    return {"i": i, "layer": str(layer), "input": latex.shape(before),
            "fan_in": latex.Tex(fan_in_tex), "fan_out": latex.Tex(fan_out_tex),
            "n_in": n_in, "n_out": n_out, "bound": bound,
            "formula": latex.Tex(rf"{scaled}\sqrt{{{numerator}/({latex.count(n_in)} + "
                                 rf"{latex.count(n_out)})}}"),
            "rel": latex.relation(bound), "value": latex.num(bound)}


def _list(items: Any) -> latex.Tex:
    return latex.Tex(r",\ ".join(latex.num(x) for x in items))
