"""activation_gradients: local derivatives of an activation along a deep chain of scalar
units, and their product (vanishing and exploding gradients).

The chain: a_l = f(z_l) with z_l = w_l a_(l-1) + b_l for l = 1..L. ``z`` holds the
pre-activations z_l of a forward pass and ``weights`` the w_l (the biases only set the
z_l, so the problem gives the z_l directly). ``local_derivatives`` are f'(z_l) and
``gradient_product`` is da_L/da_0 = prod_l w_l f'(z_l), the factor the gradient is
scaled by on its way back from a_L to a_0.

Steps: the activations f(z_l), the local derivatives from them (s(1 - s) for sigmoid,
1 - t^2 for tanh, 0 or 1 for ReLU), the factors w_l f'(z_l) the solution prints, and
the product, computed from the local derivatives (the catalogue's chain), so the grader
can credit a product right for a student's own derivatives. All-zero derivatives feed
no product: a product with a zero factor is zero without any work.

Random draws (sigmoid or tanh; ReLU when the activation is pinned) are exact by hand:
z_l = +-ln k, so e^(-z) is k or 1/k, sigmoid(ln k) = k/(k+1), sigmoid' = k/(k+1)^2 and
tanh(ln k) = (k^2-1)/(k^2+1): every derivative is a fraction, and the sheet prints
"ln 3". ReLU draws are one-decimal z kept 0.5 clear of 0, at least one positive. The
formula f'(z) in terms of f(z) is sympy's, once per activation (:func:`derivation`).

With ``formula: true`` (sigmoid and tanh) the field ``derivative_formula`` also asks that
formula as text: sigma'(z) in s = sigma(z) (``s*(1 - s)``) or tanh'(z) in t = tanh(z)
(``1 - t^2``). Its typical wrong forms are named: the activation itself (``s``, ``t``,
with the numeric slip of that name), 1 - t (likewise), the sign inside flipped, and
the other activation's rule.
"""

from __future__ import annotations

import math
from functools import cache
from itertools import combinations
from typing import Any

import numpy as np
import sympy

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.exercise import (Exercise, int_option, jsonable, numbers, register,
                                          require)
from deepdrill.generator.randomness import choice, decimals, draw_until
from deepdrill.generator.steps import NotApplicable, Slip, Step, constant, run
from deepdrill.model.fields import formula, real

from .softmax import near

ACTIVATIONS = ("sigmoid", "tanh", "relu")
DRAWN = ("sigmoid", "tanh")  # a random activation; ReLU's 0/1 derivatives when pinned
LAYER_CHOICES = (3, 4)  # of a random chain
MIN_LAYERS, MAX_LAYERS = 2, 6  # the option layers
MAX_PINNED_LAYERS = 10
LOG_BASES = (2, 3, 4, 5)  # random z = +-ln k
ZERO_SHARE = 0.1  # of sigmoid layers with z = 0 (sigmoid' = 1/4); never two
WEIGHT_SIZES = (0.5, 1, 1.5, 2, 3, 4)
NEGATIVE_SHARE = 0.3
RELU_BOUND, RELU_MARGIN = 3, 0.5  # ReLU z: one decimal in [-3, 3], |z| >= 0.5
ALL_ACTIVE_SHARE = 0.5  # of ReLU chains with every unit active; the rest have dead ones
MAX_Z, MAX_WEIGHT = 30, 100  # pinned values of a sheet's size
MAX_DRAWS = 200
MAX_LOG_BASE = 1000  # z = ln k is printed as "ln k" up to this k
EXACT = 1e-12  # |z - ln k| below which z is ln k


# -- the steps (pure: the grader feeds them a student's own values) -------------------

def activate(activation: str, z: Any) -> np.ndarray:
    z = np.asarray(z, dtype=float)
    if activation == "sigmoid":
        return 1 / (1 + np.exp(-z))
    return np.tanh(z) if activation == "tanh" else np.maximum(z, 0.0)


def derivatives(activation: str, activations: Any, z: Any) -> np.ndarray:
    """f'(z) from a = f(z): a(1 - a), 1 - a^2, or 1 where z > 0 (ReLU)."""
    a = np.asarray(activations, dtype=float)
    if activation == "sigmoid":
        return a * (1 - a)
    return 1 - a ** 2 if activation == "tanh" else (np.asarray(z, dtype=float) > 0) * 1.0


def factors(local_derivatives: Any, weights: Any) -> np.ndarray:
    """w_l f'(z_l): one layer's factor of the chain rule (printed in the solution)."""
    return np.asarray(weights, dtype=float) * np.asarray(local_derivatives, dtype=float)


