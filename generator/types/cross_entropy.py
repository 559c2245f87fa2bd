"""cross_entropy: softmax cross-entropy loss and its gradient, for one example or a batch.

``logits`` is a list of n numbers or an N x n batch. ``target`` is a class index
(counting from 0) or a one-hot list for one example; for a batch, a list of N
indices or N one-hot rows. The loss uses the natural logarithm and is the mean
over the batch, so the gradient is (s - y) / N (N = 1 for one example).

The steps: those of ``softmax``, then each example's target probability s_t, its loss
-ln s_t, the N the mean divides by, the loss and the gradient. ``loss`` and
``grad_logits`` read the logits only through ``probabilities``, so the grader can
recompute them from a student's own probabilities (a log of 0 or of a negative number
gives inf or nan, which earns no credit, never an error).

Each mistake swaps a different step, so any two combine: log base 10 (the per-example
losses); the loss of the wrong class, taken as the predicted one (the target
probabilities; dropped when every target is predicted); s instead of s - y (the
gradient); for a batch, the sum instead of the mean (N taken as 1).

The formula dL/dz_i = s_i - y_i is not typed in: :func:`derivation` derives it with
sympy (once per process) and the worked solution prints sympy's steps.

No free points. Drawn logits are kept only when every probability and gradient entry
lies a clear margin from the constant answers 0, 1, 1/n and the row's logits copied
(see ``softmax``), the loss a clear margin from 0, 1 and 1/n, and no constant loss or
gradient is consistent with the logits copied as probabilities (carried forward).
"""

from __future__ import annotations

from functools import cache, partial
from typing import Any

import numpy as np

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.exercise import Exercise, jsonable, register, require
from deepdrill.generator.randomness import draw_until
from deepdrill.generator.steps import Slip, Step, constant, rerun, run
from deepdrill.model.fields import formula, real

from .softmax import GRAPH as SOFTMAX_GRAPH
from .softmax import (MAX_DRAWS, check_logits, clear_of, constant_answers, draw_logit_rows,
                      hand_friendly, logits_shape, near, numbers, softmax, softmax_rows,
                      vector_or_matrix)

DERIVATION_CLASSES = 3  # classes in the symbolic derivation shown on the sheet


def check_target(target: Any, logits: Any) -> None:
    """ParamError unless the target fits the logits.

    A target shaped like the logits is one-hot; one shaped like the logits without
    their last axis (a number, or N numbers for a batch) holds class indices.
    """
    z = np.asarray(logits, dtype=float)
    n = z.shape[-1]
    t = numbers(target, "target")
    if t.shape == z.shape:
        if not np.all((t == 0) | (t == 1)) or not np.all(t.sum(axis=-1) == 1):
            raise ParamError("a one-hot target needs exactly one 1 per example and 0 elsewhere")
    elif t.shape != z.shape[:-1]:
        raise ParamError(_target_shapes(z))
    elif not np.all(t == np.round(t)) or np.any(t < 0) or np.any(t >= n):
        raise ParamError(f"class indices count from 0: each target must be a whole number "
                         f"from 0 to {n - 1}")


def one_hot(target: Any, logits: Any) -> np.ndarray:
    """A checked target as one-hot rows shaped like the logits.

    >>> one_hot([2, 0], [[1, 2, 3], [4, 5, 6]]).tolist()
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """
    t, shape = np.asarray(target, dtype=float), np.shape(logits)
    return t if t.shape == shape else np.eye(shape[-1])[t.astype(int)]


def _target_shapes(z: np.ndarray) -> str:
    n = z.shape[-1]
    if z.ndim == 1:
        return (f"for one example the target is a class index (0 to {n - 1}) or a one-hot "
                f"list of {n} numbers")
    return (f"for a batch of {len(z)} the target is a list of {len(z)} class indices "
            f"(0 to {n - 1}) or {len(z)} one-hot rows of {n} numbers")


# -- the steps after softmax (pure: the grader feeds them a student's probabilities) ---

def target_probabilities(probabilities: Any, one_hot: np.ndarray) -> np.ndarray:
    """s_t of each example: the probability given to its target class."""
    s = np.asarray(probabilities, dtype=float)
    return np.take_along_axis(s, np.argmax(one_hot, axis=-1)[..., None], axis=-1)[..., 0]


