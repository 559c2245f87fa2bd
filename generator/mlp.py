"""Small dense networks, shared by ``mlp_forward`` and ``mlp_backward``.

A network is an input ``x`` (n_0 numbers) and ``layers``, a list of
``{"weights": n_l x n_(l-1), "bias": n_l numbers, "activation": name}``. Layer l
computes z_l = W_l a_(l-1) + b_l and a_l = f_l(z_l), with a_0 = x; the last layer's
activation is the network's ``output``. Softmax is an output activation only.

Here: checking parameters; the forward steps (``z_l``, ``a_l``, the softmax's
``exps_L`` and ``total_L``, and ``output``); drawing hand-friendly networks; the two
fairness checks every drawn variant passes (:func:`fair`); the worked forward pass
and the TikZ figure's context.

**No carried-forward credit from an all-zero vector.** ReLU, tanh, the identity, and
every backward step are linear or odd: they map an all-zero vector to zeros, so a
blank answer of zeros would be "right from the student's own values" all the way
down. Those steps refuse an all-zero input (:func:`carries`): propagating zeros is no
work. The key never holds such a vector (draws and :func:`check_network` see to it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy
from sympy.core.function import AppliedUndef
from sympy.printing.latex import LatexPrinter

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.exercise import jsonable, numbers
from deepdrill.generator.randomness import choice, decimals, ints
from deepdrill.generator.steps import Graph, NotApplicable, Step, by_hand, rerun, run
from deepdrill.model.fields import Field, flatten
from deepdrill.model.tolerance import Tolerance, default_floor, entries_match

from .types.softmax import exps, hand_friendly, probabilities, softmax, total

ACTIVATIONS = ("relu", "sigmoid", "tanh", "softmax", "none")
HIDDEN_ACTIVATIONS = ("relu", "sigmoid", "tanh", "none")
ZERO_PRESERVING = ("relu", "tanh", "none")  # f(0) = 0: see the module's note
NAMES = {"relu": "ReLU", "sigmoid": "sigmoid", "tanh": "tanh", "softmax": "softmax",
         "none": "no activation"}
MAX_LAYERS, MAX_UNITS = 4, 6  # what a sheet can show
MAX_VALUE = 100  # no hand exercise needs larger numbers
MAX_SQUASHED = 50  # |z| above this makes e^z unreadable (sigmoid, tanh, softmax layers)

# drawing
INPUTS, WIDTHS, OUTPUTS = (2, 3), (2, 3), {"softmax": (2, 3), "other": (1, 2, 3)}
HIDDEN_LAYERS = (1, 2)
INTEGER_SHARE = 0.6  # of draws with integer inputs, weights and biases (ReLU/none layers)
Z_MARGIN = 0.3  # every pre-activation at least this far from 0 (the ReLU kink)
Z_LIMIT = {"relu": 8, "none": 8, "sigmoid": 1.6, "tanh": 1.1, "softmax": 4}  # 1 - a stays
# large enough that a student's rounded a still gives f'(z) = a(1 - a) or 1 - a^2 to 1 %
CANCELLATION = 0.15  # a pre-activation from rounded inputs keeps this share of its terms' size
TANH_LOW = 0.2  # |z| of a tanh unit at least this (tanh clear of 0)
LAYER_TRIES, LAYER_BATCH, NETWORK_TRIES = 512, 64, 60
# fairness
MAX_CONSTANT_SHARE = 0.08  # of the points an all-0 or all-1 answer may earn (carried included)
HAND_MARGIN = 0.8  # a student rounding to 3 figures stays within this share of the tolerance


# -- parameters -----------------------------------------------------------------------

def check_network(x: Any, layers: Any, min_layers: int = 1) -> tuple[list, list[dict]]:
    """``x`` and ``layers`` normalised (bias filled in as zeros), or ParamError."""
    a = numbers(x, "x")
    if a.ndim != 1 or not 1 <= a.size <= MAX_UNITS:
        raise ParamError(f"x must be a list of 1 to {MAX_UNITS} numbers (one example)")
    if not isinstance(layers, list) or not min_layers <= len(layers) <= MAX_LAYERS:
        raise ParamError(f"layers must be a list of {min_layers} to {MAX_LAYERS} dicts "
                         f"{{weights, bias, activation}}")
    out, width = [], a.size
    for i, layer in enumerate(layers, 1):
        out.append(_check_layer(i, layer, width, last=i == len(layers)))
        width = len(out[-1]["bias"])
    for name, v in [("x", a)] + [(f"layer {i}", np.r_[np.ravel(L["weights"]), L["bias"]])
                                 for i, L in enumerate(out, 1)]:
        if np.abs(v).max() > MAX_VALUE:
            raise ParamError(f"{name} must hold numbers of a sheet's size, at most {MAX_VALUE}")
    return jsonable(a), out


def input_width(layers: Any) -> int:
    """n_0 as the first layer's weights read it (for drawing x to fit pinned layers)."""
    try:
        return int(numbers(layers[0]["weights"], "layer 1 weights").shape[1])
    except (TypeError, KeyError, IndexError):
        raise ParamError("layers must be a list of dicts {weights, bias, activation}, "
                         "weights a matrix with one row per unit") from None


