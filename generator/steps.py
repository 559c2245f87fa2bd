"""The solution as a small graph of named steps, and mistakes as data.

A type's :meth:`~deepdrill.generator.exercise.Exercise.graph` lists its steps in
order: each has a name, a pure function, and the names of its inputs (parameters,
or earlier steps). :func:`run` evaluates them. The same run serves three purposes:

* **solving**: every step's value, the answer fields among them, and the
  intermediates the worked solution prints (it never computes them again);
* **mistakes**: a :class:`Slip` swaps some steps' functions and/or changes some
  parameters, and the graph is run again, so a slip's effect on later fields
  follows without hand-written propagation;
* **carried-forward credit**: with ``given`` (a student's own values of some steps),
  each step is computed from the given values of its inputs where there are any
  and from computed values elsewhere, transitively (:func:`rerun`).

>>> g = (Step("double", lambda x: 2 * x, ("x",)), Step("plus_one", lambda d: d + 1, ("double",)))
>>> run(g, {"x": 3})["plus_one"]
7
>>> rerun(g, {"x": 3}, given={"double": 10})["plus_one"]
11
"""

from __future__ import annotations

import functools

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepdrill.errors import ParamError
from deepdrill.model.tolerance import BIG_COUNT, magnitude


@dataclass(frozen=True)
class Step:
    """One quantity of the solution: ``fn(*inputs)``."""

    name: str
    fn: Callable[..., Any]
    inputs: tuple[str, ...] = ()


Graph = tuple[Step, ...]
Values = dict[str, Any]


@dataclass(frozen=True)
class Slip:
    """A recognisable mistake, as data: steps whose function a student replaced, and/or
    parameters a student read differently (``change`` is a dict of new values or a
    function of the parameters returning them).

    Two slips that swap the same step cannot be made together.
    """

    name: str
    feedback: str
    swaps: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    change: Mapping[str, Any] | Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        if self.change is None:
            return params  # type: ignore[return-value]  (unchanged: the same parameters)
        new = self.change(dict(params)) if callable(self.change) else self.change
        return {**params, **new}


class NotApplicable(ParamError):
    """A slip (or pair) that cannot be made on this variant, e.g. ignoring a padding the
    kernel needs to fit."""


def constant(text: str) -> Callable[[], str]:
    """A step with no inputs that gives ``text``: a formula answer's key, or the wrong form
    a slip swaps in for it."""
    return functools.partial(str, text)


def run(graph: Iterable[Step], params: Mapping[str, Any],
        swaps: Mapping[str, Callable[..., Any]] | None = None,
        rounding: Callable[[Any], Any] | None = None) -> Values:
    """Every step's value, in order; ``swaps`` replaces some steps' functions.

    ``rounding`` (tests) is applied to each step's value before later steps use it,
    as a student who rounds every intermediate by hand does.
    """
    values: Values = dict(params)
    for s in graph:
        fn = swaps.get(s.name, s.fn) if swaps else s.fn
        value = fn(*[values[i] for i in s.inputs])  # (a list: quicker to unpack)
        values[s.name] = rounding(value) if rounding else value
    return values


def rerun(graph: Iterable[Step], params: Mapping[str, Any], given: Mapping[str, Any],
          swaps: Mapping[str, Callable[..., Any]] | None = None) -> Values:
    """Each step computed from the student's ``given`` values of its inputs.

    A step's own given value never feeds itself: the result for a given step is
    what it should be from the given (or recomputed) values of its inputs, which is
    what the grader compares the student's value with. A step that a student's
    values cannot feed (a map too small for the next kernel, a log of a negative
    number) is left out, and so is every step that needs it: no credit, no error.
    """
    computed: Values = dict(params)
    for s in graph:
        fn = swaps.get(s.name, s.fn) if swaps else s.fn
        try:  # an input left out above (KeyError), or any failure on a student's values
            computed[s.name] = fn(*[given[i] if i in given else computed[i]
                                    for i in s.inputs])
        except Exception:  # noqa: BLE001
            continue
    return computed


def index(graph: Iterable[Step]) -> dict[str, Step]:
    """The steps by name (pass it to the walks below when walking one graph often)."""
    return {s.name: s for s in graph}


def frontier(graph: Iterable[Step] | Mapping[str, Step], name: str,
             given: Mapping[str, Any]) -> list[str]:
    """The given steps that ``name``'s recomputed value depends on: walking back from
    its inputs, stopping at each given step (whatever lies behind it is not used)."""
    by_name = graph if isinstance(graph, Mapping) else index(graph)
    if name not in by_name:
        return []
    inputs = by_name[name].inputs
    if all(i in given or i not in by_name for i in inputs):  # nothing to walk through
        return list(dict.fromkeys(i for i in inputs if i in given))
    seen: set[str] = set()
    found: list[str] = []
    stack = list(reversed(inputs))
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n in given:
            found.append(n)
        elif n in by_name:
            stack.extend(reversed(by_name[n].inputs))
    return found


def behind(graph: Iterable[Step] | Mapping[str, Step], name: str | Iterable[str],
           given: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """The steps (``name`` itself included) and the parameters that ``name``'s recomputed
    value reads, walking back and stopping at given steps: a slip that swaps none of these
    steps and changes none of these parameters cannot change it. Several names: what any
    of them reads (one walk)."""
    by_name = graph if isinstance(graph, Mapping) else index(graph)
    steps: set[str] = set()
    read: set[str] = set()
    stack = [name] if isinstance(name, str) else list(name)
    while stack:
        n = stack.pop()
        if n in steps:
            continue
        steps.add(n)
        for i in by_name[n].inputs if n in by_name else ():
            if i not in by_name:
                read.add(i)
            elif i not in given:
                stack.append(i)
    return steps, read


def ancestors(graph: Iterable[Step] | Mapping[str, Step], name: str) -> set[str]:
    """Every step ``name`` depends on (parameters excluded)."""
    by_name = graph if isinstance(graph, Mapping) else index(graph)
    out: set[str] = set()
    stack = list(by_name[name].inputs) if name in by_name else []
    while stack:
        n = stack.pop()
        if n in by_name and n not in out:
            out.add(n)
            stack.extend(by_name[n].inputs)
    return out


def by_hand(value: Any, figures: int = 3) -> Any:
    """A step's value as a student working by hand writes it down: every real number to
    ``figures`` significant figures, counts exact below 10^8 and rounded from there on.
    Pass it as ``run(..., rounding=by_hand)`` to play such a student (tests, examples).

    >>> by_hand(np.array([0.98547, 123456789])), by_hand((6, 28, 28)), by_hand(2 / 3)
    (array([9.85e-01, 1.23e+08]), (6, 28, 28), 0.667)
    """
    if isinstance(value, (tuple, list)):
        return type(value)(by_hand(v, figures) for v in value)
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf":
        return value
    x = arr.astype(float)
    scale = 10.0 ** (figures - 1 - magnitude(x))
    rounded = np.round(x * scale) / scale
    if arr.dtype.kind in "iu":
        rounded = np.where(np.abs(x) >= BIG_COUNT, rounded, x).astype(np.int64)
    return rounded if isinstance(value, np.ndarray) else rounded.item()