def example_losses(target_probabilities: Any) -> np.ndarray:
    """-ln s_t per example (inf or nan where a student's s_t is not positive)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.log(np.asarray(target_probabilities, dtype=float))


def batch_size(one_hot: np.ndarray) -> int:
    """N, which the mean over the batch divides by (1 for one example)."""
    return 1 if one_hot.ndim == 1 else len(one_hot)


def mean_loss(example_losses: Any, batch_size: int) -> float:
    return float(np.sum(example_losses) / batch_size)


def grad_logits(probabilities: Any, one_hot: np.ndarray, batch_size: int) -> np.ndarray:
    """dL/dz = (s - y) / N."""
    return (np.asarray(probabilities, dtype=float) - one_hot) / batch_size


GRAPH = (
    *SOFTMAX_GRAPH,
    Step("one_hot", one_hot, ("target", "logits")),
    Step("target_probabilities", target_probabilities, ("probabilities", "one_hot")),
    Step("example_losses", example_losses, ("target_probabilities",)),
    Step("batch_size", batch_size, ("one_hot",)),
    Step("loss", mean_loss, ("example_losses", "batch_size")),
    Step("grad_logits", grad_logits, ("probabilities", "one_hot", "batch_size")),
)


def predicted_probabilities(probabilities: Any, one_hot: np.ndarray) -> np.ndarray:
    return np.asarray(probabilities, dtype=float).max(axis=-1)


def example_losses_log10(target_probabilities: Any) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.log10(np.asarray(target_probabilities, dtype=float))


def grad_without_target(probabilities: Any, one_hot: np.ndarray,
                        batch_size: int) -> np.ndarray:
    return np.asarray(probabilities, dtype=float) / batch_size


def no_batch_mean(one_hot: np.ndarray) -> int:
    return 1


# The gradient as a formula, for one example (the option `formula`): typed as text in
# s_i and y_i, graded by meaning; its typical wrong forms are the slips' formulas.
FORMULA, FORMULA_SYMBOLS = "s_i - y_i", ("s_i", "y_i")


def grad_reversed(probabilities: Any, one_hot: np.ndarray, batch_size: int) -> np.ndarray:
    return (one_hot - np.asarray(probabilities, dtype=float)) / batch_size


SLIPS = (
    Slip("log10", "you used log base 10; cross-entropy uses the natural logarithm",
         swaps={"example_losses": example_losses_log10}),
    Slip("predicted_class", "you took -ln of the probability of the predicted (most "
         "probable) class instead of the target class",
         swaps={"target_probabilities": predicted_probabilities}),
    Slip("grad_is_s", "you gave s as the gradient; the gradient is s - y (divided by N for "
         "a batch)", swaps={"grad_logits": grad_without_target,
                            "grad_formula": constant("s_i")}),
    Slip("grad_sign", "you flipped the sign of the gradient: it is s - y, not y - s (the "
         "loss falls as the target's logit rises)", swaps={"grad_logits": grad_reversed,
                                                          "grad_formula": constant("y_i - s_i")}),
)
FORMULA_SLIPS = (
    Slip("grad_wrt_probabilities", "you gave the gradient with respect to the probabilities, "
         "-y_i / s_i; through the softmax it becomes s_i - y_i",
         swaps={"grad_formula": constant("-y_i/s_i")}),
)
FORMULA_STEP = Step("grad_formula", constant(FORMULA), ())
SUMMED_OVER_BATCH = Slip("summed_over_batch", "you summed over the batch instead of taking "
                         "the mean, so the loss and gradient are N times too large",
                         swaps={"batch_size": no_batch_mean})


@cache
def derivation(n: int = DERIVATION_CLASSES) -> dict[str, Any]:
    """dL/dz_i for L = -sum_k y_k ln softmax_k(z), derived and simplified with sympy.

    Returns the sympy expressions (symbols, the loss at each step, the raw and the
    simplified derivative for every class) and the LaTeX the solution prints for
    class 0. Uses sum_k y_k = 1, which holds for one-hot and any normalised y.
    """
    import sympy  # here: grading cross-entropy answers needs no sympy (0.35 s to import)

    z = sympy.symbols(f"z_0:{n}", real=True)
    y = sympy.symbols(f"y_0:{n}", real=True)
    total = sum(sympy.exp(zj) for zj in z)
    y_sum = sum(y)
    loss = -sum(yk * sympy.log(sympy.exp(zk) / total) for yk, zk in zip(y, z))
    expanded = sympy.expand(sympy.expand_log(loss, force=True))  # ln s_k = z_k - ln(sum)
    collected = sympy.collect(expanded, sympy.log(total))
    raw = [sympy.diff(expanded, zi) for zi in z]
    grouped = [sympy.collect(sympy.expand(r), sympy.exp(zi) / total) for r, zi in zip(raw, z)]
    gradient = [g.subs(y_sum, 1) for g in grouped]
    for i, g in enumerate(gradient):
        if sympy.expand(g - (sympy.exp(z[i]) / total - y[i])) != 0:
            raise AssertionError(f"sympy did not reduce dL/dz_{i} to s_{i} - y_{i}: {g}")

    def tex(expr: Any) -> latex.Tex:
        return latex.Tex(sympy.latex(expr, ln_notation=True))

    return {
        "symbols": (z, y), "loss": loss, "raw": raw, "gradient": gradient,
        "tex_loss": tex(loss), "tex_expanded": tex(collected),
        "tex_normalised": tex(collected.subs(y_sum, 1)),
        "tex_one_hot": tex(loss.subs({yk: int(k == 0) for k, yk in enumerate(y)})
                           .expand(force=True)),
        "tex_raw": tex(raw[0]), "tex_grouped": tex(grouped[0]), "tex_gradient": tex(gradient[0]),
    }


# -- drawing ---------------------------------------------------------------------------

def row_is_clear(z: np.ndarray, y: np.ndarray, n_rows: int) -> bool:
    """A row of logits for the target y in a batch of n_rows: hand-friendly, and its
    gradient entries clear of the constant answers."""
    return hand_friendly(z) and clear_of((softmax(z) - y) / n_rows, constant_answers(z))


def nothing_free(z: np.ndarray, y: np.ndarray) -> bool:
    """The loss is clear of the constant losses 0, 1 and 1/n; and a student who copies the
    logits as probabilities cannot carry a constant loss or gradient forward from them
    (the grader credits a step only when all of it is consistent)."""
    params = {"logits": z, "target": y}
    losses = (0.0, 1.0, 1 / z.shape[-1])
    copied = rerun(GRAPH, params, {"probabilities": z})
    return clear_of(run(GRAPH, params)["loss"], losses) and \
        not any(near(copied["loss"], c).all() for c in losses) and \
        not any(near(copied["grad_logits"], c).all() for c in constant_answers(z))


def draw_logits_for(rng: np.random.Generator, y: np.ndarray) -> np.ndarray:
    """Logits shaped like the one-hot target y, drawn row by row until nothing is free."""
    rows = np.atleast_2d(y)
    n = y.shape[-1]
    goods = [partial(row_is_clear, y=yr, n_rows=len(rows)) for yr in rows]

    def draw(r: np.random.Generator) -> np.ndarray:
        z = draw_logit_rows(r, n, goods)
        return z if y.ndim == 2 else z[0]

    return draw_until(rng, draw, partial(nothing_free, y=y), tries=MAX_DRAWS,
                      refusal=f"no hand-friendly logits for {n} classes give a loss clear of "
                              f"0, 1 and 1/{n}; pin the logits or choose other options")


@register
class CrossEntropy(Exercise):
    id = "cross_entropy"
    title = "Softmax cross-entropy: loss and gradient"
    summary = "softmax cross-entropy loss and its gradient for one example or a batch"
    params = ("logits", "target", "formula")
    # classes None: 3 or 4; batch None: one example; one_hot: draw targets as one-hot lists
    options = {"classes": None, "batch": None, "one_hot": False}
    work_space = "7cm"

    def sample(self, rng, pinned, options):
        p = dict(pinned)
        if "logits" in p:
            if "target" not in p:
                z = check_logits(p["logits"])
                p["target"] = _target(rng.integers(0, z.shape[-1], size=z.shape[:-1]),
                                      z.shape[-1], options["one_hot"])
            return p
        if "target" in p:
            shape = _shape_for_target(rng, p["target"], options)
            check_target(p["target"], np.zeros(shape))
            y = one_hot(p["target"], np.zeros(shape))
        else:
            shape = logits_shape(rng, options)
            idx = rng.integers(0, shape[-1], size=shape[:-1])
            p["target"] = _target(idx, shape[-1], options["one_hot"])
            y = np.eye(shape[-1])[idx]
        p["logits"] = jsonable(draw_logits_for(rng, y))
        return p

    def check(self, params):
        require(params, "logits", "target")
        check_logits(params["logits"])
        check_target(params["target"], params["logits"])
        formula = params.get("formula", False)
        if not isinstance(formula, bool):
            raise ParamError("formula must be true or false (true also asks for dL/dz_i as a "
                             "formula in s_i and y_i)")
        return {"logits": jsonable(params["logits"]), "target": jsonable(params["target"]),
                "formula": formula}

    def graph(self, params):
        return (*GRAPH, FORMULA_STEP) if params.get("formula") else GRAPH

    def fields(self, params, values):
        shape = list(np.shape(params["logits"]))
        batch = len(shape) == 2
        return [real("probabilities", "the softmax probabilities" +
                     (", one row per example" if batch else ""), shape),
                real("loss", "the cross-entropy loss" + (" (mean over the batch)" if batch
                                                         else ""), []),
                real("grad_logits", "the gradient of the loss with respect to the logits" +
                     (", one row per example" if batch else ""), shape),
                *([formula("grad_formula", "dL/dz_i for one example, as a formula in s_i "
                           "and y_i", FORMULA_SYMBOLS)] if params.get("formula") else [])]

    def slips(self, params):
        z = np.asarray(params["logits"])
        slips = [*SLIPS, *(FORMULA_SLIPS if params.get("formula") else ())]
        return [*slips, SUMMED_OVER_BATCH] if z.ndim == 2 and len(z) > 1 else slips

    def problem(self, params):
        z = np.atleast_2d(params["logits"])
        y = np.atleast_2d(one_hot(params["target"], params["logits"]))
        return {"batch": np.ndim(params["logits"]) == 2, "n": len(z), "classes": z.shape[1],
                "formula": bool(params.get("formula")),
                "rows": [{"z": latex.row(zr), "y": latex.row(yr), "t": int(np.argmax(yr))}
                         for zr, yr in zip(z, y)]}

    def worked(self, params, values):
        y = np.atleast_2d(values["one_hot"])
        s_t = np.atleast_1d(values["target_probabilities"])
        losses = np.atleast_1d(values["example_losses"])
        grads = np.atleast_2d(values["grad_logits"])
        return {
            "batch": values["one_hot"].ndim == 2, "n": values["batch_size"],
            "rows": softmax_rows(values),
            "terms": [{"t": int(np.argmax(yi)), "s": latex.num(si), "loss": latex.num(li)}
                      for yi, si, li in zip(y, s_t, losses)],
            "loss_sum": latex.Tex(" + ".join(latex.num(li) for li in losses)),
            "derivation": derivation(),
            "grads": [{"s": latex.row(si), "y": latex.row(yi), "g": latex.row(gi)}
                      for si, yi, gi in zip(np.atleast_2d(values["probabilities"]), y, grads)],
            "answers": {"probabilities": vector_or_matrix(values["probabilities"]),
                        "loss": latex.num(values["loss"]),
                        "grad_logits": vector_or_matrix(values["grad_logits"])},
        }


def _target(idx: np.ndarray, n: int, as_one_hot: bool) -> Any:
    """Drawn class indices as the parameter: indices, or one-hot lists."""
    return jsonable(np.eye(n, dtype=int)[idx] if as_one_hot else idx)


def _shape_for_target(rng: np.random.Generator, target: Any,
                      options: dict[str, Any]) -> tuple[int, ...]:
    """The shape of logits to draw for a pinned target.

    A number is one example's class; a list of lists holds one-hot rows; a flat list
    is one example's one-hot vector if it is one (and no ``batch`` option is given),
    and a batch's class indices otherwise.
    """
    t = numbers(target, "target")
    if t.ndim > 2 or t.size == 0:
        raise ParamError("target must be a class index, a one-hot list, or a list of either")
    if t.ndim == 1 and options["batch"] is None and len(t) >= 2 and \
            np.all((t == 0) | (t == 1)) and t.sum() == 1:
        return t.shape
    if t.ndim == 2:
        if t.shape[-1] < 2:
            raise ParamError("a one-hot target needs at least 2 classes")
        return t.shape
    n = logits_shape(rng, {**options, "batch": None}, min_classes=int(t.max()) + 1)[0]
    return (n,) if t.ndim == 0 else (len(t), n)
