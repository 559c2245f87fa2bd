"""The exercise-type contract, the registry, and the one function that makes variants.

An exercise type is one module under ``generator/types`` with one class that
subclasses :class:`Exercise` and is decorated with :func:`register`. It draws
parameters from a ``numpy.random.Generator``, declares its solution as a graph of
named steps (:mod:`.steps`), its answer fields and the slips it recognises, and
produces the context its two templates (``<id>/problem.tex.j2`` and
``<id>/solution.tex.j2``) typeset. The engine here runs the graph: solving, the
answers of mistakes, and (for the grader) re-running steps on a student's values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from deepdrill.errors import DeepdrillError, InternalError, ParamError
from deepdrill.model import expressions
from deepdrill.model.fields import Field, Kind, flatten, shape_of
from deepdrill.model.tolerance import Mode, default_floor, entries_match
from deepdrill.model.variant import Mistake, Variant

from .steps import Graph, NotApplicable, Slip, Values, ancestors, index, rerun, run


class Exercise:
    """Base class of an exercise type. Subclasses fill in every method above the line."""

    id: ClassVar[str]
    title: ClassVar[str]  # heading on the sheet
    summary: ClassVar[str]  # one line for `deepdrill list`
    params: ClassVar[tuple[str, ...]]  # public parameter names
    options: ClassVar[dict[str, Any]] = {}  # size options and their defaults
    work_space: ClassVar[str] = "6cm"  # room to work below the problem on the sheet
    # room a question needs below its heading, or it starts on a new page (more for a
    # figure that should stay with the text that follows it)
    need_space: ClassVar[str] = r"9\baselineskip"
    version: ClassVar[int] = 1  # raise when answers, fields or parameters change meaning
    # LaTeX packages the templates need beyond the sheet's own (e.g. ("tikz",) for a
    # figure): loaded only in documents that hold such a question, so others compile fast
    packages: ClassVar[tuple[str, ...]] = ()
    solution_packages: ClassVar[tuple[str, ...]] = ()  # needed by the worked solution only

    def sample(self, rng: np.random.Generator, pinned: dict[str, Any],
               options: dict[str, Any]) -> dict[str, Any]:
        """A complete parameter set: pinned values kept, the rest drawn from ``rng``.

        Never returns a draw that breaks the type's constraints: options that leave no
        good draw raise :class:`ParamError` saying what to change.
        """
        raise NotImplementedError

    def check(self, params: dict[str, Any]) -> dict[str, Any]:
        """Validate a complete parameter set and return it normalised (defaults filled in).

        Raises :class:`ParamError` with a message that says what to change. Checked
        parameters never make a step fail.
        """
        raise NotImplementedError

    def graph(self, params: dict[str, Any]) -> Graph:
        """The solution's steps in order (pure functions, callable on any inputs of the
        right shape: the grader feeds them a student's values)."""
        raise NotImplementedError

    def fields(self, params: dict[str, Any], values: Values) -> list[Field]:
        """The answer fields, each reading the step of its name (or its ``parts``);
        ``values`` (every step's value) serves for shapes and entry weights."""
        raise NotImplementedError

    def slips(self, params: dict[str, Any]) -> list[Slip]:
        """The recognisable mistakes, as swapped steps or changed parameters."""
        return []

    def problem(self, params: dict[str, Any]) -> dict[str, Any]:
        """Context for the problem statement (shared by problem and solution sheets).

        Values are numbers, plain text (escaped when typeset) or trusted
        :class:`~deepdrill.generator.latex.Tex`.
        """
        return {}

    def worked(self, params: dict[str, Any], values: Values) -> dict[str, Any]:
        """Context for the worked solution, from every step's value (never recomputed)."""
        return {}

    # -- the engine ----------------------------------------------------------------

    def values(self, params: dict[str, Any], slips: Sequence[Slip] = (),
               given: Mapping[str, Any] | None = None, graph: Graph | None = None) -> Values:
        """Every step's value; with ``slips`` as a student making them; with ``given``,
        each step recomputed from a student's own values of its inputs. ``graph`` is
        ``self.graph(params)`` when the caller has it already.

        Raises :class:`NotApplicable` when the slips cannot be made together here.
        """
        swaps: dict[str, Any] = {}
        changed = params
        for s in slips:
            if set(s.swaps) & set(swaps):
                raise NotApplicable(f"{s.name} swaps a step another slip swaps")
            swaps.update(s.swaps)
            changed = s.params(changed)
        if changed is not params and changed != params:
            try:
                changed = self.check(changed)
            except ParamError as err:
                raise NotApplicable(err.message) from None
        if graph is None or changed is not params:
            graph = self.graph(changed)
        if given is None:
            return run(graph, changed, swaps)
        return rerun(graph, changed, given, swaps)

    @staticmethod
    def answers(fields: Sequence[Field], values: Values) -> dict[str, Any]:
        """The answer fields as JSON values (the one place where steps become JSON)."""
        return {f.name: jsonable([values[p] for p in f.parts] if f.parts else values[f.name])
                for f in fields}

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
    exercise = REGISTRY.get(type_id)  # (the grader asks for every wrong answer: no import)
    if exercise is not None:
        return exercise
    from . import types  # a type registers itself when its module is imported

    if types.load(type_id) and type_id in REGISTRY:
        return REGISTRY[type_id]
    types.load_all()
    try:
        return REGISTRY[type_id]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise DeepdrillError(f"unknown exercise type {type_id!r}; known types: {known}") from None


