"""softmax: probabilities from logits, for one example or a batch (softmax per row)."""

from __future__ import annotations

from typing import Any

import numpy as np

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.exercise import Exercise, jsonable, register
from deepdrill.generator.fields import real
from deepdrill.generator.randomness import choice, decimals, ints
from deepdrill.generator.variant import Mistake

MAX_DRAWS = 100


def softmax(z: Any) -> np.ndarray:
    """Row-wise softmax, stable for any logits."""
    z = np.asarray(z, dtype=float)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(z: Any) -> np.ndarray:
    z = np.asarray(z, dtype=float)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def draw_logits(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Hand-friendly logits: small integers, sometimes one-decimal values; rows never constant
    and no tie for the largest entry."""
    for _ in range(MAX_DRAWS):
        z = ints(rng, shape, -2, 3) if rng.random() < 0.6 else decimals(rng, shape, -2, 3, 1)
        rows = np.atleast_2d(z)
        top = np.sort(rows, axis=-1)
        if np.all(rows.max(axis=-1) > rows.min(axis=-1)) and np.all(top[:, -1] > top[:, -2]):
            return z
    return z


def check_logits(logits: Any) -> np.ndarray:
    z = np.asarray(logits, dtype=float)
    if z.ndim not in (1, 2) or z.shape[-1] < 2 or z.size == 0:
        raise ParamError("logits must be a list of at least 2 numbers, or a batch of such rows")
    if not np.all(np.isfinite(z)) or np.abs(z).max() > 50:
        raise ParamError("logits must be finite numbers of moderate size (|z| <= 50)")
    return z


@register
class Softmax(Exercise):
    id = "softmax"
    title = "Softmax"
    summary = "probabilities from logits (one example or a batch)"
    params = ("logits",)
    options = {"classes": None, "batch": None}
    work_space = "4.5cm"

    def sample(self, rng, pinned, options):
        if "logits" in pinned:
            return dict(pinned)
        classes = options["classes"] or choice(rng, [3, 4])
        shape = (int(options["batch"]), classes) if options["batch"] else (classes,)
        return {"logits": jsonable(draw_logits(rng, shape))}

    def check(self, params):
        if "logits" not in params:
            raise ParamError("missing parameter 'logits'")
        check_logits(params["logits"])
        return {"logits": jsonable(params["logits"])}

    def solve(self, params):
        return {"probabilities": jsonable(softmax(params["logits"]))}

    def fields(self, params):
        return [real("probabilities", "the softmax probabilities",
                     list(np.shape(params["logits"])))]

    def mistakes(self, params):
        z = np.asarray(params["logits"], dtype=float)
        out = [Mistake("log_softmax", "you gave the log-softmax (log-probabilities), not the "
                       "probabilities", {"probabilities": jsonable(log_softmax(z))})]
        sums = z.sum(axis=-1, keepdims=True)
        if np.all(sums != 0):
            out.append(Mistake("ratio_of_logits", "you divided the logits by their sum; softmax "
                               "exponentiates them first", {"probabilities": jsonable(z / sums)}))
        return out

    def problem(self, params):
        rows = np.atleast_2d(params["logits"])
        return {"batch": np.ndim(params["logits"]) == 2, "rows": [latex.row(r) for r in rows]}

    def steps(self, params, answers):
        return {"rows": [exp_steps(r) for r in np.atleast_2d(params["logits"])]}


def exp_steps(z: np.ndarray) -> dict[str, Any]:
    """The exponentials, their sum and each probability as a fraction, for one row."""
    e = np.exp(z)
    total = e.sum()
    return {
        "exps": [{"i": i + 1, "z": latex.num(zi), "e": latex.num(ei)} for i, (zi, ei) in
                 enumerate(zip(z, e))],
        "sum_terms": latex.Tex(" + ".join(latex.num(ei) for ei in e)),
        "sum": latex.num(total),
        "probs": [{"i": i + 1, "e": latex.num(ei), "p": latex.num(ei / total)}
                  for i, ei in enumerate(e)],
        "vector": latex.row(e / total),
    }
