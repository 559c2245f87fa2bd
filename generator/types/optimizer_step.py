"""optimizer_step: one update of SGD, SGD with momentum, or Adam, as ``torch.optim`` does it.

``params`` (theta) and ``grads`` (g) have n entries; eta = ``learning_rate``.

* ``sgd``: theta <- theta - eta g.
* ``momentum`` (``torch.optim.SGD(momentum=mu)``, no dampening, no Nesterov): the buffer holds
  raw gradients, v <- mu v + g, then theta <- theta - eta v. ``velocity`` is the buffer
  before this update; zeros (or absent) mean the first update, where PyTorch sets the buffer
  to g: that is mu 0 + g, so one rule covers both.
* ``adam`` (``torch.optim.Adam``): m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g^2,
  m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t), theta <- theta - eta m_hat /
  (sqrt(v_hat) + eps), t = ``step`` the number of this update from 1; ``m`` and ``v`` are
  the moments before it (absent: zeros, as PyTorch starts; t = 1 requires them).

Defaults are PyTorch's (b1 0.9, b2 0.999, eps 1e-8; momentum 0.9). With ``params``,
``grads`` and ``learning_rate`` pinned the problem is taken as given; otherwise what is not
pinned is drawn. Answers: ``updated_params`` and the new state, ``velocity`` or ``m``, ``v``
and their bias-corrected ``m_hat`` and ``v_hat``. The state's names are also parameter
names, so every quantity is one step per entry (``m_hat_2``) and a field reads its entries
(``parts``); each entry of ``updated_params`` is recomputed from the student's own state. A
zero state entry moves nothing and feeds no carried-forward credit (a blank is no work).

Draws: one-decimal parameters and gradients, 2 or 3 entries (option ``size``: 2 to 4);
Adam's earlier moments follow earlier one-decimal gradients, printed to 4 figures. A draw
is kept when every parameter moves beyond the tolerance, no constant answer earns points,
rounding to 3 figures loses nothing, and every slip shows and is told apart.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.backward import (CONSTANTS, MAX_CONSTANT_SHARE, keyed_tolerance,
                                          slips_show, slips_tell_apart, survives_rounding)
from deepdrill.generator.exercise import (Exercise, int_option, jsonable, numbers, register,
                                          require)
from deepdrill.generator.randomness import choice, draw_until, ints
from deepdrill.generator.steps import NotApplicable, Slip, Step, rerun, run
from deepdrill.model.fields import real
from deepdrill.model.tolerance import entries_match

OPTIMIZERS = ("sgd", "momentum", "adam")
OWN = {"sgd": (), "momentum": ("momentum", "velocity"),
       "adam": ("beta1", "beta2", "eps", "m", "v", "step")}  # each optimizer's own parameters
DEFAULTS = {"momentum": 0.9, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}  # PyTorch's
SIZES, MIN_SIZE, MAX_SIZE, MAX_PINNED = (2, 3), 2, 4, 6
RATES = {"sgd": (0.1, 0.2, 0.5), "momentum": (0.1, 0.2, 0.5), "adam": (0.1, 0.05, 0.2)}
MOMENTA, BETA1S, BETA2S, EPS = (0.9, 0.8, 0.5), (0.9, 0.8), (0.999, 0.99), 1e-8
STEPS = (1, 2, 3)  # t of a random Adam update
FIRST_SHARE = 0.25  # of random momentum updates that are the first (velocity 0)
TENTHS = 20  # random values are one-decimal, |x| <= 2.0, never 0
MAX_VALUE, MAX_RATE, MAX_STEP, MAX_ANSWER = 1e6, 10, 10_000, 20
STATE_FIGURES, MAX_HISTORY = 4, 10  # Adam's earlier moments: as printed; from so many
MAX_DRAWS = 300


# -- the steps: one number each (pure: the grader feeds them a student's own values) -------

def entry(i: int, vector: Any) -> float:
    return float(np.asarray(vector, dtype=float)[i])


def moving(x: Any) -> float:
    """A state entry that moves something; a 0 (a blank answer) feeds nothing."""
    if float(x) == 0:
        raise NotApplicable("a zero state entry moves nothing")
    return float(x)


def sgd_change(i: int, learning_rate: Any, grads: Any) -> float:
    return float(learning_rate) * entry(i, grads)


def velocity(i: int, learning_rate: Any, momentum: Any, velocity: Any, grads: Any) -> float:
    return float(momentum) * entry(i, velocity) + entry(i, grads)


def momentum_change(learning_rate: Any, velocity: Any) -> float:
    return float(learning_rate) * moving(velocity)


def first_moment(i: int, beta1: Any, m: Any, grads: Any) -> float:
    return float(beta1) * entry(i, m) + (1 - float(beta1)) * entry(i, grads)


def second_moment(i: int, beta2: Any, v: Any, grads: Any) -> float:
    return float(beta2) * entry(i, v) + (1 - float(beta2)) * entry(i, grads) ** 2


def correction(beta: Any, step: Any) -> float:
    """1 - beta^t: the share of the moving average built up after t updates from zero."""
    return 1 - float(beta) ** int(step)


def corrected(moment: Any, correction: Any) -> float:
    return moving(moment) / float(correction)


def denominator(v_hat: Any, eps: Any) -> float:
    if float(v_hat) < 0:
        raise NotApplicable("no square root of a negative v_hat")
    return math.sqrt(float(v_hat)) + float(eps)


def adam_change(learning_rate: Any, m_hat: Any, denominator: Any) -> float:
    if float(denominator) == 0:
        raise NotApplicable("a zero denominator")
    return float(learning_rate) * moving(m_hat) / float(denominator)


def updated(i: int, params: Any, change: Any) -> float:
    return entry(i, params) - float(change)


@functools.cache
def graph_of(optimizer: str, n: int) -> tuple[Step, ...]:
    """The steps for n entries: the new state, then each parameter moved by its change."""
    steps = [Step("bc1", correction, ("beta1", "step")),
             Step("bc2", correction, ("beta2", "step"))] if optimizer == "adam" else []
    for i in range(n):
        k, at = i + 1, functools.partial
        if optimizer == "sgd":
            steps.append(Step(f"change_{k}", at(sgd_change, i), ("learning_rate", "grads")))
        elif optimizer == "momentum":
            steps += [Step(f"velocity_{k}", at(velocity, i),
                           ("learning_rate", "momentum", "velocity", "grads")),
                      Step(f"change_{k}", momentum_change, ("learning_rate", f"velocity_{k}"))]
        else:
            steps += [Step(f"m_{k}", at(first_moment, i), ("beta1", "m", "grads")),
                      Step(f"v_{k}", at(second_moment, i), ("beta2", "v", "grads")),
                      Step(f"m_hat_{k}", corrected, (f"m_{k}", "bc1")),
                      Step(f"v_hat_{k}", corrected, (f"v_{k}", "bc2")),
                      Step(f"denominator_{k}", denominator, (f"v_hat_{k}", "eps")),
                      Step(f"change_{k}", adam_change,
                           ("learning_rate", f"m_hat_{k}", f"denominator_{k}"))]
        steps.append(Step(f"updated_{k}", at(updated, i), ("params", f"change_{k}")))
    return tuple(steps)


# -- the slips --------------------------------------------------------------------------

def added(i: int, params: Any, change: Any) -> float:
    return entry(i, params) + float(change)


def rate_in_velocity(i: int, learning_rate: Any, momentum: Any, velocity: Any,
                     grads: Any) -> float:
    return float(momentum) * entry(i, velocity) + float(learning_rate) * entry(i, grads)


@functools.cache
def slips_of(optimizer: str, n: int) -> tuple[Slip, ...]:
    each = range(1, n + 1)
    sign = Slip("sign_error", "you added the step to the parameters; gradient descent "
                "subtracts it (theta - eta * ...)",
                swaps={f"updated_{k}": functools.partial(added, k - 1) for k in each})
    if optimizer == "sgd":
        return (sign,)
    if optimizer == "momentum":
        return (sign, Slip("lr_in_velocity", "you put the learning rate inside the velocity "
                           "(v = mu v + eta g, theta - v); PyTorch's buffer holds raw gradients, "
                           "v = mu v + g, and the step is eta v",
                           swaps={**{f"velocity_{k}": functools.partial(rate_in_velocity, k - 1)
                                     for k in each},
                                  **{f"change_{k}": lambda rate, velocity: moving(velocity)
                                     for k in each}}))
    return (sign,
            Slip("no_bias_correction", "you left out the bias correction: m_hat = m / (1 - "
                 "beta1^t) and v_hat = v / (1 - beta2^t)",
                 swaps={"bc1": lambda beta, step: 1.0, "bc2": lambda beta, step: 1.0}),
            Slip("forgot_sqrt", "you divided by v_hat instead of its square root: the step is "
                 "eta m_hat / (sqrt(v_hat) + eps)",
                 swaps={f"denominator_{k}": lambda v_hat, eps: float(v_hat) + float(eps)
                        for k in each}))


def constant_share(graph: tuple[Step, ...], params: dict[str, Any], fields: list,
                   values: dict[str, Any]) -> float:
    """The share of the points one constant written everywhere (0 or 1) earns, entry by
    entry: where the key is that constant, or where the constant follows from the same
    constant written in the entries it is computed from (the grader credits each entry's
    step on its own: theta_i - eta * 1 = 1 when theta_i = 1 + eta)."""
    total = sum(f.weight for f in fields)
    worst = 0.0
    for c in CONSTANTS:
        again = rerun(graph, params, {s: c for f in fields for s in f.steps})
        earned = 0.0
        for f in fields:
            key = np.array([values[s] for s in f.steps], dtype=float)
            theirs = np.array([again.get(s, np.nan) for s in f.steps], dtype=float)
            tol, written = keyed_tolerance(f, key), np.full(len(key), c)
            right = entries_match(tol, written, key) | entries_match(tol, written, theirs)
            w = np.ones(len(key)) if f.entry_weights is None else np.asarray(f.entry_weights)
            earned += f.weight * float(w[right].sum() / w.sum())
        worst = max(worst, earned / total)
    return worst


# -- checking and drawing -----------------------------------------------------------------

def vector(params: dict[str, Any], name: str, n: int | None = None) -> np.ndarray:
    x = numbers(params[name], name)
    if x.ndim != 1 or not 1 <= x.size <= MAX_PINNED or (n is not None and x.size != n):
        raise ParamError(f"{name} must be a list of " +
                         (f"{n} numbers, one per parameter" if n else
                          f"1 to {MAX_PINNED} numbers"))
    if np.abs(x).max() > MAX_VALUE:
        raise ParamError(f"{name} must be numbers of a sheet's size, at most {MAX_VALUE:g}")
    return x


def scalar(params: dict[str, Any], name: str, low: float, high: float, what: str, *,
           above_low: bool = False, below_high: bool = False) -> float:
    """One number in [low, high] (``above_low``/``below_high``: the end excluded)."""
    x = numbers(params[name], name)
    if x.ndim != 0 or not low <= float(x) <= high or (above_low and x == low) or \
            (below_high and x == high):
        raise ParamError(f"{name} must be one number {what}, not {params[name]!r}")
    return float(x)


def check_step(step: Any) -> int:
    whole = isinstance(step, (int, np.integer)) or (isinstance(step, float) and
                                                    step.is_integer())
    if isinstance(step, bool) or not whole or not 1 <= step <= MAX_STEP:
        raise ParamError(f"step must be a whole number from 1 to {MAX_STEP} (the number of "
                         f"this update, counted from 1), not {step!r}")
    return int(step)


def optimizer_of(params: dict[str, Any]) -> str | None:
    """The optimizer named, or the one whose own parameters are given."""
    if "optimizer" in params:
        if params["optimizer"] not in OPTIMIZERS:
            raise ParamError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not "
                             f"{params['optimizer']!r}")
        return params["optimizer"]
    return next((o for o in OPTIMIZERS if set(OWN[o]) & set(params)), None)


def tenths(rng: np.random.Generator, n: int) -> np.ndarray:
    return ints(rng, n, -TENTHS, TENTHS, nonzero=True) / 10


def earlier_moments(rng: np.random.Generator, p: dict[str, Any], n: int) -> tuple:
    """m and v after t - 1 earlier one-decimal gradients from zero, to 4 figures."""
    m, v = np.zeros(n), np.zeros(n)
    for _ in range(min(p["step"] - 1, MAX_HISTORY)):
        g = tenths(rng, n)
        m, v = p["beta1"] * m + (1 - p["beta1"]) * g, p["beta2"] * v + (1 - p["beta2"]) * g ** 2
    shown = np.vectorize(lambda x: float(f"{x:.{STATE_FIGURES}g}"))
    return shown(m), shown(v)


def drawn(rng: np.random.Generator, optimizer: str, n: int, pinned: dict[str, Any]) -> dict:
    """A candidate: everything not pinned drawn (Adam's state from its pinned step, betas)."""
    p = {"optimizer": optimizer, "params": tenths(rng, n), "grads": tenths(rng, n),
         "learning_rate": choice(rng, RATES[optimizer])}
    if optimizer == "momentum":
        first = rng.random() < FIRST_SHARE
        p.update(momentum=choice(rng, MOMENTA),
                 velocity=np.zeros(n) if first else tenths(rng, n))
    elif optimizer == "adam":
        p.update(beta1=choice(rng, BETA1S), beta2=choice(rng, BETA2S), eps=EPS,
                 step=choice(rng, STEPS))
        p.update({k: pinned[k] for k in ("beta1", "beta2", "step") if k in pinned})
        p["m"], p["v"] = earlier_moments(rng, p, n)
    return jsonable({**p, **pinned})


@register
class OptimizerStep(Exercise):
    id = "optimizer_step"
    title = "One optimizer step: SGD, momentum, Adam"
    summary = "one update of SGD, SGD with momentum or Adam, with PyTorch's rules: the new " \
              "state and the updated parameters"
    params = ("params", "grads", "optimizer", "learning_rate", "momentum", "beta1", "beta2",
              "eps", "velocity", "m", "v", "step")
    options = {"size": None}  # None: 2 or 3 parameters
    work_space = "7cm"

    def sample(self, rng, pinned, options):
        optimizer = optimizer_of(pinned) or choice(rng, OPTIMIZERS)
        if "step" in pinned:
            check_step(pinned["step"])
        if pinned.keys() >= {"params", "grads", "learning_rate"}:  # the problem as given:
            return {**pinned, "optimizer": optimizer}  # defaults and a fresh state (check)
        n = next((len(vector(pinned, k)) for k in ("params", "grads", "velocity", "m", "v")
                  if k in pinned), None) or (
            int_option("size", options["size"], MIN_SIZE, MAX_SIZE)
            if options["size"] is not None else choice(rng, SIZES))
        for name in ("beta1", "beta2"):
            if name in pinned:
                scalar(pinned, name, 0, 1, "from 0 to below 1", below_high=True)
        try:
            return draw_until(rng, lambda r: drawn(r, optimizer, n, pinned), self.fair,
                              tries=MAX_DRAWS, refusal=f"no {optimizer} update of {n} "
                              f"parameters found in which every parameter moves visibly and "
                              f"every mistake shows; pin fewer parameters")
        except ParamError:
            self.check(drawn(rng, optimizer, n, pinned))  # pinned values that cannot work
            raise

    def fair(self, params: dict[str, Any]) -> bool:
        try:
            params = self.check(params)
        except ParamError:
            return False
        graph, n = self.graph(params), len(params["params"])
        values = run(graph, params)
        fields = self.fields(params, values)
        new = np.array([values[f"updated_{k}"] for k in range(1, n + 1)])
        key = keyed_tolerance(fields[-1], new)
        moves = not np.any(entries_match(key, np.asarray(params["params"], float), new))
        return moves and np.all(new != 0) and all(
            abs(values[s]) <= MAX_ANSWER for f in fields for s in f.steps) and \
            constant_share(graph, params, fields, values) <= MAX_CONSTANT_SHARE and \
            survives_rounding(graph, params, fields, values) and \
            slips_show(self, params, fields, values) and \
            slips_tell_apart(self, params, fields, values)

    def check(self, params):
        optimizer = optimizer_of(params)
        require(params, "params", "grads", "optimizer", "learning_rate")
        foreign = [k for k in params if k in sum(OWN.values(), ()) and k not in OWN[optimizer]]
        if foreign:
            raise ParamError(f"{foreign[0]} is no parameter of {optimizer}; leave it out "
                             f"(or choose the optimizer it belongs to)")
        p = {k: params[k] for k in self.params if k in params}
        n = len(vector(p, "params"))
        vector(p, "grads", n)
        scalar(p, "learning_rate", 0, MAX_RATE, f"more than 0 and at most {MAX_RATE}",
               above_low=True)
        if optimizer == "momentum":
            p = {"momentum": DEFAULTS["momentum"], "velocity": [0] * n, **p}
            scalar(p, "momentum", 0, 1, "more than 0 and at most 1 (0 is plain sgd)",
                   above_low=True)
            vector(p, "velocity", n)
        elif optimizer == "adam":
            p = {**{k: DEFAULTS[k] for k in ("beta1", "beta2", "eps")}, "m": [0] * n,
                 "v": [0] * n, "step": 1, **p}
            for name in ("beta1", "beta2"):
                scalar(p, name, 0, 1, "from 0 to below 1", below_high=True)
            scalar(p, "eps", 0, 1, "from 0 to 1")
            p["step"] = check_step(p["step"])
            if np.any(vector(p, "v", n) < 0):
                raise ParamError("v must not be negative: it averages squared gradients")
            if p["step"] == 1 and (np.any(vector(p, "m", n)) or np.any(p["v"])):
                raise ParamError("at step 1 the moments before the update are m = v = 0 "
                                 "(PyTorch starts from zeros); give step 2 or more for "
                                 "nonzero m and v")
        try:
            run(graph_of(optimizer, n), p)
        except NotApplicable:
            raise ParamError(f"the new {'velocity' if optimizer == 'momentum' else 'm or v'} "
                             f"has a 0 entry (the gradient cancels the old state), so that "
                             f"parameter does not move; give other numbers") from None
        return jsonable(p)

    def graph(self, params):
        return graph_of(params["optimizer"], len(params["params"]))

    def fields(self, params, values):
        n, optimizer = len(params["params"]), params["optimizer"]
        each = range(1, n + 1)
        out = []
        if optimizer == "momentum":  # a first update's velocity is g copied: little work
            w = np.where(np.asarray(params["velocity"], dtype=float) == 0, 0.25, 1.0)
            out.append(real("velocity", "the new velocity (PyTorch's momentum buffer)", [n],
                            weight=float(w.mean()), parts=tuple(f"velocity_{k}" for k in each),
                            entry_weights=None if np.all(w == w[0]) else w))
        elif optimizer == "adam":
            for name, label in (("m", "the new first moment m (exp_avg)"),
                                ("v", "the new second moment v (exp_avg_sq)"),
                                ("m_hat", "the bias-corrected first moment m_hat"),
                                ("v_hat", "the bias-corrected second moment v_hat")):
                out.append(real(name, label, [n], parts=tuple(f"{name}_{k}" for k in each)))
        out.append(real("updated_params", "the parameters after this update", [n],
                        weight=2.0 if optimizer == "adam" else 1.0,
                        parts=tuple(f"updated_{k}" for k in each)))
        return out

    def slips(self, params):
        return list(slips_of(params["optimizer"], len(params["params"])))

    def problem(self, params):
        p = {k: show(params[k]) for k in ("learning_rate", "momentum", "beta1", "beta2", "eps")
             if k in params}
        p.update({k: row(params[k]) for k in ("params", "grads", "velocity", "m", "v")
                  if k in params})
        first = params.get("step") == 1 or (params["optimizer"] == "momentum" and
                                            not np.any(params["velocity"]))
        return {**p, "optimizer": params["optimizer"], "step": params.get("step"),
                "n": len(params["params"]), "first": first}

    def worked(self, params, values):
        p, adam = params, params["optimizer"] == "adam"
        rows = []
        for i in range(len(p["params"])):
            k = i + 1
            got = {name: values[f"{name}_{k}"] for name in STATE if f"{name}_{k}" in values}
            r = {**{name: show(x) for name, x in got.items()},
                 **{f"{name}_rel": latex.relation(x) for name, x in got.items()},
                 **{f"{name}_term": term(x) for name, x in got.items()},
                 "k": k, "theta": show(p["params"][i]), "g": term(p["grads"][i]),
                 "old": term(p.get("velocity", p.get("m", [0] * k))[i]),
                 "old_v": term(p["v"][i]) if adam else None}
            rows.append(r)
        out = {"rows": rows, "answers": {f.name: row([values[s] for s in f.steps])
                                         for f in self.fields(params, values)}}
        if adam:
            out.update({f"{b}{tail}": fn(values[b]) for b in ("bc1", "bc2") for tail, fn in
                        (("", show), ("_rel", latex.relation))},
                       one_minus_b1=show(1 - p["beta1"]), one_minus_b2=show(1 - p["beta2"]))
        return out


STATE = ("velocity", "m", "v", "m_hat", "v_hat", "denominator", "change", "updated")


def show(x: Any) -> latex.Tex:
    """A number to 4 figures, a small one as 4\\times 10^{-5} (no trailing zeros)."""
    t = latex.num(x)
    if r"\times" not in t:
        return t
    mantissa, power = t.split(r"\times")
    return latex.Tex(mantissa.rstrip("0").rstrip(".") + r"\times" + power)


def term(x: Any) -> latex.Tex:
    t = show(x)
    return latex.Tex(f"({t})") if t.startswith("-") or r"\times" in t else t


def row(values: Any) -> latex.Tex:
    return latex.Tex(r"\left(" + ",\\ ".join(show(v) for v in values) + r"\right)")