def product(local_derivatives: Any, weights: Any) -> float:
    """da_L/da_0 = prod_l w_l f'(z_l); all-zero derivatives feed nothing (no work)."""
    d = np.asarray(local_derivatives, dtype=float)
    if d.ndim != 1 or not np.any(d):
        raise NotApplicable("a product of all-zero derivatives needs no work")
    return float(np.prod(factors(d, weights)))


GRAPH = (
    Step("activations", activate, ("activation", "z")),
    Step("local_derivatives", derivatives, ("activation", "activations", "z")),
    Step("factors", factors, ("local_derivatives", "weights")),
    Step("gradient_product", product, ("local_derivatives", "weights")),
)


def activation_values(activation: str, activations: Any, z: Any) -> np.ndarray:
    return np.asarray(activations, dtype=float)


def derivative_at_z(activation: str, activations: Any, z: Any) -> np.ndarray:
    """The derivative's formula in terms of f applied to z itself: z(1 - z), 1 - z^2."""
    z = np.asarray(z, dtype=float)
    return z * (1 - z) if activation == "sigmoid" else 1 - z ** 2


def one_minus_tanh(activation: str, activations: Any, z: Any) -> np.ndarray:
    return 1 - np.asarray(activations, dtype=float)


def product_without_weights(local_derivatives: Any, weights: Any) -> float:
    return product(local_derivatives, np.ones(np.shape(local_derivatives)))


USED_ACTIVATION = Slip("used_activation", "you gave f(z), the activation itself, instead of "
                       "its derivative f'(z)", swaps={"local_derivatives": activation_values})
FORGOT_WEIGHTS = Slip("forgot_weights", "you multiplied the f'(z) only; each layer's factor "
                      "is w f'(z), since z = w a + b", swaps={"gradient_product":
                                                              product_without_weights})
DERIVATIVE_AT_Z = Slip("derivative_at_z", "you put z into the derivative's formula (z(1 - z) "
                       "or 1 - z^2); it takes the activation: s(1 - s) with s = sigmoid(z), "
                       "1 - t^2 with t = tanh(z)", swaps={"local_derivatives": derivative_at_z})
TANH_UNSQUARED = Slip("tanh_unsquared", "you used 1 - tanh(z); the derivative of tanh is "
                      "1 - tanh(z)^2", swaps={"local_derivatives": one_minus_tanh})
SLIPS = {"sigmoid": (USED_ACTIVATION, FORGOT_WEIGHTS, DERIVATIVE_AT_Z),
         "tanh": (USED_ACTIVATION, FORGOT_WEIGHTS, DERIVATIVE_AT_Z, TANH_UNSQUARED),
         "relu": (USED_ACTIVATION, FORGOT_WEIGHTS)}


# -- the formula (the option `formula`): f'(z) typed as text in f(z)'s letter ------------

FORMULA = {"sigmoid": "s*(1 - s)", "tanh": "1 - t^2"}  # in s = sigmoid(z), t = tanh(z)
# the formula each numeric slip writes, where it has one
SLIP_FORMULAS = {"sigmoid": {"used_activation": "s"},
                 "tanh": {"used_activation": "t", "tanh_unsquared": "1 - t"}}
FORMULA_SLIPS = {
    "sigmoid": (Slip("formula_sign", "you wrote s(1 + s); the derivative of the sigmoid is "
                     "s(1 - s), which is at most 1/4", swaps={"derivative_formula":
                                                             constant("s*(1 + s)")}),
                Slip("other_activation_formula", "you gave tanh's rule 1 - s^2; the sigmoid's "
                     "derivative is s(1 - s)", swaps={"derivative_formula":
                                                      constant("1 - s^2")})),
    "tanh": (Slip("formula_sign", "you wrote 1 + t^2; the derivative of tanh is 1 - t^2, "
                  "which is at most 1", swaps={"derivative_formula": constant("1 + t^2")}),
             Slip("other_activation_formula", "you gave the sigmoid's rule t(1 - t); the "
                  "derivative of tanh is 1 - t^2", swaps={"derivative_formula":
                                                          constant("t*(1 - t)")})),
}


def formula_step(activation: str) -> Step:
    return Step("derivative_formula", constant(FORMULA[activation]), ())


def formula_slips(activation: str) -> list[Slip]:
    """The numeric slips, those with a formula writing it too, then the formula's own."""
    texts = SLIP_FORMULAS[activation]
    return [Slip(s.name, s.feedback, {**s.swaps, "derivative_formula": constant(texts[s.name])})
            if s.name in texts else s for s in SLIPS[activation]] + \
        list(FORMULA_SLIPS[activation])


