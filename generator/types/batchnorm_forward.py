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
from deepdrill.generator.fields import real
from deepdrill.generator.randomness import choice, decimals
from deepdrill.generator.variant import Mistake

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


def batchnorm(x: Any, gamma: Any, beta: Any, eps: float = 0.0) -> dict[str, np.ndarray]:
    """Training-mode batch norm over axis 0: mean, variance (divide by N), normalized, output.

    >>> {k: v.tolist() for k, v in batchnorm([1, 3], 2, 1).items()}
    {'mean': 2.0, 'variance': 1.0, 'normalized': [-1.0, 1.0], 'output': [-1.0, 3.0]}
    """
    x = np.asarray(x, dtype=float)
    gamma, beta = np.asarray(gamma, dtype=float), np.asarray(beta, dtype=float)
    mean = _snap(x.mean(axis=0), np.abs(x).mean(axis=0))
    dev = _snap(x - mean, np.abs(x) + np.abs(mean))
    var = (dev ** 2).mean(axis=0)
    xhat = dev / np.sqrt(var + eps)
    scaled = gamma * xhat
    return {"mean": mean, "variance": var, "normalized": xhat,
            "output": _snap(scaled + beta, np.abs(scaled) + np.abs(beta))}


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
    """n values for one feature: a shape shuffled and shifted, sometimes halved."""
    x = np.array(choice(rng, batch_shapes(n)), dtype=float)
    rng.shuffle(x)
    x += int(rng.integers(MEAN_LOW, MEAN_HIGH, endpoint=True)) - math.floor(x.mean())
    std = x.std()
    # Halve only where the mean stays a whole or half number and sigma / 2 is not 1.
    halvable = n > 3 and x.mean().is_integer() and std.is_integer() and std != 2
    if halvable and rng.random() < HALVED_SHARE:
        x /= 2
    return x


def draw_gamma(rng: np.random.Generator) -> float:
    return choice(rng, NEGATIVE_GAMMAS if rng.random() < NEGATIVE_SHARE else GAMMAS)


