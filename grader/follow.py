"""Following a student's own values along the solution's steps, and naming mistakes.

:class:`Steps` re-runs the stored variant's type on one student's values (the
grader calls pure steps; it never draws a variant again):

* a field wrong against the key is recomputed from the student's own values of the
  steps it depends on, transitively through steps they did not give
  (:func:`deepdrill.generator.steps.rerun`); where it matches, it was done right from
  those values;
* what is still wrong gets one diagnosis for the question: the stored mistakes
  first, then each slip and each pair of slips made on the student's own values,
  the one explaining the most fields first.
"""

from __future__ import annotations

import functools
import itertools
import operator
import warnings
from typing import Any

import numpy as np

from deepdrill.generator.exercise import get  # the grader may call a type's steps
from deepdrill.generator.steps import Graph, Slip, behind, frontier, index
from deepdrill.model.fields import Field, Kind, flatten, shape_of, size
from deepdrill.model.tolerance import MAX_EXACT, all_match, matches
from deepdrill.model.variant import Mistake, Variant

from .reading import _PLAIN, Reading, bits, flat, ones, read_leaves, span



class Steps:
    """The stored variant's type, re-run on one student's values."""

    def __init__(self, variant: Variant, readings: dict[str, Reading]):
        self.variant, self.readings = variant, readings
        self.exercise = get(variant.type)
        self._graph: Graph | None = None
        self._touched_by: dict[str, frozenset[str]] = {}
        self._behind_field: dict[str, set[str]] = {}
        self._json: dict[str, Any] = {}  # given steps' values as JSON, made once
        self._item_names: dict[str, str] = {}
        self._flats: dict[tuple[str, str, int], list[float] | None] = {}
        self._right: dict[str, bool] = {}  # _is_right of the steps read, as credited so far
        # a wrong field whose earlier fields (its own earlier items included) were given
        # other than the key's: what it should be from them is worth recomputing
        self.to_recompute = [r for r in readings.values() if r.wrong and any(
            readings[g].values is not None and not readings[g].exact for g in r.field.depends_on)]

    @property
    def graph(self) -> Graph:
        if self._graph is None:
            self._graph = self.exercise.graph(self.variant.params)
        return self._graph

    @functools.cached_property
    def by_name(self) -> dict[str, Any]:
        """The graph's steps by name, for walking it step by step."""
        return index(self.graph)

    @functools.cached_property
    def where(self) -> dict[str, tuple[Reading, tuple[int, int], list[int]]]:
        """Each step's field, slice and shape."""
        return {step: (r, span, shape) for r in self.readings.values()
                for step, span, shape in r.field.slices}

    def follow(self) -> None:
        if self.to_recompute and self.given:
            self._own_values()
        self._diagnose()

    @functools.cached_property
    def given(self) -> dict[str, Any]:
        """The student's values that can feed a step: readable, complete, the key's shape."""
        given: dict[str, Any] = {}
        for r in self.readings.values():
            if r.values is None:
                continue
            whole = r.field.kind is Kind.INTEGER
            values = r.values
            # not NaN, and no larger than a float holds exactly (checked per step if not all)
            fit = r.readable == r.all and (not values or max(map(abs, values)) <= MAX_EXACT)
            for step, (start, stop), shape in r.field.slices:
                part = values[start:stop]
                if not fit and not all(-MAX_EXACT <= x <= MAX_EXACT for x in part):
                    continue
                if whole and len(shape) < 2:  # a count, or a shape [C, H, W]: as the
                    # type's own solve passes them to its steps (Python ints, a tuple)
                    given[step] = tuple(map(int, part)) if shape else int(part[0])
                    continue
                value = np.array(part, dtype=np.int64 if whole else float)
                given[step] = value.reshape(shape) if shape else value[0]
        return given

    def _rerun(self, slips: tuple = (), graph: Graph | None = None) -> dict[str, Any] | None:
        """Every step (of ``graph``, a part of the graph in its order) recomputed from the
        student's given values (None if they cannot feed the steps: a student's number may
        make a step meaningless, never an error)."""
        # a student's numbers may make a step meaningless (a log of 0): no warning, no error
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return self.exercise.values(self.variant.params, slips, given=self.given,
                                            graph=self.graph if graph is None else graph)
            except Exception:  # noqa: BLE001  (values that cannot feed a step: no credit)
                return None

    def _own_values(self) -> None:
        # only the steps of entries not already right against the key, and what they read
        wanted = [(r, step, start, stop) for r in self.to_recompute
                  for step, (start, stop), _ in r.field.slices
                  if span(r.ok, start, stop) != ones(stop - start)]
        needed = behind(self.by_name, [step for _, step, _, _ in wanted], self.given)[0]
        recomputed = self._rerun(graph=tuple(s for s in self.graph if s.name in needed))
        if recomputed is None:
            return
        for r in self.to_recompute:
            r.rounded, r.carried = 0, 0
        for r, step, start, stop in wanted:
            self._credit_step(r, step, start, stop, recomputed)

    def _credit_step(self, r: Reading, step: str, start: int, stop: int,
                     recomputed: dict) -> None:
        """Entries of one step right from the student's own values of its inputs: right
        when those values were right (rounded), carried forward when they were wrong, and
        then only when the whole step is consistent (a constant answer matching here and
        there by chance earns nothing)."""
        inputs = frontier(self.by_name, step, self.given)
        theirs = flat(recomputed.get(step), stop - start) if inputs else None
        if theirs is None:
            return
        ok = span(r.ok, start, stop)
        match = matches(r.field.tolerance, r.values[start:stop], theirs) & \
            span(r.readable, start, stop) & ~ok
        right = self._right
        wrong_inputs = [name for name in inputs if not (
            right[name] if name in right else right.setdefault(name, self._is_right(name)))]
        if not wrong_inputs:
            if match:
                r.rounded |= match << start
                right.pop(step, None)  # (it may be right now)
        elif match and (match | ok) == ones(stop - start):
            r.carried |= match << start
            if r.consistent_with is None:
                r.consistent_with = {}
            self._name_values(r.consistent_with, wrong_inputs, inputs)

    def _is_right(self, step: str) -> bool:
        """Right against the key, or right from the student's own right values (a rounded
        mean, a blank's other valid value): later steps built on it are simply right too."""
        r, (start, stop), _ = self.where[step]
        if r.ok is None:
            return False
        right = r.ok | (r.rounded or 0)
        return span(right, start, stop) == ones(stop - start)

    def _name_values(self, out: dict[str, Any], steps: list[str], used: list[str]) -> None:
        """The student's values of some steps added to ``out``, named as the student knows
        them: a whole field when all its steps were used, else ``field[i]``. (A name in
        ``out`` already has its value there: each name has one.)"""
        for step in steps:
            f = self.where[step][0].field
            if not f.parts:
                if f.name not in out:
                    out[f.name] = self._as_json(step)
            elif used_all(f.parts, used):
                if f.name not in out:
                    out[f.name] = [self._as_json(p) for p in f.parts]
            else:
                name = self._item_name(f, step)
                if name not in out:
                    out[name] = self._as_json(step)

    def _item_name(self, f: Field, step: str) -> str:
        """``field[i]``: one item of a field with parts, as the student knows it."""
        if step not in self._item_names:
            self._item_names.update((p, f"{f.name}[{i}]") for i, p in enumerate(f.parts))
        return self._item_names[step]

    def _as_json(self, step: str) -> Any:
        """A given step's value as JSON, from the student's numbers (what
        :func:`~deepdrill.generator.exercise.jsonable` makes of it, without numpy)."""
        if step in self._json:
            return self._json[step]
        r, (start, stop), shape = self.where[step]
        part = r.values[start:stop]
        if r.field.kind is Kind.INTEGER or all(x.is_integer() and -2**53 < x < 2**53
                                                for x in part):
            part = [int(x) for x in part]
        value = self._json[step] = nest(part, shape) if shape else part[0]
        return value

    # -- naming mistakes -----------------------------------------------------------

    def _diagnose(self) -> None:
        """One diagnosis for the question: stored mistakes first, then each slip and each
        pair of slips made on the student's own values, greedily by fields explained."""
        open_ = [r for r in self.readings.values() if r.needs_following]
        if not open_:
            return
        self._assign(open_, [(m, m.answers) for m in self.variant.mistakes], stored=True)
        open_ = [r for r in open_ if r.mistake is None]
        if not open_:
            return
        # The stored mistakes are the type's slips that change something here, in the
        # slips' order: a slip (or pair) is judged by the entries its stored answers
        # change before the type's slips are even asked for, and re-run only if it could
        # be what the student did (this keeps grading fast for answers nothing explains).
        changes: dict[tuple[str, str], Any] = {}

        def masks(group: tuple[Mistake, ...], r: Reading) -> list[Any]:
            out = []
            for m in group:
                at = (m.name, r.field.name)
                if at not in changes:
                    changes[at] = self._changes(m, r)
                out.append(changes[at])
            return out

        for size_, test in ((1, _could_explain), (2, _each_could_explain)):
            plausible: list[tuple[str, ...]] = []
            for r in open_:
                pool: Any = self.variant.mistakes
                if size_ == 2 and not r.shape_problem:  # a pair's slips must each change
                    # an entry the student got wrong: pair only those (in their order)
                    wrong = r.wrong
                    pool = [m for m in pool if (c := masks((m,), r)[0]) is not None and
                            (c is SHAPE or c & wrong)]
                for g in itertools.combinations(pool, size_):
                    names = tuple(m.name for m in g)
                    if names not in plausible and test(r, masks(g, r)) and \
                            self._reach(names, r):
                        plausible.append(names)
            self._assign(open_, self._made(plausible, [r.field for r in open_]))
            open_ = [r for r in open_ if r.mistake is None]
            if not open_:
                return

    @functools.cached_property
    def slips(self) -> dict[str, Slip]:
        return {s.name: s for s in self.exercise.slips(self.variant.params)}

    def _reach(self, names: tuple[str, ...], r: Reading) -> bool:
        """Whether each slip named can change the field's recomputation from the student's
        values at all (cheap set operations)."""
        if r.field.name not in self._behind_field:
            self._behind_field[r.field.name] = self._behind(r.field)
        reach = self._behind_field[r.field.name]
        return all(n in self.slips and self._touched(self.slips[n]) & reach for n in names)

    def _behind(self, f: Field) -> set[str]:
        """The steps and parameters a field's recomputation from the student's values reads."""
        steps, read = behind(self.by_name, f.steps, self.given)  # (one walk for all)
        return steps | read

    def _touched(self, slip: Slip) -> frozenset[str]:
        """The steps a slip swaps and the parameters it changes."""
        if slip.name not in self._touched_by:
            self._touched_by[slip.name] = self._work_out_touched(slip)
        return self._touched_by[slip.name]

    def _work_out_touched(self, slip: Slip) -> frozenset[str]:
        params = self.variant.params
        try:
            changed = slip.params(params)
        except Exception:  # noqa: BLE001  (judged when re-run)
            return frozenset(params)
        return frozenset(slip.swaps) | {k for k, v in changed.items() if params.get(k) != v}

    def _changes(self, m: Mistake, r: Reading) -> Any:
        """The entries of a field that a stored mistake changes (a mask; None if it changes
        none, SHAPE when it changes the field's shape). A slip (or pair) that does not
        change an entry a student got wrong, or changes one they got right, cannot be what
        they did: such groups are not re-run (this keeps grading fast for answers no
        mistake explains)."""
        value = m.answers.get(r.field.name)
        if value is None:
            return None
        n = r.n or size(r.field.shape)  # (a field left blank was not read: n is 0)
        theirs = self._flat(m, r, n)
        if theirs is None:
            return SHAPE
        want = r.want if r.want is not None else [float(x) for x in flatten(r.key_value)]
        return ~matches(r.field.tolerance, theirs, want) & ones(n)

    def _made(self, groups: list[tuple[str, ...]],
              fields: list[Field]) -> list[tuple[Mistake, dict]]:
        """What the student's fields would be had they made each group of slips (on their
        own values of the other steps)."""
        out: list[tuple[Mistake, dict]] = []
        if not groups:
            return out
        # only the steps these fields read (a slip that changes parameters re-runs all)
        needed = behind(self.by_name, [step for f in fields for step in f.steps], self.given)[0]
        part = tuple(s for s in self.graph if s.name in needed)
        for names in groups:
            group = tuple(self.slips[n] for n in names)
            values = self._rerun(group, part)
            if values is None:
                continue
            try:
                answers = self.exercise.answers(fields, values)
            except Exception:  # noqa: BLE001  (a slip's steps on a student's values)
                continue
            m = Mistake("+".join(s.name for s in group),
                        " and ".join(s.feedback for s in group), answers)
            out.append((m, answers))
        return out

    def _flat(self, m: Mistake, r: Reading, n: int) -> list[float] | None:
        """A stored mistake's value of a field as n flat floats (:func:`flat`), made once
        for naming it and for judging its slip."""
        at = (m.name, r.field.name, n)
        if at not in self._flats:
            self._flats[at] = flat(m.answers.get(r.field.name), n)
        return self._flats[at]

    def _assign(self, open_: list[Reading], candidates: list[tuple[Mistake, dict]],
                stored: bool = False) -> None:
        """Greedily: the candidate explaining the most fields not yet explained names them
        (the first such candidate on a tie), then the next. (``stored``: the variant's
        mistakes, whose flattened values are remembered for judging their slips.)"""
        explains = []
        for m, answers in candidates:
            explained = [r for r in open_ if r.mistake is None and r.field.name in answers
                         and (r.shape_problem or not _differs_first(r, answers[r.field.name]))
                         and _explains(r, answers[r.field.name], self._flat(m, r, r.n)
                                       if stored and not r.shape_problem else None)]
            if explained:  # (most explain nothing: they never need looking at again)
                explains.append((m, explained))
        while True:
            best, best_fields = None, []
            for m, explained in explains:
                explained = [r for r in explained if r.mistake is None]
                if len(explained) > len(best_fields):
                    best, best_fields = m, explained
            if best is None:
                return
            for r in best_fields:
                r.mistake = best