# -- the derivation (sympy, once per activation) ----------------------------------------

Z = sympy.Symbol("z", real=True)
A = sympy.Symbol("a")  # f(z), printed as s (sigmoid) or t (tanh)
K = sympy.Symbol("k", positive=True)
FORMS = {"sigmoid": 1 / (1 + sympy.exp(-Z)),
         "tanh": (sympy.exp(Z) - sympy.exp(-Z)) / (sympy.exp(Z) + sympy.exp(-Z)),
         "relu": sympy.Piecewise((Z, Z > 0), (0, True))}
IN_TERMS_OF_F = {"sigmoid": A * (1 - A), "tanh": 1 - A ** 2}
NAMES = {"sigmoid": (r"\sigma", "s"), "tanh": (r"\tanh", "t"), "relu": (r"\operatorname{ReLU}", "a")}


@cache
def derivation(activation: str) -> dict[str, Any]:
    """f'(z) for one activation: sympy's derivative, simplified, and (sigmoid, tanh) in
    terms of f(z), checked by sympy; with f and f' at z = ln k."""
    f = FORMS[activation]
    raw = sympy.diff(f, Z)
    fn, letter = NAMES[activation]
    out = {"f": tex(f), "raw": tex(raw), "letter": letter, "fn": latex.Tex(fn)}
    if activation == "relu":
        return {**out, "simplified": None, "in_f": None, "at_ln": None}
    in_f = IN_TERMS_OF_F[activation]
    if sympy.simplify(raw - in_f.subs(A, f)) != 0:
        raise AssertionError(f"sympy does not confirm {activation}'(z) = {in_f}")
    at_ln = [sympy.simplify(e.subs(Z, sympy.log(K))) for e in (f, raw)]
    return {**out, "simplified": tex(sympy.factor(sympy.cancel(raw))),
            "in_f": tex(in_f.subs(A, sympy.Symbol(letter))),
            "at_ln": [tex(e) for e in at_ln]}


def tex(expr: Any) -> latex.Tex:
    return latex.Tex(sympy.latex(expr))


def log_base(z: float) -> int | None:
    """k when z = +-ln k for a whole k (1 for z = 0), else None."""
    k = round(math.exp(min(abs(z), math.log(MAX_LOG_BASE) + 1)))
    return k if 1 <= k <= MAX_LOG_BASE and abs(math.log(k) - abs(z)) < EXACT else None


def z_tex(z: float) -> latex.Tex:
    """z as the sheet prints it: "\\ln 3", "-\\ln 2", "0", or the number."""
    k = log_base(z)
    if k is None:
        return latex.num(z, 6)
    if k == 1:
        return latex.Tex("0")
    return latex.Tex(("-" if z < 0 else "") + rf"\ln {k}")


@cache
def working(activation: str, z: float, a: float) -> dict[str, Any] | None:
    """f(z) and the working of f'(z) from it (sigmoid, tanh): exact fractions when
    z = +-ln k (``fp`` their result), else the activation a to 4 figures (``fp`` None)."""
    if activation == "relu":
        return None
    in_f = IN_TERMS_OF_F[activation]
    k = log_base(z)
    if k is None:
        shown = sympy.Float(str(latex.num(a)))
        return {"f": latex.num(a), "work": tex(in_f.subs(A, sympy.UnevaluatedExpr(shown))),
                "fp": None}
    value = sympy.nsimplify(sympy.simplify(FORMS[activation].subs(Z, sympy.log(k) *
                                                                  (-1 if z < 0 else 1))))
    return {"f": tex(value), "work": tex(in_f.subs(A, sympy.UnevaluatedExpr(value))),
            "fp": tex(in_f.subs(A, value))}


# -- drawing and checking -------------------------------------------------------------

def draw_log_z(rng: np.random.Generator, activation: str, n: int) -> np.ndarray:
    """z_l = +-ln k; for sigmoid, sometimes one z = 0 (sigmoid'(0) = 1/4)."""
    k = np.array([choice(rng, list(LOG_BASES)) for _ in range(n)], dtype=float)
    z = np.log(k) * np.where(rng.random(n) < 0.5, -1, 1)
    if activation == "sigmoid" and rng.random() < ZERO_SHARE * n:
        z[rng.integers(n)] = 0.0
    return z


