"""The exercise-type contract, the registry, and the one function that makes variants.

An exercise type is one module under ``generator/types`` with one class that
subclasses :class:`Exercise` and is decorated with :func:`register`. It draws
parameters from a ``numpy.random.Generator``, solves any parameters it is given,
declares its answer fields, lists the mistakes it can recognise, and produces the
context its two templates (``<id>/problem.tex.j2`` and ``<id>/solution.tex.j2``)
typeset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from deepdrill.errors import DeepdrillError, ParamError

from .fields import Field, flatten, shape_of
from .variant import Mistake, Variant


class Exercise:
    """Base class of an exercise type. Subclasses fill in every method."""

    id: ClassVar[str]
    title: ClassVar[str]  # heading on the sheet
    summary: ClassVar[str]  # one line for `deepdrill list`
    params: ClassVar[tuple[str, ...]]  # public parameter names
    options: ClassVar[dict[str, Any]] = {}  # size options and their defaults
    work_space: ClassVar[str] = "6cm"  # room to work below the problem on the sheet

    def sample(self, rng: np.random.Generator, pinned: dict[str, Any],
               options: dict[str, Any]) -> dict[str, Any]:
        """A complete parameter set: pinned values kept, the rest drawn from ``rng``."""
        raise NotImplementedError

    def check(self, params: dict[str, Any]) -> dict[str, Any]:
        """Validate a complete parameter set and return it normalised (defaults filled in).

        Raises :class:`ParamError` with a message that says what to change.
        """
        raise NotImplementedError

    def solve(self, params: dict[str, Any]) -> dict[str, Any]:
        """The answers, as JSON values, for any checked parameters."""
        raise NotImplementedError

    def fields(self, params: dict[str, Any]) -> list[Field]:
        raise NotImplementedError

    def mistakes(self, params: dict[str, Any]) -> list[Mistake]:
        """Answers produced by typical mistakes (all fields; the engine keeps the ones that differ)."""
        return []

    def problem(self, params: dict[str, Any]) -> dict[str, Any]:
        """Context for the problem statement (shared by problem and solution sheets).

        Values are numbers, plain text (escaped when typeset) or trusted
        :class:`~deepdrill.generator.latex.Tex`.
        """
        return {}

    def steps(self, params: dict[str, Any], answers: dict[str, Any]) -> dict[str, Any]:
        """Context for the worked solution, in the same terms as :meth:`problem`."""
        return {}

    # -- shared helpers ----------------------------------------------------

    def resolve_options(self, options: Mapping[str, Any] | None) -> dict[str, Any]:
        given = dict(options or {})
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise ParamError(f"unknown option(s) {', '.join(unknown)}; {self.id} takes: {known}",
                             exercise=self.id)
        return {**self.options, **given}

    @property
    def problem_template(self) -> str:
        return f"{self.id}/problem.tex.j2"

    @property
    def solution_template(self) -> str:
        return f"{self.id}/solution.tex.j2"


REGISTRY: dict[str, Exercise] = {}


def register(cls: type[Exercise]) -> type[Exercise]:
    """Class decorator: add an exercise type to the registry under its public id."""
    if cls.id in REGISTRY:
        raise DeepdrillError(f"exercise type {cls.id!r} is registered twice")
    REGISTRY[cls.id] = cls()
    return cls


def get(type_id: str) -> Exercise:
    from . import types  # noqa: F401  (importing the package registers every type)

    try:
        return REGISTRY[type_id]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise DeepdrillError(f"unknown exercise type {type_id!r}; known types: {known}") from None


def all_types() -> list[Exercise]:
    from . import types  # noqa: F401

    return [REGISTRY[k] for k in sorted(REGISTRY)]


def make_variant(type_id: str, seed: int, pinned: Mapping[str, Any] | None = None,
                 options: Mapping[str, Any] | None = None,
                 tolerances: Mapping[str, Mapping[str, Any]] | None = None) -> Variant:
    """Draw, solve and record one variant.

    >>> v = make_variant("conv2d_forward", 0, {"input": [[1, 2, 0], [0, 1, 3], [2, 1, 1]],
    ...                                        "kernel": [[1, -1], [0, 2]]})
    >>> v.answers["output"]
    [[1, 8], [1, 0]]
    """
    ex = get(type_id)
    pinned = dict(pinned or {})
    try:
        unknown = sorted(set(pinned) - set(ex.params))
        if unknown:
            raise ParamError(f"unknown parameter(s) {', '.join(unknown)}; "
                             f"{type_id} takes: {', '.join(ex.params)}")
        opts = ex.resolve_options(options)
        drawn = ex.check(ex.sample(np.random.default_rng(seed), pinned, opts))
        params = {k: drawn[k] for k in ex.params if k in drawn}  # the catalogue's order
        answers = ex.solve(params)
        fields = _with_tolerances(ex.fields(params), tolerances or {})
        mistakes = _distinct_mistakes(ex.mistakes(params), answers, fields)
    except DeepdrillError as err:
        err.exercise, err.seed = type_id, seed
        raise
    except (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError) as err:
        raise ParamError(f"parameters cannot be used: {err}", exercise=type_id, seed=seed) from err
    return Variant(type_id, seed, params, answers, tuple(fields), tuple(mistakes))


def _with_tolerances(fields: list[Field], overrides: Mapping[str, Mapping[str, Any]]) -> list[Field]:
    names = {f.name for f in fields}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ParamError(f"tolerance given for unknown field(s) {', '.join(unknown)}; "
                         f"fields are: {', '.join(sorted(names))}")
    out = []
    for f in fields:
        if f.name in overrides:
            o = overrides[f.name]
            f = Field(f.name, f.label, f.kind, f.shape,
                      f.tolerance.overridden(o.get("rtol"), o.get("atol"), o.get("sigfigs")),
                      f.weight)
        out.append(f)
    return out


def _distinct_mistakes(mistakes: list[Mistake], answers: dict[str, Any],
                       fields: list[Field]) -> list[Mistake]:
    """Keep, per mistake, only the fields it changes; drop mistakes that change nothing.

    A mistake that gives the right answer on this variant (ignoring padding when
    the padding is 0) cannot be told apart from a right answer, so it is not kept.
    """
    from deepdrill.grader.compare import entries_match

    by_name = {f.name: f for f in fields}
    right = {name: np.asarray(flatten(value), dtype=float) for name, value in answers.items()}
    kept = []
    for m in mistakes:
        changed = {}
        for name, value in m.answers.items():
            f = by_name.get(name)
            if f is None:
                continue
            theirs = np.asarray(flatten(value), dtype=float)
            differs = len(theirs) != len(right[name]) or \
                not np.all(entries_match(f.tolerance, theirs, right[name]))
            # shapes only matter when the numbers agree (and cost more to compute)
            if differs or shape_of(value) != shape_of(answers[name]):
                changed[name] = value
        if changed:
            kept.append(Mistake(m.name, m.feedback, changed))
    return kept


def require(params: Mapping[str, Any], *names: str) -> None:
    """ParamError naming the first of ``names`` that ``params`` lacks (for ``check``)."""
    for name in names:
        if name not in params:
            raise ParamError(f"missing parameter {name!r}")


def int_option(name: str, value: Any, low: int, high: int) -> int:
    """A whole-number option within [low, high], or ParamError saying so."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or \
            not low <= value <= high:
        raise ParamError(f"option {name} must be a whole number from {low} to {high}, "
                         f"not {value!r}")
    return int(value)


def jsonable(value: Any) -> Any:
    """Numpy arrays and scalars as plain JSON values; whole floats become ints (8.0 -> 8)."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f" and np.all(np.isfinite(value)) and \
                np.all(value == np.round(value)) and np.all(np.abs(value) < 2**53):
            return value.astype(np.int64).tolist()
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, (list, tuple)):
        try:
            arr = np.asarray(value)
        except ValueError:  # ragged
            arr = None
        if arr is not None and arr.size and arr.dtype.kind in "iuf":
            return jsonable(arr)
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value