def _check_layer(i: int, layer: Any, width: int, last: bool) -> dict[str, Any]:
    if not isinstance(layer, dict) or "weights" not in layer or \
            set(layer) - {"weights", "bias", "activation"}:
        raise ParamError(f"layer {i} must be a dict with weights, bias and activation")
    w = numbers(layer["weights"], f"layer {i} weights")
    if w.ndim != 2 or w.shape[1] != width or not 1 <= w.shape[0] <= MAX_UNITS:
        raise ParamError(f"layer {i} weights must be a matrix of 1 to {MAX_UNITS} rows (units) "
                         f"of {width} numbers each (one per input of the layer)")
    b = numbers(layer.get("bias", [0] * len(w)), f"layer {i} bias")
    if b.shape != (len(w),):
        raise ParamError(f"layer {i} bias must be a list of {len(w)} numbers, one per unit")
    kind = layer.get("activation", "none")
    if kind not in ACTIVATIONS:
        raise ParamError(f"layer {i} activation must be one of {', '.join(ACTIVATIONS)}, "
                         f"not {kind!r}")
    if kind == "softmax" and (not last or len(w) < 2):
        raise ParamError(f"layer {i}: softmax is an output activation over at least 2 units; "
                         f"use it on the last layer only")
    return {"weights": jsonable(w), "bias": jsonable(b), "activation": kind}


def activations(layers: Sequence[dict]) -> tuple[str, ...]:
    return tuple(layer["activation"] for layer in layers)


def sizes(x: Any, layers: Sequence[dict]) -> list[int]:
    """n_0, n_1, ..., n_L."""
    return [len(x)] + [len(layer["bias"]) for layer in layers]


# -- the forward steps (pure: the grader feeds them a student's own values) -------------

def carries(v: Any) -> np.ndarray:
    """A student's vector as floats; NotApplicable when it is all zeros (module note)."""
    v = np.asarray(v, dtype=float)
    if not np.any(v):
        raise NotApplicable("an all-zero vector carries no work forward")
    return v


def pre_activation(index: int, layers: Sequence[dict], inputs: Any) -> np.ndarray:
    """z = W a + b of layer ``index`` (from 0)."""
    layer = layers[index]
    a = np.asarray(inputs, dtype=float)
    if a.shape != (len(layer["weights"][0]),):
        raise NotApplicable("inputs of the wrong length")
    return np.asarray(layer["weights"], dtype=float) @ a + np.asarray(layer["bias"], dtype=float)


def sigmoid(z: Any) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-np.asarray(z, dtype=float)))


FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda z: np.maximum(z, 0.0), "sigmoid": sigmoid, "tanh": np.tanh,
    "none": lambda z: z.copy()}


def activate(kind: str, z: Any) -> np.ndarray:
    z = carries(z) if kind in ZERO_PRESERVING else np.asarray(z, dtype=float)
    return FUNCTIONS[kind](z)


def step_names(n_layers: int) -> list[str]:
    """The activation step of each layer: a_1, ..., a_(L-1), output."""
    return [f"a_{i}" for i in range(1, n_layers)] + ["output"]


@functools.lru_cache(maxsize=256)
def forward_graph(kinds: tuple[str, ...]) -> Graph:
    """z_l and a_l per layer (the last a is ``output``); a softmax layer through its
    exponentials ``exps_l`` and their sum ``total_l`` (the steps of ``softmax``)."""
    steps, before = [], "x"
    for i, (kind, a) in enumerate(zip(kinds, step_names(len(kinds))), 1):
        z = f"z_{i}"
        steps.append(Step(z, functools.partial(pre_activation, i - 1), ("layers", before)))
        if kind == "softmax":
            steps += [Step(f"exps_{i}", exps, (z,)), Step(f"total_{i}", total, (f"exps_{i}",)),
                      Step(a, probabilities, (f"exps_{i}", f"total_{i}"))]
        else:
            steps.append(Step(a, functools.partial(activate, kind), (z,)))
        before = a
    return tuple(steps)


