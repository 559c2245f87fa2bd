"""softmax: probabilities from logits, for one example or a batch (softmax per row).

``logits`` is a list of n numbers (one example) or an N x n list of rows (a batch);
``probabilities`` has the same shape. Entries are numbered from 0, as in the JSON
lists. The steps (the exponentials, their sum, the probabilities), the drawing of
logits and the per-row worked steps are shared with ``cross_entropy``.

No free points. A drawn row is kept only when every probability lies a clear margin
(``MARGIN`` relative, ``ABS_MARGIN`` absolute, both well beyond the 1 % tolerance)
from each constant answer: 0, 1, the uniform 1/n, and the row's own logits copied.
So such an answer matches no entry at all. Pinned logits are kept as given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.exercise import (Exercise, int_option, jsonable, numbers, register,
                                          require)
from deepdrill.generator.randomness import choice, decimals, draw_until, ints
from deepdrill.generator.steps import NotApplicable, Slip, Step, Values
from deepdrill.model.fields import real

CLASS_CHOICES = [3, 4]  # classes in a random draw
MAX_CLASSES = 6  # keeps a row of exponentials on one line
MAX_BATCH = 6
LOW, HIGH = -2, 3  # range of random logits
INTEGER_SHARE = 0.6  # share of draws with integer logits; the rest have one decimal
MAX_LOGIT = 50  # |z| above this makes e^z unreadable on a sheet
MAX_DRAWS = 100
ZERO_SUM = 1e-9  # a row sum this small is 0 up to rounding: no ratio-of-logits mistake
MARGIN = 0.05  # relative distance of a drawn answer from every constant answer
ABS_MARGIN = 0.002  # and absolute, for answers near 0


# -- the steps (pure: the grader feeds them a student's own values) -------------------

def exps(logits: Any) -> np.ndarray:
    """e^z for every logit (|z| <= MAX_LOGIT, so no overflow)."""
    return np.exp(np.asarray(logits, dtype=float))


def total(exps: Any) -> np.ndarray:
    """The denominator of each row: the sum of its exponentials."""
    return np.asarray(exps, dtype=float).sum(axis=-1)


def probabilities(exps: Any, total: Any) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):  # a sum of 0: inf or nan, no credit
        return np.asarray(exps, dtype=float) / np.expand_dims(total, -1)


GRAPH = (
    Step("exps", exps, ("logits",)),
    Step("total", total, ("exps",)),
    Step("probabilities", probabilities, ("exps", "total")),
)


def softmax(z: Any) -> np.ndarray:
    """Row-wise softmax.

    >>> softmax([0.0, np.log(3)]).round(2).tolist()
    [0.25, 0.75]
    """
    e = exps(z)
    return probabilities(e, total(e))


def log_probabilities(exps: Any, total: Any) -> np.ndarray:
    """ln(e^z / sum); NotApplicable where a ratio has no logarithm (the ratio-of-logits
    slip makes it -1/4, say): no student takes the log of a negative probability."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.asarray(exps, dtype=float) / np.expand_dims(total, -1)
    if not np.all(ratios > 0) or not np.all(np.isfinite(ratios)):
        raise NotApplicable("the log-softmax needs positive ratios")
    return np.log(ratios)


def logits_unexponentiated(logits: Any) -> np.ndarray:
    return np.asarray(logits, dtype=float)


LOG_SOFTMAX = Slip("log_softmax", "you gave the log-softmax (the logarithms of the "
                   "probabilities), not the probabilities",
                   swaps={"probabilities": log_probabilities})
RATIO_OF_LOGITS = Slip("ratio_of_logits", "you divided the logits by their sum; softmax "
                       "divides the exponentials e^z by their sum",
                       swaps={"exps": logits_unexponentiated})


# -- drawing and checking logits ------------------------------------------------------

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


def near(values: Any, constant: Any) -> np.ndarray:
    """Which entries lie within the clear margin of a constant (never a non-finite one)."""
    v, c = np.asarray(values, dtype=float), np.asarray(constant, dtype=float)
    with np.errstate(invalid="ignore"):
        close = np.abs(v - c) <= MARGIN * np.maximum(np.abs(v), np.abs(c)) + ABS_MARGIN
    return np.isfinite(v) & close


