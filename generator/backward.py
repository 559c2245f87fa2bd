"""Shared by the backward-pass types (``batchnorm_backward``, ``residual_block``): the
checks that a drawn variant is fair to a student working by hand, and the sympy
derivations their worked solutions print (built once per shape, then cached).

A drawn variant is kept only when it passes these checks, each run on a candidate's own
graph, fields and step values:

* :func:`free_share`: the share of the points a constant answer (all 0 or all 1) would
  earn, counting the carried-forward credit the grader gives a later field that is
  consistent with the constants written in the earlier ones;
* :func:`survives_rounding`: a student who rounds every intermediate to three
  significant figures still gets every field within its tolerance (formulas that
  subtract nearly equal numbers can amplify those roundings);
* :func:`slips_show`: every recognisable mistake changes some field, so each one the
  catalogue lists can be told apart on this variant; :func:`slips_tell_apart`: no field's
  wrong value is the work of two different mistakes (or pairs), so the one named is the
  one made.

They mirror the grader's rules (the default tolerance floor, whole-step consistency
for carried credit) without importing it: the generator never depends on the grader.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import sympy

from deepdrill.generator import latex
from deepdrill.generator.steps import (Graph, NotApplicable, Values, ancestors, by_hand, index,
                                       rerun, run)
from deepdrill.model.fields import Field, flatten
from deepdrill.model.tolerance import Mode, Tolerance, default_floor, entries_match

MAX_CONSTANT_SHARE = 0.1  # of the points a constant answer may earn
CONSTANTS = (0.0, 1.0)  # the constant answers a student may try
CANCELLATION = 1e-12  # relative size below which a difference is rounding residue


def snap(values: Any, scale: Any) -> np.ndarray:
    """Rounding residue of a cancellation (0.3 - 0.1 - 0.2 = 6e-17) set to the exact 0."""
    values = np.asarray(values, dtype=float)
    return np.where(np.abs(values) <= CANCELLATION * np.asarray(scale, dtype=float), 0.0, values)


def nothing_to_add(*parts: Any) -> bool:
    """Whether every part of a sum is all zeros: adding zeros is no work, and a sum step
    that refuses them gives a blank (all-zero) answer no carried-forward credit."""
    return all(not np.any(np.asarray(p, dtype=float)) for p in parts)


def refuse_zeros(*parts: Any) -> None:
    if nothing_to_add(*parts):
        raise NotApplicable("only zeros to add up")


def signed_products(pairs: Sequence[tuple[Any, Any]]) -> latex.Tex:
    r"""``3\cdot (-1.5) - 2\cdot 0.5 + 1\cdot 2``: a sum of products as a student writes it,
    the sign of each first factor as the operator between terms.

    >>> print(signed_products([(3, -1.5), (-2, 0.5)]))
    3\cdot (-1.5) - 2\cdot 0.5
    """
    terms = []
    for i, (a, b) in enumerate(pairs):
        a = float(a)
        product = rf"{latex.num(abs(a) if i else a)}\cdot {latex.term(b)}"
        terms.append(product if not i else f"{'-' if a < 0 else '+'} {product}")
    return latex.Tex(" ".join(terms))


def tex(expr: sympy.Basic) -> latex.Tex:
    """A sympy expression as trusted LaTeX."""
    return latex.Tex(sympy.latex(expr))


# -- fairness checks on a candidate variant ----------------------------------------------

def keyed_tolerance(f: Field, answer: Any) -> Tolerance:
    """The field's tolerance as the variant stores it: a real field without an absolute
    floor gets the default one, scaled to its answer (as make_variant sets it)."""
    tol = f.tolerance
    if tol.mode is Mode.RELABS and not tol.atol:
        tol = replace(tol, atol=float(f"{default_floor(flatten(answer), tol.rtol):.2g}"))
    return tol


def _flat(value: Any) -> np.ndarray:
    return np.ravel(np.asarray(value, dtype=float))


def _key(f: Field, values: Values) -> np.ndarray:
    return np.concatenate([_flat(values[s]) for s in f.steps])


def _matches(f: Field, given: Any, expected: Any, key: np.ndarray) -> np.ndarray:
    """Entries of ``given`` within the field's tolerance (its floor set from ``key``)."""
    return entries_match(keyed_tolerance(f, key), _flat(given), _flat(expected))


