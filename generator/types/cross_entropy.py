"""cross_entropy: softmax cross-entropy loss and its gradient, for one example or a batch.

``logits`` is a list of n numbers or an N x n batch. ``target`` is a class index
(counting from 0) or a one-hot list for one example; for a batch, a list of N
indices or N one-hot rows. The loss uses the natural logarithm and is the mean
over the batch, so the gradient is (s - y) / N (N = 1 for one example).

The formula dL/dz_i = s_i - y_i is not typed in: :func:`derivation` derives it
with sympy (once per process) and the worked solution prints sympy's steps.

Mistakes recognised: log base 10; the loss of the wrong class, defined as the
predicted class (the largest probability; indistinguishable, hence dropped, when it
is the target); s instead of s - y as the gradient; for a batch, the sum instead of
the mean.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import sympy

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.exercise import Exercise, jsonable, register, require
from deepdrill.model.fields import real
from deepdrill.model.variant import Mistake

from .softmax import (check_logits, draw_logits, exp_steps, logits_shape, numbers, softmax,
                      vector_or_matrix)

DERIVATION_CLASSES = 3  # classes in the symbolic derivation shown on the sheet


def one_hot(target: Any, logits: Any) -> np.ndarray:
    """The target as one-hot rows, (N, n) (N = 1 for one example); ParamError if it does not fit.

    A target shaped like the logits is one-hot; one shaped like the logits without
    their last axis (a number, or N numbers for a batch) holds class indices.
    """
    z = np.asarray(logits, dtype=float)
    n = z.shape[-1]
    t = numbers(target, "target")
    if t.shape == z.shape:
        y = np.atleast_2d(t)
        if not np.all((y == 0) | (y == 1)) or not np.all(y.sum(axis=-1) == 1):
            raise ParamError("a one-hot target needs exactly one 1 per example and 0 elsewhere")
        return y
    if t.shape != z.shape[:-1]:
        raise ParamError(_target_shapes(z))
    idx = np.atleast_1d(t)
    if not np.all(idx == np.round(idx)) or np.any(idx < 0) or np.any(idx >= n):
        raise ParamError(f"class indices count from 0: each target must be a whole number "
                         f"from 0 to {n - 1}")
    return np.eye(n)[idx.astype(int)]


def _target_shapes(z: np.ndarray) -> str:
    n = z.shape[-1]
    if z.ndim == 1:
        return (f"for one example the target is a class index (0 to {n - 1}) or a one-hot "
                f"list of {n} numbers")
    return (f"for a batch of {len(z)} the target is a list of {len(z)} class indices "
            f"(0 to {n - 1}) or {len(z)} one-hot rows of {n} numbers")


def cross_entropy(logits: Any, target: Any, log: Any = np.log) -> dict[str, Any]:
    """probabilities, mean loss and gradient; ``log`` is swappable to reproduce a mistake.

    >>> r = cross_entropy([0.0, 0.0], 1)
    >>> round(r["loss"], 4), r["grad_logits"].tolist()
    (0.6931, [0.5, -0.5])
    """
    z = np.asarray(logits, dtype=float)
    s = softmax(z)
    y = one_hot(target, z)
    s2 = np.atleast_2d(s)
    losses = -log((s2 * y).sum(axis=-1))
    grad = (s2 - y) / len(y)
    return {"probabilities": s, "loss": float(losses.mean()),
            "grad_logits": grad if z.ndim == 2 else grad[0]}


@functools.cache
def derivation(n: int = DERIVATION_CLASSES) -> dict[str, Any]:
    """dL/dz_i for L = -sum_k y_k ln softmax_k(z), derived and simplified with sympy.

    Returns the sympy expressions (symbols, the loss at each step, the raw and the
    simplified derivative for every class) and the LaTeX the solution prints for
    class 0. Uses sum_k y_k = 1, which holds for one-hot and any normalised y.
    """
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

    def tex(expr: sympy.Expr) -> latex.Tex:
        return latex.Tex(sympy.latex(expr, ln_notation=True))

    return {
        "symbols": (z, y), "loss": loss, "raw": raw, "gradient": gradient,
        "tex_loss": tex(loss), "tex_expanded": tex(collected),
        "tex_normalised": tex(collected.subs(y_sum, 1)),
        "tex_one_hot": tex(loss.subs({yk: int(k == 0) for k, yk in enumerate(y)})
                           .expand(force=True)),
        "tex_raw": tex(raw[0]), "tex_grouped": tex(grouped[0]), "tex_gradient": tex(gradient[0]),
    }


@register
class CrossEntropy(Exercise):
    id = "cross_entropy"
    title = "Softmax cross-entropy: loss and gradient"
    summary = "softmax cross-entropy loss and its gradient for one example or a batch"
    params = ("logits", "target")
    # classes None: 3 or 4; batch None: one example; one_hot: draw targets as one-hot lists
    options = {"classes": None, "batch": None, "one_hot": False}
    work_space = "7cm"

    def sample(self, rng, pinned, options):
        p = dict(pinned)
        if "logits" not in p:
            shape = _shape_for_target(rng, p["target"], options) if "target" in p else \
                logits_shape(rng, options)
            p["logits"] = jsonable(draw_logits(rng, shape))
        if "target" not in p:
            z = check_logits(p["logits"])
            idx = rng.integers(0, z.shape[-1], size=z.shape[:-1])
            p["target"] = jsonable(np.eye(z.shape[-1], dtype=int)[idx] if options["one_hot"]
                                   else idx)
        return p

    def check(self, params):
        require(params, *self.params)
        check_logits(params["logits"])
        one_hot(params["target"], params["logits"])
        return {"logits": jsonable(params["logits"]), "target": jsonable(params["target"])}

    def solve(self, params):
        return jsonable(cross_entropy(params["logits"], params["target"]))

    def fields(self, params):
        shape = list(np.shape(params["logits"]))
        batch = len(shape) == 2
        return [real("probabilities", "the softmax probabilities" +
                     (", one row per example" if batch else ""), shape),
                real("loss", "the cross-entropy loss" + (" (mean over the batch)" if batch
                                                         else ""), []),
                real("grad_logits", "the gradient of the loss with respect to the logits" +
                     (", one row per example" if batch else ""), shape)]

    def mistakes(self, params):
        z, t = params["logits"], params["target"]
        right = cross_entropy(z, t)
        s = np.atleast_2d(right["probabilities"])
        y = one_hot(t, z)
        n = len(y)
        out = [
            Mistake("log10", "you used log base 10; cross-entropy uses the natural logarithm",
                    {"loss": cross_entropy(z, t, np.log10)["loss"]}),
            # One reproducible "wrong class": the predicted class (largest probability).
            Mistake("predicted_class", "you took -ln of the probability of the predicted "
                    "(most probable) class instead of the target class",
                    {"loss": float(-np.log(s.max(axis=-1)).mean())}),
            Mistake("grad_is_s", "you gave s as the gradient; the gradient is s - y" +
                    (" (divided by N)" if n > 1 else ""),
                    {"grad_logits": right["probabilities"] / n}),
        ]
        if n > 1:
            out.append(Mistake("summed_over_batch", "you summed over the batch instead of "
                               "taking the mean, so the loss and gradient are N times too large",
                               {"loss": float(-np.log((s * y).sum(axis=-1)).sum()),
                                "grad_logits": s - y}))
        return [Mistake(m.name, m.feedback, jsonable(m.answers)) for m in out]

    def problem(self, params):
        z = np.atleast_2d(params["logits"])
        y = one_hot(params["target"], params["logits"])
        return {"batch": np.ndim(params["logits"]) == 2, "n": len(z), "classes": z.shape[1],
                "rows": [{"z": latex.row(zr), "y": latex.row(yr), "t": int(np.argmax(yr))}
                         for zr, yr in zip(z, y)]}

    def steps(self, params, answers):
        s = np.atleast_2d(answers["probabilities"])
        y = one_hot(params["target"], params["logits"])
        n = len(y)
        targets = np.argmax(y, axis=-1)
        losses = -np.log(s[np.arange(n), targets])
        grads = np.atleast_2d(answers["grad_logits"])
        return {
            "batch": np.ndim(params["logits"]) == 2, "n": n,
            "rows": [exp_steps(r) for r in np.atleast_2d(params["logits"])],
            "terms": [{"t": int(t), "s": latex.num(si[t]), "loss": latex.num(li)}
                      for si, t, li in zip(s, targets, losses)],
            "loss_sum": latex.Tex(" + ".join(latex.num(li) for li in losses)),
            "derivation": derivation(),
            "grads": [{"s": latex.row(si), "y": latex.row(yi), "g": latex.row(gi)}
                      for si, yi, gi in zip(s, y, grads)],
            "answers": {"probabilities": vector_or_matrix(answers["probabilities"]),
                        "loss": latex.num(answers["loss"]),
                        "grad_logits": vector_or_matrix(answers["grad_logits"])},
        }


def _shape_for_target(rng: np.random.Generator, target: Any,
                      options: dict[str, Any]) -> tuple[int, ...]:
    """The shape of logits to draw for a pinned target.

    A number is one example's class; a list of lists holds one-hot rows; a flat list
    is one example's one-hot vector if it is one (and no ``batch`` option is given),
    and a batch's class indices otherwise.
    """
    t = numbers(target, "target")
    if t.ndim == 2 or (t.ndim == 1 and options["batch"] is None and len(t) >= 2
                       and np.all((t == 0) | (t == 1)) and t.sum() == 1):
        return t.shape
    if t.ndim > 2 or t.size == 0:
        raise ParamError("target must be a class index, a one-hot list, or a list of either")
    n = logits_shape(rng, {**options, "batch": None}, min_classes=int(t.max()) + 1)[0]
    return (n,) if t.ndim == 0 else (len(t), n)