def used_all(parts: tuple[str, ...], used: list[str]) -> bool:
    """Whether every one of a field's parts is among the steps used."""
    if len(parts) > len(used):
        return False
    return set(used).issuperset(parts)


def nest(flat: list[Any], shape: list[int]) -> list[Any]:
    """Row-major flat values as nested lists of a (rectangular) shape, as numpy's tolist
    gives them.

    >>> nest([1, 2, 3, 4, 5, 6], [2, 3]), nest([], [2, 0])
    ([[1, 2, 3], [4, 5, 6]], [[], []])
    """
    if len(shape) <= 1:
        return flat
    size = len(flat) // shape[0] if shape[0] else 0
    return [nest(flat[i * size:(i + 1) * size], shape[1:]) for i in range(shape[0])]


SHAPE = "shape"  # a mistake that changes a field's shape
PAIR_MEETS_KEY = 0.25  # at most this share of what a pair's slips change may equal the key


def _could_explain(r: Reading, changes: list[Any]) -> bool:
    """Whether one slip, changing these entries, could give what the student wrote in
    ``r``: it changes every entry they got wrong and none they got right (a slip gives the
    key wherever it changes nothing)."""
    mask = changes[0]
    if r.shape_problem or mask is SHAPE:
        return bool(r.shape_problem) and mask is SHAPE
    wrong = r.wrong
    return mask is not None and bool(wrong) and not wrong & ~mask and not r.ok & mask