def free_share(graph: Graph, params: dict[str, Any], fields: Sequence[Field],
               values: Values) -> float:
    """The largest share of the points that writing one constant everywhere earns: per
    entry where the key is that constant, and per whole field where the field follows
    from the constants written in the fields it depends on (carried-forward credit)."""
    by_name = index(graph)
    owned = {s for f in fields for s in f.steps}
    total = sum(f.weight for f in fields)
    worst = 0.0
    for c in CONSTANTS:
        given = {s: np.full(np.shape(values[s]), c) for s in owned}
        recomputed = rerun(graph, params, given)
        earned = 0.0
        for f in fields:
            key = _key(f, values)
            w = np.ones(key.size) if f.entry_weights is None else np.asarray(f.entry_weights)
            right = _matches(f, np.full(key.size, c), key, key)
            chained = any(ancestors(by_name, s) & owned for s in f.steps)
            if chained and all(s in recomputed for s in f.steps):
                theirs = np.concatenate([_flat(recomputed[s]) for s in f.steps])
                if np.all(_matches(f, np.full(key.size, c), theirs, key)):
                    right[:] = True
            earned += f.weight * float(w[right].sum() / (w.sum() or 1.0))
        worst = max(worst, earned / total)
    return worst


def survives_rounding(graph: Graph, params: dict[str, Any], fields: Sequence[Field],
                      values: Values) -> bool:
    """Whether a student who rounds every step to three significant figures gets every
    field within its tolerance."""
    try:
        rounded = run(graph, params, rounding=by_hand)
    except NotApplicable:
        return False
    return all(np.all(_matches(f, _key(f, rounded), key, key))
               for f in fields for key in [_key(f, values)])


def slips_show(exercise: Any, params: dict[str, Any], fields: Sequence[Field],
               values: Values) -> bool:
    """Whether every slip of the type changes some field beyond its tolerance here."""
    for slip in exercise.slips(params):
        try:
            wrong = exercise.values(params, [slip])
        except NotApplicable:
            return False
        if all(np.all(_matches(f, _key(f, wrong), key, key))
               for f in fields for key in [_key(f, values)]):
            return False
    return True


def slips_tell_apart(exercise: Any, params: dict[str, Any], fields: Sequence[Field],
                     values: Values) -> bool:
    """Whether the grader, which names single slips first and then pairs, can only name
    slips a student made: no wrong value of a field is given both by a slip (or pair) and
    by another one that does not contain it, unless the two give the same answers
    everywhere (twins, named together) or a single slip inside both explains it
    (dropped_skip + forgot_inner_mask against forgot_outer_mask + forgot_inner_mask would
    leave the grader guessing)."""
    slips = exercise.slips(params)
    keys = {f.name: _key(f, values) for f in fields}
    made = []
    for group in [(s,) for s in slips] + list(itertools.combinations(slips, 2)):
        try:
            wrong = exercise.values(params, list(group))
        except NotApplicable:
            continue
        made.append((frozenset(s.name for s in group), {f.name: _key(f, wrong) for f in fields}))
    for f in fields:
        key = keys[f.name]
        wrong = [(g, a) for g, a in made if not np.all(_matches(f, a[f.name], key, key))]
        for (g, a), (h, b) in itertools.combinations(wrong, 2):
            if not np.all(_matches(f, a[f.name], b[f.name], key)) or \
                    _same_answers(fields, a, b, keys):
                continue
            if len(g) == 1 and g <= h or len(h) == 1 and h <= g:
                continue  # the single slip inside the pair explains the field
            if len(g) == len(h) == 2 and any(
                    len(s) == 1 and np.all(_matches(f, c[f.name], a[f.name], key))
                    for s, c in wrong):
                continue  # named as that single (checked against each pair on its own)
            return False
    return True


def _same_answers(fields: Sequence[Field], a: dict[str, np.ndarray], b: dict[str, np.ndarray],
                  keys: dict[str, np.ndarray]) -> bool:
    return all(np.all(_matches(f, a[f.name], b[f.name], keys[f.name])) for f in fields)


