"""batchnorm_forward: batch normalisation of a mini-batch in training mode.

``x`` holds N values (one feature) or N x D values (N examples, D features, each
feature normalised over the batch); ``gamma`` and ``beta`` are numbers, or one per
feature for N x D. The variance is the population variance (divide by N) and the
normalised values are (x - mean) / sqrt(variance + eps).

Random batches come from precomputed *shapes*: small integer batches whose mean is
whole (half for N = 4, which has too few otherwise) and whose standard deviation is a
whole or half number (never 1), so every step can be done exactly by hand. A shape is
shifted, shuffled and sometimes halved. N = 3 cannot be made exact: with deviations
(a, b, -a - b) a rational sigma needs a^2 + ab + b^2 = 6 t^2, impossible but for 0
(a^2 + ab + b^2 holds the factor 2 an even number of times, 6 t^2 an odd number). So
N = 3 is drawn only on request, with a whole variance and sigma = sqrt(variance) to
four figures.
"""

from __future__ import annotations

import functools
import itertools
import math
from fractions import Fraction
from typing import Any

import numpy as np

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.exercise import Exercise, int_option, jsonable, register, require
from deepdrill.generator.randomness import choice, decimals, draw_until
from deepdrill.generator.steps import Slip, Step
from deepdrill.model.fields import real

SIZES = (4, 5, 6)  # N of a random batch; N = 3 only through the option n
MIN_N, MAX_N = 3, 6
MAX_FEATURES = 4
MAX_SPAN = 12  # largest minus smallest value of a drawn feature (squares stay small)
MIN_DISTINCT = 3  # at least three different values, so x_hat is not just +-1
MIN_SHAPES = 8  # fewer shapes with a whole mean than this: half means are allowed too
MEAN_LOW, MEAN_HIGH = -1, 5  # whole part of a drawn feature's mean
HALVED_SHARE = 0.25  # share of features drawn as halves (values like 1.5)
GAMMAS = (0.5, 1, 1.5, 2, 3)
NEGATIVE_GAMMAS = (-0.5, -1, -2)
NEGATIVE_SHARE = 0.15
INTEGER_BETA_SHARE = 0.6  # the rest of the betas have one decimal
BETA_LOW, BETA_HIGH = -2, 3
MAX_DRAWS = 100
CANCELLATION = 1e-12  # relative size below which a difference is rounding residue


# -- the steps (pure: the grader feeds them a student's own values) -------------------

def total(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=float).sum(axis=0)


def mean(x: Any, total: Any) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return _snap(np.asarray(total, dtype=float) / len(x), np.abs(x).mean(axis=0))


def deviations(x: Any, mean: Any) -> np.ndarray:
    x, mean = np.asarray(x, dtype=float), np.asarray(mean, dtype=float)
    return _snap(x - mean, np.abs(x) + np.abs(mean))


def squares(deviations: np.ndarray) -> np.ndarray:
    return deviations ** 2


def variance(squares: np.ndarray) -> np.ndarray:
    """The population variance: divide by N."""
    return squares.mean(axis=0)


def std(variance: Any, eps: Any) -> np.ndarray:
    return np.sqrt(np.asarray(variance, dtype=float) + float(eps))


def normalize(deviations: np.ndarray, std: np.ndarray) -> np.ndarray:
    return deviations / std


def affine(normalized: Any, gamma: Any, beta: Any) -> np.ndarray:
    scaled = np.asarray(gamma, dtype=float) * np.asarray(normalized, dtype=float)
    beta = np.asarray(beta, dtype=float)
    return _snap(scaled + beta, np.abs(scaled) + np.abs(beta))


GRAPH = (
    Step("total", total, ("x",)),
    Step("mean", mean, ("x", "total")),
    Step("deviations", deviations, ("x", "mean")),
    Step("squares", squares, ("deviations",)),
    Step("variance", variance, ("squares",)),
    Step("std", std, ("variance", "eps")),
    Step("normalized", normalize, ("deviations", "std")),
    Step("output", affine, ("normalized", "gamma", "beta")),
)


def sample_variance(squares: np.ndarray) -> np.ndarray:
    return squares.sum(axis=0) / (len(squares) - 1)


def variance_as_divisor(variance: Any, eps: Any) -> np.ndarray:
    return np.asarray(variance, dtype=float) + float(eps)


def affine_first(params: dict[str, Any]) -> dict[str, Any]:
    """Scale and shift x first, then normalise with gamma = 1 and beta = 0."""
    x = np.asarray(params["x"], dtype=float)
    return {"x": jsonable(np.asarray(params["gamma"], dtype=float) * x +
                          np.asarray(params["beta"], dtype=float)), "gamma": 1, "beta": 0}


