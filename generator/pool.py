"""Pooling, forward and backward, and the no-free-points test of conv2d_backward and pooling.

The kernels work on (C, H, W) maps. A k x k window at output position (i, j) covers
rows i*S .. i*S + k - 1 and columns j*S .. j*S + k - 1 (no padding). The backward pass
is two steps, so a mistake in either is one swapped step: each window's *route* (the
k x k gradient it sends back), then the routes added into the input's shape, where
overlapping windows (S < k) accumulate.

>>> x = np.array([[[1., 5, 2], [3, 4, 0], [2, 1, 6]]])
>>> pool(x, "max", 2, 1).tolist()
[[[5.0, 5.0], [4.0, 6.0]]]
>>> scatter(max_routes(np.ones((1, 2, 2)), picked(x, pool(x, "max", 2, 1), 2, 1), 2), x, 1)[0]
array([[0., 2., 0.],
       [0., 1., 0.],
       [0., 0., 1.]])
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from deepdrill.model.fields import Field
from deepdrill.model.tolerance import default_floor, entries_match

from .steps import Graph, Values, rerun

MODES = ("max", "avg")
MATCH_RTOL = 1e-2  # a student's window value names the element within 1 % of it


def windows(x: Any, size: int, stride: int) -> np.ndarray:
    """(C, H_out, W_out, k, k): the window of every output position."""
    view = sliding_window_view(np.asarray(x, dtype=float), (size, size), axis=(-2, -1))
    return view[..., ::stride, ::stride, :, :]


def pool(x: Any, mode: str, size: int, stride: int) -> np.ndarray:
    """The window maxima or means, (C, H_out, W_out)."""
    w = windows(x, size, stride)
    return w.max(axis=(-2, -1)) if mode == "max" else w.mean(axis=(-2, -1))


def picked(x: Any, output: Any, size: int, stride: int) -> np.ndarray:
    """Per window, the (row-major) index of the element its output value names: the
    element within MATCH_RTOL of it (the nearest), else the window's first maximum.

    A student who took the wrong element as a window's maximum and sent the gradient
    there was consistent: the gradient follows the output they wrote. An output that
    is no element of its window (a slip of the pen) names nothing: the maximum then.
    """
    w = windows(x, size, stride)
    flat = w.reshape(*w.shape[:-2], -1)
    out = np.broadcast_to(np.asarray(output, dtype=float).reshape(w.shape[:-2])[..., None],
                          flat.shape)
    gap = np.abs(flat - out)
    nearest = np.argmin(gap, axis=-1)
    close = np.take_along_axis(gap, nearest[..., None], -1)[..., 0] <= \
        MATCH_RTOL * np.abs(np.take_along_axis(flat, nearest[..., None], -1)[..., 0]) + 1e-12
    return np.where(close, nearest, np.argmax(flat, axis=-1))


def max_routes(grad: Any, picked: np.ndarray, size: int) -> np.ndarray:
    """(C, H_out, W_out, k, k): each window's gradient, all of it on its picked element."""
    one_hot = np.eye(size * size)[picked].reshape(*np.shape(picked), size, size)
    return one_hot * np.asarray(grad, dtype=float)[..., None, None]


def avg_routes(grad: Any, size: int) -> np.ndarray:
    """Each window's gradient shared equally: dL/dy / k^2 on each of its k^2 elements."""
    return spread_routes(grad, size) / (size * size)


def spread_routes(grad: Any, size: int) -> np.ndarray:
    """Each window's whole gradient copied onto every one of its elements."""
    g = np.asarray(grad, dtype=float)
    return np.broadcast_to(g[..., None, None], (*g.shape, size, size)).copy()


def scatter(routes: np.ndarray, x: Any, stride: int, accumulate: bool = True) -> np.ndarray:
    """The routes added into the input's shape (C, H, W): where windows overlap, their
    gradients add up. ``accumulate=False`` writes them in row-major window order instead,
    a later window overwriting an earlier one (the mistake of not summing the overlap)."""
    c, h_out, w_out, k, _ = routes.shape
    out = np.zeros(np.shape(x), dtype=float)
    for i in range(h_out):
        for j in range(w_out):
            block = out[:, i * stride:i * stride + k, j * stride:j * stride + k]
            if accumulate:
                block += routes[:, i, j]
            else:
                block[...] = routes[:, i, j]
    return out


def reached(routes: np.ndarray, x: Any, stride: int) -> np.ndarray:
    """Which input entries some window sends a nonzero gradient to."""
    return scatter((routes != 0).astype(float), x, stride) > 0


# -- no free points ----------------------------------------------------------------------

def constant_share(graph: Graph, params: dict[str, Any], fields: list[Field], values: Values,
                   constant: float) -> float:
    """An upper bound on the share of the points an answer made of one constant earns, as
    the grader gives them: per field, the weighted entries equal to the key, or, when
    every entry equals either the key or the field recomputed from the same constant
    given for the fields before it, all of them (carried-forward credit). Fields here have
    no ``parts``: each reads its own step."""
    given = {f.name: np.full(np.shape(values[f.name]), float(constant)) for f in fields}
    with np.errstate(all="ignore"):
        recomputed = rerun(graph, params, given)
    earned = 0.0
    for f in fields:
        right, w = _matches(f, values[f.name], constant)
        theirs = recomputed.get(f.name)
        if theirs is not None and np.size(theirs) == right.size:
            consistent = _matches(f, theirs, constant, values[f.name])[0]
            if np.all(right | consistent):
                right = np.ones_like(right)
        earned += f.weight * float(w @ right / w.sum())
    return earned / sum(f.weight for f in fields)


def field_shares(fields: list[Field], values: Values, constant: float) -> list[float]:
    """Per field, the weighted share of its entries a constant answer gets right."""
    shares = []
    for f in fields:
        right, w = _matches(f, values[f.name], constant)
        shares.append(float(w @ right / w.sum()))
    return shares


def _matches(f: Field, expected: Any, constant: float,
             key: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Which entries of ``expected`` the constant matches under the field's default
    tolerance (its floor from the ``key``), and the field's entry weights."""
    exp = np.ravel(np.asarray(expected, dtype=float))
    floor = default_floor(np.ravel(np.asarray(expected if key is None else key, dtype=float)),
                          f.tolerance.rtol)
    tol = replace(f.tolerance, atol=max(f.tolerance.atol, floor))
    w = np.ones(exp.size) if f.entry_weights is None else np.asarray(f.entry_weights)
    return entries_match(tol, np.full(exp.size, float(constant)), exp), w