def forward(x: Any, layers: Sequence[dict]) -> dict[str, Any]:
    """Every forward step's value.

    >>> v = forward([1, 2], [{"weights": [[1, -1], [2, 1]], "bias": [3, -1],
    ...                       "activation": "relu"},
    ...                      {"weights": [[1, 1]], "bias": [0.5], "activation": "none"}])
    >>> v["z_1"].tolist(), v["a_1"].tolist(), v["output"].tolist()
    ([2.0, 3.0], [2.0, 3.0], [5.5])
    """
    return run(forward_graph(activations(layers)), {"x": x, "layers": list(layers)})


def applied_twice(kind: str) -> Callable[..., np.ndarray]:
    """The output layer's step with its activation applied a second time."""
    if kind == "softmax":
        return lambda e, t: softmax(probabilities(e, t))
    return lambda z: activate(kind, activate(kind, z))


def without_biases(params: dict[str, Any]) -> dict[str, Any]:
    return {"layers": [{**layer, "bias": [0] * len(layer["bias"])}
                       for layer in params["layers"]]}


# -- drawing -----------------------------------------------------------------------

def architecture(rng: np.random.Generator, options: dict[str, Any], n_inputs: int | None,
                 output_kind: str) -> list[int]:
    """[n_0, n_1, ..., n_L] from the options hidden_layers, width, inputs and outputs."""
    from deepdrill.generator.exercise import int_option

    def opt(name: str, low: int, high: int, default: tuple[int, ...]) -> int:
        value = options.get(name)
        return choice(rng, list(default)) if value is None else int_option(name, value, low,
                                                                          high)
    depth = opt("hidden_layers", 1, MAX_LAYERS - 1, HIDDEN_LAYERS)
    n0 = n_inputs or opt("inputs", 1, 4, INPUTS)
    hidden = [opt("width", 2, 4, WIDTHS) for _ in range(depth)]
    outs = OUTPUTS["softmax" if output_kind == "softmax" else "other"]
    n_out = opt("outputs", 1, 4, outs)
    if output_kind == "softmax" and n_out < 2:
        raise ParamError("a softmax output needs at least 2 outputs: set outputs to 2 or more")
    return [n0, *hidden, n_out]


def draw_values(rng: np.random.Generator, shape: Any, integer: bool, low: float = 0.2,
                high: float = 2.0) -> np.ndarray:
    """Non-zero small integers (|v| <= high, at least 1) or one-decimal numbers
    (low <= |v| <= high)."""
    if integer:
        return ints(rng, shape, -int(high), int(high), nonzero=True).astype(float)
    magnitude = decimals(rng, shape, low, high, 1)
    return np.where(rng.random(np.shape(magnitude)) < 0.5, -magnitude, magnitude)


def draw_input(rng: np.random.Generator, n: int, integer: bool) -> np.ndarray:
    return draw_values(rng, n, integer, 0.5, 3.0)


