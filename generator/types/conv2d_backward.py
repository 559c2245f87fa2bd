"""conv2d_backward: the backward pass of a convolution layer (+ optional ReLU).

The parameters are those of ``conv2d_forward`` plus ``grad_output`` (dL/dY, shaped like
the output). The answers: the ``output`` Y, ``grad_preactivation`` dL/dZ (dL/dY where
the ReLU let Z through, 0 elsewhere; dL/dY itself without a ReLU), ``grad_kernel``
dL/dW (the padded input correlated with dL/dZ), ``grad_bias`` dL/db (dL/dZ summed over
the positions, one per filter; asked only when the layer has a bias) and ``grad_input``
dL/dX (a full convolution of dL/dZ with the kernel rotated by 180 degrees).

The forward steps, the parameter checks and the forward draw are ``conv2d_forward``'s.
Unless pinned, the layer has a ReLU and a bias: the mask and the bias gradient are half
the exercise. The chains: ``grad_preactivation`` is recomputed from a student's
``output`` (the ReLU passes the gradient where their output is positive), and the three
gradients from their ``grad_preactivation``. An all-zero output or dL/dZ lets no
gradient through and feeds no later step (no credit for zeros following from zeros).

Draws: small (3x3 or 4x4 input, 2x2 kernel), integers, no pre-activation 0 under the
ReLU, some but not all entries masked, each listed mistake visible, and a constant
answer (all 0 or all 1) earning at most ``MAX_CONSTANT_SHARE``, carried-forward credit
included. Entries whose answer is 0 (masked, clipped) weigh ``CLIPPED_WEIGHT``.
"""

from __future__ import annotations

import functools
from typing import Any

from dataclasses import replace

import numpy as np
import sympy

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.conv import (as_map, crop, input_gradient, kernel_gradient, orient,
                                      rotate, spread_gradient)
from deepdrill.generator.exercise import Exercise, int_option, jsonable, numbers, register
from deepdrill.generator.pool import constant_share, field_shares
from deepdrill.generator.randomness import choice
from deepdrill.generator.steps import NotApplicable, Slip, Step, constant
from deepdrill.generator.types.conv2d_forward import (CLIPPED_WEIGHT, DEFAULTS, GRAPH,
                                                      GRAPH_2D, Conv2dForward, is_2d)
from deepdrill.model.fields import Kind, formula, real

FORWARD = Conv2dForward()  # its checks and draw (the registered instance is the same class)
GRAD_VALUES = (-3, -2, -1, 2, 3)  # of a random dL/dY: no 0 (it would hide the mask), no 1
MIN_SIDE, MAX_SIDE = 2, 5  # a random input side (option size)
MAX_PINNED_SIDE, MAX_VALUE = 8, 1e6  # pinned problems stay sheet-sized
MAX_CHANNELS = 3
MAX_CONSTANT_SHARE = 0.1
Z_MARGIN = 0.5  # no pre-activation closer to 0 under a ReLU (the ReLU'(0) tie)
MIN_DISTINCT = 3  # different values in grad_kernel and grad_input (fewer entries: all)
MAX_DRAWS, GRAD_TRIES = 60, 8  # forward draws, and dL/dY draws per forward draw
BIAS_WEIGHT = 0.5  # grad_bias is one sum per filter
COPY_WEIGHT = 0.25  # grad_preactivation without a ReLU: dL/dY copied
SHORT_SUM = 2  # terms of a sum short enough to print two sums to a line


# -- the steps ----------------------------------------------------------------------

def relu_mask(output: Any) -> np.ndarray:
    """1 where the ReLU let the pre-activation through (output > 0), else 0."""
    mask = (as_map(output) > 0).astype(float)
    if not mask.any():
        raise NotApplicable("every output is 0: no gradient passes the ReLU")
    return mask


def pass_all(output: Any) -> np.ndarray:
    return np.ones_like(as_map(output))


def gate(dy: np.ndarray, mask: np.ndarray, two_d: bool) -> np.ndarray:
    g = dy * mask
    return g[0] if two_d else g


