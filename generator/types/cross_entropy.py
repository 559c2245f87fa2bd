"""cross_entropy: softmax cross-entropy loss and its gradient, for one example or a batch.

The target is a class index (0-based) or a one-hot list; for a batch, a list of either.
The loss uses the natural logarithm and averages over the batch, so the gradient is
(s - y) / N. The formula dL/dz_i = s_i - y_i is derived with sympy for the worked
solution (:func:`derivation`), not typed in.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import sympy

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.exercise import Exercise, jsonable, register
from deepdrill.generator.fields import real
from deepdrill.generator.randomness import choice
from deepdrill.generator.variant import Mistake

from .softmax import check_logits, draw_logits, exp_steps, softmax

DERIVATION_CLASSES = 3  # classes in the symbolic derivation shown on the sheet


def one_hot(target: Any, logits: Any) -> np.ndarray:
    """Targets as a one-hot array shaped like the logits (ParamError if they do not fit)."""
    z = np.asarray(logits, dtype=float)
    rows, n = np.atleast_2d(z).shape
    t = np.asarray(target)
    if t.ndim == z.ndim and t.shape == z.shape:  # one-hot given
        y = np.atleast_2d(t.astype(float))
        if not np.all((y == 0) | (y == 1)) or not np.all(y.sum(axis=-1) == 1):
            raise ParamError("a one-hot target needs exactly one 1 per example, the rest 0")
        return y
    idx = np.atleast_1d(t)
    if idx.ndim != 1 or len(idx) != rows or not np.all(idx == np.round(idx)):
        raise ParamError("target must be a class index per example (0-based) or one-hot rows "
                         "shaped like the logits")
    idx = idx.astype(int)
    if np.any(idx < 0) or np.any(idx >= n):
        raise ParamError(f"class indices run from 0 to {n - 1}")
    return np.eye(n)[idx]


def cross_entropy(logits: Any, target: Any, log: Any = np.log) -> dict[str, Any]:
    """probabilities, mean loss and gradient; ``log`` is swappable to reproduce mistakes."""
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
    """dL/dz_1 for L = -sum_k y_k log softmax_k(z), derived and simplified with sympy.

    Returns the sympy expressions and their LaTeX: the loss written out, the raw
    derivative, and the derivative once sum_k y_k = 1 is used.
    """
    z = sympy.symbols(f"z_1:{n + 1}", real=True)
    y = sympy.symbols(f"y_1:{n + 1}", real=True)
    total = sum(sympy.exp(zj) for zj in z)
    loss = -sum(yk * sympy.log(sympy.exp(zk) / total) for yk, zk in zip(y, z))
    loss_expanded = sympy.expand(sympy.expand_log(loss, force=True))
    raw = sympy.diff(loss_expanded, z[0])
    simplified = sympy.simplify(raw.subs(y[-1], 1 - sum(y[:-1])))
    s1 = sympy.exp(z[0]) / total
    if sympy.simplify(simplified - (s1 - y[0])) != 0:
        raise AssertionError("sympy did not reduce dL/dz_1 to s_1 - y_1")
    return {
        "symbols": (z, y), "loss": loss_expanded, "raw": raw, "gradient": simplified,
        "tex_loss": latex.Tex(sympy.latex(loss_expanded)),
        "tex_raw": latex.Tex(sympy.latex(raw)),
        "tex_gradient": latex.Tex(sympy.latex(simplified)),
    }


@register
class CrossEntropy(Exercise):
    id = "cross_entropy"
    title = "Softmax cross-entropy: loss and gradient"
    summary = "softmax cross-entropy loss and its gradient for one example or a batch"
    params = ("logits", "target")
    options = {"classes": None, "batch": None, "one_hot": False}
    work_space = "6cm"

    def sample(self, rng, pinned, options):
        p = dict(pinned)
        if "logits" not in p:
            classes = options["classes"] or choice(rng, [3, 4])
            shape = (int(options["batch"]), classes) if options["batch"] else (classes,)
            p["logits"] = jsonable(draw_logits(rng, shape))
        if "target" not in p:
            z = np.atleast_2d(p["logits"])
            idx = rng.integers(0, z.shape[1], size=z.shape[0])
            if options["one_hot"]:
                t = np.eye(z.shape[1], dtype=int)[idx]
            else:
                t = idx
            p["target"] = jsonable(t if np.ndim(p["logits"]) == 2 else t[0])
        return p

    def check(self, params):
        for name in self.params:
            if name not in params:
                raise ParamError(f"missing parameter {name!r}")
        check_logits(params["logits"])
        one_hot(params["target"], params["logits"])
        return {"logits": jsonable(params["logits"]), "target": jsonable(params["target"])}

    def solve(self, params):
        return jsonable(cross_entropy(params["logits"], params["target"]))

    def fields(self, params):
        shape = list(np.shape(params["logits"]))
        return [real("probabilities", "the softmax probabilities", shape),
                real("loss", "the cross-entropy loss" +
                     (" (mean over the batch)" if len(shape) == 2 else ""), []),
                real("grad_logits", "the gradient of the loss with respect to the logits", shape)]

    def mistakes(self, params):
        z, t = params["logits"], params["target"]
        right = cross_entropy(z, t)
        s = np.atleast_2d(right["probabilities"])
        n = len(s)
        out = [
            Mistake("log10", "you used log base 10; cross-entropy uses the natural logarithm",
                    {"loss": cross_entropy(z, t, np.log10)["loss"]}),
            Mistake("wrong_class", "you took the loss of the most probable class instead of "
                    "the target class", {"loss": float(-np.log(s.max(axis=-1)).mean())}),
            Mistake("grad_is_s", "you gave s as the gradient; it is s - y",
                    {"grad_logits": jsonable(right["probabilities"] / n)}),
        ]
        if n > 1:
            y = one_hot(t, z)
            out.append(Mistake("no_batch_mean", "you summed over the batch instead of averaging",
                               {"loss": float(-np.log((s * y).sum(axis=-1)).sum()),
                                "grad_logits": jsonable(s - y)}))
        return [Mistake(m.name, m.feedback, jsonable(m.answers)) for m in out]

    def problem(self, params):
        z = np.atleast_2d(params["logits"])
        y = one_hot(params["target"], params["logits"])
        return {"batch": np.ndim(params["logits"]) == 2,
                "rows": [{"z": latex.row(zr), "y": latex.row(yr), "t": int(np.argmax(yr))}
                         for zr, yr in zip(z, y)]}

    def steps(self, params, answers):
        s = np.atleast_2d(answers["probabilities"])
        y = one_hot(params["target"], params["logits"])
        t = np.argmax(y, axis=-1)
        terms = [{"t": int(ti) + 1, "s": latex.num(si[ti]), "l": latex.num(-np.log(si[ti]))}
                 for si, ti in zip(s, t)]
        grads = np.atleast_2d(answers["grad_logits"])
        return {
            "rows": [exp_steps(r) for r in np.atleast_2d(params["logits"])],
            "terms": terms, "n": len(s), "loss": latex.num(answers["loss"]),
            "derivation": derivation(),
            "grads": [{"s": latex.row(si), "y": latex.row(yi), "g": latex.row(gi)}
                      for si, yi, gi in zip(s, y, grads)],
        }
