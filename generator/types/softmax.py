"""softmax: probabilities from logits, for one example or a batch (softmax per row).

``logits`` is a list of n numbers (one example) or an N x n list of rows (a batch);
``probabilities`` has the same shape. Entries are numbered from 0, as in the JSON
lists. The helpers here (drawing and checking logits, the per-row worked steps) are
shared with ``cross_entropy``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.exercise import Exercise, int_option, jsonable, register, require
from deepdrill.model.fields import real
from deepdrill.generator.randomness import choice, decimals, ints
from deepdrill.model.variant import Mistake

CLASS_CHOICES = [3, 4]  # classes in a random draw
MAX_CLASSES = 6  # keeps a row of exponentials on one line
MAX_BATCH = 6
LOW, HIGH = -2, 3  # range of random logits
INTEGER_SHARE = 0.6  # share of draws with integer logits; the rest have one decimal
MAX_LOGIT = 50  # |z| above this makes e^z unreadable on a sheet
MAX_DRAWS = 100
ZERO_SUM = 1e-9  # a row sum this small is 0 up to rounding: no ratio-of-logits mistake


def softmax(z: Any) -> np.ndarray:
    """Row-wise softmax, stable for any logits.

    >>> softmax([0.0, np.log(3)]).round(2).tolist()
    [0.25, 0.75]
    """
    z = np.asarray(z, dtype=float)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(z: Any) -> np.ndarray:
    z = np.asarray(z, dtype=float)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def logits_shape(rng: np.random.Generator, options: dict[str, Any],
                 min_classes: int = 2) -> tuple[int, ...]:
    """(n,) or (N, n) from the options ``classes`` and ``batch``; n drawn when not given."""
    if min_classes > MAX_CLASSES:
        raise ParamError(f"random logits have at most {MAX_CLASSES} classes; pin the logits "
                         f"to use {min_classes}")
    n = options["classes"]
    n = int_option("classes", n, 2, MAX_CLASSES) if n is not None else \
        max(choice(rng, CLASS_CHOICES), min_classes)
    if options["batch"] is None:
        return (n,)
    return (int_option("batch", options["batch"], 1, MAX_BATCH), n)


def draw_logits(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Hand-friendly logits in [-2, 3]: small integers or one-decimal values.

    Per row: not all equal (no trivially uniform answer), one clear largest logit
    (so "the predicted class" is defined) and a non-zero sum (so dividing the
    logits by their sum, a mistake the grader recognises, is defined).
    """
    for _ in range(MAX_DRAWS):
        z = ints(rng, shape, LOW, HIGH) if rng.random() < INTEGER_SHARE else \
            decimals(rng, shape, LOW, HIGH, 1)
        rows = np.sort(np.atleast_2d(z), axis=-1)
        if np.all(rows[:, -1] > rows[:, -2]) and np.all(np.abs(rows.sum(axis=-1)) > ZERO_SUM):
            return z
    raise AssertionError("no hand-friendly logits in 100 draws")  # practically impossible


def numbers(value: Any, name: str) -> np.ndarray:
    """A parameter as a float array; ParamError unless it is (nested lists of) numbers."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):  # ragged lists
        arr = None
    if arr is None or arr.dtype.kind not in ("i", "u", "f"):  # not bools, not strings
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise ParamError(f"{name} must be made of numbers (lists of numbers, rows of equal "
                         f"length), not {shown}")
    return arr.astype(float)


def check_logits(logits: Any) -> np.ndarray:
    z = numbers(logits, "logits")
    if z.ndim not in (1, 2) or z.shape[-1] < 2 or z.size == 0:
        raise ParamError("logits must be a list of at least 2 numbers (one example) or a "
                         "list of such rows (a batch)")
    if not np.all(np.isfinite(z)) or np.abs(z).max() > MAX_LOGIT:
        raise ParamError(f"logits must be finite numbers with |z| <= {MAX_LOGIT}")
    return z


@register
class Softmax(Exercise):
    id = "softmax"
    title = "Softmax"
    summary = "probabilities from logits (one example or a batch)"
    params = ("logits",)
    options = {"classes": None, "batch": None}  # None: 3 or 4 classes; one example
    work_space = "4.5cm"

    def sample(self, rng, pinned, options):
        if "logits" in pinned:
            return dict(pinned)
        return {"logits": jsonable(draw_logits(rng, logits_shape(rng, options)))}

    def check(self, params):
        require(params, "logits")
        check_logits(params["logits"])
        return {"logits": jsonable(params["logits"])}

    def solve(self, params):
        return {"probabilities": jsonable(softmax(params["logits"]))}

    def fields(self, params):
        return [real("probabilities", "the softmax probabilities" +
                     (", one row per example" if np.ndim(params["logits"]) == 2 else ""),
                     list(np.shape(params["logits"])))]

    def mistakes(self, params):
        z = np.asarray(params["logits"], dtype=float)
        out = [Mistake("log_softmax", "you gave the log-softmax (the logarithms of the "
                       "probabilities), not the probabilities",
                       {"probabilities": jsonable(log_softmax(z))})]
        sums = z.sum(axis=-1, keepdims=True)
        if np.all(np.abs(sums) > ZERO_SUM):  # 1.7 - 0.6 - 1.1 is 2e-16 in floating point
            out.append(Mistake("ratio_of_logits", "you divided the logits by their sum; "
                               "softmax divides the exponentials e^z by their sum",
                               {"probabilities": jsonable(z / sums)}))
        return out

    def problem(self, params):
        z = np.asarray(params["logits"], dtype=float)
        return {"batch": z.ndim == 2, "n": len(z), "classes": z.shape[-1],
                "logits": vector_or_matrix(z)}

    def steps(self, params, answers):
        z = np.asarray(params["logits"], dtype=float)
        return {"batch": z.ndim == 2, "rows": [exp_steps(r) for r in np.atleast_2d(z)],
                "answer": vector_or_matrix(answers["probabilities"])}


def vector_or_matrix(a: Any) -> latex.Tex:
    """One example as a row vector, a batch as a matrix with one row per example."""
    return latex.matrix(a) if np.ndim(a) == 2 else latex.row(a)


def exp_steps(z: np.ndarray) -> dict[str, Any]:
    """The exponentials, their sum and each probability as a fraction, for one row."""
    e = np.exp(z)
    total = e.sum()
    s = e / total
    return {
        "z": latex.row(z),
        "exps": [{"i": i, "z": latex.num(zi), "e": latex.num(ei), "p": latex.num(si)}
                 for i, (zi, ei, si) in enumerate(zip(z, e, s))],
        "sum_terms": latex.Tex(" + ".join(latex.num(ei) for ei in e)),
        "sum": latex.num(total),
        "vector": latex.row(s),
    }
