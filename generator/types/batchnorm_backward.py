"""batchnorm_backward: the backward pass of batch normalisation in training mode.

The parameters are ``batchnorm_forward``'s (``x`` of N values or N x D, ``gamma``,
``beta``, ``eps``) plus ``grad_output``, dL/dy shaped like ``x``. The answers are
dL/dgamma and dL/dbeta (one per feature) and dL/dx. ``beta`` does not enter them.

The steps: the forward pass up to the normalised values (batchnorm_forward's own
steps, given in the worked solution), then

* ``grad_normalized`` = gamma * g (dL/dx_hat, with g = dL/dy),
* ``grad_beta`` = sum_i g_i and ``grad_gamma`` = sum_i g_i x_hat_i,
* the mean path ``mean_path`` = gamma * grad_beta / N,
* the variance path ``variance_path`` = x_hat_i * gamma * grad_gamma / N,
* ``grad_input`` = (grad_normalized - mean_path - variance_path) / sigma.

So ``grad_input`` is recomputed from a student's own ``grad_beta`` and ``grad_gamma``
(carried-forward credit). The formula is derived with sympy once per batch size N
(:func:`derivation`): the direct path, the path through the mean and the path through
the variance, checked against differentiating the loss written out in x_1 .. x_N.

Draws are batchnorm_forward's exact batches with small whole ``grad_output`` values,
kept when no grad_input entry is near 0, no constant answer earns more than a tenth of
the points, rounding every step to three figures loses nothing and every mistake shows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.backward import MAX_CONSTANT_SHARE, clear_of_zero, free_share
from deepdrill.generator.backward import batchnorm_derivation as derivation
from deepdrill.generator.backward import (signed_products, slips_show, slips_tell_apart, snap,
                                          survives_rounding)
from deepdrill.generator.exercise import Exercise, int_option, jsonable, numbers, register
from deepdrill.generator.randomness import choice, draw_until, ints
from deepdrill.generator.steps import Slip, Step, run
from deepdrill.model.fields import real

from .batchnorm_forward import GRAPH as FORWARD_GRAPH
from .batchnorm_forward import MAX_FEATURES, MAX_N, MAX_VALUE, MIN_N, SIZES, BatchnormForward

FORWARD = BatchnormForward()  # its draws and checks (the registry keeps its own instance)
GRAD_LOW, GRAD_HIGH = -3, 3  # whole upstream gradients, without 0
MAX_DRAWS = 200  # per feature
MAX_STACKS = 20  # features drawn fair one by one, then checked together
REFUSAL = ("no batch and grad_output found whose gradients a student can work out by hand "
           "(no dL/dx entry near 0, every listed mistake visible); pin fewer parameters or "
           "change n, or pin x, gamma and grad_output to take the problem as given")
MAX_BATCH = 8  # examples of a pinned x (the solution writes sums over the batch out)
CLEAR_SHARE = 0.05  # every grad_input entry at least this share of its feature's largest


# -- the steps (pure: the grader feeds them a student's own values) -------------------

def batch_size(x: Any) -> int:
    return len(x)


def grad_normalized(gamma: Any, grad_output: Any) -> np.ndarray:
    """dL/dx_hat = gamma * dL/dy."""
    return np.asarray(gamma, dtype=float) * np.asarray(grad_output, dtype=float)


def grad_beta(grad_output: Any) -> np.ndarray:
    return np.asarray(grad_output, dtype=float).sum(axis=0)


def grad_gamma(grad_output: Any, normalized: Any) -> np.ndarray:
    g, xhat = np.asarray(grad_output, dtype=float), np.asarray(normalized, dtype=float)
    return snap((g * xhat).sum(axis=0), np.abs(g * xhat).sum(axis=0))


def mean_path(gamma: Any, grad_beta: Any, batch_size: int) -> np.ndarray:
    """What flows back through the mean, the same for every example: gamma * sum g / N."""
    return np.asarray(gamma, dtype=float) * np.asarray(grad_beta, dtype=float) / batch_size


def variance_scale(gamma: Any, grad_gamma: Any, batch_size: int) -> np.ndarray:
    return np.asarray(gamma, dtype=float) * np.asarray(grad_gamma, dtype=float) / batch_size


def variance_path(normalized: Any, variance_scale: Any) -> np.ndarray:
    """What flows back through the variance: x_hat_i * gamma * sum_j g_j x_hat_j / N."""
    return np.asarray(normalized, dtype=float) * np.asarray(variance_scale, dtype=float)


def grad_input(grad_normalized: Any, mean_path: Any, variance_path: Any,
               std: Any) -> np.ndarray:
    a, b, c = (np.asarray(v, dtype=float) for v in (grad_normalized, mean_path, variance_path))
    return snap(a - b - c, np.abs(a) + np.abs(b) + np.abs(c)) / np.asarray(std, dtype=float)


GRAPH = (
    *(s for s in FORWARD_GRAPH if s.name != "output"),  # mean, std, normalized, ...
    Step("batch_size", batch_size, ("x",)),
    Step("grad_normalized", grad_normalized, ("gamma", "grad_output")),
    Step("grad_beta", grad_beta, ("grad_output",)),
    Step("grad_gamma", grad_gamma, ("grad_output", "normalized")),
    Step("mean_path", mean_path, ("gamma", "grad_beta", "batch_size")),
    Step("variance_scale", variance_scale, ("gamma", "grad_gamma", "batch_size")),
    Step("variance_path", variance_path, ("normalized", "variance_scale")),
    Step("grad_input", grad_input, ("grad_normalized", "mean_path", "variance_path", "std")),
)


def no_path(*_: Any) -> float:
    return 0.0


def slips_for(params: dict[str, Any]) -> list[Slip]:
    x = np.asarray(params["x"], dtype=float)
    return [
        Slip("mean_variance_constant", "you treated the batch mean and variance as constants "
             "(dL/dx = gamma * dL/dy / sigma); both depend on every x_i, which adds a path "
             "through the mean and one through the variance",
             swaps={"mean_path": no_path, "variance_path": no_path}),
        Slip("forgot_mean_path", "you left out the path through the mean, "
             "-gamma / (N sigma) * sum_j dL/dy_j", swaps={"mean_path": no_path}),
        Slip("forgot_variance_path", "you left out the path through the variance, "
             "-gamma x_hat_i / (N sigma) * sum_j dL/dy_j x_hat_j", swaps={"variance_path": no_path}),
        Slip("grad_gamma_with_x", "you multiplied dL/dy by x instead of the normalised x_hat "
             "in dL/dgamma (y = gamma x_hat + beta)",
             swaps={"grad_gamma": lambda g, _xhat: grad_gamma(g, x)}),
    ]


@register
class BatchnormBackward(Exercise):
    id = "batchnorm_backward"
    title = "Batch normalisation: backward pass"
    summary = "dL/dgamma, dL/dbeta and dL/dx of batch norm (training mode), formula via sympy"
    params = ("x", "gamma", "beta", "eps", "grad_output")
    options = {"n": None, "features": None}  # as batchnorm_forward: N in 4..6, one feature
    work_space = "9cm"

    def sample(self, rng, pinned, options):
        if "grad_output" in pinned and "x" not in pinned:  # x takes grad_output's shape
            options = {**options, **_shape_options(pinned["grad_output"])}
        if pinned.keys() >= {"x", "gamma", "grad_output"}:  # beta does not matter: as given
            return self.check(FORWARD.sample(rng, _forward(pinned), options) | pinned)
        width = _feature_count(pinned, options)
        if width is None:  # one feature: draw it whole
            return self._draw_fair(rng, pinned, options)
        # feature by feature, so that a fair draw is as likely for D features as for one
        n = len(pinned["x"]) if "x" in pinned else \
            int_option("n", options["n"], MIN_N, MAX_N) if options["n"] is not None \
            else choice(rng, SIZES)
        one = {"n": n, "features": None}

        def draw(r: np.random.Generator) -> dict[str, Any]:
            columns = [self._draw_fair(r, _column(pinned, j), one) for j in range(width)]
            return self.check(_stacked(columns, pinned))

        return draw_until(rng, draw, self.fair, tries=MAX_STACKS, refusal=REFUSAL)

    def _draw_fair(self, rng: np.random.Generator, pinned: dict[str, Any],
                   options: dict[str, Any]) -> dict[str, Any]:
        def draw(r: np.random.Generator) -> dict[str, Any]:
            p = FORWARD.sample(r, _forward(pinned), options)
            p["grad_output"] = pinned["grad_output"] if "grad_output" in pinned else \
                ints(r, np.shape(p["x"]), GRAD_LOW, GRAD_HIGH, nonzero=True)
            return self.check(p)

        return draw_until(rng, draw, self.fair, tries=MAX_DRAWS, refusal=REFUSAL)

    def fair(self, params: dict[str, Any]) -> bool:
        """No grad_input entry near 0, no free points, rounding-proof, every slip shows (and
        dL/dgamma taken with x is not 0, which would hide the variance path's slips)."""
        values = run(GRAPH, params)
        fields = self.fields(params, values)
        with_x = grad_gamma(params["grad_output"], params["x"])  # the slip's dL/dgamma
        return clear_of_zero(values["grad_input"], CLEAR_SHARE, axis=0) and \
            bool(np.all(with_x != 0)) and \
            survives_rounding(GRAPH, params, fields, values) and \
            free_share(GRAPH, params, fields, values) <= MAX_CONSTANT_SHARE and \
            slips_show(self, params, fields, values) and \
            slips_tell_apart(self, params, fields, values)

    def check(self, params):
        p = FORWARD.check(_forward(params))
        if len(p["x"]) > MAX_BATCH:
            raise ParamError(f"x may hold at most {MAX_BATCH} examples here: the worked "
                             f"solution writes the sums over the batch out in full")
        if "grad_output" not in params:
            raise ParamError("missing parameter 'grad_output'")
        g = numbers(params["grad_output"], "grad_output")
        if g.shape != np.shape(p["x"]):
            raise ParamError(f"grad_output must have the shape of x, "
                             f"{' x '.join(map(str, np.shape(p['x'])))}, not "
                             f"{' x '.join(map(str, g.shape)) or 'a single number'}")
        if np.abs(g).max() > MAX_VALUE:
            raise ParamError(f"grad_output must be numbers of a sheet's size, at most "
                             f"{MAX_VALUE:g} in size")
        return jsonable({**p, "grad_output": g})

    def graph(self, params):
        return GRAPH

    def fields(self, params, values):
        shape = list(np.shape(params["x"]))
        per = " per feature" if len(shape) == 2 else ""
        # dL/dbeta is a plain sum; dL/dx holds most of the work
        return [real("grad_gamma", f"dL/dgamma{per}", shape[1:]),
                real("grad_beta", f"dL/dbeta{per}", shape[1:], weight=0.5),
                real("grad_input", "dL/dx, shaped like x", shape, weight=2)]

    def slips(self, params):
        return slips_for(params)

    def problem(self, params):
        g = np.asarray(params["grad_output"], dtype=float)
        return {**FORWARD.problem(params),
                "grad_output": latex.matrix(g) if g.ndim == 2 else latex.row(g)}

    def worked(self, params, values):
        two_d = np.ndim(params["x"]) == 2
        width = np.shape(params["x"])[1] if two_d else 1
        gammas = np.broadcast_to(np.asarray(params["gamma"], dtype=float), (width,))

        def column(name: str, j: int) -> np.ndarray:
            v = np.asarray(values[name], dtype=float)
            return v[..., j] if two_d and v.ndim else v

        n = values["batch_size"]
        features = [feature_steps({k: column(k, j) for k in COLUMNS}, gammas[j])
                    for j in range(width)]
        shown = {k: (latex.row(np.ravel(values[k])) if two_d else latex.num(values[k]))
                 for k in ("grad_gamma", "grad_beta")}
        grad_x = values["grad_input"]
        shown["grad_input"] = latex.matrix(grad_x) if two_d else latex.row(grad_x)
        return {"features": features, "two_d": two_d, "n": n, "answers": shown,
                "derivation": derivation(n), "eps": bool(params["eps"])}


def _forward(pinned: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in pinned.items() if k != "grad_output"}


def _feature_count(pinned: dict[str, Any], options: dict[str, Any]) -> int | None:
    """D when x is N x D (pinned, or asked for by the option features or a per-feature
    gamma or beta) and every pinned per-feature value fits it; else None (one feature, or
    pinned values that check() will refuse with a message)."""
    if "x" in pinned:
        x = numbers(pinned["x"], "x")
        width = x.shape[1] if x.ndim == 2 else None
    elif options["features"] is not None:
        width = int_option("features", options["features"], 1, MAX_FEATURES)
    else:
        width = next((len(v) for k, v in pinned.items()
                      if k in ("gamma", "beta") and np.ndim(v) == 1), None)
    lists = [numbers(v, k) for k, v in pinned.items() if k in ("gamma", "beta")]
    if width is None or any(a.ndim > 1 or (a.ndim == 1 and len(a) != width) for a in lists):
        return None
    g = numbers(pinned.get("grad_output", np.zeros((1, width))), "grad_output")
    return width if g.ndim == 2 and g.shape[1] == width else None


def _column(pinned: dict[str, Any], j: int) -> dict[str, Any]:
    """The pinned values of feature j, as a one-feature problem."""
    out = dict(pinned)
    for k in ("x", "grad_output"):
        if k in pinned:
            out[k] = jsonable(numbers(pinned[k], k)[:, j])
    for k in ("gamma", "beta"):
        if np.ndim(pinned.get(k, 0)) == 1:
            out[k] = pinned[k][j]
    return out


def _stacked(columns: list[dict[str, Any]], pinned: dict[str, Any]) -> dict[str, Any]:
    """One-feature problems side by side as an N x D problem."""
    p = {k: np.stack([c[k] for c in columns], axis=1) for k in ("x", "grad_output")}
    for k in ("gamma", "beta"):
        p[k] = pinned[k] if k in pinned else [c[k] for c in columns]
    return {**p, "eps": columns[0]["eps"]}


def _shape_options(grad_output: Any) -> dict[str, Any]:
    """The options n and features that draw an x shaped like a pinned grad_output."""
    g = numbers(grad_output, "grad_output")
    if g.ndim not in (1, 2) or not MIN_N <= len(g) <= MAX_N or \
            (g.ndim == 2 and not 1 <= g.shape[1] <= MAX_FEATURES):
        raise ParamError(f"a grad_output pinned without x sets the shape of the drawn x: give "
                         f"{MIN_N} to {MAX_N} values, or as many rows of 1 to {MAX_FEATURES} "
                         f"(pin x as well for other shapes)")
    return {"n": len(g), "features": g.shape[1] if g.ndim == 2 else None}


COLUMNS = ("x", "mean", "std", "normalized", "grad_output", "grad_normalized", "grad_beta",
           "grad_gamma", "mean_path", "variance_scale", "variance_path", "grad_input")


def feature_steps(v: dict[str, Any], gamma: float) -> dict[str, Any]:
    """One feature's worked numbers, from its step values."""
    g, xh = v["grad_output"], v["normalized"]
    num = latex.num
    return {
        "gamma": num(gamma), "mean": num(v["mean"]), "std": num(v["std"]),
        "std_rel": latex.relation(float(v["std"])), "xhat": latex.row(xh),
        "g_sum": latex.signed_sum(g), "grad_beta": num(v["grad_beta"]),
        "gx_sum": signed_products(list(zip(g, xh))), "grad_gamma": num(v["grad_gamma"]),
        "gx_rel": latex.relation(float(v["grad_gamma"])),
        "grad_beta_term": latex.term(v["grad_beta"]),
        "grad_gamma_term": latex.term(v["grad_gamma"]),
        "mean_path": num(v["mean_path"]), "mean_rel": latex.relation(float(v["mean_path"])),
        "minus_mean": latex.plus(-float(v["mean_path"])),
        "var_scale": num(v["variance_scale"]), "var_scale_term": latex.term(v["variance_scale"]),
        "var_rel": latex.relation(float(v["variance_scale"])),
        "rows": [{"g": num(gi), "xhat": num(hi), "a": num(ai), "b": num(bi),
                  "minus_b": latex.plus(-bi), "dx": num(di), "dx_rel": latex.relation(di)}
                 for gi, hi, ai, bi, di in zip(g, xh, v["grad_normalized"], v["variance_path"],
                                               v["grad_input"])],
    }