SLIPS = (
    Slip("sample_variance", "you used the sample variance (dividing by N - 1); batch norm "
         "divides by N", swaps={"variance": sample_variance}),
    Slip("divided_by_variance", "you divided by the variance instead of the standard "
         "deviation sqrt(variance + eps)", swaps={"std": variance_as_divisor}),
    Slip("affine_before_normalising", "you applied gamma and beta before normalising; batch "
         "norm normalises x first, then scales by gamma and shifts by beta",
         change=affine_first),
)


def batchnorm(x: Any, gamma: Any, beta: Any, eps: float = 0.0) -> dict[str, np.ndarray]:
    """Training-mode batch norm over axis 0: every step's value.

    >>> r = batchnorm([1, 3], 2, 1)
    >>> {k: r[k].tolist() for k in ("mean", "variance", "normalized", "output")}
    {'mean': 2.0, 'variance': 1.0, 'normalized': [-1.0, 1.0], 'output': [-1.0, 3.0]}
    """
    from deepdrill.generator.steps import run

    return run(GRAPH, {"x": x, "gamma": gamma, "beta": beta, "eps": eps})


def _snap(values: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Rounding residue of a cancellation (0.3 - 0.1 - 0.2 = 6e-17) set to the exact 0."""
    return np.where(np.abs(values) <= CANCELLATION * scale, 0.0, values)


@functools.cache
def batch_shapes(n: int) -> tuple[tuple[int, ...], ...]:
    """Sorted batches of n integers from 0 to MAX_SPAN, starting at 0, that are exact by hand.

    N >= 4: a whole mean (a half one only where whole means give fewer than MIN_SHAPES
    shapes: N = 4 has just two) and a standard deviation that is a whole or half number
    other than 1 (so dividing by the variance is a visibly different mistake). N = 3: a
    whole mean and a whole variance, the best there is (see the module docstring).
    """
    whole = _exact_shapes(n, half_means=False)
    return whole if len(whole) >= MIN_SHAPES or n == 3 else _exact_shapes(n, half_means=True)


def _exact_shapes(n: int, half_means: bool) -> tuple[tuple[int, ...], ...]:
    out = []
    for rest in itertools.combinations_with_replacement(range(MAX_SPAN + 1), n - 1):
        x = (0, *rest)
        mean = Fraction(sum(x), n)
        if len(set(x)) < MIN_DISTINCT or ((2 if half_means else 1) * mean).denominator != 1:
            continue
        var = sum((v - mean) ** 2 for v in x) / n
        if n == 3:
            exact = var.denominator == 1
        else:
            four_var = 4 * var  # (2 sigma)^2 must be a perfect square
            root = math.isqrt(four_var.numerator)
            exact = four_var.denominator == 1 and root * root == four_var and root != 2
        if exact:
            out.append(x)
    return tuple(out)


def draw_feature(rng: np.random.Generator, n: int) -> np.ndarray:
    """n values for one feature: a shape shuffled and shifted, sometimes halved; drawn
    again until no constant answer gets far (see :func:`no_free_points`)."""
    return draw_until(rng, lambda r: _shifted_shape(r, n), no_free_points, tries=MAX_DRAWS,
                      refusal=f"no hand-friendly batch of {n} values found")


def _shifted_shape(rng: np.random.Generator, n: int) -> np.ndarray:
    x = np.array(choice(rng, batch_shapes(n)), dtype=float)
    rng.shuffle(x)
    x += int(rng.integers(MEAN_LOW, MEAN_HIGH, endpoint=True)) - math.floor(x.mean())
    sd = x.std()
    # Halve only where the mean stays a whole or half number and sigma / 2 is not 1.
    halvable = n > 3 and x.mean().is_integer() and sd.is_integer() and sd != 2
    if halvable and rng.random() < HALVED_SHARE:
        x /= 2
    return x


def no_free_points(x: np.ndarray) -> bool:
    """A mean that is not 0 or 1, and at most one value whose normalised value is 0 or
    +-1: then answering all zeros or all ones earns next to nothing."""
    mean = x.mean()
    dev = x - mean
    return mean not in (0, 1) and np.sum(np.isclose(dev, 0)) <= 1 and \
        np.sum(np.isclose(np.abs(dev), x.std())) <= 1


def draw_gamma(rng: np.random.Generator) -> float:
    return choice(rng, NEGATIVE_GAMMAS if rng.random() < NEGATIVE_SHARE else GAMMAS)


def draw_beta(rng: np.random.Generator, gamma: float, xhat: np.ndarray) -> float:
    """A small integer or one-decimal shift such that gamma * c + beta is not c for
    c = 0 or 1: otherwise answering all zeros (or all ones) would earn the outputs as
    carried forward from normalised values answered the same. (beta = 0 would also hide
    normalising gamma * x + beta when |gamma| = 1.) At most one output is 0 or 1."""
    def one(r: np.random.Generator) -> float:
        return float(r.integers(BETA_LOW, BETA_HIGH, endpoint=True)) \
            if r.random() < INTEGER_BETA_SHARE else float(decimals(r, (), BETA_LOW, BETA_HIGH))
    def good(b: float) -> bool:
        outputs = gamma * xhat + b
        return b != 0 and gamma + b != 1 and \
            np.sum(np.isclose(outputs, 0) | np.isclose(outputs, 1)) <= 1
    return draw_until(rng, one, good, tries=MAX_DRAWS,
                      refusal="no shift beta found")


@register
class BatchnormForward(Exercise):
    id = "batchnorm_forward"
    title = "Batch normalisation: forward pass"
    summary = "mean, variance, normalised values and output of batch norm (training mode)"
    params = ("x", "gamma", "beta", "eps")
    options = {"n": None, "features": None}  # None: N in 4..6, one feature (x is 1-D)
    work_space = "6cm"

    def sample(self, rng, pinned, options):
        p = {"eps": 0, **pinned}
        if "x" not in p:
            n = int_option("n", options["n"], MIN_N, MAX_N) if options["n"] is not None \
                else choice(rng, SIZES)
            d = _feature_count(options, pinned)
            cols = [draw_feature(rng, n) for _ in range(d or 1)]
            p["x"] = np.stack(cols, axis=1) if d else cols[0]
        x = _numbers(p["x"], "x")
        width = x.shape[1] if x.ndim == 2 else None
        if "gamma" not in p:
            g = [draw_gamma(rng) for _ in range(width or 1)]
            p["gamma"] = g if width else g[0]
        if "beta" not in p:
            gammas = np.ravel(_numbers(p["gamma"], "gamma"))
            if gammas.size != (width or 1):  # one gamma for every feature, or check() says so
                gammas = np.resize(gammas, width or 1)
            b = [draw_beta(rng, g, xh) for g, xh in zip(gammas, _normalized_columns(x, p["eps"]))]
            p["beta"] = b if width else b[0]
        return jsonable(p)

    def check(self, params):
        p = {"eps": 0, **params}
        require(p, "x", "gamma", "beta")
        x = _numbers(p["x"], "x")
        if x.ndim not in (1, 2) or x.shape[0] < 2 or x.size == 0:
            raise ParamError("x must be a list of at least 2 numbers (one feature) or an "
                             "N x D list of rows (N >= 2 examples, D features)")
        width = x.shape[1] if x.ndim == 2 else None
        for name in ("gamma", "beta"):
            v = _numbers(p[name], name)
            if width is None and v.ndim != 0:
                raise ParamError(f"{name} must be a single number when x is one feature (1-D)")
            if v.ndim > 1 or (v.ndim == 1 and v.size != width):
                raise ParamError(f"{name} must be a number or a list of one value per "
                                 f"feature ({width})")
        eps = _numbers(p["eps"], "eps")
        if eps.ndim != 0 or eps < 0:
            raise ParamError("eps must be a single number, at least 0")
        flat = np.var(x, axis=0) + float(eps) == 0
        if np.any(flat):
            which = "" if width is None else f" (feature {int(np.argmax(flat)) + 1})"
            raise ParamError(f"x has zero variance{which} and eps = 0: nothing to normalise; "
                             f"use values that differ or set eps > 0")
        return jsonable(p)

    def graph(self, params):
        return GRAPH

    def fields(self, params):
        shape = list(np.shape(params["x"]))
        per = " per feature" if len(shape) == 2 else ""
        return [real("mean", f"the batch mean{per}", shape[1:]),
                real("variance", f"the batch variance{per} (divide by N)", shape[1:]),
                real("normalized", "the normalised values", shape),
                real("output", "the outputs after scale and shift", shape)]

    def slips(self, params):
        return list(SLIPS)

    def problem(self, params):
        x = np.asarray(params["x"], dtype=float)
        return {"two_d": x.ndim == 2, "n": x.shape[0],
                "features": x.shape[1] if x.ndim == 2 else 1,
                "per_feature": np.ndim(params["gamma"]) == 1 or np.ndim(params["beta"]) == 1,
                "x": latex.matrix(x) if x.ndim == 2 else latex.row(x),
                "gamma": _vector_or_number(params["gamma"]),
                "beta": _vector_or_number(params["beta"]), "eps": latex.num(params["eps"])}

    def worked(self, params, values):
        x = np.asarray(params["x"], dtype=float)
        two_d = x.ndim == 2
        width = x.shape[1] if two_d else 1
        gammas = np.broadcast_to(np.asarray(params["gamma"], dtype=float), (width,))
        betas = np.broadcast_to(np.asarray(params["beta"], dtype=float), (width,))

        def column(name: str, j: int) -> np.ndarray:
            v = np.asarray(values[name], dtype=float)
            return v[..., j] if two_d else v

        features = [feature_steps({k: column(k, j) for k in STEP_COLUMNS}, gammas[j], betas[j],
                                  float(params["eps"])) for j in range(width)]
        answers = {k: (_vector_or_number(values[k]) if k in ("mean", "variance") else
                       latex.matrix(values[k]) if two_d else latex.row(values[k]))
                   for k in ("mean", "variance", "normalized", "output")}
        return {"features": features, "two_d": two_d, "answers": answers}


STEP_COLUMNS = ("x", "total", "mean", "deviations", "squares", "variance", "std", "normalized",
                "output")  # the values one feature's worked steps print


def feature_steps(v: dict[str, Any], gamma: float, beta: float, eps: float) -> dict[str, Any]:
    """The worked steps of one feature, from its step values: mean, squared deviations,
    sigma, then each value."""
    x, dev, sq = v["x"], v["deviations"], v["squares"]
    mean, var, sd = float(v["mean"]), float(v["variance"]), float(v["std"])
    return {
        "n": len(x), "sum": _signed_sum(x), "total": latex.num(v["total"]),
        "mean_rel": _rel(mean), "mean": latex.num(mean),
        "squares": _signed_sum(sq), "square_total": latex.num(sq.sum()),
        "var_rel": _rel(var), "var": latex.num(var),
        "eps": latex.num(eps) if eps else None,
        "std_rel": _rel(sd), "std": latex.num(sd),
        "gamma": latex.num(gamma), "beta": latex.num(beta),
        "rows": [{"x": latex.num(xi), "d": latex.num(d), "sq": latex.num(s2),
                  "xhat_rel": _rel(h), "xhat": latex.num(h),
                  "y_terms": latex.Tex(rf"{latex.num(gamma)}\cdot {latex.term(h)} "
                                       f"{_plus(beta)}"),
                  "y_rel": _rel(y), "y": latex.num(y)}
                 for xi, d, s2, h, y in zip(x, dev, sq, v["normalized"], v["output"])],
    }


def _signed_sum(values: np.ndarray) -> latex.Tex:
    """1 + 3 - 2 + 0.5: a sum written as a student writes it."""
    text = latex.num(values[0])
    for v in values[1:]:
        text += f" {_plus(v)}"
    return latex.Tex(text)


def _plus(v: float) -> str:
    return f"- {latex.num(-v)}" if v < 0 else f"+ {latex.num(v)}"


def _rel(value: float) -> latex.Tex:
    """'=' when the printed number is the value itself, else '\\approx'."""
    try:
        exact = math.isclose(float(latex.num(value)), value, rel_tol=1e-12, abs_tol=1e-12)
    except ValueError:  # printed as a power of ten
        exact = False
    return latex.Tex("=" if exact else r"\approx")


def _vector_or_number(v: Any) -> latex.Tex:
    return latex.row(np.ravel(v)) if np.ndim(v) else latex.num(v)


def _numbers(value: Any, name: str) -> np.ndarray:
    """A parameter as a float array of finite numbers, or a ParamError saying so."""
    try:
        arr = np.asarray(value)
        ok = arr.dtype.kind in "iuf"
        arr = arr.astype(float) if ok else arr
    except (TypeError, ValueError):  # ragged rows
        ok = False
    if not ok or not np.all(np.isfinite(arr)):
        raise ParamError(f"{name} must be made of finite numbers (rows of equal length), "
                         f"not {str(value)[:60]}")
    return arr


def _normalized_columns(x: np.ndarray, eps: Any) -> np.ndarray:
    """Each feature's normalised values, for drawing beta (zeros where the parameters are
    not valid: check() then says what is wrong)."""
    cols = np.reshape(x, (len(x), -1)).T
    eps = eps if isinstance(eps, (int, float)) and not isinstance(eps, bool) and eps >= 0 else -1
    var = cols.var(axis=1, keepdims=True) + eps
    if eps < 0 or np.any(var <= 0):
        return np.zeros_like(cols)
    return (cols - cols.mean(axis=1, keepdims=True)) / np.sqrt(var)


def _feature_count(options: dict[str, Any], pinned: dict[str, Any]) -> int | None:
    """D from the option ``features``, else from a pinned per-feature gamma or beta."""
    if options["features"] is not None:
        return int_option("features", options["features"], 1, MAX_FEATURES)
    for name in ("gamma", "beta"):
        if np.ndim(pinned.get(name, 0)) == 1:
            return len(pinned[name])
    return None