def flowing(grad_preactivation: Any) -> np.ndarray:
    """dL/dZ as (C_out, H_out, W_out); all zeros carry nothing back: no later step."""
    dz = as_map(grad_preactivation)
    if not dz.any():
        raise NotApplicable("dL/dZ is all 0: nothing flows back")
    return dz


def grad_filters(padded: np.ndarray, dz: np.ndarray, filters: np.ndarray,
                 stride: int) -> np.ndarray:
    return kernel_gradient(padded, dz, filters.shape[2:], stride)


def grad_kernel(grad_filters: np.ndarray, flip_kernel: bool, two_d: bool) -> np.ndarray:
    """dL/dK for the kernel as given: rotated back when it was rotated (true convolution)."""
    g = orient(grad_filters, flip_kernel)
    return g[0, 0] if two_d else g


def grad_bias(dz: np.ndarray, bias: Any) -> Any:
    g = dz.sum(axis=(1, 2))
    return g[0] if np.ndim(bias) == 0 else g


def spread(dz: np.ndarray, filters: np.ndarray, padded: np.ndarray, stride: int) -> np.ndarray:
    return spread_gradient(dz, filters.shape[2:], stride, padded.shape[1:])


def grad_input(grad_padded: np.ndarray, padding: int, two_d: bool) -> np.ndarray:
    g = crop(grad_padded, padding)
    return g[0] if two_d else g


@functools.cache
def backward_graph(two_d: bool, relu: bool) -> tuple[Step, ...]:
    if relu:
        dz_steps = (Step("mask", relu_mask, ("output",)),
                    Step("grad_preactivation", lambda dy, m: gate(dy, m, two_d), ("dy", "mask")))
    else:
        dz_steps = (Step("grad_preactivation", lambda dy: dy[0] if two_d else dy, ("dy",)),)
    return (
        *(GRAPH_2D if two_d else GRAPH),
        Step("dy", as_map, ("grad_output",)),
        *dz_steps,
        Step("dz", flowing, ("grad_preactivation",)),
        Step("grad_filters", grad_filters, ("padded", "dz", "filters", "stride")),
        Step("grad_kernel", lambda g, f: grad_kernel(g, f, two_d), ("grad_filters", "flip_kernel")),
        Step("grad_bias", grad_bias, ("dz", "bias")),
        Step("rotated", rotate, ("filters",)),
        Step("spread", spread, ("dz", "filters", "padded", "stride")),
        Step("grad_padded", input_gradient, ("spread", "rotated")),
        Step("grad_input", lambda g, p: grad_input(g, p, two_d), ("grad_padded", "padding")),
    )


# -- the mistakes ---------------------------------------------------------------------

def mistakes(params: dict[str, Any]) -> list[Slip]:
    two_d, flip = is_2d(params), params["flip_kernel"]
    out = []
    if params["activation"] == "relu":
        out += [Slip("ignored_relu_mask", "you ignored the ReLU mask: dL/dZ is dL/dY only where "
                     "the pre-activation was positive, 0 where the ReLU clipped it",
                     swaps={"mask": pass_all}),
                Slip("forgot_relu", "you left out the ReLU (in the output and in the gradient)",
                     change={"activation": "none"})]
    out += [
        Slip("kernel_not_rotated", "you did not rotate the kernel for dL/dX: dL/dX is a full "
             "convolution of dL/dZ with the kernel rotated by 180 degrees",
             swaps={"rotated": lambda filters: np.asarray(filters, dtype=float)}),
        Slip("rotated_grad_kernel",
             "you did not rotate dL/dK back: with true convolution the kernel gradient is the "
             "180-degree rotation of the input correlated with dL/dZ" if flip else
             "you rotated the kernel gradient by 180 degrees: dL/dW is the input correlated "
             "with dL/dZ, no rotation",
             swaps={"grad_kernel": lambda g, f: grad_kernel(g, not f, two_d)}),
    ]
    if params["bias"] is not None:
        out.append(Slip("bias_gradient_averaged", "you averaged dL/dZ for dL/db; the bias is "
                        "added at every position, so its gradient is the sum",
                        swaps={"grad_bias": lambda dz, b: grad_bias(dz, b) /
                               (dz.shape[1] * dz.shape[2])}))
    return out