def all_types() -> list[Exercise]:
    from . import types

    types.load_all()
    return [REGISTRY[k] for k in sorted(REGISTRY)]


def make_variant(type_id: str, seed: int, pinned: Mapping[str, Any] | None = None,
                 options: Mapping[str, Any] | None = None,
                 tolerances: Mapping[str, Mapping[str, Any]] | None = None) -> Variant:
    """Draw, solve and record one variant.

    A :class:`ParamError` says what to change in the parameters or options; any other
    failure inside a type is a bug in deepdrill and raised as :class:`InternalError`.

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
        drawn = ex.check(_sample(ex, seed, pinned, opts))
        params = {k: drawn[k] for k in ex.params if k in drawn}  # the catalogue's order
        graph = ex.graph(params)
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is refused just below
            values = ex.values(params, graph=graph)
        fields = ex.fields(params, values)
        answers = ex.answers(fields, values)
        _refuse_non_finite(answers)
        fields = _with_dependencies(_with_tolerances(fields, tolerances or {}, answers), graph)
        mistakes = _distinct_mistakes(ex, params, fields, answers)
    except DeepdrillError as err:
        err.exercise, err.seed = type_id, seed
        raise
    except Exception as err:  # noqa: BLE001  (a type's own failure is a bug, said as one)
        raise InternalError(f"internal error in exercise type {type_id} "
                            f"({type(err).__name__}: {err}); this is a bug in deepdrill, "
                            f"please report it with the assignment", exercise=type_id,
                            seed=seed) from err
    return Variant(type_id, seed, params, answers, tuple(fields), tuple(mistakes), ex.version,
                   values)


DRAW_ATTEMPTS = 4  # fresh random streams a draw may use before its refusal stands


def _sample(ex: Exercise, seed: int, pinned: dict[str, Any], options: dict[str, Any]) -> Any:
    """The type's draw from the variant's seed; should a rare seed find no good draw within
    the type's tries (1 seed in 600 did for overlapping max pools), the same seed's next
    streams are tried, so a class's build never fails on one unlucky student. Options that
    leave no good draw at all are still refused, with the type's own message."""
    for attempt in range(DRAW_ATTEMPTS - 1):
        try:
            return ex.sample(np.random.default_rng(seed if attempt == 0 else [seed, attempt]),
                             pinned, options)
        except ParamError:
            continue
    return ex.sample(np.random.default_rng([seed, DRAW_ATTEMPTS - 1]), pinned, options)