def draw_layer(rng: np.random.Generator, kind: str, n_out: int, inputs: np.ndarray,
               integer: bool) -> dict[str, Any]:
    """One layer for the given inputs whose pre-activations are hand-friendly for its
    activation (:func:`good_layers`), drawn LAYER_BATCH candidates at a time; ParamError
    when none turns up."""
    squash = kind in ("sigmoid", "tanh", "softmax")
    # one-decimal weights small enough that z stays where the function is readable
    high = float(np.clip(np.round(1.5 * Z_LIMIT[kind] / np.abs(inputs).sum(), 1), 0.3, 1.0)) \
        if squash else 2.0
    for _ in range(LAYER_TRIES // LAYER_BATCH):
        w = draw_values(rng, (LAYER_BATCH, n_out, len(inputs)), integer and not squash, 0.1,
                        high)
        b = draw_values(rng, (LAYER_BATCH, n_out), integer and not squash, 0.1, min(high, 1.0))
        good = np.flatnonzero(good_layers(w, b, inputs, kind))
        if good.size:
            return {"weights": jsonable(w[good[0]]), "bias": jsonable(b[good[0]]),
                    "activation": kind}
    raise ParamError(f"no hand-friendly {kind} layer of {n_out} units found")


def good_layers(w: np.ndarray, b: np.ndarray, inputs: np.ndarray, kind: str) -> np.ndarray:
    """Per candidate (weights w[i], biases b[i]): pre-activations clear of 0 (and of 1, a
    constant answer) and in the range where the activation is readable, without heavy
    cancellation when the inputs are rounded by a student; a ReLU layer keeps at least one
    unit and clips at most half."""
    z = w @ inputs + b
    good = np.all(np.abs(z) >= Z_MARGIN, axis=1) & ~np.any(np.abs(z - 1) < 0.06, axis=1) & \
        np.all(np.abs(z) <= Z_LIMIT[kind], axis=1)
    if not np.allclose(inputs * 100, np.round(inputs * 100)):  # rounded by a student
        terms = np.abs(w * inputs).sum(axis=2) + np.abs(b)
        good &= np.all(np.abs(z) >= CANCELLATION * terms, axis=1)
    if kind == "relu":
        good &= np.any(z > 0, axis=1) & (np.sum(z < 0, axis=1) <= z.shape[1] // 2)
    elif kind == "tanh":
        good &= np.all(np.abs(z) >= TANH_LOW, axis=1)
    elif kind == "softmax":
        good &= np.array([bool(g) and hand_friendly(zi) for g, zi in zip(good, z)])
    return good


def good_layer(layer: dict[str, Any], inputs: np.ndarray) -> bool:
    """:func:`good_layers` for one layer."""
    return bool(good_layers(np.asarray(layer["weights"], dtype=float)[None],
                            np.asarray(layer["bias"], dtype=float)[None],
                            np.asarray(inputs, dtype=float), layer["activation"])[0])


def draw_network(rng: np.random.Generator, sizes_: Sequence[int], kinds: Sequence[str],
                 x: Any = None) -> tuple[list, list[dict]]:
    """x (unless given) and layers of the given sizes, drawn layer by layer on the values
    the layers before give; ParamError when a layer finds no good draw."""
    integer = bool(rng.random() < INTEGER_SHARE)
    x = np.asarray(x, dtype=float) if x is not None else draw_input(rng, sizes_[0], integer)
    a, layers = x, []
    for n, kind in zip(sizes_[1:], kinds):
        layers.append(draw_layer(rng, kind, n, a, integer))
        a = pre_activation(0, layers[-1:], a)
        a = a if kind == "softmax" else activate(kind, a)
    return jsonable(x), layers


def draw_fair(rng: np.random.Generator, draw: Callable[[np.random.Generator], Any],
              accept: Callable[[Any], bool], refusal: str) -> Any:
    """The first draw that ``accept`` takes; a draw that raises ParamError (a layer with
    no good values on these inputs) is drawn again."""
    for _ in range(NETWORK_TRIES):
        try:
            candidate = draw(rng)
        except ParamError:
            continue
        if accept(candidate):
            return candidate
    raise ParamError(refusal)


def layers_fit(x: Any, layers: Sequence[dict]) -> bool:
    """Every layer hand-friendly on the values reaching it (pinned layers, drawn x)."""
    a = np.asarray(x, dtype=float)
    for layer in layers:
        if not good_layer(layer, a):
            return False
        z = pre_activation(0, [layer], a)
        a = z if layer["activation"] == "softmax" else activate(layer["activation"], z)
    return True


def check_forward(x: Any, layers: Sequence[dict]) -> None:
    """ParamError for a network no sheet should hold: a ReLU, tanh or linear layer whose
    pre-activations are all 0 (nothing to carry forward), or a sigmoid, tanh or softmax
    layer whose pre-activations are too large for e^z."""
    a = np.asarray(x, dtype=float)
    for i, layer in enumerate(layers, 1):
        z, kind = pre_activation(i - 1, layers, a), layer["activation"]
        if kind in ZERO_PRESERVING and not np.any(z):
            raise ParamError(f"layer {i}'s pre-activations are all 0: change its weights or "
                             f"bias (or the input)")
        if kind in ("sigmoid", "tanh", "softmax") and np.abs(z).max() > MAX_SQUASHED:
            raise ParamError(f"layer {i}'s pre-activations reach {np.abs(z).max():g}; a "
                             f"{kind} layer needs |z| <= {MAX_SQUASHED} to be readable: use "
                             f"smaller weights")
        a = softmax(z) if kind == "softmax" else activate(kind, z)


def relu_clips_somewhere(x: Any, layers: Sequence[dict]) -> bool:
    """With 3 or more ReLU units, at least one is clipped (the ReLU matters)."""
    values = forward(x, layers)
    relu = [values[f"z_{i}"] for i, layer in enumerate(layers, 1)
            if layer["activation"] == "relu"]
    units = np.concatenate(relu) if relu else np.zeros(0)
    return units.size < 3 or bool(np.any(units < 0))


# -- fairness: what rounding students and constant answers get ------------------------------

def tolerance_of(f: Field, answer: Any) -> Tolerance:
    """The field's default tolerance with the floor make_variant gives it."""
    floor = float(f"{default_floor(flatten(answer), f.tolerance.rtol):.2g}")
    return Tolerance(f.tolerance.mode, f.tolerance.rtol, f.tolerance.atol or floor)


def fair(graph: Graph, params: dict[str, Any],
         fields_of: Callable[[dict[str, Any], dict[str, Any]], list[Field]],
         answers_of: Callable[[list[Field], dict[str, Any]], dict[str, Any]]) -> bool:
    """Whether a student rounding every step to 3 significant figures stays well within
    every tolerance, and an all-0 or all-1 answer earns at most MAX_CONSTANT_SHARE."""
    try:
        values = run(graph, params)
        rounded = run(graph, params, rounding=by_hand)
    except (NotApplicable, ValueError, FloatingPointError):
        return False
    fields = fields_of(params, values)
    key = answers_of(fields, values)
    tols = {f.name: tolerance_of(f, key[f.name]) for f in fields}
    hand = answers_of(fields, rounded)
    for f in fields:
        tight = Tolerance(tols[f.name].mode, tols[f.name].rtol * HAND_MARGIN,
                          tols[f.name].atol * HAND_MARGIN)
        if not np.all(entries_match(tight, np.asarray(flatten(hand[f.name]), dtype=float),
                                    np.asarray(flatten(key[f.name]), dtype=float))):
            return False
    return all(constant_share(graph, params, values, fields, tols, c) <= MAX_CONSTANT_SHARE
               for c in (0.0, 1.0))


def constant_share(graph: Graph, params: dict[str, Any], values: dict[str, Any],
                   fields: list[Field], tols: dict[str, Tolerance], c: float) -> float:
    """The share of the points the grader gives every field filled with c: entries equal
    to the key, and whole steps right from the student's own (constant) earlier values."""
    given = {s: np.full(np.shape(values[s]), c) for f in fields for s in f.steps}
    again = rerun(graph, params, given)
    total_weight = sum(f.weight for f in fields) or 1.0
    earned = 0.0
    for f in fields:
        w = np.asarray(f.entry_weights if f.entry_weights is not None else
                       np.ones(sum(np.size(values[s]) for s in f.steps)), dtype=float)
        credited, start = [], 0
        for s in f.steps:
            key = np.ravel(values[s]).astype(float)
            ok = entries_match(tols[f.name], np.full(key.shape, c), key)
            theirs = again.get(s)
            if theirs is not None and np.shape(theirs) == np.shape(values[s]):
                match = entries_match(tols[f.name], np.full(key.shape, c),
                                      np.ravel(theirs).astype(float))
                if (ok | match).all() and match.any():
                    ok = ok | match
            credited.append(ok)
            start += key.size
        mask = np.concatenate(credited)
        earned += f.weight * float(w[mask].sum()) / (w.sum() or 1.0)
    return earned / total_weight


# -- the worked forward pass and the figure --------------------------------------------------

def unit_line(w: Sequence[float], a: Sequence[float], b: float) -> latex.Tex:
    """``2\\cdot 1 - 1\\cdot 3 + 0.5``: one unit's weighted sum written out, a negative
    weight as a minus sign."""
    terms = [rf"{latex.num(abs(wj))}\cdot {latex.term(aj)}" for wj, aj in zip(w, a)]
    signs = ["-" if wj < 0 else "+" for wj in w]
    text = ("-" if signs[0] == "-" else "") + terms[0] + \
        "".join(f" {sign} {t}" for sign, t in zip(signs[1:], terms[1:]))
    return latex.Tex(f"{text} {latex.plus(b)}" if b else text)


def forward_layers(params: dict[str, Any], values: dict[str, Any]) -> list[dict[str, Any]]:
    """Per layer: each unit's sum and value, its activation; read from the step values."""
    layers = params["layers"]
    out, before = [], np.asarray(params["x"], dtype=float)
    for i, (layer, a_name) in enumerate(zip(layers, step_names(len(layers))), 1):
        z, a, kind = values[f"z_{i}"], values[a_name], layer["activation"]
        units = [{"i": j, "sum": unit_line(wj, before, bj), "rel": latex.relation(zj),
                  "z": latex.num(zj), "a": latex.num(aj), "a_rel": latex.relation(aj),
                  "neg": latex.num(-zj)}
                 for j, (wj, bj, zj, aj) in enumerate(zip(layer["weights"], layer["bias"], z, a),
                                                      1)]
        entry = {"l": i, "kind": kind, "name": NAMES[kind], "units": units, "z": latex.row(z),
                 "a": latex.row(a), "last": i == len(layers), "softmax": None}
        if kind == "softmax":
            entry["softmax"] = {"exps": [latex.num(e) for e in values[f"exps_{i}"]],
                                "terms": latex.Tex(" + ".join(latex.num(e) for e in
                                                              values[f"exps_{i}"])),
                                "sum": latex.num(values[f"total_{i}"])}
        out.append(entry)
        before = np.asarray(a, dtype=float)
    return out


LAYERS_A_LINE = 2  # W and b of this many layers on one displayed line (x on the first)


def network_tex(params: dict[str, Any]) -> dict[str, Any]:
    """The problem's numbers: x as a column and each layer's W, b and activation."""
    layers = [{"l": i, "W": latex.matrix(layer["weights"]), "b": latex.matrix(layer["bias"]),
               "name": NAMES[layer["activation"]], "kind": layer["activation"]}
              for i, layer in enumerate(params["layers"], 1)]
    return {"x": latex.matrix(params["x"]), "layers": layers,
            "lines": [layers[i:i + LAYERS_A_LINE] for i in range(0, len(layers), LAYERS_A_LINE)],
            "calculator": any(layer["activation"] in ("sigmoid", "tanh", "softmax")
                              for layer in params["layers"]),
            "figure": figure(params["x"], params["layers"])}


COLUMN_GAP, ROW_GAP = 3.4, 1.5  # cm between layers, and between units of a layer
LABEL_FALLING, LABEL_RISING = 0.65, 0.35  # where a weight sits along its edge (label_pos)
MAX_LABELLED = 3  # more units than this in a layer: edges unlabelled (too crowded)


def label_pos(rise: float) -> float:
    """Where along an edge (0: the sending unit, 1: the receiving one) its weight sits:
    on a level or falling edge near the receiving unit, on a rising one near the sending
    unit. Crossing edges then never share a spot, and no two labels overlap for layers
    of up to 3 units (checked over every pair of layer sizes in the tests)."""
    return LABEL_RISING if rise > 0 else LABEL_FALLING


def figure(x: Sequence[float], layers: Sequence[dict]) -> dict[str, Any]:
    """Coordinates of the units (columns, centred), the edges with their weights, and
    each unit's bias, for ``templates/mlp_figure.tex.j2``."""
    widths = sizes(x, layers)
    labelled = max(widths) <= MAX_LABELLED
    top = (max(widths) - 1) * ROW_GAP / 2

    def y(n: int, j: int) -> float:
        return round((n - 1) * ROW_GAP / 2 - j * ROW_GAP, 3)

    nodes = [{"name": latex.Tex(f"u0-{j}"), "x": 0, "y": y(len(x), j),
              "text": latex.Tex(f"x_{{{j + 1}}}"), "bias": None, "input": True}
             for j in range(len(x))]
    edges = []
    for i, layer in enumerate(layers, 1):
        n = len(layer["bias"])
        for j in range(n):
            nodes.append({"name": latex.Tex(f"u{i}-{j}"), "x": round(i * COLUMN_GAP, 3),
                          "y": y(n, j), "text": latex.Tex(f"z^{{[{i}]}}_{{{j + 1}}}"),
                          "bias": latex.num(layer["bias"][j]), "input": False})
            edges += [{"a": latex.Tex(f"u{i - 1}-{k}"), "b": latex.Tex(f"u{i}-{j}"),
                       "w": latex.num(w) if labelled else None,
                       "pos": label_pos(y(n, j) - y(widths[i - 1], k))}
                      for k, w in enumerate(layer["weights"][j])]
    captions = [{"x": 0, "text": "input"}] + [
        {"x": round(i * COLUMN_GAP, 3), "text": f"layer {i}: {NAMES[layer['activation']]}"}
        for i, layer in enumerate(layers, 1)]
    return {"nodes": nodes, "edges": edges, "captions": captions, "bottom": -top - 0.75,
            "labelled": labelled}


# -- derivations with sympy (once per shape) ----------------------------------------------

class _Printer(LatexPrinter):
    """sympy's LaTeX, with f'(z) for the derivative of an unnamed activation f."""

    def _print_Derivative(self, expr: sympy.Derivative) -> str:
        inner = expr.expr
        if isinstance(inner, AppliedUndef) and len(expr.variables) == 1 and len(inner.args) == 1:
            name = inner.func.__name__
            name = name if len(name) == 1 else rf"\operatorname{{{name}}}"
            return f"{name}'\\left({self._print(inner.args[0])}\\right)"
        return super()._print_Derivative(expr)


def tex(expr: Any) -> latex.Tex:
    return latex.Tex(_Printer({"ln_notation": True}).doprint(expr))


def _vector(symbol: str, n: int, **assumptions: Any) -> tuple[sympy.Symbol, ...]:
    return sympy.symbols(f"{symbol}_1:{n + 1}", **assumptions)


@functools.lru_cache(maxsize=16)
def activation_derivative(kind: str) -> dict[str, Any]:
    """f'(z) differentiated by sympy and written in terms of a = f(z) (checked by sympy)."""
    z, a = sympy.symbols("z a", real=True)
    f = {"sigmoid": 1 / (1 + sympy.exp(-z)), "tanh": sympy.tanh(z), "relu": sympy.Max(0, z),
         "none": z}[kind]
    raw = sympy.diff(f, z)
    in_a = {"sigmoid": a * (1 - a), "tanh": 1 - a ** 2, "none": sympy.Integer(1)}.get(kind)
    if kind == "relu":  # sympy's Heaviside(z), with the catalogue's ReLU'(0) = 0
        in_a = sympy.Piecewise((1, z > 0), (0, True))
        if any(raw.subs(z, v) != in_a.subs(z, v) for v in (-2, 3)):
            raise AssertionError(f"sympy's ReLU derivative is {raw}")
    elif sympy.simplify(raw - in_a.subs(a, f)) != 0:
        raise AssertionError(f"sympy did not reduce {kind}'(z) to {in_a}: {raw}")
    return {"f": tex(f), "raw": tex(raw), "in_a": tex(in_a), "expr": in_a}


@functools.lru_cache(maxsize=64)
def output_derivation(loss: str, kind: str, n: int) -> dict[str, Any]:
    """dL/dz of the output layer for n outputs: softmax with cross-entropy through the
    softmax Jacobian (collapsing to s - y), or the mean squared error through f'."""
    y = _vector("y", n, real=True)
    if loss == "cross_entropy":
        return _softmax_cross_entropy(y)
    a = _vector("a", n, real=True)
    mse = sum((ak - yk) ** 2 for ak, yk in zip(a, y)) / n
    grad = [sympy.factor(sympy.diff(mse, ak)) for ak in a]
    d = activation_derivative(kind)
    z = _vector("z", n, real=True)
    relu = sympy.Function("ReLU")
    delta = [g * (sympy.Derivative(relu(zk), zk) if kind == "relu" else
                  d["expr"].subs(sympy.Symbol("a", real=True), ak))
             for g, ak, zk in zip(grad, a, z)]
    return {"loss": tex(mse), "grad": tex(sympy.Matrix(grad)), "delta": tex(sympy.Matrix(delta)),
            "activation": d, "grad_exprs": grad}


def _softmax_cross_entropy(y: tuple[sympy.Symbol, ...]) -> dict[str, Any]:
    n = len(y)
    z, s = _vector("z", n, real=True), _vector("s", n, positive=True)
    softmax_ = [sympy.exp(zk) / sum(sympy.exp(zj) for zj in z) for zk in z]
    jac = sympy.Matrix(n, n, lambda k, i: s[k] * (sympy.KroneckerDelta(k, i) - s[i]))
    for k, i in ((0, 0), (0, n - 1)):  # ds_k/dz_i = s_k (delta_ki - s_i), checked by sympy
        direct = sympy.diff(softmax_[k], z[i])
        if sympy.simplify(direct - jac[k, i].subs(dict(zip(s, softmax_)))) != 0:
            raise AssertionError(f"softmax Jacobian entry ({k}, {i}) is {direct}")
    loss = -sum(yk * sympy.log(sk) for yk, sk in zip(y, s))
    grad_s = sympy.Matrix([sympy.diff(loss, sk) for sk in s])
    product = [sympy.collect(sympy.expand(e), s[i]) for i, e in enumerate(jac.T * grad_s)]
    delta = [e.subs(sum(y), 1) for e in product]
    for i, e in enumerate(delta):
        if sympy.expand(e - (s[i] - y[i])) != 0:
            raise AssertionError(f"sympy did not reduce dL/dz_{i + 1} to s - y: {e}")
    return {"loss": tex(loss), "grad": tex(grad_s), "jacobian": tex(jac),
            "product": tex(sympy.Matrix(product)), "delta": tex(sympy.Matrix(delta)),
            "delta_exprs": delta}


@functools.lru_cache(maxsize=64)
def hidden_derivation(units: int, above: int) -> dict[str, Any]:
    """delta_j = sum_k W_kj delta_k f'(z_j) for a layer of ``units`` feeding ``above``
    units, by the chain rule through z' = W f(z) + b; and dL/dW_ij = delta_i a_j."""
    z, d = _vector("z", units, real=True), _vector(r"\delta", above, real=True)
    w = sympy.Matrix(above, units, lambda k, j: sympy.Symbol(f"W_{{{k + 1}{j + 1}}}"))
    f = sympy.Function("f")
    z_above = w * sympy.Matrix([f(zj) for zj in z])
    delta = [sympy.factor(sum(d[k] * sympy.diff(z_above[k], z[j]) for k in range(above)))
             for j in range(units)]
    return {"delta": [tex(e) for e in delta], "exprs": delta}


@functools.lru_cache(maxsize=64)
def weight_derivation(units: int, inputs: int) -> dict[str, Any]:
    """dL/dW = delta a^T for z = W a + b, from L's first-order change sum_i delta_i z_i."""
    a, d = _vector("a", inputs, real=True), _vector(r"\delta", units, real=True)
    w = sympy.Matrix(units, inputs, lambda i, j: sympy.Symbol(f"W_{{{i + 1}{j + 1}}}"))
    b = _vector("b", units, real=True)
    z = w * sympy.Matrix(a) + sympy.Matrix(b)
    change = sum(di * zi for di, zi in zip(d, z))
    grad = w.applyfunc(lambda wij: sympy.diff(change, wij))
    grad_b = sympy.Matrix([sympy.diff(change, bi) for bi in b])
    return {"grad": tex(grad), "grad_b": tex(grad_b), "matrix": grad}


# -- the worked backward pass ----------------------------------------------------------------

def backward_worked(params: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The worked solution of mlp_backward, every number read from the step values."""
    layers, loss = params["layers"], params["loss"]
    n, kinds = len(layers), activations(layers)
    acts = ["x", *step_names(n)]
    y, out = values["target_vector"], values["output"]
    rate = latex.num(params["learning_rate"])
    return {
        "forward": [{"l": i, "z": latex.row(values[f"z_{i}"]), "a": latex.row(values[acts[i]]),
                     "name": NAMES[k], "kind": k} for i, k in enumerate(kinds, 1)],
        "loss": _loss_worked(loss, out, y, values["loss"]),
        "output": _output_worked(loss, kinds[-1], values, n),
        "hidden": [_hidden_worked(i, kinds[i - 1], layers, values) for i in range(n - 1, 0, -1)],
        "rule": weight_derivation(len(layers[-1]["bias"]), len(layers[-1]["weights"][0])),
        "layers": [{"l": i, "delta": latex.matrix(values[f"delta_{i}"]),
                    "a_row": latex.matrix([np.asarray(values[acts[i - 1]], dtype=float)]),
                    "grad_W": latex.matrix(values[f"grad_W_{i}"]),
                    "grad_b": latex.matrix(values[f"grad_b_{i}"]),
                    "W": latex.matrix(layer["weights"]), "b": latex.matrix(layer["bias"]),
                    "new_W": latex.matrix(values[f"new_W_{i}"]),
                    "new_b": latex.matrix(values[f"new_b_{i}"]), "a_name": _a_name(i - 1)}
                   for i, layer in enumerate(layers, 1)],
        "rate": rate,
        "answers": {"loss": latex.num(values["loss"]), **{
            name: [latex.row(values[f"{step}_{i}"]) if step in ("delta", "grad_b", "new_b")
                   else latex.matrix(values[f"{step}_{i}"]) for i in range(1, n + 1)]
            for name, step in (("deltas", "delta"), ("grad_weights", "grad_W"),
                               ("grad_biases", "grad_b"), ("updated_weights", "new_W"),
                               ("updated_biases", "new_b"))}},
    }


def _a_name(i: int) -> latex.Tex:
    return latex.Tex("x" if i == 0 else f"a^{{[{i}]}}")


def _loss_worked(loss: str, out: np.ndarray, y: np.ndarray, value: float) -> dict[str, Any]:
    if loss == "cross_entropy":
        t = int(np.argmax(y))
        return {"t": t, "s": latex.num(out[t]), "value": latex.num(value)}
    terms = " + ".join(rf"({latex.num(a)} {latex.plus(-b)})^2" for a, b in zip(out, y))
    return {"n": len(y), "terms": latex.Tex(terms), "value": latex.num(value),
            "rel": latex.relation(value)}


def _output_worked(loss: str, kind: str, values: dict[str, Any], n: int) -> dict[str, Any]:
    d = output_derivation(loss, kind, len(values["output"]))
    out = {"derivation": d, "delta": latex.row(values[f"delta_{n}"]),
           "s": latex.row(values["output"]), "y": latex.row(values["target_vector"])}
    if loss == "mse":
        out.update(grad=latex.row(values["grad_output"]), fprime=latex.row(values[f"fprime_{n}"]),
                   act=activation_derivative(kind), kind=kind)
    return out


def _hidden_worked(i: int, kind: str, layers: list[dict], values: dict[str, Any]) -> dict:
    units, above = len(layers[i - 1]["bias"]), len(layers[i]["bias"])
    return {"l": i, "rule": hidden_derivation(units, above)["delta"][0],
            "Wt": latex.matrix(np.asarray(layers[i]["weights"], dtype=float).T),
            "above": latex.matrix(values[f"delta_{i + 1}"]),
            "back": latex.row(values[f"back_{i}"]), "fprime": latex.row(values[f"fprime_{i}"]),
            "delta": latex.row(values[f"delta_{i}"]), "act": activation_derivative(kind),
            "kind": kind, "name": NAMES[kind]}