def clear_of_zero(values: Any, share: float, axis: int | None = None) -> bool:
    """Every entry at least ``share`` of the largest |entry| (along ``axis``: per feature)."""
    a = np.abs(np.asarray(values, dtype=float))
    top = a.max(axis=axis, keepdims=axis is not None) if a.size else 0.0
    return bool(np.all(a >= share * top) and np.all(top > 0))


# -- the derivations the worked solutions print (sympy, once per shape) --------------------

@functools.cache
def batchnorm_derivation(n: int) -> dict[str, latex.Tex]:
    """dL/dx_1 for a batch of n, path by path, with sympy; checked against the derivative
    of the loss written out in x_1 .. x_n. Depends on n only: built once per batch size."""
    x = sympy.symbols(f"x_1:{n + 1}", real=True)
    g = sympy.symbols(f"g_1:{n + 1}", real=True)
    xh = sympy.symbols(f"{{\\hat{{x}}}}_1:{n + 1}", real=True)  # '{' sorts after g: g_i x_hat_i
    gamma, beta, eps, sigma = sympy.symbols("gamma beta varepsilon sigma", positive=True)
    mu, var = sympy.symbols("{\\mu} sigma^2", real=True)  # '{': x_1 - mu, not -(mu - x_1)
    xhat = [(xi - mu) / sympy.sqrt(var + eps) for xi in x]  # mu and sigma^2 as variables
    loss = sum(gi * (gamma * h + beta) for gi, h in zip(g, xhat))  # dL/dy_i = g_i
    mean, variance = sum(x) / n, sum((xi - mu) ** 2 for xi in x) / n

    def shown(e: sympy.Expr) -> sympy.Expr:  # in sigma and x_hat, as the sheet writes them
        e = e.subs(var, sigma ** 2 - eps)
        return sympy.factor(e.subs({xi: mu + h * sigma for xi, h in zip(x, xh)}))

    direct, d_mu, d_var = (sympy.diff(loss, v) for v in (x[0], mu, var))
    dmu_dx, dvar_dx, dvar_dmu = (sympy.diff(mean, x[0]), sympy.diff(variance, x[0]),
                                 sympy.diff(variance, mu))
    total = shown(direct) + shown(d_mu * dmu_dx) + shown(d_var * dvar_dx)
    sum_g, sum_gx = sum(g), sum(a * b for a, b in zip(g, xh))
    compact = gamma / (n * sigma) * (n * g[0] - sum_g - xh[0] * sum_gx)
    if sympy.expand(total - compact) != 0:
        raise AssertionError(f"the paths do not add up to the compact formula: {total}")
    _check_against_full_loss(x, g, gamma, eps, compact, xh, sigma)
    return {
        "loss": tex(sum(gi * sympy.Symbol(f"y_{i}") for i, gi in enumerate(g, 1))),
        "direct": tex(shown(direct)), "d_mu": tex(shown(d_mu)), "dmu_dx": tex(dmu_dx),
        "d_var": tex(shown(d_var)), "dvar_dx": tex(sympy.factor(dvar_dx)),
        "dvar_dmu": tex(sympy.factor(dvar_dmu)), "mean_path": tex(shown(d_mu * dmu_dx)),
        "variance_path": tex(shown(d_var * dvar_dx)),
        "compact": latex.Tex(sympy.latex(_with_sums(n, gamma, sigma), order="none")),
    }


def _with_sums(n: int, gamma: sympy.Symbol, sigma: sympy.Symbol) -> sympy.Expr:
    """dL/dx_1 with its two sums over the batch left as sums (sympy would expand them)."""
    j = sympy.Symbol("j", integer=True)
    g, xh = sympy.IndexedBase("g"), sympy.IndexedBase("{\\hat{x}}")
    paths = sympy.Add(n * g[1], -sympy.Sum(g[j], (j, 1, n)),
                      -xh[1] * sympy.Sum(g[j] * xh[j], (j, 1, n)), evaluate=False)
    return sympy.Mul(gamma / (n * sigma), paths, evaluate=False)  # printed in this order


