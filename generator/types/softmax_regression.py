"""softmax_regression: a linear layer, softmax and the negative log-likelihood, forward and
backward, for one example.

``weights`` is an m x n matrix W (m classes, n features), ``x`` a list of n features and
``target`` the class index t (counting from 0; a one-hot list is accepted too). The logits
are z = W x, the probabilities s = softmax(z), the loss L = -ln s_t, and the gradients
dL/dz = s - y and dL/dW = (s - y) x^T, an m x n matrix like W.

The steps after the logits are those of ``cross_entropy`` (one example: N = 1), so the
grader recomputes the probabilities from a student's logits, the loss and dL/dz from
their probabilities, and dL/dW from their dL/dz. A dL/dz of all zeros feeds no step: an
outer product with zeros is zero without any work, and no softmax gives s = y.

The derivation is sympy's, once per number of classes (:func:`derivation`): the softmax
Jacobian ds_i/dz_j = s_i (delta_ij - s_j), times dL/ds_i = -y_i / s_i, collapses to
s - y; dz_i/dW_jk = delta_ij x_k then gives (s - y) x^T.

Draws: small integer W and x, or one of them with one decimal, so the logits are
integers or one-decimal numbers in [-3, 3], as on a ``softmax`` sheet (the student takes
e^z with a calculator). Logits are kept only when they are hand-friendly there (one
clear largest logit, probabilities clear of 0, 1 and 1/m), clear of 0 and 1 themselves,
and nothing is free (see ``cross_entropy``); x has no zero, so dL/dW has no zero column;
and a student who rounds every step to 3 significant figures keeps the probabilities
within the tolerance (:func:`rounding_safe`).
"""

from __future__ import annotations

from functools import cache, partial
from typing import Any

import numpy as np
import sympy

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.exercise import (Exercise, int_option, jsonable, numbers, register,
                                          require)
from deepdrill.generator.randomness import choice, decimals, draw_until, ints
from deepdrill.generator.steps import NotApplicable, Slip, Step, by_hand, run
from deepdrill.model.fields import real
from deepdrill.model.tolerance import DEFAULT_RTOL, default_floor

from .cross_entropy import SLIPS as CROSS_ENTROPY_SLIPS
from .cross_entropy import (batch_size, check_target, example_losses, grad_logits, mean_loss,
                            nothing_free, one_hot, row_is_clear, target_probabilities)
from .softmax import GRAPH as SOFTMAX_GRAPH
from .softmax import MAX_CLASSES, check_logits, clear_of, near, softmax, softmax_rows

CLASS_CHOICES = (3, 4)  # classes of a random draw
FEATURE_CHOICES = (2, 3)  # features of a random draw
MAX_FEATURES = 5  # keeps W x on one line
LOGIT_BOUND = 3  # random logits lie in [-3, 3]
MAX_VALUE = 1e3  # of a pinned entry of W or x
MAX_DRAWS = 400
# How W and x are drawn: (share, W's kind, x's kind); "int" entries in [-2, 2], "dec" W
# entries one-decimal in [-1, 1], "dec" x entries one-decimal in [-1.5, 1.5] (x never 0).
DRAW_KINDS = ((0.4, "int", "int"), (0.3, "dec", "int"), (0.3, "int", "dec"))
INT_LOW, INT_HIGH = -2, 2
DEC_W, DEC_X = 1.0, 1.5
DIGITS = 12  # decimals the logits keep
ROUNDING_SHARE = 0.8  # of the tolerance a 3-figure student may use up on the probabilities


# -- the steps (pure: the grader feeds them a student's own values) -------------------

def linear(weights: Any, x: Any) -> np.ndarray:
    """z = W x (binary residue of one-decimal products rounded away: 0.4, not
    0.40000000000000013)."""
    return np.round(np.asarray(weights, dtype=float) @ np.asarray(x, dtype=float), DIGITS)


def class_one_hot(target: Any, weights: Any) -> np.ndarray:
    """y: the target as a one-hot vector of m = (rows of W) entries."""
    return one_hot(target, np.zeros(len(weights)))


def weight_gradient(grad_logits: Any, x: Any) -> np.ndarray:
    """dL/dW = (dL/dz) x^T. An all-zero dL/dz (no softmax gives one) feeds nothing."""
    g = np.asarray(grad_logits, dtype=float)
    if g.ndim != 1 or not np.any(g):
        raise NotApplicable("dL/dW from an all-zero dL/dz needs no work")
    return np.outer(g, np.asarray(x, dtype=float))