# -- the derivation (sympy, once per shape) -------------------------------------------

@functools.lru_cache(maxsize=64)
def derivation(c_in: int, h: int, w: int, c_out: int, kh: int, kw: int, stride: int,
               padding: int, flip: bool) -> dict[str, Any]:
    """dL/dK and dL/dX of L = sum of delta * z (delta = dL/dZ) for a convolution of this
    shape, differentiated by sympy: per entry its LaTeX sum of products and the index
    pairs of its terms, (delta index, x index) and (delta index, kernel index)."""
    def grid(prefix: str, *shape: int) -> np.ndarray:
        return np.array([sympy.Symbol(f"{prefix}_" + "_".join(map(str, ix)))
                         for ix in np.ndindex(*shape)], dtype=object).reshape(shape)

    h_out, w_out = _out(h, kh, stride, padding), _out(w, kw, stride, padding)
    x, k, d = grid("x", c_in, h, w), grid("w", c_out, c_in, kh, kw), grid("d", c_out, h_out, w_out)
    xp = np.full((c_in, h + 2 * padding, w + 2 * padding), sympy.Integer(0), dtype=object)
    xp[:, padding:padding + h, padding:padding + w] = x
    f = k[..., ::-1, ::-1] if flip else k
    loss = sympy.Add(*(d[o, i, j] * f[o, c, a, b] * xp[c, i * stride + a, j * stride + b]
                       for o, i, j in np.ndindex(*d.shape) for c, a, b in np.ndindex(c_in, kh, kw)))
    where = {s: ix for arr in (x, k, d) for ix, s in np.ndenumerate(arr)}
    names = {**_names(x, "x", (c_in > 1,)), **_names(k, "w", (c_out > 1, c_in > 1)),
             **_names(d, r"\delta", (c_out > 1,))}

    def entry(symbol: sympy.Symbol) -> dict[str, Any]:
        terms = sorted(sympy.Add.make_args(sympy.diff(loss, symbol)),
                       key=lambda t: [where[s] for s in sorted(t.free_symbols, key=str)])
        terms = [t for t in terms if t != 0]
        pairs = tuple(tuple(where[s] for s in sorted(t.free_symbols, key=str)) for t in terms)
        tex = sympy.latex(sympy.Add(*terms, evaluate=False), order="none",
                          symbol_names=names) if terms else "0"
        return {"name": latex.Tex(names[symbol]), "sum": latex.Tex(tex), "pairs": pairs}

    return {"kernel": {ix: entry(s) for ix, s in np.ndenumerate(k)},
            "input": {ix: entry(s) for ix, s in np.ndenumerate(x)},
            "delta": {ix: latex.Tex(names[s]) for ix, s in np.ndenumerate(d)}}


def _out(n: int, k: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - k) // stride + 1


def _names(arr: np.ndarray, letter: str, channels: tuple[bool, ...]) -> dict[Any, str]:
    """x_{ij}, x^{(c)}_{ij}, w^{(o,c)}_{kl}: 1-based, channels only where there are several."""
    out = {}
    for ix, s in np.ndenumerate(arr):
        lead = [str(i + 1) for i, show in zip(ix[:-2], channels) if show]
        sup = f"^{{({','.join(lead)})}}" if lead else ""
        out[s] = f"{letter}{sup}_{{{ix[-2] + 1}{ix[-1] + 1}}}"
    return out


# -- the kernel gradient as formulas (a single-row problem, the parameter `formula`) ---------
# dL/dk_j = sum_i d_i x_(i+j-1) with d = dL/dZ: each entry a sum of products in the symbols
# x_1..x_n and d_1..d_m, typed as text and graded by meaning.

MAX_FORMULA_KERNEL = 3


