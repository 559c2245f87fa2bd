"""residual_block: y = ReLU(F(x) + x) with F(x) = W2 ReLU(W1 x), forward and backward.

``x`` has d entries, ``weights1`` is h x d and ``weights2`` is d x h (no biases), and
``grad_output`` is dL/dy (d entries). The answers are the output y, dL/dx, and its two
parts: what flows back through F (``grad_through_residual``) and what flows back through
the identity (``grad_through_skip``), which add up to dL/dx.

The steps, with u = F(x) + x the outer pre-activation and delta = dL/du:

* forward: ``hidden_pre`` z = W1 x, ``hidden`` ReLU(z), ``branch`` F = W2 ReLU(z),
  ``preactivation`` u = F + x, ``output`` ReLU(u);
* backward: ``grad_preactivation`` delta = [u > 0] * dL/dy, ``grad_hidden`` W2^T delta,
  ``grad_hidden_pre`` [z > 0] * W2^T delta, ``grad_through_residual`` W1^T of that,
  ``grad_through_skip`` = delta, ``grad_input`` the sum of the two parts (recomputed from a
  student's own parts: carried-forward credit; parts that are all zeros feed nothing).

ReLU'(0) = 0, but random draws never meet it: every value is a whole number and no
pre-activation is 0. A draw is kept when both ReLUs let some units through and block
others (so forgetting either mask shows), dL/du is not all zero, the answers are not
mostly zeros or ones, and every mistake shows. The identity path in the gradient is
derived with sympy once per (d, h) (:func:`derivation`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.backward import (MAX_CONSTANT_SHARE, free_share, nothing_to_add,
                                          refuse_zeros, signed_products, slips_show,
                                          slips_tell_apart)
from deepdrill.generator.backward import residual_derivation as derivation
from deepdrill.generator.exercise import (Exercise, int_option, jsonable, numbers, register,
                                          require)
from deepdrill.generator.randomness import choice, draw_until, ints
from deepdrill.generator.steps import Slip, Step, run
from deepdrill.model.fields import real

DIMS = (2, 3)  # d of a random block
MIN_DIM, MAX_DIM = 2, 4  # the options dim and hidden
MAX_SIDE = 6  # of pinned matrices
X_LOW, X_HIGH = -3, 3
W_LOW, W_HIGH = -2, 2
GRAD_LOW, GRAD_HIGH = -3, 3  # without 0
MAX_VALUE = 1e6
MAX_DRAWS = 1000  # cheap: most candidates fail the mask test after one pass
MAX_ENTRY = 25  # of any drawn step value: sums a student adds up on paper
SIZED = ("hidden_pre", "branch", "preactivation", "grad_hidden", "grad_through_residual",
         "grad_input")
CLIPPED_WEIGHT = 0.25  # an entry the outer ReLU sets to 0, relative to one it lets through


# -- the steps (pure: the grader feeds them a student's own values) -------------------

def vector(v: Any) -> np.ndarray:
    return np.asarray(v, dtype=float)


def matmul(w: Any, v: Any) -> np.ndarray:
    return vector(w) @ vector(v)


def transposed_times(w: Any, v: Any) -> np.ndarray:
    return vector(w).T @ vector(v)


def relu(z: Any) -> np.ndarray:
    return np.maximum(vector(z), 0.0)


def add(a: Any, b: Any) -> np.ndarray:
    return vector(a) + vector(b)


def masked(grad: Any, preactivation: Any) -> np.ndarray:
    """The gradient through a ReLU: kept where the pre-activation is positive
    (ReLU'(0) = 0)."""
    return np.where(vector(preactivation) > 0, vector(grad), 0.0)


def identity(grad: Any) -> np.ndarray:
    return vector(grad)


def both_paths(grad_through_residual: Any, grad_through_skip: Any) -> np.ndarray:
    refuse_zeros(grad_through_residual, grad_through_skip)
    return add(grad_through_residual, grad_through_skip)


GRAPH = (
    Step("hidden_pre", matmul, ("weights1", "x")),
    Step("hidden", relu, ("hidden_pre",)),
    Step("branch", matmul, ("weights2", "hidden")),
    Step("preactivation", add, ("branch", "x")),
    Step("output", relu, ("preactivation",)),
    Step("grad_preactivation", masked, ("grad_output", "preactivation")),
    Step("grad_hidden", transposed_times, ("weights2", "grad_preactivation")),
    Step("grad_hidden_pre", masked, ("grad_hidden", "hidden_pre")),
    Step("grad_through_residual", transposed_times, ("weights1", "grad_hidden_pre")),
    Step("grad_through_skip", identity, ("grad_preactivation",)),
    Step("grad_input", both_paths, ("grad_through_residual", "grad_through_skip")),
)


def residual_only(grad_through_residual: Any, grad_through_skip: Any) -> np.ndarray:
    return vector(grad_through_residual)


def unmasked(grad: Any, preactivation: Any) -> np.ndarray:
    return vector(grad)


SLIPS = (
    Slip("dropped_skip", "you left out the skip path: x also reaches y through the identity, "
         "so dL/dx = (what flows back through F) + dL/du", swaps={"grad_input": residual_only}),
    Slip("forgot_outer_mask", "you did not mask dL/dy with the outer ReLU: dL/du is 0 where "
         "u = F(x) + x <= 0", swaps={"grad_preactivation": unmasked}),
    Slip("forgot_inner_mask", "you did not mask W2^T dL/du with the inner ReLU: it is 0 where "
         "W1 x <= 0", swaps={"grad_hidden_pre": unmasked}),
)


@register
class ResidualBlock(Exercise):
    id = "residual_block"
    title = "Residual block: forward and backward"
    summary = "y = ReLU(W2 ReLU(W1 x) + x): output, and dL/dx through F and the skip path"
    params = ("x", "weights1", "weights2", "grad_output")
    options = {"dim": None, "hidden": None}  # None: d in 2..3, h = d
    work_space = "10cm"
    packages = ("tikz",)
    need_space = r"24\baselineskip"  # the figure stays with the text below it

    def sample(self, rng, pinned, options):
        if pinned.keys() >= set(self.params):
            return dict(pinned)  # the instructor's problem, as given
        d, h = _sizes(rng, pinned, options)

        def draw(r: np.random.Generator) -> dict[str, Any]:
            drawn = {"x": ints(r, d, X_LOW, X_HIGH), "weights1": connected(r, (h, d)),
                     "weights2": connected(r, (d, h)),
                     "grad_output": ints(r, d, GRAD_LOW, GRAD_HIGH, nonzero=True)}
            return jsonable({**drawn, **pinned})

        check_shapes(draw(rng))  # pinned arrays that do not fit together: say so
        return draw_until(rng, draw, self.fair, tries=MAX_DRAWS,
                          refusal=f"no block of size d = {d}, h = {h} found in which both "
                                  f"ReLUs pass some units and block others; pin fewer "
                                  f"parameters or choose other sizes")

    def fair(self, params: dict[str, Any]) -> bool:
        """Both ReLUs block some units and pass at least half (no dead layer, both mask
        slips visible), no pre-activation 0, no value above MAX_ENTRY, dL/dx and its
        residual part without zeros, no free points, and every slip shows and is told
        apart from the others."""
        try:
            self.check(params)
        except ParamError:
            return False
        values = run(GRAPH, params)
        z, u = values["hidden_pre"], values["preactivation"]
        if not (half_blocked(z) and half_blocked(u)) or \
                max(np.abs(values[k]).max() for k in SIZED) > MAX_ENTRY or not np.all(values["grad_through_residual"]) or \
                not np.all(values["grad_input"]):
            return False
        fields = self.fields(params, values)
        return free_share(GRAPH, params, fields, values) <= MAX_CONSTANT_SHARE and \
            slips_show(self, params, fields, values) and \
            slips_tell_apart(self, params, fields, values)

    def check(self, params):
        x, w1, w2, g = check_shapes(params)
        u = w2 @ relu(w1 @ x) + x
        if nothing_to_add(masked(g, u)):
            raise ParamError("no gradient gets through the outer ReLU (dL/du = 0 wherever "
                             "u = F(x) + x > 0): give a grad_output or an x that lets some through")
        return jsonable({k: params[k] for k in self.params})

    def graph(self, params):
        return GRAPH

    def fields(self, params, values):
        d = len(params["x"])
        clipped = np.where(values["preactivation"] > 0, 1.0, CLIPPED_WEIGHT)
        return [real("output", "the block's output y = ReLU(F(x) + x)", [d],
                     entry_weights=clipped),
                real("grad_input", "dL/dx", [d]),
                # two transposed products and the inner mask: most of the backward work
                real("grad_through_residual", "the part of dL/dx that flows back through F "
                     "(the weight layers)", [d], weight=2),
                real("grad_through_skip", "the part of dL/dx that flows back through the "
                     "identity (skip) path", [d], entry_weights=clipped)]

    def slips(self, params):
        return list(SLIPS)

    def problem(self, params):
        w1 = np.asarray(params["weights1"], dtype=float)
        return {"x": latex.matrix(params["x"]), "w1": latex.matrix(w1),
                "w2": latex.matrix(params["weights2"]), "g": latex.matrix(params["grad_output"]),
                "d": w1.shape[1], "h": w1.shape[0]}

    def worked(self, params, values):
        d, h = np.shape(params["weights1"])[::-1]
        w1, w2 = (np.asarray(params[k], dtype=float) for k in ("weights1", "weights2"))
        m = latex.matrix

        def product(w: np.ndarray, v: Any) -> latex.Tex:  # each entry's sum of products
            return m_tex([signed_products(list(zip(row, vector(v)))) for row in w])

        return {
            "z": m(values["hidden_pre"]), "z_sums": product(w1, params["x"]),
            "hidden": m(values["hidden"]), "branch": m(values["branch"]),
            "f_sums": product(w2, values["hidden"]), "u": m(values["preactivation"]),
            "y": m(values["output"]), "x": m(params["x"]), "g": m(params["grad_output"]),
            "w1t": m(w1.T), "w2t": m(w2.T),
            "mask_out": latex.row(vector(values["preactivation"]) > 0),
            "mask_in": latex.row(vector(values["hidden_pre"]) > 0),
            "delta": m(values["grad_preactivation"]),
            "grad_hidden": m(values["grad_hidden"]),
            "gh_sums": product(w2.T, values["grad_preactivation"]),
            "grad_hidden_pre": m(values["grad_hidden_pre"]),
            "gr_sums": product(w1.T, values["grad_hidden_pre"]),
            "residual": m(values["grad_through_residual"]), "skip": m(values["grad_through_skip"]),
            "grad_input": m(values["grad_input"]),
            "derivation": derivation(d, h),
            "answers": {k: latex.row(values[k]) for k in ("output", "grad_input",
                                                          "grad_through_residual",
                                                          "grad_through_skip")},
        }


def connected(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Small whole weights with no row or column of zeros (every unit connected)."""
    while True:
        w = ints(rng, shape, W_LOW, W_HIGH)
        if np.all(np.any(w != 0, axis=0)) and np.all(np.any(w != 0, axis=1)):
            return w


def half_blocked(preactivation: np.ndarray) -> bool:
    """A ReLU layer that blocks some units but at most half, and none at exactly 0."""
    return bool(np.all(preactivation != 0)) and \
        1 <= int(np.sum(preactivation < 0)) <= len(preactivation) // 2


def check_shapes(params: dict[str, Any]) -> tuple[np.ndarray, ...]:
    """x, W1, W2 and dL/dy as arrays that fit together, or ParamError saying what to change."""
    require(params, *ResidualBlock.params)
    x = numbers(params["x"], "x")
    if x.ndim != 1 or not 1 <= len(x) <= MAX_SIDE:
        raise ParamError(f"x must be a list of 1 to {MAX_SIDE} numbers")
    d = len(x)
    w1, w2 = numbers(params["weights1"], "weights1"), numbers(params["weights2"], "weights2")
    if w1.ndim != 2 or w1.shape[1] != d or not 1 <= len(w1) <= MAX_SIDE:
        raise ParamError(f"weights1 must be an h x {d} matrix (h rows of {d} numbers, "
                         f"h from 1 to {MAX_SIDE}): it multiplies x")
    if w2.shape != (d, len(w1)):
        raise ParamError(f"weights2 must be a {d} x {len(w1)} matrix: it maps the "
                         f"{len(w1)} hidden units back to the {d} entries of x")
    g = numbers(params["grad_output"], "grad_output")
    if g.shape != (d,):
        raise ParamError(f"grad_output must be a list of {d} numbers, like x")
    for name, v in (("x", x), ("weights1", w1), ("weights2", w2), ("grad_output", g)):
        if np.abs(v).max() > MAX_VALUE:
            raise ParamError(f"{name} must be numbers of a sheet's size, at most "
                             f"{MAX_VALUE:g} in size")
    return x, w1, w2, g


def m_tex(entries: list[latex.Tex]) -> latex.Tex:
    """A column of already typeset entries (sums of products)."""
    return latex.Tex(r"\begin{bmatrix}" + r" \\ ".join(entries) + r"\end{bmatrix}")


def _sizes(rng: np.random.Generator, pinned: dict[str, Any],
           options: dict[str, Any]) -> tuple[int, int]:
    """d and h: from pinned arrays, else the options, else d drawn and h = d."""
    shapes = {k: numbers(v, k).shape for k, v in pinned.items()}
    d = next((s[-1] if k == "weights1" else s[0] for k, s in shapes.items() if s), None)
    h = next((s[0] if k == "weights1" else s[1] for k, s in shapes.items()
              if k in ("weights1", "weights2") and len(s) == 2), None)
    if d is None:
        d = int_option("dim", options["dim"], MIN_DIM, MAX_DIM) if options["dim"] is not None \
            else choice(rng, DIMS)
    if h is None:
        h = int_option("hidden", options["hidden"], MIN_DIM, MAX_DIM) \
            if options["hidden"] is not None else d
    return int(d), int(h)