GRAPH = (
    Step("logits", linear, ("weights", "x")),
    *SOFTMAX_GRAPH,
    Step("one_hot", class_one_hot, ("target", "weights")),
    Step("target_probabilities", target_probabilities, ("probabilities", "one_hot")),
    Step("example_losses", example_losses, ("target_probabilities",)),
    Step("batch_size", batch_size, ("one_hot",)),
    Step("loss", mean_loss, ("example_losses", "batch_size")),
    Step("grad_logits", grad_logits, ("probabilities", "one_hot", "batch_size")),
    Step("grad_weights", weight_gradient, ("grad_logits", "x")),
)


def transposed_gradient(grad_logits: Any, x: Any) -> np.ndarray:
    return weight_gradient(grad_logits, x).T


def flipped_sign(probabilities: Any, one_hot: np.ndarray, batch_size: int) -> np.ndarray:
    return -grad_logits(probabilities, one_hot, batch_size)


SLIPS = (
    Slip("transposed_outer_product", "you computed x (s - y)^T, an n x m matrix; dL/dW = "
         "(s - y) x^T has the shape of W (m x n)", swaps={"grad_weights": transposed_gradient}),
    Slip("sign_error", "you took y - s as dL/dz; the gradient is s - y (and dL/dW = "
         "(s - y) x^T)", swaps={"grad_logits": flipped_sign}),
    *(s for s in CROSS_ENTROPY_SLIPS if s.name in ("log10", "grad_is_s")),
)


# -- the derivation (sympy, once per number of classes and features) -----------------

@cache
def derivation(m: int, n: int) -> dict[str, Any]:
    """dL/dz and dL/dW of L = -sum_i y_i ln softmax_i(W x), derived with sympy.

    The Jacobian's compact form s_i (delta_ij - s_j) is checked against sympy's
    derivative of the exponentials; the chain rule with dL/ds_i = -y_i / s_i is
    expanded and reduced with sum_i y_i = 1.
    """
    z = sympy.symbols(f"z_0:{m}", real=True)
    s = sympy.symbols(f"s_0:{m}", positive=True)
    y = sympy.symbols(f"y_0:{m}", real=True)
    total = sum(sympy.exp(v) for v in z)
    soft = [sympy.exp(v) / total for v in z]
    raw = sympy.Matrix(m, m, lambda i, j: sympy.diff(soft[i], z[j]))
    jacobian = sympy.Matrix(m, m, lambda i, j: s[i] * (int(i == j) - s[j]))
    as_z = dict(zip(s, soft))
    if (jacobian.subs(as_z) - raw).applyfunc(sympy.simplify) != sympy.zeros(m, m):
        raise AssertionError("sympy does not confirm ds_i/dz_j = s_i (delta_ij - s_j)")
    dl_ds = sympy.Matrix([-y[i] / s[i] for i in range(m)])
    chained = [sympy.collect(sympy.expand(e), s[j]) for j, e in enumerate(jacobian.T * dl_ds)]
    gradient = [e.subs(sum(y), 1) for e in chained]
    if any(sympy.expand(g - (s[j] - y[j])) != 0 for j, g in enumerate(gradient)):
        raise AssertionError(f"sympy did not reduce dL/dz to s - y: {gradient}")
    w = sympy.Matrix(m, n, lambda i, k: sympy.Symbol(f"W_{{{i}{k}}}"))
    x = sympy.Matrix(n, 1, lambda k, _: sympy.Symbol(f"x_{k}"))
    logits = w * x
    for i, j, k in np.ndindex(m, m, n):  # dz_i/dW_jk = delta_ij x_k
        if sympy.diff(logits[i], w[j, k]) != (x[k] if i == j else 0):
            raise AssertionError(f"dz_{i}/dW_{j}{k} is not delta x_{k}")
    outer = sympy.Matrix(gradient) * x.T

    def tex(expr: Any) -> latex.Tex:
        return latex.Tex(sympy.latex(expr))

    return {"symbols": (z, s, y), "raw": raw, "jacobian": jacobian, "gradient": gradient,
            "outer": outer, "tex_raw_diag": tex(raw[0, 0]), "tex_raw_off": tex(raw[0, 1]),
            "tex_jacobian": tex(jacobian), "tex_dl_ds": tex(dl_ds.T),
            "tex_chained": tex(chained[0]), "tex_gradient": tex(gradient[0]),
            "tex_logit": tex(logits[0]), "tex_outer": tex(outer)}


# -- drawing --------------------------------------------------------------------------