def kernel_formula(j: int, m: int, shift: int = 0, drop_last: bool = False) -> str:
    """dL/dk_j written out: d_1*x_j + d_2*x_(j+1) + ...; ``shift`` moves every x index (the
    rotated kernel's), ``drop_last`` leaves out the last product."""
    terms = [f"d_{i}*x_{i + j - 1 + shift}" for i in range(1, m + 1)]
    return " + ".join(terms[:-1] if drop_last and m > 1 else terms)


def formula_steps(k: int, m: int) -> tuple[Step, ...]:
    return tuple(Step(f"grad_kernel_formula_{j}", constant(kernel_formula(j, m)), ())
                 for j in range(1, k + 1))


def formula_slips(k: int, m: int) -> dict[str, dict[str, Any]]:
    """The formula steps each slip swaps: the rotated kernel gradient, and a product left out."""
    return {"rotated_grad_kernel": {f"grad_kernel_formula_{j}": constant(
                kernel_formula(j, m, shift=k + 1 - 2 * j)) for j in range(1, k + 1)},
            "formula_missing_term": {f"grad_kernel_formula_{j}": constant(
                kernel_formula(j, m, drop_last=True)) for j in range(1, k + 1)}}


def formula_sizes(params: dict[str, Any]) -> tuple[int, int, int]:
    """(n, k, m): the input's, the kernel's and the output's lengths of a single-row problem."""
    n, k = np.shape(params["input"])[-1], np.shape(params["kernel"])[-1]
    return n, k, n - k + 1


def check_formula(p: dict[str, Any]) -> None:
    if not isinstance(p["formula"], bool):
        raise ParamError("formula must be true or false (true also asks each dL/dk_j as a sum "
                         "of products)")
    if not p["formula"]:
        return
    x, k = np.asarray(p["input"]), np.asarray(p["kernel"])
    if not (x.ndim == 2 and x.shape[0] == 1 and k.ndim == 2 and k.shape[0] == 1 and
            k.shape[1] <= MAX_FORMULA_KERNEL and p["stride"] == 1 and p["padding"] == 0 and
            not p["flip_kernel"] and p["activation"] == "none"):
        raise ParamError(f"formula asks dL/dk_j of a 1-D convolution: pin a single-row input "
                         f"and a single-row kernel of at most {MAX_FORMULA_KERNEL} entries, "
                         f"with stride 1, padding 0, no ReLU and no flip")


# -- the exercise ---------------------------------------------------------------------