def draw_relu_z(rng: np.random.Generator, n: int) -> np.ndarray:
    """One-decimal z with |z| >= RELU_MARGIN: every unit active, or some dead (never all)."""
    size = decimals(rng, n, RELU_MARGIN, RELU_BOUND, 1)
    if n == 1 or rng.random() < ALL_ACTIVE_SHARE:
        return size
    dead = rng.permutation(n)[:int(rng.integers(1, max(2, n // 2) + 1))]
    signs = np.ones(n)
    signs[dead] = -1
    return size * signs


def draw_weights(rng: np.random.Generator, n: int) -> np.ndarray:
    sizes = np.array([choice(rng, list(WEIGHT_SIZES)) for _ in range(n)], dtype=float)
    return sizes * np.where(rng.random(n) < NEGATIVE_SHARE, -1, 1)


def nothing_free(activation: str, z: np.ndarray, weights: np.ndarray) -> bool:
    """Forgetting the weights changes the product, which no constant (+-1) answers; the
    derivatives vary (sigmoid, tanh: not all at one |z|) and no tanh' is 1 (z = 0)."""
    d = derivatives(activation, activate(activation, z), z)
    p = float(np.prod(d * weights))
    if activation == "relu":
        return bool(np.any(z > 0)) and (p == 0 or not near(np.prod(weights), 1.0)) and \
            not near(abs(p), 1.0)
    return not near(abs(np.prod(weights)), 1.0) and not near(abs(p), 1.0) and \
        not np.any(near(d, 1.0)) and (len(z) < 2 or len(set(np.round(np.abs(z), 9))) > 1)


def mistakes_apart(activation: str, z: np.ndarray, weights: np.ndarray) -> bool:
    """No slip or pair of slips gives the product of another with other derivatives (tanh
    at ln 2 and ln 3 is 3/5 and 4/5, and fractions meet by chance): the grader then names
    the mistake the student made. ReLU's products are 0 or a product of weights anyway."""
    if activation == "relu":
        return True
    params = {"activation": activation, "z": z, "weights": weights}
    slips = SLIPS[activation]
    groups = [(), *((s,) for s in slips), *((a, b) for a, b in combinations(slips, 2)
                                            if not set(a.swaps) & set(b.swaps))]
    answers = []
    for group in groups:
        try:
            v = run(GRAPH, params, {k: f for s in group for k, f in s.swaps.items()})
        except NotApplicable:
            continue
        answers.append((v["local_derivatives"], v["gradient_product"]))
    return not any(near(p, q) and not (np.allclose(d, e) and p == q)
                   for (d, p), (e, q) in combinations(answers, 2))


def layer_count(rng: np.random.Generator, pinned: dict[str, Any],
                options: dict[str, Any]) -> int:
    """L: from a pinned z or weights, else the option layers, else drawn."""
    n = int_option("layers", options["layers"], MIN_LAYERS, MAX_LAYERS) \
        if options["layers"] is not None else choice(rng, list(LAYER_CHOICES))
    for name in ("z", "weights"):
        if name in pinned:
            values = numbers(pinned[name], name)
            return values.size if values.ndim == 1 else n
    return n


def check_activation(activation: Any) -> str:
    if activation not in ACTIVATIONS:
        raise ParamError(f"activation must be one of {', '.join(ACTIVATIONS)}, not "
                         f"{activation!r}")
    return activation


def check_formula(activation: str, params: dict[str, Any]) -> dict[str, Any]:
    """{"formula": True} when asked (nothing when not: variants without it are unchanged)."""
    asked = params.get("formula", False)
    if not isinstance(asked, bool):
        raise ParamError("formula must be true or false (true also asks f'(z) as a formula in "
                         "f(z): s*(1 - s) for sigmoid, 1 - t^2 for tanh)")
    if asked and activation == "relu":
        raise ParamError("formula: true asks f'(z) as a formula in f(z), which ReLU's 0 or 1 "
                         "is not; use sigmoid or tanh, or leave formula out")
    return {"formula": True} if asked else {}


def formula_field(activation: str) -> Any:
    fn, letter = {"sigmoid": ("sigmoid", "s"), "tanh": ("tanh", "t")}[activation]
    return formula("derivative_formula",
                   f"the derivative {fn}'(z) in terms of {letter} = {fn}(z)", (letter,))


def check_z(activation: str, z: Any) -> np.ndarray:
    z = numbers(z, "z")
    if z.ndim != 1 or not 1 <= z.size <= MAX_PINNED_LAYERS:
        raise ParamError(f"z must be a list of 1 to {MAX_PINNED_LAYERS} numbers, one per layer")
    if np.abs(z).max() > MAX_Z:
        raise ParamError(f"z must be numbers of a sheet's size, at most {MAX_Z} in size")
    if activation == "relu" and np.any(z == 0):
        raise ParamError("ReLU has no derivative at z = 0 (its value there is only a "
                         "convention); give nonzero pre-activations")
    if activation == "relu" and not np.any(z > 0):
        raise ParamError("with every z negative every ReLU is dead and all derivatives are 0; "
                         "give at least one positive z")
    return z


@register
class ActivationGradients(Exercise):
    id = "activation_gradients"
    title = "Activation derivatives along a deep chain"
    summary = "f'(z) of sigmoid/tanh/ReLU per layer and their product with the weights " \
              "through a chain of scalar units (vanishing gradients)"
    params = ("activation", "z", "weights", "formula")
    options = {"layers": None}  # None: 3 or 4 layers
    work_space = "6cm"
    packages = ("tikz",)

    def sample(self, rng, pinned, options):
        p = dict(pinned)
        p["activation"] = check_activation(p["activation"]) if "activation" in p else \
            choice(rng, list(DRAWN))
        act, n = p["activation"], layer_count(rng, p, options)
        if "z" in p:
            check_z(act, p["z"])
        if "z" in p and "weights" in p:
            return p

        def draw(r: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
            z = numbers(p["z"], "z") if "z" in p else \
                draw_relu_z(r, n) if act == "relu" else draw_log_z(r, act, n)
            w = numbers(p["weights"], "weights") if "weights" in p else draw_weights(r, n)
            return z, w

        z, w = draw_until(rng, draw, lambda zw: len(zw[0]) != len(zw[1]) or
                          (nothing_free(act, *zw) and mistakes_apart(act, *zw)), tries=MAX_DRAWS,
                          refusal=f"no {act} chain found whose product is clear of 0 and "
                                  f"+-1 and changes without the weights; pin z and weights")
        return {**p, "z": jsonable(z), "weights": jsonable(w)}

    def check(self, params):
        require(params, "activation", "z", "weights")
        act = check_activation(params["activation"])
        z = check_z(act, params["z"])
        w = numbers(params["weights"], "weights")
        if w.shape != z.shape:
            raise ParamError(f"weights must be a list of {z.size} numbers, one per layer "
                             f"like z")
        if np.abs(w).max() > MAX_WEIGHT:
            raise ParamError(f"weights must be numbers of a sheet's size, at most "
                             f"{MAX_WEIGHT} in size")
        return {"activation": act, "z": jsonable(params["z"]),
                "weights": jsonable(params["weights"]), **check_formula(act, params)}

    def graph(self, params):
        return (*GRAPH, formula_step(params["activation"])) if params.get("formula") else GRAPH

    def fields(self, params, values):
        n = len(params["z"])
        return [real("local_derivatives", "the local derivatives f'(z_l), one per layer",
                     [n]),
                real("gradient_product", "da_L/da_0, the product of w_l f'(z_l) over the "
                     "layers", []),
                *([formula_field(params["activation"])] if params.get("formula") else [])]

    def slips(self, params):
        act = params["activation"]
        return formula_slips(act) if params.get("formula") else list(SLIPS[act])

    def problem(self, params):
        act, z = params["activation"], np.asarray(params["z"], dtype=float)
        return {"activation": act, "fn": derivation(act)["fn"], "n": len(z),
                "formula": bool(params.get("formula")), "letter": derivation(act)["letter"],
                "units": [{"l": l, "z": z_tex(zl), "w": latex.num(wl)}
                          for l, (zl, wl) in enumerate(zip(z, params["weights"]), 1)],
                "logs": any(log_base(v) not in (None, 1) for v in z)}

    def worked(self, params, values):
        act = params["activation"]
        d = derivation(act)
        rows = []
        for l, (zl, a, fp, w, g) in enumerate(zip(
                params["z"], values["activations"], values["local_derivatives"],
                params["weights"], values["factors"]), 1):
            work = working(act, float(zl), float(a))
            rows.append({"l": l, "z": z_tex(zl), "a": latex.num(a), "fp": latex.num(fp),
                         "a_rel": latex.relation(a), "fp_rel": latex.relation(fp),
                         "work": work, "w": latex.num(w), "g": latex.num(g),
                         "g_term": latex.term(g)})
        total = values["gradient_product"]
        return {"activation": act, "d": d, "rows": rows, "n": len(rows),
                "logs": any(log_base(float(v)) not in (None, 1) for v in params["z"]),
                "product": latex.num(total), "product_rel": latex.relation(total),
                "factors": latex.Tex(r" \cdot ".join(r["g_term"] for r in rows)),
                "vanishing": abs(total) < 1, "dead": any(fp == 0 for fp in
                                                          values["local_derivatives"]),
                "answers": {"local_derivatives": latex.row(values["local_derivatives"]),
                            "gradient_product": latex.num(total)},
                "formula": values.get("derivative_formula")}
