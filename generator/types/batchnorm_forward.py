"""batchnorm_forward: batch normalisation of a mini-batch in training mode.

``x`` holds N values (one feature) or N x D (N examples, D features, normalised per
feature). The variance is the population variance (divide by N); the standard
deviation is sqrt(variance + eps). Random batches are built from integer deviations
whose mean square is a perfect square, so the standard deviation is exact and the
normalised values are simple fractions.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

import numpy as np

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.exercise import Exercise, jsonable, register
from deepdrill.generator.fields import real
from deepdrill.generator.randomness import choice
from deepdrill.generator.variant import Mistake

MAX_DEVIATION = 6
GAMMAS = [0.5, 1, 1.5, 2, 3, -1]
SIZES = [5, 6]  # N = 4 has only two suitable deviation sets; 5 and 6 have 4 and 35
MAX_N = 6
MIN_DISTINCT = 3


def batchnorm(x: Any, gamma: Any, beta: Any, eps: float = 0.0) -> dict[str, np.ndarray]:
    """mean, variance, normalized and output of training-mode batch norm over axis 0."""
    x = np.asarray(x, dtype=float)
    mean = x.mean(axis=0)
    var = ((x - mean) ** 2).mean(axis=0)
    xhat = (x - mean) / np.sqrt(var + eps)
    return {"mean": mean, "variance": var, "normalized": xhat,
            "output": np.asarray(gamma, dtype=float) * xhat + np.asarray(beta, dtype=float)}


@functools.cache
def deviation_sets(n: int) -> list[tuple[int, ...]]:
    """Multisets of n integer deviations summing to 0 whose standard deviation is a whole or
    half number, with at least three distinct values (so the normalised values are not all
    +-1)."""
    out = []
    for d in itertools.combinations_with_replacement(range(-MAX_DEVIATION, MAX_DEVIATION + 1), n):
        if sum(d) == 0 and len(set(d)) >= MIN_DISTINCT:
            four_var = 4 * sum(v * v for v in d) / n  # (2 sigma)^2
            if four_var.is_integer() and round(four_var ** 0.5) ** 2 == four_var:
                out.append(d)
    return out


def draw_feature(rng: np.random.Generator, n: int) -> np.ndarray:
    """n values with an integer mean and an exact standard deviation."""
    sets = deviation_sets(n)
    if not sets:
        raise ParamError(f"random batches have 4 to {MAX_N} values; n = {n} is not supported "
                         f"(pin x to use another size)")
    d = np.array(sets[int(rng.integers(len(sets)))], dtype=float)
    rng.shuffle(d)
    values = int(rng.integers(-2, 7)) + d
    return values / 2 if rng.random() < 0.25 else values


@register
class BatchnormForward(Exercise):
    id = "batchnorm_forward"
    title = "Batch normalisation: forward pass"
    summary = "mean, variance, normalised values and output of batch norm (training mode)"
    params = ("x", "gamma", "beta", "eps")
    options = {"n": None, "features": None}
    work_space = "6cm"

    def sample(self, rng, pinned, options):
        p = {"eps": 0, **pinned}
        d = options["features"]
        if "x" not in p:
            n = int(options["n"] or choice(rng, SIZES))
            if not 2 <= n <= MAX_N:
                raise ParamError(f"option n must be between 4 and {MAX_N}")
            cols = [draw_feature(rng, n) for _ in range(int(d or 1))]
            p["x"] = jsonable(np.stack(cols, axis=1) if d else cols[0])
        width = np.shape(p["x"])[1] if np.ndim(p["x"]) == 2 else None
        if "gamma" not in p:
            g = [choice(rng, GAMMAS) for _ in range(width or 1)]
            p["gamma"] = g if width else g[0]
        if "beta" not in p:
            b = [int(rng.integers(-2, 4)) for _ in range(width or 1)]
            p["beta"] = b if width else b[0]
        return jsonable(p)

    def check(self, params):
        p = {"eps": 0, **params}
        for name in ("x", "gamma", "beta"):
            if name not in p:
                raise ParamError(f"missing parameter {name!r}")
        x = np.asarray(p["x"], dtype=float)
        if x.ndim not in (1, 2) or x.shape[0] < 2:
            raise ParamError("x must hold at least 2 values (N), or be an N x D batch")
        width = x.shape[1] if x.ndim == 2 else 1
        for name in ("gamma", "beta"):
            if np.size(p[name]) not in (1, width) or np.ndim(p[name]) > 1:
                raise ParamError(f"{name} must be a number or one value per feature ({width})")
        if float(p["eps"]) < 0:
            raise ParamError("eps must be at least 0")
        var = x.var(axis=0)
        if np.any(var + float(p["eps"]) == 0):
            raise ParamError("a feature has zero variance and eps = 0: nothing to normalise")
        return jsonable(p)

    def solve(self, params):
        return jsonable(batchnorm(params["x"], params["gamma"], params["beta"], params["eps"]))

    def fields(self, params):
        shape = list(np.shape(params["x"]))
        stat = shape[1:]
        return [real("mean", "the batch mean" + (" per feature" if stat else ""), stat),
                real("variance", "the batch variance (divide by N)", stat),
                real("normalized", "the normalised values", shape),
                real("output", "the output after scale and shift", shape)]

    def mistakes(self, params):
        x = np.asarray(params["x"], dtype=float)
        g, b, eps = params["gamma"], params["beta"], float(params["eps"])
        n = x.shape[0]
        mean = x.mean(axis=0)
        sample_var = ((x - mean) ** 2).sum(axis=0) / (n - 1)
        right = batchnorm(x, g, b, eps)
        xs = (x - mean) / np.sqrt(sample_var + eps)
        by_var = (x - mean) / (right["variance"] + eps)
        affine_first = batchnorm(np.asarray(g, dtype=float) * x + np.asarray(b, dtype=float),
                                 1, 0, eps)["normalized"]
        return [
            Mistake("sample_variance", "you used the sample variance (divide by N - 1); batch "
                    "norm divides by N", jsonable({"variance": sample_var, "normalized": xs,
                                                   "output": np.asarray(g) * xs + b})),
            Mistake("divided_by_variance", "you divided by the variance instead of the standard "
                    "deviation", jsonable({"normalized": by_var,
                                           "output": np.asarray(g) * by_var + b})),
            Mistake("affine_before_normalising", "you applied gamma and beta before "
                    "normalising; they scale and shift the normalised values",
                    jsonable({"output": affine_first})),
        ]

    def problem(self, params):
        x = np.asarray(params["x"], dtype=float)
        return {"two_d": x.ndim == 2, "x": latex.matrix(x) if x.ndim == 2 else latex.row(x),
                "n": x.shape[0], "gamma": _values(params["gamma"]),
                "beta": _values(params["beta"]), "eps": latex.num(params["eps"])}

    def steps(self, params, answers):
        x = np.asarray(params["x"], dtype=float)
        cols = x.T if x.ndim == 2 else x[None]
        gammas = np.broadcast_to(np.asarray(params["gamma"], dtype=float), (len(cols),))
        betas = np.broadcast_to(np.asarray(params["beta"], dtype=float), (len(cols),))
        eps = float(params["eps"])
        return {"features": [_feature_steps(c, g, b, eps) for c, g, b in zip(cols, gammas, betas)],
                "answers": {k: _values(v) for k, v in answers.items()}}


def _values(v: Any) -> latex.Tex:
    return latex.matrix(v) if np.ndim(v) == 2 else latex.row(v) if np.ndim(v) == 1 else latex.num(v)


def _feature_steps(x: np.ndarray, gamma: float, beta: float, eps: float) -> dict[str, Any]:
    r = batchnorm(x, gamma, beta, eps)
    mu, var = float(r["mean"]), float(r["variance"])
    dev = x - mu
    return {
        "sum": latex.Tex(" + ".join(latex.term(v) for v in x)), "n": len(x),
        "mean": latex.num(mu),
        "devs": latex.Tex(", ".join(latex.num(d) for d in dev)),
        "squares": latex.Tex(" + ".join(latex.num(d * d) for d in dev)),
        "var": latex.num(var), "std": latex.num(np.sqrt(var + eps)),
        "eps": latex.num(eps) if eps else None,
        "rows": [{"x": latex.num(xi), "d": latex.num(d), "xhat": latex.num(h),
                  "y": latex.num(y)} for xi, d, h, y in zip(x, dev, r["normalized"], r["output"])],
        "gamma": latex.num(gamma), "beta": latex.term(beta),
    }