def _check_against_full_loss(x, g, gamma, eps, compact, xh, sigma) -> None:
    """The path sum equals d/dx_1 of the loss with mu and sigma^2 written out in x, at a
    fixed point (eps = 1/2: no square root of 0, and eps stays in the formula). Only x_1
    is left a symbol while differentiating: the other values are numbers from the start."""
    n, half = len(x), sympy.Rational(1, 2)
    point = [0, *((i * i) % 7 + i for i in range(1, n))]
    gs = [-1, *range(2, n + 1)]  # sum g and sum g x_hat not 0: each path is tested
    xs = [x[0], *point[1:]]
    mean = sum(xs) / n
    sd = sympy.sqrt(sum((v - mean) ** 2 for v in xs) / n + half)
    full = sum(gi * (2 * (v - mean) / sd + 1) for gi, v in zip(gs, xs))  # gamma 2, beta 1
    want = sympy.diff(full, x[0]).subs(x[0], 0)
    s = sd.subs(x[0], 0)
    values = {gamma: 2, sigma: s, eps: half, **dict(zip(g, gs)),
              **{h: (v - mean).subs(x[0], 0) / s for h, v in zip(xh, xs)}}
    if abs(float(want - compact.xreplace(values))) > 1e-9:
        raise AssertionError("the derived dL/dx_1 disagrees with differentiating the loss")


@functools.cache
def residual_derivation(d: int, h: int) -> dict[str, Any]:
    """dL/dx of the block, with sympy: in matrix form (masks as diagonal matrices), and
    component by component for this d and h, where the identity's term stands apart."""
    x, g = sympy.MatrixSymbol("x", d, 1), sympy.MatrixSymbol("g", d, 1)
    w1, w2 = sympy.MatrixSymbol("W_1", h, d), sympy.MatrixSymbol("W_2", d, h)
    m1, mo = sympy.MatrixSymbol("M_1", h, h), sympy.MatrixSymbol("M", d, d)
    loss = g.T * mo * (w2 * m1 * w1 * x + x)  # ReLU(v) = M v, M = diag([v > 0])
    matrix_form = sympy.diff(loss, x).subs({mo.T: mo, m1.T: m1})  # masks are diagonal

    xs = sympy.Matrix(sympy.symbols(f"x_1:{d + 1}"))
    a = sympy.Matrix(h, d, lambda j, i: sympy.Symbol(f"a_{{{j + 1}{i + 1}}}"))  # W1 entries
    b = sympy.Matrix(d, h, lambda k, j: sympy.Symbol(f"b_{{{k + 1}{j + 1}}}"))  # W2 entries
    m = sympy.symbols(f"m_1:{h + 1}")  # the inner mask
    delta = sympy.symbols(f"{{\\delta}}_1:{d + 1}")  # dL/du = M g; '{' sorts after b
    u = b * sympy.diag(*m) * a * xs + xs
    component = sympy.expand(sum(dk * uk for dk, uk in zip(delta, u)).diff(xs[0]))
    skip = component.subs({mj: 0 for mj in m})  # every hidden unit blocked: F is gone
    if sympy.expand(skip - delta[0]) != 0:
        raise AssertionError(f"the identity term of dL/dx_1 is not delta_1: {skip}")
    groups = [sympy.factor(component.coeff(mj, 1)) * mj for mj in m]
    if sympy.expand(skip + sum(groups) - component) != 0:
        raise AssertionError("the terms of dL/dx_1 do not add up")
    return {"matrix": tex(matrix_form), "skip": tex(skip), "groups": [tex(t) for t in groups],
            "residual_sum": _residual_sum(d, h), "d": d, "h": h}


def _residual_sum(d: int, h: int) -> latex.Tex:
    """sum_j a_j1 m_j (sum_k b_kj delta_k): the residual term of dL/dx_1 in general."""
    j, k = sympy.symbols("j k", integer=True)
    a, b, m, delta = (sympy.IndexedBase(n) for n in ("a", "b", "m", "\\delta"))
    inner = sympy.Sum(b[k, j] * delta[k], (k, 1, d))
    return tex(sympy.Sum(a[j, 1] * m[j] * inner, (j, 1, h)))