def draw_beta(rng: np.random.Generator, gamma: float) -> float:
    """A small integer or one-decimal shift; not 0 when |gamma| = 1, where normalising
    gamma * x + beta would give the right output and hide that mistake."""
    for _ in range(MAX_DRAWS):
        b = float(rng.integers(BETA_LOW, BETA_HIGH, endpoint=True)) \
            if rng.random() < INTEGER_BETA_SHARE else float(decimals(rng, (), BETA_LOW, BETA_HIGH))
        if b != 0 or abs(gamma) != 1:
            return b
    return 1.0


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
            if gammas.size == 1:
                gammas = np.repeat(gammas, width or 1)
            if gammas.size != (width or 1):  # check() reports the mismatch
                gammas = np.zeros(width or 1)
            b = [draw_beta(rng, g) for g in gammas]
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

    def solve(self, params):
        return jsonable(batchnorm(params["x"], params["gamma"], params["beta"], params["eps"]))

    def fields(self, params):
        shape = list(np.shape(params["x"]))
        per = " per feature" if len(shape) == 2 else ""
        return [real("mean", f"the batch mean{per}", shape[1:]),
                real("variance", f"the batch variance{per} (divide by N)", shape[1:]),
                real("normalized", "the normalised values", shape),
                real("output", "the outputs after scale and shift", shape)]

    def mistakes(self, params):
        x = np.asarray(params["x"], dtype=float)
        g, b = np.asarray(params["gamma"], dtype=float), np.asarray(params["beta"], dtype=float)
        eps = float(params["eps"])
        right = batchnorm(x, g, b, eps)
        dev = x - right["mean"]
        sample_var = (dev ** 2).sum(axis=0) / (len(x) - 1)
        by_sample = dev / np.sqrt(sample_var + eps)
        by_var = dev / (right["variance"] + eps)
        # Normalising gamma * x + beta gives sign(gamma) * x_hat (for eps = 0): the right
        # normalised values when gamma > 0, but a different output unless |gamma| = 1, beta = 0.
        first = batchnorm(g * x + b, 1, 0, eps)
        out = [
            Mistake("sample_variance", "you used the sample variance (dividing by N - 1); "
                    "batch norm divides by N",
                    {"variance": sample_var, "normalized": by_sample, "output": g * by_sample + b}),
            Mistake("divided_by_variance", "you divided by the variance instead of the "
                    "standard deviation sqrt(variance + eps)",
                    {"normalized": by_var, "output": g * by_var + b}),
            Mistake("affine_before_normalising", "you applied gamma and beta before "
                    "normalising; batch norm normalises x first, then scales by gamma and "
                    "shifts by beta",
                    {"mean": first["mean"], "variance": first["variance"],
                     "normalized": first["normalized"], "output": first["normalized"]}),
        ]
        return [Mistake(m.name, m.feedback, jsonable(m.answers)) for m in out]

    def problem(self, params):
        x = np.asarray(params["x"], dtype=float)
        return {"two_d": x.ndim == 2, "n": x.shape[0],
                "features": x.shape[1] if x.ndim == 2 else 1,
                "per_feature": np.ndim(params["gamma"]) == 1 or np.ndim(params["beta"]) == 1,
                "x": latex.matrix(x) if x.ndim == 2 else latex.row(x),
                "gamma": _vector_or_number(params["gamma"]),
                "beta": _vector_or_number(params["beta"]), "eps": latex.num(params["eps"])}

    def steps(self, params, answers):
        x = np.asarray(params["x"], dtype=float)
        cols = x.T if x.ndim == 2 else x[None]
        gammas = np.broadcast_to(np.asarray(params["gamma"], dtype=float), (len(cols),))
        betas = np.broadcast_to(np.asarray(params["beta"], dtype=float), (len(cols),))
        eps = float(params["eps"])
        return {"features": [feature_steps(c, g, b, eps) for c, g, b in zip(cols, gammas, betas)],
                "two_d": x.ndim == 2,
                "answers": {k: _vector_or_number(v) if k in ("mean", "variance") else
                            (latex.matrix(v) if x.ndim == 2 else latex.row(v))
                            for k, v in answers.items()}}


def feature_steps(x: np.ndarray, gamma: float, beta: float, eps: float) -> dict[str, Any]:
    """The worked steps for one feature: mean, squared deviations, sigma, then each value."""
    r = batchnorm(x, gamma, beta, eps)
    mean, var = float(r["mean"]), float(r["variance"])
    dev = _snap(x - mean, np.abs(x) + abs(mean))
    std = math.sqrt(var + eps)
    return {
        "n": len(x), "sum": _signed_sum(x), "total": latex.num(x.sum()),
        "mean_rel": _rel(mean), "mean": latex.num(mean),
        "squares": _signed_sum(dev ** 2), "square_total": latex.num((dev ** 2).sum()),
        "var_rel": _rel(var), "var": latex.num(var),
        "eps": latex.num(eps) if eps else None,
        "std_rel": _rel(std), "std": latex.num(std),
        "gamma": latex.num(gamma), "beta": latex.num(beta),
        "rows": [{"x": latex.num(xi), "d": latex.num(d), "sq": latex.num(d * d),
                  "xhat_rel": _rel(h), "xhat": latex.num(h),
                  "y_terms": latex.Tex(rf"{latex.num(gamma)}\cdot {latex.term(h)} "
                                       f"{_plus(beta)}"),
                  "y_rel": _rel(y), "y": latex.num(y)}
                 for xi, d, h, y in zip(x, dev, r["normalized"], r["output"])],
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


def _feature_count(options: dict[str, Any], pinned: dict[str, Any]) -> int | None:
    """D from the option ``features``, else from a pinned per-feature gamma or beta."""
    if options["features"] is not None:
        return int_option("features", options["features"], 1, MAX_FEATURES)
    for name in ("gamma", "beta"):
        if np.ndim(pinned.get(name, 0)) == 1:
            return len(pinned[name])
    return None