def clear_of(values: Any, constants: Sequence[Any]) -> bool:
    """Whether no entry lies within the clear margin of any of the constants.

    >>> clear_of([0.2, 0.7], [0, 1, 0.5]), clear_of([0.2, 0.51], [0, 1, 0.5])
    (True, False)
    """
    return not any(near(values, c).any() for c in constants)


def constant_answers(z: np.ndarray) -> tuple[Any, ...]:
    """What a student writes without working for a row of logits: 0, 1, 1/n, the logits."""
    return 0.0, 1.0, 1 / z.shape[-1], z


def hand_friendly(z: np.ndarray) -> bool:
    """One clear largest logit (so "the predicted class" is defined), a non-zero sum (so
    dividing the logits by their sum, a recognised mistake, is defined), and probabilities
    clear of the constant answers."""
    top = np.sort(z)
    return bool(top[-1] > top[-2] and abs(z.sum()) > ZERO_SUM and
                clear_of(softmax(z), constant_answers(z)))


def draw_logit_rows(rng: np.random.Generator, n: int,
                    good_rows: Sequence[Callable[[np.ndarray], bool]]) -> np.ndarray:
    """One row of n logits per predicate, each drawn until its predicate holds.

    Logits lie in [LOW, HIGH]: small integers, or (for the whole draw) one-decimal values.
    """
    integer = rng.random() < INTEGER_SHARE

    def draw(r: np.random.Generator) -> np.ndarray:
        return ints(r, n, LOW, HIGH) if integer else decimals(r, n, LOW, HIGH, 1)

    refusal = (f"no hand-friendly logits for {n} classes in {MAX_DRAWS} draws (probabilities "
               f"clear of 0, 1 and 1/{n}); pin the logits or choose other options")
    return np.stack([draw_until(rng, draw, good, tries=MAX_DRAWS, refusal=refusal)
                     for good in good_rows])


def draw_logits(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Hand-friendly logits of the given shape (see :func:`hand_friendly`)."""
    rows = draw_logit_rows(rng, shape[-1], [hand_friendly] * (shape[0] if len(shape) == 2
                                                                else 1))
    return rows if len(shape) == 2 else rows[0]


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

    def graph(self, params):
        return GRAPH

    def fields(self, params, values):
        return [real("probabilities", "the softmax probabilities" +
                     (", one row per example" if np.ndim(params["logits"]) == 2 else ""),
                     list(np.shape(params["logits"])))]

    def slips(self, params):
        sums = np.sum(params["logits"], axis=-1)
        # 1.7 - 0.6 - 1.1 is 2e-16 in floating point: no ratio to take
        return [LOG_SOFTMAX] + ([RATIO_OF_LOGITS] if np.all(np.abs(sums) > ZERO_SUM) else [])

    def problem(self, params):
        z = np.asarray(params["logits"], dtype=float)
        return {"batch": z.ndim == 2, "n": len(z), "classes": z.shape[-1],
                "logits": vector_or_matrix(z)}

    def worked(self, params, values):
        return {"batch": np.ndim(values["logits"]) == 2, "rows": softmax_rows(values),
                "answer": vector_or_matrix(values["probabilities"])}


def vector_or_matrix(a: Any) -> latex.Tex:
    """One example as a row vector, a batch as a matrix with one row per example."""
    return latex.matrix(a) if np.ndim(a) == 2 else latex.row(a)


def softmax_rows(values: Values) -> list[dict[str, Any]]:
    """The worked steps of each example, read from the step values."""
    rows = zip(*(np.atleast_2d(values[k]) for k in ("logits", "exps", "probabilities")),
               np.atleast_1d(values["total"]))
    return [exp_steps(z, e, s, t) for z, e, s, t in rows]


def exp_steps(z: np.ndarray, e: np.ndarray, s: np.ndarray, total: float) -> dict[str, Any]:
    """One row: the exponentials, their sum, and each probability as a fraction."""
    return {
        "z": latex.row(z),
        "exps": [{"i": i, "z": latex.num(zi), "e": latex.num(ei), "p": latex.num(si)}
                 for i, (zi, ei, si) in enumerate(zip(z, e, s))],
        "sum_terms": latex.Tex(" + ".join(latex.num(ei) for ei in e)),
        "sum": latex.num(total),
        "vector": latex.row(s),
    }
