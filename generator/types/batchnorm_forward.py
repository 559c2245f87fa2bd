"""batchnorm_forward: batch normalisation of a mini-batch in training mode.

``x`` holds N values (one feature) or N x D values (N examples, D features, each
feature normalised over the batch); ``gamma`` and ``beta`` are numbers, or one per
feature for N x D. The variance is the population variance (divide by N) and the
normalised values are (x - mean) / sqrt(variance + eps).

Random batches are exact by hand (:mod:`deepdrill.generator.batches`): a whole or
half mean and standard deviation, so every step can be done on paper.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.exercise import (Exercise, int_option, jsonable, numbers, register,
                                          require)
from deepdrill.generator.batches import shifted_shape
from deepdrill.generator.randomness import choice, decimals, draw_until
from deepdrill.generator.steps import Slip, Step
from deepdrill.model.fields import real

SIZES = (4, 5, 6)  # N of a random batch; N = 3 only through the option n
MIN_N, MAX_N = 3, 6
MAX_FEATURES = 4
GAMMAS = (0.5, 1, 1.5, 2, 3)
NEGATIVE_GAMMAS = (-0.5, -1, -2)
NEGATIVE_SHARE = 0.15
INTEGER_BETA_SHARE = 0.6  # the rest of the betas have one decimal
BETA_LOW, BETA_HIGH = -2, 3
MAX_DRAWS = 100
MAX_VALUE = 1e6  # no hand exercise needs larger numbers; squaring 1e300 overflows
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


def draw_feature(rng: np.random.Generator, n: int) -> np.ndarray:
    """n values for one feature: a shape shuffled and shifted, sometimes halved; drawn
    again until no constant answer gets far (see :func:`no_free_points`)."""
    return draw_until(rng, lambda r: shifted_shape(r, n), no_free_points, tries=MAX_DRAWS,
                      refusal=f"no hand-friendly batch of {n} values found")


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
        x = numbers(p["x"], "x")
        width = x.shape[1] if x.ndim == 2 else None
        if "gamma" not in p:
            g = [draw_gamma(rng) for _ in range(width or 1)]
            p["gamma"] = g if width else g[0]
        if "beta" not in p:
            gammas = np.ravel(numbers(p["gamma"], "gamma"))
            if gammas.size != (width or 1):  # one gamma for every feature, or check() says so
                gammas = np.resize(gammas, width or 1)
            b = [draw_beta(rng, g, xh) for g, xh in zip(gammas, _normalized_columns(x, p["eps"]))]
            p["beta"] = b if width else b[0]
        return jsonable(p)

    def check(self, params):
        p = {"eps": 0, **params}
        require(p, "x", "gamma", "beta")
        x = numbers(p["x"], "x")
        if x.ndim not in (1, 2) or x.shape[0] < 2 or x.size == 0:
            raise ParamError("x must be a list of at least 2 numbers (one feature) or an "
                             "N x D list of rows (N >= 2 examples, D features)")
        width = x.shape[1] if x.ndim == 2 else None
        for name in ("gamma", "beta"):
            v = numbers(p[name], name)
            if width is None and v.ndim != 0:
                raise ParamError(f"{name} must be a single number when x is one feature (1-D)")
            if v.ndim > 1 or (v.ndim == 1 and v.size != width):
                raise ParamError(f"{name} must be a number or a list of one value per "
                                 f"feature ({width})")
        eps = numbers(p["eps"], "eps")
        if eps.ndim != 0 or eps < 0:
            raise ParamError("eps must be a single number, at least 0")
        for name in ("x", "gamma", "beta", "eps"):
            if np.abs(numbers(p[name], name)).max() > MAX_VALUE:
                raise ParamError(f"{name} must be numbers of a sheet's size, at most "
                                 f"{MAX_VALUE:g} in size")
        flat = np.var(x, axis=0) + float(eps) == 0
        if np.any(flat):
            which = "" if width is None else f" (feature {int(np.argmax(flat)) + 1})"
            raise ParamError(f"x has zero variance{which} and eps = 0: nothing to normalise; "
                             f"use values that differ or set eps > 0")
        return jsonable(p)

    def graph(self, params):
        return GRAPH

    def fields(self, params, values):
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
        "n": len(x), "sum": latex.signed_sum(x), "total": latex.num(v["total"]),
        "mean_rel": latex.relation(mean), "mean": latex.num(mean),
        "squares": latex.signed_sum(sq), "square_total": latex.num(sq.sum()),
        "var_rel": latex.relation(var), "var": latex.num(var),
        "eps": latex.num(eps) if eps else None,
        "std_rel": latex.relation(sd), "std": latex.num(sd),
        "gamma": latex.num(gamma), "beta": latex.num(beta),
        "rows": [{"x": latex.num(xi), "d": latex.num(d), "sq": latex.num(s2),
                  "xhat_rel": latex.relation(h), "xhat": latex.num(h),
                  "y_terms": latex.Tex(rf"{latex.num(gamma)}\cdot {latex.term(h)} "
                                       f"{latex.plus(beta)}"),
                  "y_rel": latex.relation(y), "y": latex.num(y)}
                 for xi, d, s2, h, y in zip(x, dev, sq, v["normalized"], v["output"])],
    }


def _vector_or_number(v: Any) -> latex.Tex:
    return latex.row(np.ravel(v)) if np.ndim(v) else latex.num(v)


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