@register
class Conv2dBackward(Exercise):
    id = "conv2d_backward"
    title = "Convolution layer: backward pass"
    summary = "backward pass of a convolution (+ ReLU): dL/dZ, dL/dW, dL/db and dL/dX"
    params = ("input", "kernel", "bias", "stride", "padding", "activation", "flip_kernel",
              "grad_output", "formula")
    options = {"size": None, "kernel_size": 2, "in_channels": 1, "out_channels": 1,
               "bias": True}
    work_space = "12cm"

    def sample(self, rng, pinned, options):
        opts = _options(options)
        _check_size(pinned)
        given = {**pinned, "activation": pinned.get("activation", "relu")}
        forward_pinned = {k: v for k, v in given.items() if k != "grad_output"}
        forward_options = {**opts, "size": _size(rng, given, opts)}
        kernel_drawn = "kernel" not in pinned
        for _ in range(MAX_DRAWS):
            p = FORWARD.sample(rng, forward_pinned, forward_options)
            for _ in range(GRAD_TRIES):
                grad = given["grad_output"] if "grad_output" in given else _draw_grad(rng, p)
                q = self.check({**p, "grad_output": grad})
                if "grad_output" in pinned and not kernel_drawn and "input" in pinned:
                    return q  # the instructor's problem, as given
                if self._good(q, kernel_drawn, "grad_output" not in pinned):
                    return q
        raise ParamError("found no draw for these options with some but not all entries "
                         "masked, every listed mistake visible and no free points for a "
                         "constant answer; use a larger size, another kernel size or more "
                         "channels, or pin fewer of input, kernel, bias and grad_output")

    def check(self, params):
        p = {**DEFAULTS, "activation": "relu", **params}
        formula = p.pop("formula", False)
        p = {**FORWARD.check({k: v for k, v in p.items() if k != "grad_output"}),
             "grad_output": p.get("grad_output")}
        check_formula({**p, "formula": formula})
        _check_size(p)
        for name in ("input", "kernel", "bias", "grad_output"):
            if p[name] is not None and np.abs(numbers(p[name], name)).max() > MAX_VALUE:
                raise ParamError(f"{name} must be numbers of a sheet's size, at most "
                                 f"{MAX_VALUE:g} in size")
        if p["grad_output"] is None:
            raise ParamError("missing parameter 'grad_output' (dL/dY, shaped like the output)")
        z = FORWARD.values(p)["preactivation"]
        want = z.shape[1:] if is_2d(p) else z.shape
        if np.shape(p["grad_output"]) != want:
            raise ParamError(f"grad_output must have the output's shape "
                             f"{'x'.join(map(str, want))}, not "
                             f"{'x'.join(map(str, np.shape(p['grad_output']))) or 'a number'}")
        mask = z > 0 if p["activation"] == "relu" else np.ones(z.shape, dtype=bool)
        if not np.any(mask * as_map(p["grad_output"])):
            raise ParamError("no gradient flows back: dL/dY is 0 wherever the ReLU lets the "
                             "pre-activation through; change grad_output, the input or the kernel")
        return jsonable({**p, "formula": True} if formula else p)  # absent when false: keys
        # built before the parameter existed stay as they were

    def graph(self, params):
        graph = backward_graph(is_2d(params), params["activation"] == "relu")
        if params.get("formula"):
            _, k, m = formula_sizes(params)
            graph = (*graph, *formula_steps(k, m))
        return graph

    def fields(self, params, values):
        def weights(name: str) -> Any:
            w = np.where(np.ravel(values[name]) == 0, CLIPPED_WEIGHT, 1.0)
            return None if np.all(w == 1) else w

        relu = params["activation"] == "relu"
        shape = lambda name: list(np.shape(values[name]))  # noqa: E731
        out = [real("output", "the output feature map Y", shape("output"),
                    entry_weights=weights("output")),
               real("grad_preactivation", "dL/dZ, the gradient at the pre-activation Z" +
                    (" (through the ReLU)" if relu else " (no ReLU: dL/dY)"),
                    shape("grad_preactivation"), 1.0 if relu else COPY_WEIGHT,
                    entry_weights=weights("grad_preactivation")),
               real("grad_kernel", "dL/dW, the gradient of the kernel", shape("grad_kernel"),
                    entry_weights=weights("grad_kernel"))]
        if params["bias"] is not None:
            out.append(real("grad_bias", "dL/db, the gradient of the bias" +
                            (" (one per filter)" if np.ndim(params["bias"]) else ""),
                            shape("grad_bias"), BIAS_WEIGHT))
        out.append(real("grad_input", "dL/dX, the gradient of the input", shape("grad_input"),
                        entry_weights=weights("grad_input")))
        if params.get("formula"):
            n, k, m = formula_sizes(params)
            symbols = (*(f"x_{i}" for i in range(1, n + 1)), *(f"d_{i}" for i in range(1, m + 1)))
            out += [formula(f"grad_kernel_formula_{j}", f"dL/dk_{j} as a sum of products of "
                            f"the x_i and the d_i = dL/dY_i", symbols) for j in range(1, k + 1)]
        return out

    def slips(self, params):
        slips = mistakes(params)
        if not params.get("formula"):
            return slips
        _, k, m = formula_sizes(params)
        extra = formula_slips(k, m)
        slips = [replace(s, swaps={**s.swaps, **extra[s.name]}) if s.name in extra else s
                 for s in slips]
        return [*slips, Slip("formula_missing_term", "you left a product out of the sum: dL/dk_j "
                             "has one term for every output position", swaps=extra[
                                 "formula_missing_term"])]

    def problem(self, params):
        out = {**FORWARD.problem(params),
               "grad_output": [latex.matrix(g) for g in as_map(params["grad_output"])],
               "formula": None}
        if params.get("formula"):
            n, k, m = formula_sizes(params)
            out["formula"] = {"n": n, "k": k, "m": m,
                              "answers": [latex.Tex(kernel_formula(j, m).replace("*", r"\,"))
                                          for j in range(1, k + 1)]}
        return out

    def worked(self, params, values):
        x, dz = values["x"], values["dz"]
        kernel = orient(params["kernel"], False)
        c_out, c_in, kh, kw = kernel.shape
        d = derivation(c_in, *x.shape[1:], c_out, kh, kw, params["stride"], params["padding"],
                       params["flip_kernel"])
        gk = np.reshape(values["grad_kernel"], kernel.shape)
        gx = np.reshape(values["grad_input"], x.shape)

        def entries(table: dict, numbers: tuple[np.ndarray, np.ndarray], answer: np.ndarray):
            return [{**table[ix], "numbers": products(
                [(numbers[0][a], numbers[1][b]) for a, b in table[ix]["pairs"]]),
                "value": latex.num(answer[ix])} for ix in np.ndindex(answer.shape)]

        relu = params["activation"] == "relu"
        return {
            "forward": FORWARD.worked(params, values), "relu": relu, "two_d": is_2d(params),
            "mask": [latex.matrix(m) for m in values["mask"]] if relu else [],
            "dy": [latex.matrix(m) for m in values["dy"]],
            "dz": [latex.matrix(m) for m in dz],
            "kernel_rows": _rows(entries(d["kernel"], (dz, x), gk)),
            "bias": [{"terms": latex.signed_sum(np.ravel(g)), "value": latex.num(b)}
                     for g, b in zip(dz, np.atleast_1d(values["grad_bias"]))]
            if params["bias"] is not None else [],
            "rotated": [[latex.matrix(m) for m in ko] for ko in values["rotated"]],
            "spread": [latex.matrix(m) for m in values["spread"]],
            "grad_padded": [latex.matrix(m) for m in values["grad_padded"]]
            if params["padding"] else [],
            "input_rows": _rows(entries(d["input"], (dz, kernel), gx)),
            "grad_kernel": [[latex.matrix(m) for m in ko] for ko in gk],
            "grad_input": [latex.matrix(m) for m in gx],
            "multi_in": c_in > 1, "multi_out": c_out > 1,
        }

    def _good(self, params: dict[str, Any], kernel_drawn: bool, grad_drawn: bool) -> bool:
        """Some but not all entries masked, no pre-activation near 0, every mistake visible
        (for a drawn kernel), varied gradients and no free points for a constant answer: in
        all (carried-forward credit included), and in each field but a pinned dL/dY's copy."""
        if kernel_drawn and not np.all(np.asarray(params["kernel"]) != 0):
            return False  # a zero weight drops a term from every sum: a thinner exercise
        graph = self.graph(params)
        values = self.values(params, graph=graph)
        # the numbers' fields (a formula earns nothing for a constant, and its mistakes are
        # the kernel gradient's)
        fields = [f for f in self.fields(params, values) if f.kind is not Kind.EXPRESSION]
        if params["activation"] == "relu":
            z = values["preactivation"]
            if np.any(np.abs(z) < Z_MARGIN) or np.all(values["mask"]) or not np.any(values["mask"]):
                return False
        for name in ("grad_kernel", "grad_input"):
            v = np.ravel(values[name])
            if len(np.unique(v)) < min(MIN_DISTINCT, v.size):
                return False
        own = [f for f in fields if grad_drawn or f.name != "grad_preactivation"]
        if any(max(field_shares(own, values, c)) > MAX_CONSTANT_SHARE or
               constant_share(graph, params, fields, values, c) > MAX_CONSTANT_SHARE
               for c in (0, 1)):
            return False
        return not kernel_drawn or _told_apart(self, params, fields, values)


