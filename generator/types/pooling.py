"""pooling: max or average pooling forward, and the gradient routed back.

``input`` is (H, W) or (C, H, W) (each channel pooled on its own); ``mode`` is ``max``
or ``avg``; ``size`` is the window side k and ``stride`` defaults to k. Max pooling
sends each window's gradient to its maximum (the first in row-major order on a tie, a
case random draws never produce); average pooling shares it equally, dL/dy / k^2 on
each element. Where windows overlap (stride < k) an input entry collects the gradients
of every window that routes some to it: they add up.

``grad_output`` (dL/dY, shaped like the output) is optional: unless pinned it is drawn
(option ``backward``, default true); pinned to null, or with ``backward: false``, only
the forward ``output`` is asked.

The chain (max pooling only): ``grad_input`` is recomputed from a student's ``output``.
The gradient goes to the element their output names (within 1 %): a student who took
the wrong element as a window's maximum and routed its gradient there was consistent.

Entry weights: input entries no window sends gradient to (all but the maxima under max
pooling) weigh together ``UNREACHED_SHARE`` of ``grad_input``: finding them is one
decision per window, and a blank answer holds their zeros too.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.conv import as_map
from deepdrill.generator.exercise import (Exercise, int_option, jsonable, numbers, register,
                                          require)
from deepdrill.generator.layers import output_size
from deepdrill.generator.pool import (MODES, avg_routes, constant_share, field_shares,
                                      max_routes, picked, pool, reached, scatter, spread_routes,
                                      windows)
from deepdrill.generator.randomness import choice, draw_until, ints
from deepdrill.generator.steps import Slip, Step
from deepdrill.model.fields import real

DEFAULTS = {"mode": "max", "size": 2, "grad_output": None}
LAYOUTS = {False: ((2, 2),), True: ((2, 1), (3, 2))}  # (k, stride) of a random draw: overlap?
OUT_SIDES = (2, 3)  # of a random output
MAX_RANDOM_SIDE = 5  # of a random input (the smallest that fits when none is this small)
MAX_SIDE, MAX_CHANNELS, MAX_VALUE = 8, 3, 1e6
INPUT_LOW, INPUT_HIGH = -3, 9
GRAD_VALUES = (-3, -2, -1, 2, 3)  # of a random dL/dY: no 0, no 1
AVG_GRAD_VALUES = {2: (-4, -3, -2, -1, 2, 3), 3: (-2.7, -1.8, -0.9, 0.9, 1.8, 2.7)}  # / k^2
UNREACHED_SHARE = 0.08  # below MAX_CONSTANT_SHARE: a blank grad_input stays under the bound
MAX_CONSTANT_SHARE = 0.1
MIN_DISTINCT = 3
MAX_DRAWS = 3000  # rarely reached: overlapping max pools find a good draw in ~50 tries


# -- the steps -------------------------------------------------------------------------

def answer_shaped(two_d: bool):
    return (lambda a: a[0]) if two_d else (lambda a: a)


@functools.cache
def pooling_graph(mode: str, two_d: bool, backward: bool) -> tuple[Step, ...]:
    shaped = answer_shaped(two_d)
    steps = [Step("x", as_map, ("input",)),
             Step("output", lambda x, m, k, s: shaped(pool(x, m, k, s)),
                  ("x", "mode", "size", "stride"))]
    if not backward:
        return tuple(steps)
    steps.append(Step("dy", as_map, ("grad_output",)))
    if mode == "max":
        steps += [Step("picked", picked, ("x", "output", "size", "stride")),
                  Step("routes", max_routes, ("dy", "picked", "size"))]
    else:
        steps.append(Step("routes", avg_routes, ("dy", "size")))
    steps.append(Step("grad_input", lambda r, x, s: shaped(scatter(r, x, s)),
                      ("routes", "x", "stride")))
    return tuple(steps)


def mistakes(params: dict[str, Any]) -> list[Slip]:
    if params["grad_output"] is None:
        return []
    shaped = answer_shaped(np.ndim(params["input"]) == 2)
    k = params["size"]
    if params["mode"] == "max":
        out = [Slip("gradient_spread_over_window", "you sent each window's gradient to every "
                    "element of the window; max pooling routes it to the maximum only",
                    swaps={"routes": lambda dy, picked, size: spread_routes(dy, size)}),
               Slip("gradient_averaged_over_window", "you shared each window's gradient "
                    "equally over the window, as average pooling does; max pooling routes all "
                    "of it to the maximum", swaps={"routes": lambda dy, picked, size:
                                                    avg_routes(dy, size)})]
    else:
        out = [Slip("not_divided_by_window_size", f"you did not divide the gradient by the "
                    f"window size: each element of a {k}x{k} window gets dL/dy / {k * k}",
                    swaps={"routes": lambda dy, size: spread_routes(dy, size)})]
    if params["stride"] < k:
        out.append(Slip("overlap_not_summed", "where windows overlap you kept one window's "
                        "gradient; an input entry in several windows gets the sum of what "
                        "each sends it", swaps={"grad_input": lambda r, x, s: shaped(
                            scatter(r, x, s, accumulate=False))}))
    return out


# -- the exercise -----------------------------------------------------------------------

@register
class Pooling(Exercise):
    id = "pooling"
    title = "Pooling: forward and backward"
    summary = "max or average pooling forward, and the gradient routed back"
    params = ("input", "mode", "size", "stride", "grad_output")
    options = {"input_size": None, "channels": 1, "overlap": False, "backward": True}
    work_space = "8cm"
    packages = ("tikz",)
    need_space = r"24\baselineskip"  # the figure stays with the text below it

    def sample(self, rng, pinned, options):
        opts = _options(options)
        p = dict(pinned)
        p.setdefault("mode", choice(rng, list(MODES)))
        if "size" not in p and "stride" not in p:
            p["size"], p["stride"] = choice(rng, list(LAYOUTS[opts["overlap"]]))
        p.setdefault("size", DEFAULTS["size"])
        p.setdefault("stride", p["size"])
        _check_layer(p)
        draw_grad = "grad_output" not in p and opts["backward"]
        p.setdefault("grad_output", None)
        if "input" in p:
            self.check(p)  # the pinned input fits before anything is drawn for it
            if not draw_grad:
                return jsonable(p)
        shape = _shape(rng, p, opts)
        x_pin = p.get("input")

        def draw(r: np.random.Generator) -> dict[str, Any]:
            q = dict(p)
            if x_pin is None:
                x = ints(r, shape, INPUT_LOW, INPUT_HIGH).astype(float)
                q["input"] = x[0] if opts["channels"] == 1 and shape[0] == 1 else x
            if draw_grad:
                out = pool(as_map(q["input"]), q["mode"], q["size"], q["stride"])
                values = GRAD_VALUES if q["mode"] == "max" else AVG_GRAD_VALUES[min(q["size"], 3)]
                g = np.asarray(values)[r.integers(len(values), size=out.shape)]
                q["grad_output"] = g[0] if np.ndim(q["input"]) == 2 else g
            return self.check(jsonable(q))

        return draw_until(rng, draw, lambda q: self._good(q, x_pin is None), tries=MAX_DRAWS,
                          refusal="found no draw for these options with no tied maxima and no "
                                  "free points for a constant answer; use another input size "
                                  "or window, or pin fewer of input and grad_output")

    def check(self, params):
        p = {**DEFAULTS, **params}
        require(p, "input")
        p.setdefault("stride", p["size"])
        if p["stride"] is None:
            p["stride"] = p["size"]
        _check_layer(p)
        x = numbers(p["input"], "input")
        if x.ndim not in (2, 3) or not x.size:
            raise ParamError("input must be 2-D (H, W) or 3-D (C, H, W)")
        if max(x.shape[-2:]) > MAX_SIDE or (x.ndim == 3 and len(x) > MAX_CHANNELS):
            raise ParamError(f"input sides must be at most {MAX_SIDE} and channels at most "
                             f"{MAX_CHANNELS}: pooling by hand")
        if p["size"] > min(x.shape[-2:]):
            raise ParamError(f"the {p['size']}x{p['size']} window does not fit the "
                             f"{x.shape[-2]}x{x.shape[-1]} input")
        out = tuple(output_size(n, p["size"], p["stride"], 0) for n in x.shape[-2:])
        for name in ("input", "grad_output"):
            if p[name] is not None and np.abs(numbers(p[name], name)).max() > MAX_VALUE:
                raise ParamError(f"{name} must be numbers of a sheet's size, at most "
                                 f"{MAX_VALUE:g} in size")
        if p["grad_output"] is not None:
            want = (*x.shape[:-2], *out)
            if np.shape(numbers(p["grad_output"], "grad_output")) != want:
                raise ParamError(f"grad_output must have the output's shape "
                                 f"{'x'.join(map(str, want))}")
        return jsonable(p)

    def graph(self, params):
        return pooling_graph(params["mode"], np.ndim(params["input"]) == 2,
                             params["grad_output"] is not None)

    def fields(self, params, values):
        out = [real("output", f"the {params['mode']}-pooled output Y",
                    list(np.shape(values["output"])))]
        if params["grad_output"] is None:
            return out
        hit = np.ravel(reached(values["routes"], values["x"], params["stride"]))
        share = UNREACHED_SHARE / (1 - UNREACHED_SHARE) * hit.sum() / max(1, (~hit).sum())
        weights = np.where(hit, 1.0, min(1.0, share))
        return [*out, real("grad_input", "dL/dX, the gradient routed back to the input",
                           list(np.shape(values["grad_input"])),
                           entry_weights=None if hit.all() else weights)]

    def slips(self, params):
        return mistakes(params)

    def problem(self, params):
        x = as_map(params["input"])
        k, s = params["size"], params["stride"]
        grad = params["grad_output"]
        return {"two_d": x.ndim == 3 and len(x) == 1 and np.ndim(params["input"]) == 2,
                "figures": [_figure(c, k, s) for c in x], "rows": x.shape[1], "cols": x.shape[2],
                "overlap": s < k, "gaps": s > k,
                "grad_output": None if grad is None else [latex.matrix(g) for g in as_map(grad)]}

    def worked(self, params, values):
        x, k, s = values["x"], params["size"], params["stride"]
        wins = windows(x, k, s)
        y = as_map(values["output"])
        picks = values.get("picked")
        out = {"mode": params["mode"], "k2": k * k, "output": [latex.matrix(m) for m in y],
               "windows": [{"channel": c + 1, "row": i + 1, "col": j + 1,
                            "terms": latex.signed_sum(np.ravel(wins[c, i, j])),
                            "value": latex.num(y[c, i, j])}
                           for c, i, j in np.ndindex(y.shape)],
               "backward": params["grad_output"] is not None}
        if picks is not None:
            out["figures"] = [_figure(ch, k, s, picks[c]) for c, ch in enumerate(x)]
        if out["backward"]:
            dy, routes = values["dy"], values["routes"]
            g = as_map(values["grad_input"])
            out |= {"routes": [{"channel": c + 1, "row": i + 1, "col": j + 1,
                                "dy": latex.num(dy[c, i, j]),
                                "at": None if picks is None else
                                (i * s + int(picks[c, i, j]) // k + 1,
                                 j * s + int(picks[c, i, j]) % k + 1),
                                "share": latex.num(routes[c, i, j, 0, 0])}
                               for c, i, j in np.ndindex(dy.shape)],
                    "sums": _sums(routes, x, s, g),
                    "grad_input": [latex.matrix(m) for m in g]}
        return out

    def _good(self, params: dict[str, Any], input_drawn: bool) -> bool:
        """No tied maxima, at least MIN_DISTINCT outputs, overlaps that add up under max
        pooling, and no free points for a constant answer (overall and per field)."""
        graph = self.graph(params)
        values = self.values(params, graph=graph)
        fields = self.fields(params, values)
        x, k, s = values["x"], params["size"], params["stride"]
        flat = windows(x, k, s).reshape(*values["dy"].shape if "dy" in values else
                                        as_map(values["output"]).shape, -1)
        if params["mode"] == "max" and np.any(np.sum(flat == flat.max(-1, keepdims=True), -1) > 1):
            return False
        y = np.ravel(values["output"])
        if input_drawn and len(np.unique(y)) < min(MIN_DISTINCT, y.size):
            return False
        if params["mode"] == "max" and s < k and "routes" in values and \
                scatter((values["routes"] != 0).astype(float), x, s).max() < 2:
            return False  # no entry is the maximum of two windows: the overlap never adds
        return all(max(field_shares(fields, values, c)) <= MAX_CONSTANT_SHARE and
                   constant_share(graph, params, fields, values, c) <= MAX_CONSTANT_SHARE
                   for c in (0, 1))


# -- parameters and shapes ----------------------------------------------------------------

def _options(options: dict[str, Any]) -> dict[str, Any]:
    out = dict(options)
    if out["input_size"] is not None:
        out["input_size"] = int_option("input_size", out["input_size"], 2, MAX_SIDE)
    out["channels"] = int_option("channels", out["channels"], 1, MAX_CHANNELS)
    for name in ("overlap", "backward"):
        if not isinstance(out[name], bool):
            raise ParamError(f"option {name} must be true or false, not {out[name]!r}")
    return out


def _check_layer(p: dict[str, Any]) -> None:
    if not isinstance(p["mode"], str) or p["mode"] not in MODES:
        raise ParamError(f"mode must be one of {', '.join(MODES)}")
    for name in ("size", "stride"):
        v = p[name]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= MAX_SIDE:
            raise ParamError(f"{name} must be a whole number from 1 to {MAX_SIDE}, not {v!r}")


def _shape(rng: np.random.Generator, p: dict[str, Any], opts: dict[str, Any]) -> tuple:
    """(C, H, W) of the input: pinned, from a pinned grad_output, from the option
    input_size, or drawn so the output side is one of OUT_SIDES."""
    if "input" in p:
        return as_map(numbers(p["input"], "input")).shape
    k, s = p["size"], p["stride"]
    if p["grad_output"] is not None:
        g = numbers(p["grad_output"], "grad_output")
        c = len(g) if g.ndim == 3 else 1
        return (c, *((n - 1) * s + k for n in g.shape[-2:]))
    if opts["input_size"] is not None:
        return (opts["channels"], opts["input_size"], opts["input_size"])
    sides = [(o - 1) * s + k for o in OUT_SIDES]
    sides = [n for n in sides if n <= MAX_RANDOM_SIDE] or sides[:1]
    n = choice(rng, sides)
    return (opts["channels"], n, n)


# -- the figure and the worked sums ---------------------------------------------------------

COLORS = ("blue", "red", "green!50!black", "orange", "violet", "teal", "brown", "magenta",
          "cyan")
INSET = 0.07  # of a window's outline inside its cells; overlapping neighbours alternate
CELL = 0.8  # cm


def _figure(channel: np.ndarray, k: int, s: int, picks: np.ndarray | None = None) -> dict:
    """The input grid with every window outlined (TikZ coordinates: x right, y down) and,
    when given, each window's picked maximum shaded in its colour."""
    h_out, w_out = (output_size(n, k, s, 0) for n in channel.shape)
    boxes, marks = [], []
    for n, (i, j) in enumerate(np.ndindex(h_out, w_out)):
        inset = INSET * (1 + 2 * ((i + j) % 2)) if s < k else INSET
        color = COLORS[n % len(COLORS)]
        boxes.append({"x0": j * s + inset, "y0": i * s + inset, "x1": j * s + k - inset,
                      "y1": i * s + k - inset, "color": color})
        if picks is not None:
            r, c = divmod(int(picks[i, j]), k)
            marks.append({"x": j * s + c, "y": i * s + r, "color": color})
    return {"cells": [{"x": j + 0.5, "y": i + 0.5, "v": latex.num(v)}
                      for (i, j), v in np.ndenumerate(channel)],
            "boxes": boxes, "marks": marks, "w": channel.shape[1], "h": channel.shape[0],
            "unit": CELL}


def _sums(routes: np.ndarray, x: np.ndarray, s: int, grad: np.ndarray) -> list[dict]:
    """Per input entry that several windows send gradient to: the parts and their sum."""
    c_n, h_out, w_out, k, _ = routes.shape
    parts: dict[tuple, list] = {}
    for c, i, j, a, b in np.ndindex(routes.shape):
        if routes[c, i, j, a, b] != 0:
            parts.setdefault((c, i * s + a, j * s + b), []).append(routes[c, i, j, a, b])
    return [{"channel": c + 1, "row": r + 1, "col": q + 1, "terms": latex.signed_sum(v),
             "value": latex.num(grad[c, r, q])}
            for (c, r, q), v in sorted(parts.items()) if len(v) > 1]