def draw_entries(rng: np.random.Generator, shape: Any, kind: str, bound: float,
                 nonzero: bool) -> np.ndarray:
    if kind == "int":
        return ints(rng, shape, INT_LOW, INT_HIGH, nonzero=nonzero).astype(float)
    values = decimals(rng, shape, -bound, bound, 1)
    while nonzero and np.any(values == 0):  # redraw the zeros only
        values = np.where(values == 0, decimals(rng, shape, -bound, bound, 1), values)
    return values


def candidate(rng: np.random.Generator, pinned: dict[str, Any], m: int, n: int,
              kinds: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """W and x of the given kinds (pinned ones as given)."""
    w = numbers(pinned["weights"], "weights") if "weights" in pinned else \
        draw_entries(rng, (m, n), kinds[0], DEC_W, nonzero=False)
    x = numbers(pinned["x"], "x") if "x" in pinned else \
        draw_entries(rng, n, kinds[1], DEC_X, nonzero=True)
    return w, x


def good_draw(wx: tuple[np.ndarray, np.ndarray], y: np.ndarray) -> bool:
    """Hand-friendly logits (see the module docstring) and a dL/dW clear of 0 and 1 that
    its transpose does not equal."""
    weights, x = wx
    z = linear(weights, x)
    if np.abs(z).max() > LOGIT_BOUND or np.sum(near(z, 0.0) | near(z, 1.0)) > \
            (1 if len(z) > 2 else 0) or not row_is_clear(z, y, 1) or not nothing_free(z, y):
        return False
    grad = np.outer(softmax(z) - y, x)
    symmetric = grad.shape[0] == grad.shape[1] and np.allclose(grad, grad.T, rtol=0.05)
    return clear_of(grad, (0.0, 1.0)) and not symmetric and not np.allclose(x, 1.0) and \
        rounding_safe(weights, x, y)


def rounding_safe(weights: np.ndarray, x: np.ndarray, y: np.ndarray) -> bool:
    """A student who rounds e^z, their sum and each s_i to 3 significant figures stays
    within ROUNDING_SHARE of the tolerance (e^0.1 = 1.11 and a sum of 1.25 can put s
    1 % off); later fields follow the student's own probabilities."""
    params = {"weights": weights, "x": x, "target": y}
    s = run(GRAPH, params)["probabilities"]
    rounded = run(GRAPH, params, rounding=by_hand)["probabilities"]
    bound = ROUNDING_SHARE * np.maximum(DEFAULT_RTOL * np.abs(s), default_floor(s))
    return bool(np.all(np.abs(rounded - s) <= bound))


def draw_problem(rng: np.random.Generator, pinned: dict[str, Any], m: int, n: int,
                 y: np.ndarray) -> dict[str, Any]:
    """W and x (either may be pinned) until :func:`good_draw` holds: in a kind of numbers
    chosen once (good integer W and x are rarer), then in the others."""
    first = int(rng.choice(len(DRAW_KINDS), p=[k[0] for k in DRAW_KINDS]))
    for _, *kinds in DRAW_KINDS[first:] + DRAW_KINDS[:first]:
        try:
            w, x = draw_until(rng, partial(candidate, pinned=pinned, m=m, n=n,
                                           kinds=tuple(kinds)),
                              partial(good_draw, y=y), tries=MAX_DRAWS, refusal="")
        except ParamError:
            continue
        return {"weights": jsonable(w), "x": jsonable(x)}
    raise ParamError(f"no hand-friendly W and x for {m} classes and {n} features (logits in "
                     f"[-{LOGIT_BOUND}, {LOGIT_BOUND}] with one clear largest, probabilities "
                     f"clear of 0, 1 and 1/{m}); pin both or choose other options")


def sizes(rng: np.random.Generator, pinned: dict[str, Any],
          options: dict[str, Any]) -> tuple[int, int]:
    """(m, n): from pinned W, x or target where given, else the options, else drawn."""
    w = numbers(pinned["weights"], "weights") if "weights" in pinned else None
    if w is not None and w.ndim == 2:
        return w.shape
    m = int_option("classes", options["classes"], 2, MAX_CLASSES) \
        if options["classes"] is not None else choice(rng, list(CLASS_CHOICES))
    if "target" in pinned:  # a one-hot list sets m; an index needs at least index + 1
        t = numbers(pinned["target"], "target")
        m = t.size if t.ndim == 1 else max(m, int(t.max(initial=0)) + 1)
    if "x" in pinned and np.ndim(pinned["x"]) == 1:
        return m, len(pinned["x"])
    n = int_option("features", options["features"], 1, MAX_FEATURES) \
        if options["features"] is not None else choice(rng, list(FEATURE_CHOICES))
    return m, n


@register
class SoftmaxRegression(Exercise):
    id = "softmax_regression"
    title = "Softmax regression: forward pass and gradients"
    summary = "logits W x, softmax, NLL loss, and the gradients dL/dz = s - y, dL/dW = (s - y) x^T"
    params = ("weights", "x", "target")
    options = {"classes": None, "features": None}  # None: 3 or 4 classes, 2 or 3 features
    work_space = "9cm"

    def sample(self, rng, pinned, options):
        p = dict(pinned)
        m, n = sizes(rng, p, options)
        if m > MAX_CLASSES:
            raise ParamError(f"random problems have at most {MAX_CLASSES} classes; pin the "
                             f"weights to use a target of {m - 1}")
        if "target" in p:
            check_target(p["target"], np.zeros(m))
        else:
            p["target"] = int(rng.integers(m))
        if "weights" in p and "x" in p:
            return p
        return {**p, **draw_problem(rng, p, m, n, one_hot(p["target"], np.zeros(m)))}

    def check(self, params):
        require(params, *self.params)
        w, x = numbers(params["weights"], "weights"), numbers(params["x"], "x")
        if w.ndim != 2 or not 2 <= len(w) <= MAX_CLASSES or w.shape[1] < 1:
            raise ParamError(f"weights must be an m x n matrix (a list of m rows of n numbers) "
                             f"with 2 to {MAX_CLASSES} classes m")
        if x.ndim != 1 or len(x) != w.shape[1]:
            raise ParamError(f"x must be a list of {w.shape[1]} numbers, one per column of "
                             f"the weights")
        if max(np.abs(w).max(), np.abs(x).max()) > MAX_VALUE:
            raise ParamError(f"weights and x must be numbers of a sheet's size, at most "
                             f"{MAX_VALUE:g} in size")
        try:
            check_logits(linear(w, x))
        except ParamError as err:
            raise ParamError(f"the logits W x {err.message.removeprefix('logits ')}; use "
                             f"smaller weights or features") from None
        check_target(params["target"], linear(w, x))
        return {k: jsonable(params[k]) for k in self.params}

    def graph(self, params):
        return GRAPH

    def fields(self, params, values):
        m, n = np.shape(params["weights"])
        return [real("logits", "the logits z = W x", [m]),
                real("probabilities", "the softmax probabilities s", [m]),
                real("loss", "the loss L = -ln s_t", []),
                real("grad_logits", "the gradient dL/dz", [m]),
                real("grad_weights", "the gradient dL/dW, shaped like W", [m, n])]

    def slips(self, params):
        if np.shape(params["weights"])[1] == 1:  # one feature: the transpose holds the same
            return [s for s in SLIPS if s.name != "transposed_outer_product"]  # numbers
        return list(SLIPS)

    def problem(self, params):
        w = np.asarray(params["weights"], dtype=float)
        y = one_hot(params["target"], np.zeros(len(w)))
        return {"m": w.shape[0], "n": w.shape[1], "weights": latex.matrix(w),
                "x": latex.matrix(params["x"]), "t": int(np.argmax(y)), "y": latex.row(y)}

    def worked(self, params, values):
        w, x = np.asarray(params["weights"], dtype=float), np.asarray(params["x"], dtype=float)
        m, n = w.shape
        s, y, g = values["probabilities"], values["one_hot"], values["grad_logits"]
        t = int(np.argmax(y))
        return {
            "m": m, "n": n, "t": t,
            "logits": [{"i": i, "terms": products(row, x), "z": latex.num(z)}
                       for i, (row, z) in enumerate(zip(w, values["logits"]))],
            "softmax": softmax_rows(values)[0],
            "s_t": latex.num(values["target_probabilities"]),
            "derivation": derivation(m, n),
            "s": latex.row(s), "y": latex.row(y), "g": latex.row(g),
            "g_column": latex.matrix(g), "x_row": latex.Tex(latex.matrix([x])),
            "answers": {"logits": latex.row(values["logits"]), "probabilities": latex.row(s),
                        "loss": latex.num(values["loss"]), "grad_logits": latex.row(g),
                        "grad_weights": latex.matrix(values["grad_weights"])},
        }


def products(row: Any, x: Any) -> latex.Tex:
    """``2\\cdot 1 - 1\\cdot (-2)``: a row of W times x, each term's sign in front."""
    terms = [rf"{latex.num(abs(w))}\cdot {latex.term(v)}" for w, v in zip(row, x)]
    signs = ["-" if w < 0 else "+" for w in row]
    head = ("-" if signs[0] == "-" else "") + terms[0]
    return latex.Tex(" ".join([head, *(f"{s} {t}" for s, t in zip(signs[1:], terms[1:]))]))