def _refuse_non_finite(answers: Mapping[str, Any]) -> None:
    """Parameters whose answers overflow (1e300 squared) are no exercise: say so, rather
    than store infinities no student can match and no JSON tool can read."""
    for name, value in answers.items():
        if isinstance(value, str):  # a formula
            continue
        if not np.all(np.isfinite(np.asarray(flatten(value), dtype=float))):
            raise ParamError(f"these parameters make {name} overflow to infinity or NaN; use "
                             f"numbers of the size a sheet prints")


def _with_tolerances(fields: list[Field], overrides: Mapping[str, Mapping[str, Any]],
                     answers: Mapping[str, Any]) -> list[Field]:
    """The assignment's per-field tolerances applied; real fields get their default floor."""
    names = {f.name for f in fields}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ParamError(f"tolerance given for unknown field(s) {', '.join(unknown)}; "
                         f"fields are: {', '.join(sorted(names))}")
    out = []
    for f in fields:
        o = overrides.get(f.name, {})
        tol = f.tolerance.overridden(o.get("rtol"), o.get("atol"), o.get("sigfigs"))
        if f.kind is Kind.REAL and tol.mode is Mode.RELABS and "atol" not in o and not tol.atol:
            tol = replace(tol, atol=float(f"{default_floor(flatten(answers[f.name]), tol.rtol):.2g}"))
        out.append(replace(f, tolerance=tol) if tol != f.tolerance else f)
    return out


def _with_dependencies(fields: list[Field], graph: Graph) -> list[Field]:
    """Each field with the fields it is computed from (the catalogue's chains), so the
    grader knows without the graph when a student's own earlier values matter."""
    owner = {step: f.name for f in fields for step in f.steps}
    by_name = index(graph)
    out = []
    for f in fields:  # a field whose items follow from its own earlier items names itself
        above = set().union(*(ancestors(by_name, s) for s in f.steps))
        names = {owner[s] for s in above if s in owner}
        out.append(replace(f, depends_on=tuple(g.name for g in fields if g.name in names)))
    return out


def _distinct_mistakes(ex: Exercise, params: dict[str, Any], fields: list[Field],
                       answers: dict[str, Any]) -> list[Mistake]:
    """Each slip's answers, keeping only the fields it changes; slips that change nothing
    (ignoring a padding of 0) or cannot be made here are left out: they cannot be told
    apart from a right answer."""
    kept = []
    for slip in ex.slips(params):
        try:
            wrong = ex.answers(fields, ex.values(params, [slip]))
        except NotApplicable:
            continue
        changed = {f.name: wrong[f.name] for f in fields
                   if differs(f, wrong[f.name], answers[f.name])}
        if changed:
            kept.append(Mistake(slip.name, slip.feedback, changed))
    return kept


def differs(f: Field, value: Any, right: Any) -> bool:
    """Whether a value (JSON) is told apart from the right one under the field's tolerance
    (a formula: by meaning)."""
    if f.kind is Kind.EXPRESSION:
        return not expressions.equivalent(expressions.parse(value, f.symbols),
                                          expressions.parse(right, f.symbols))
    if shape_of(value) != shape_of(right):
        return True
    theirs = np.asarray(flatten(value), dtype=float)
    return not np.all(entries_match(f.tolerance, theirs, np.asarray(flatten(right), dtype=float)))


def require(params: Mapping[str, Any], *names: str) -> None:
    """ParamError naming the first of ``names`` that ``params`` lacks (for ``check``)."""
    for name in names:
        if name not in params:
            raise ParamError(f"missing parameter {name!r}")


def numbers(value: Any, name: str) -> np.ndarray:
    """A parameter as a float array of finite numbers (rows of equal length), or a
    ParamError saying so (for ``check``; booleans and text are not numbers)."""
    try:
        arr = np.asarray(value)
        ok = arr.dtype.kind in "iuf" and bool(np.all(np.isfinite(arr)))
    except (TypeError, ValueError):  # ragged rows
        ok = False
    if not ok:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise ParamError(f"{name} must be made of finite numbers (lists of numbers, rows of "
                         f"equal length), not {shown}")
    return arr.astype(float)


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