def products(pairs: list[tuple[float, float]]) -> latex.Tex:
    """``3\\cdot 2 + (-2)\\cdot 1``: the numbers of a sum of products (0 for none)."""
    return latex.Tex(" + ".join(rf"{latex.term(a)}\cdot {latex.term(b)}" for a, b in pairs)
                     or "0")


def _rows(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The entries two to a line when their sums are short (SHORT_SUM terms at most)."""
    per_line = 2 if max(len(e["pairs"]) for e in entries) <= SHORT_SUM else 1
    return [entries[i:i + per_line] for i in range(0, len(entries), per_line)]


def _told_apart(ex: Exercise, params: dict[str, Any], fields: list, values: dict) -> bool:
    """Every slip changes some answer clearly (by more than 5 %), and none gives, on every
    field it changes, what an earlier slip gives there (the grader, naming the mistake
    that explains the most fields, would name the earlier one)."""
    made: list[dict[str, np.ndarray]] = []
    for slip in ex.slips(params):
        try:
            wrong = ex.values(params, [slip])
        except NotApplicable:
            continue  # cannot be made here at all: nothing to tell apart
        changed = {f.name: np.asarray(wrong[f.name], dtype=float) for f in fields
                   if not _near(np.asarray(wrong[f.name], dtype=float),
                                np.asarray(values[f.name], dtype=float))}
        if not changed or any(all(_near(a, other[n]) for n, a in changed.items())
                              for other in made):
            return False
        made.append({f.name: np.asarray(wrong[f.name], dtype=float) for f in fields})
    return True


def _near(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=0.05, atol=0.05))


def _check_size(p: dict[str, Any]) -> None:
    """ParamError for a pinned input or kernel too large for a backward pass by hand."""
    for name in ("input", "kernel"):
        shape = np.shape(p.get(name, []))
        if len(shape) >= 2 and (max(shape[-2:]) > MAX_PINNED_SIDE or
                                max(shape[:-2], default=1) > 2 * MAX_CHANNELS):
            raise ParamError(f"{name} sides must be at most {MAX_PINNED_SIDE} and channels at "
                             f"most {2 * MAX_CHANNELS}: a backward pass by hand")


def _options(options: dict[str, Any]) -> dict[str, Any]:
    out = dict(options)
    for name, low, high in (("size", MIN_SIDE, MAX_SIDE), ("kernel_size", 1, 3),
                            ("in_channels", 1, MAX_CHANNELS), ("out_channels", 1, MAX_CHANNELS)):
        if out[name] is not None:
            out[name] = int_option(name, out[name], low, high)
    if not isinstance(out["bias"], bool):
        raise ParamError(f"option bias must be true or false, not {out['bias']!r}")
    return out


def _size(rng: np.random.Generator, p: dict[str, Any], opts: dict[str, Any]) -> int | None:
    """The input side: the option, or the one that gives a pinned dL/dY's output side, or
    drawn among those giving a 2x2 or 3x3 output with no input row left unused (its
    gradient would be all 0); None (conv2d_forward's choice) when there is none."""
    if opts["size"] is not None or "input" in p:
        return opts["size"]
    stride, padding = p.get("stride", 1), p.get("padding", 0)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (stride, padding)) or \
            stride < 1 or padding < 0:
        return None  # check() says what is wrong
    k = np.shape(p["kernel"])[-1] if "kernel" in p else opts["kernel_size"] or 2
    if "grad_output" in p and np.ndim(p["grad_output"]) >= 2:
        return max(1, (np.shape(p["grad_output"])[-1] - 1) * stride + k - 2 * padding)
    sides = [n for n in range(max(MIN_SIDE, k - 2 * padding), MAX_SIDE + 1)
             if 2 <= _out(n, k, stride, padding) <= 3 and (n + 2 * padding - k) % stride == 0]
    return choice(rng, sides) if sides else None


def _draw_grad(rng: np.random.Generator, p: dict[str, Any]) -> Any:
    z = FORWARD.values(FORWARD.check(p))["preactivation"]
    g = np.asarray(GRAD_VALUES)[rng.integers(len(GRAD_VALUES), size=z.shape)]
    return jsonable(g[0] if is_2d(p) else g)