def _each_could_explain(r: Reading, changes: list[Any]) -> bool:
    """For a pair: each slip changes some entry the student got wrong, and few of the
    entries either changes were answered right. (Two slips can interact: where their
    changes cancel, a pair meets the key again, so this is no exact rule; a student with
    one slip of the pen in a field the pair changes all over is not worth a re-run.)"""
    if r.shape_problem:
        return any(c is SHAPE for c in changes)
    wrong = r.wrong
    if not wrong or not all(m is not None and (m is SHAPE or m & wrong) for m in changes):
        return False
    arrays = [m for m in changes if m is not SHAPE]
    changed = functools.reduce(operator.or_, arrays) if arrays else wrong
    return (r.ok & changed).bit_count() <= PAIR_MEETS_KEY * changed.bit_count()


def _differs_first(r: Reading, value: Any) -> bool:
    """A quick no before :func:`_explains` flattens a whole value: True when the field's
    first wrong entry is surely not ``value``'s (most candidates differ there), or
    nothing is wrong. It finds that entry as :func:`flat` orders them; where it cannot
    tell cheaply (deeper nesting, an entry that is no plain number), False."""
    wrong = r.wrong
    if not wrong:
        return True
    at = i = (wrong & -wrong).bit_length() - 1
    if type(value) is not list:
        entry = value if i == 0 else None
    else:
        entry = None
        for v in value:
            if type(v) is list:
                if v and type(v[0]) is list:  # deeper: flat orders it through numpy
                    return False
                if i < len(v):
                    entry = v[i]
                    break
                i -= len(v)
            elif i == 0:
                entry = v
                break
            else:
                i -= 1
        else:
            return True  # fewer entries than the field's: flat gives None
    if type(entry) not in _PLAIN:
        return False
    return not all_match(r.field.tolerance, [r.values[at]], [float(entry)])


def _explains(r: Reading, value: Any, theirs: list[float] | None = None) -> bool:
    """Whether a mistake's value is what the student gave: on every entry given, and on
    a wrong shape only when the shapes agree (``theirs``: the value's flat floats when the
    caller has them)."""
    if value is None:
        return False
    if r.shape_problem:
        if shape_of(value) != shape_of(r.given):
            return False
        values, errors = read_leaves(r.field, flatten(r.given))
        if errors:
            return False
        theirs = flat(value, len(values))
        return theirs is not None and all_match(r.field.tolerance, values, theirs)
    if not r.wrong:
        return False  # nothing wrong to explain
    if theirs is None:
        theirs = flat(value, r.n)
    if theirs is None:
        return False
    # every entry given must be the mistake's, right ones included (and so finite in the
    # mistake too: no tolerance passes inf or NaN)
    values = r.values
    if r.readable != r.all:
        given = bits(r.readable)
        values, theirs = [values[i] for i in given], [theirs[i] for i in given]
    return all_match(r.field.tolerance, values, theirs)
