"""Scoring one question of one student along the solution's steps.

Parse, then validate, then grade, the way a TA works through a stack of homework:

1. each field is read and compared with the stored key (entry by entry, under the
   field's tolerance);
2. a field that is wrong against the key is recomputed from the student's *own*
   values of the steps it depends on (transitively, through steps the student did
   not give): if it matches, it was done right from those values. When those
   values were themselves right (a rounded mean, say), the field is simply correct;
   when they were wrong, it earns carried-forward credit under the question's
   policy, and the feedback names the values it was consistent with;
3. what is still wrong is diagnosed once for the whole question: the recognised
   mistake (or pair of mistakes) that explains the most fields is named on each
   field it explains.

A bad value becomes a message and zero credit for that field (or entry), never an
exception. The grader calls the type's pure steps on the stored variant's
parameters; it never draws a variant again.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepdrill.model.fields import (Field, Kind, describe_shape, flatten, is_ragged, shape_of,
                                    size)
from deepdrill.model.tolerance import entries_match
from deepdrill.model.variant import Mistake, Variant

from .numbers import NonFinite, NotANumber, parse_integer, parse_number

MAX_LISTED = 4  # wrong entries named in one feedback line
MAX_ECHO = 2000  # leaves of a given value echoed back in the report
_PLAIN = (int, float)


@dataclass(frozen=True)
class CreditPolicy:
    """How a question's points are earned.

    ``carry_forward`` is the share of an entry's credit earned by a value computed
    right from the student's own wrong earlier values (1: full, 0: none).
    """

    per_entry: bool = True  # an array earns credit per correct entry; False: all or nothing
    carry_forward: float = 1.0


@dataclass
class FieldResult:
    correct: bool
    score: float
    max_score: float
    expected: Any
    given: Any
    feedback: str
    mistake: str | None = None
    carried: float = 0.0  # the part of ``score`` earned by carried-forward credit
    consistent_with: dict[str, Any] | None = None  # the student's values it was right for

    def to_json(self) -> dict[str, Any]:
        out = {"correct": self.correct, "score": round(self.score, 4),
               "max_score": round(self.max_score, 4), "expected": self.expected,
               "given": self.given, "feedback": self.feedback, "mistake": self.mistake}
        if self.carried:
            out["carried_forward"] = round(self.carried, 4)
            out["consistent_with"] = self.consistent_with
        return out


@dataclass
class QuestionResult:
    score: float
    max_score: float
    fields: dict[str, FieldResult]
    notes: list[str] = field(default_factory=list)

    @property
    def carried(self) -> float:
        return sum(f.carried for f in self.fields.values())

    def to_json(self) -> dict[str, Any]:
        return {"score": round(self.score, 4), "max_score": round(self.max_score, 4),
                "carried_forward": round(self.carried, 4),
                "fields": {k: v.to_json() for k, v in self.fields.items()},
                "notes": self.notes}


# -- one field as read -------------------------------------------------------------

@dataclass
class Reading:
    """A student's value of one field, read against the key."""

    field: Field
    share: float  # the field's points
    given: Any  # as submitted
    echo: Any = None
    values: np.ndarray | None = None  # flat floats in the key's order, NaN where unreadable
    errors: dict[int, str] = field(default_factory=dict)
    ok: np.ndarray | None = None  # matches the key
    own: np.ndarray | None = None  # matches the recomputation from the student's own values
    own_right: bool = True  # ... and those values were right (rounding, not a mistake)
    consistent_with: dict[str, Any] = field(default_factory=dict)
    shape_problem: str | None = None
    mistake: Mistake | None = None
    key_value: Any = None

    @property
    def readable(self) -> np.ndarray:
        return ~np.isnan(self.values) if self.values is not None else np.zeros(0, bool)

    @property
    def credited(self) -> np.ndarray:
        if self.ok is None:
            return np.zeros(size(self.field.shape), bool)
        return self.ok | (self.own if self.own is not None else False)

    @property
    def complete(self) -> bool:
        return self.ok is not None and bool(self.credited.all())


def read_field(f: Field, expected: Any, given: Any, share: float) -> Reading:
    r = Reading(f, share, given, key_value=expected)
    if given is None:
        return r
    leaves = flatten(given)  # once: conform() keeps their order, echo and parsing reuse them
    if given == expected and all(type(x) in _PLAIN for x in leaves):
        # Exactly the key, in plain JSON numbers (type() also keeps out True == 1): the
        # common case for counts, shapes and integer maps needs no parsing or tolerance.
        r.echo, r.values = given, np.asarray(leaves, dtype=float)
        r.ok = np.ones(len(leaves), dtype=bool)
        return r
    r.echo = echo_value(given, leaves)
    want_shape = shape_of(expected)
    if conform(given, want_shape) is None:
        r.shape_problem = f"expected {describe_shape(want_shape)}, got {describe_given(given)}"
        return r
    r.values, r.errors = read_leaves(f, leaves)
    want = np.asarray(flatten(expected), dtype=float)
    r.ok = np.zeros(len(want), dtype=bool)
    readable = r.readable
    r.ok[readable] = entries_match(f.tolerance, r.values[readable], want[readable])
    return r


def grade_question(variant: Variant, answers: Any, points: float,
                   policy: CreditPolicy = CreditPolicy()) -> QuestionResult:
    """Grade a student's answers for one question (a dict of field -> value, or anything bad)."""
    notes: list[str] = []
    if answers is None:
        answers, notes = {}, ["no answers for this question"]
    elif not isinstance(answers, dict):
        notes.append(f"expected an object of fields here, got {_kind(answers)}")
        answers = {}
    extra = sorted(set(answers) - {f.name for f in variant.fields})
    if extra:
        notes.append("ignored unknown field(s): " + ", ".join(str(e)[:40] for e in extra[:10]))
    total_weight = sum(f.weight for f in variant.fields) or 1.0
    readings = {f.name: read_field(f, variant.answers[f.name], answers.get(f.name),
                                   points * f.weight / total_weight)
                for f in variant.fields}
    if not all(r.complete for r in readings.values()):
        Steps(variant, readings).follow()
    results = {name: score_field(r, policy) for name, r in readings.items()}
    return QuestionResult(sum(r.score for r in results.values()), float(points), results, notes)


# -- following the student's own values --------------------------------------------

class Steps:
    """The stored variant's type, re-run on one student's values."""

    def __init__(self, variant: Variant, readings: dict[str, Reading]):
        from deepdrill.generator.exercise import get  # the grader may call a type's steps

        self.variant, self.readings = variant, readings
        self.exercise = get(variant.type)
        self.graph = self.exercise.graph(variant.params)
        self.given = self._given_steps()
        self.wrong = [r for r in readings.values() if _has_wrong_entries(r)]

    def follow(self) -> None:
        if self.given and self.wrong:
            self._own_values()
        self._diagnose()

    def _given_steps(self) -> dict[str, Any]:
        """The student's values that can feed a step: readable, complete, the key's shape."""
        given: dict[str, Any] = {}
        for r in self.readings.values():
            if r.values is None:
                continue
            for step, (start, stop), shape in _parts(r.field):
                part = r.values[start:stop]
                if np.isnan(part).any():
                    continue
                value = part.astype(np.int64) if r.field.kind is Kind.INTEGER else part
                given[step] = value.reshape(shape) if shape else value[0]
        return given

    def _rerun(self, slips: tuple = ()) -> dict[str, Any] | None:
        """Every step recomputed from the student's given values (None if they cannot feed
        the steps: a student's number may make a step meaningless, never an error)."""
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return self.exercise.values(self.variant.params, slips, given=self.given)
        except Exception:  # noqa: BLE001  (student values that cannot feed a step: no credit)
            return None

    def _own_values(self) -> None:
        from deepdrill.generator.steps import frontier

        recomputed = self._rerun()
        if recomputed is None:
            return
        for r in self.wrong:
            own = np.zeros_like(r.ok)
            right_inputs, used = True, {}
            for step, (start, stop), _ in _parts(r.field):
                inputs = frontier(self.graph, step, self.given)
                if not inputs:
                    continue
                theirs = _flat(recomputed.get(step), stop - start)
                if theirs is None:
                    continue
                entries = slice(start, stop)
                readable = r.readable[entries]
                match = np.zeros(stop - start, dtype=bool)
                match[readable] = entries_match(r.field.tolerance, r.values[entries][readable],
                                                theirs[readable])
                match &= ~r.ok[entries]
                if not match.any():
                    continue
                own[entries] = match
                for name in inputs:
                    if not self._is_right(name):
                        right_inputs = False
                        used[name] = _jsonable(self.given[name])
            if own.any():
                r.own, r.own_right, r.consistent_with = own, right_inputs, used

    def _is_right(self, step: str) -> bool:
        for r in self.readings.values():
            for name, (start, stop), _ in _parts(r.field):
                if name == step:
                    return r.ok is not None and bool(r.ok[start:stop].all())
        return False

    # -- naming mistakes -----------------------------------------------------------

    def _diagnose(self) -> None:
        """One diagnosis for the question: stored mistakes first, then each slip and each
        pair of slips made on the student's own values, greedily by fields explained."""
        open_ = [r for r in self.readings.values() if _needs_diagnosis(r)]
        if not open_:
            return
        self._assign(open_, [(m, m.answers) for m in self.variant.mistakes])
        open_ = [r for r in open_ if r.mistake is None]
        if not open_ or not any(r.readable.any() for r in open_):
            return
        slips = self.exercise.slips(self.variant.params)
        for groups in ([(s,) for s in slips], itertools.combinations(slips, 2)):
            self._assign(open_, self._made(groups, [r.field for r in open_]))
            open_ = [r for r in open_ if r.mistake is None]
            if not open_:
                return

    def _made(self, groups: Any, fields: list[Field]) -> list[tuple[Mistake, dict]]:
        """What the student's fields would be had they made each group of slips (on their
        own values of the other steps)."""
        out = []
        for group in groups:
            values = self._rerun(tuple(group))
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

    def _assign(self, open_: list[Reading], candidates: list[tuple[Mistake, dict]]) -> None:
        while True:
            best, best_fields = None, []
            for m, answers in candidates:
                explained = [r for r in open_ if r.mistake is None and
                             r.field.name in answers and _explains(r, answers[r.field.name])]
                if len(explained) > len(best_fields):
                    best, best_fields = m, explained
            if best is None:
                return
            for r in best_fields:
                r.mistake = best


def _has_wrong_entries(r: Reading) -> bool:
    return r.ok is not None and not bool(r.ok.all())


def _needs_diagnosis(r: Reading) -> bool:
    if r.shape_problem:
        return True
    return r.ok is not None and not bool(r.credited.all()) and bool(r.readable.any())


def _explains(r: Reading, value: Any) -> bool:
    """Whether a mistake's value is what the student gave: on every entry given, and on
    a wrong shape only when the shapes agree."""
    if value is None:
        return False
    if r.shape_problem:
        if shape_of(value) != shape_of(r.given):
            return False
        values, errors = read_leaves(r.field, flatten(r.given))
        if errors:
            return False
        theirs = _flat(value, len(values))
        return theirs is not None and bool(np.all(entries_match(r.field.tolerance, values, theirs)))
    if not (r.readable & ~r.credited).any():
        return False  # nothing wrong to explain
    given = r.readable  # and every entry given must be the mistake's, right ones included
    theirs = _flat(value, len(r.values))
    if theirs is None or not np.isfinite(theirs[given]).all():
        return False
    return bool(np.all(entries_match(r.field.tolerance, r.values[given], theirs[given])))


def _parts(f: Field) -> list[tuple[str, tuple[int, int], list[int]]]:
    """Each step a field reads, with its slice of the flat entries and its shape."""
    if not f.parts:
        return [(f.name, (0, size(f.shape)), f.shape)]
    out, start = [], 0
    shapes = f.shape if is_ragged(f.shape) else [f.shape[1:]] * len(f.parts)
    for step, shape in zip(f.parts, shapes):
        n = size(shape)
        out.append((step, (start, start + n), shape))
        start += n
    return out


def _flat(value: Any, n: int) -> np.ndarray | None:
    """A step's value as n flat floats, or None when it cannot be (wrong size, not numbers)."""
    if value is None:
        return None
    try:
        if isinstance(value, (list, tuple)) and any(isinstance(v, (list, tuple, np.ndarray))
                                                    for v in value):
            arr = np.concatenate([np.ravel(np.asarray(v, dtype=float)) for v in value])
        else:
            arr = np.ravel(np.asarray(value, dtype=float))
    except (TypeError, ValueError):
        return None
    return arr if arr.size == n else None


def _jsonable(value: Any) -> Any:
    return np.asarray(value).tolist()


# -- scoring --------------------------------------------------------------------------

def score_field(r: Reading, policy: CreditPolicy) -> FieldResult:
    f, share = r.field, r.share
    mistake = r.mistake
    name = mistake.name if mistake else None
    if r.given is None:
        return FieldResult(False, 0.0, share, r.key_value, None, "no answer")
    if r.shape_problem:
        return FieldResult(False, 0.0, share, r.key_value, r.echo,
                           _with_mistake(r.shape_problem, mistake), name)
    n = len(r.ok)
    w = np.asarray(f.entry_weights, dtype=float) if f.entry_weights is not None else np.ones(n)
    total = w.sum() or 1.0
    right = r.ok | (r.own if r.own is not None and r.own_right else False)
    carried = (r.own & ~right) if r.own is not None and not r.own_right else np.zeros(n, bool)
    cf = policy.carry_forward
    if policy.per_entry:
        full = share * float(w[right].sum()) / total
        part = share * cf * float(w[carried].sum()) / total
    else:
        full = share if right.all() else 0.0
        part = share * cf if not right.all() and (right | carried).all() else 0.0
    score = full + part
    if right.all():
        note = "correct" if r.ok.all() else "correct (from your own rounded values)"
        return FieldResult(True, score, share, r.key_value, r.echo, note)
    how = "carried forward" + (f", {cf:.0%} of the credit" if cf < 1 else "")
    if carried.any() and (right | carried).all():
        feedback = f"right for your {_values_text(r.consistent_with)} ({how})"
    else:
        feedback = _entry_feedback(f.shape, right, carried, r.errors, policy)
        if carried.any():
            feedback += f"; {int(carried.sum())} right for your " \
                        f"{_values_text(r.consistent_with)} ({how})"
    return FieldResult(False, score, share, r.key_value, r.echo,
                       _with_mistake(feedback, mistake), name, part,
                       r.consistent_with or None if carried.any() else None)


def _values_text(values: dict[str, Any]) -> str:
    """'variance 2.4', 'normalized [-0.4564, 0.2282, ...]': the values named in feedback."""
    def short(v: Any) -> str:
        flat = [f"{x:.4g}" for x in np.ravel(np.asarray(v, dtype=float))]
        if np.ndim(v) == 0:
            return flat[0]
        return "[" + ", ".join(flat[:3]) + (", ...]" if len(flat) > 3 else "]")
    return ", ".join(f"{k} {short(v)}" for k, v in values.items())


# -- reading a student's value ------------------------------------------------

def conform(given: Any, want_shape: list) -> Any | None:
    """The given value arranged in the expected shape, or None if it cannot be.

    Lenient about size-1 dimensions only: ``[2.5]`` for a number, or a
    single-channel map wrapped in one more list.
    """
    got_shape = shape_of(given)
    if got_shape == want_shape:
        return given
    if is_ragged(want_shape) or is_ragged(got_shape):
        return None
    if [d for d in got_shape if d != 1] != [d for d in want_shape if d != 1]:
        return None
    if not want_shape:
        return flatten(given)[0]
    return np.asarray(flatten(given), dtype=object).reshape(want_shape).tolist()


def read_leaves(f: Field, leaves: list[Any]) -> tuple[np.ndarray, dict[int, str]]:
    """Each leaf as a float (NaN where unreadable), and the messages for the unreadable ones."""
    parse = parse_integer if f.kind is Kind.INTEGER else parse_number
    out = np.full(len(leaves), np.nan)
    errors: dict[int, str] = {}
    for i, leaf in enumerate(leaves):
        try:
            out[i] = parse(leaf)
        except NotANumber as err:
            errors[i] = str(err)
    return out, errors


def describe_given(value: Any) -> str:
    if not isinstance(value, list):
        return _kind(value)
    s = shape_of(value)
    return describe_shape(s) if size(s) <= 10_000 else f"a list of {len(value)} items"


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    if isinstance(value, NonFinite):
        return value.text
    return "a number" if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else type(value).__name__


def echo_value(value: Any, leaves: list[Any] | None = None) -> Any:
    """The student's value made safe to store in a JSON report (bounded in size)."""
    if not isinstance(value, list):
        return _echo_leaf(value)
    leaves = flatten(value) if leaves is None else leaves
    if len(leaves) > MAX_ECHO:
        return f"<{describe_given(value)}, not shown>"
    if all(_echo_leaf(v) is v for v in leaves):
        return value  # the common case: plain numbers and short strings, kept as given
    return [echo_value(v) for v in value]


def _echo_leaf(value: Any) -> Any:
    if isinstance(value, NonFinite):
        return value.text
    if isinstance(value, dict):
        return "<an object, not shown>"
    if isinstance(value, str) and len(value) > 80:
        return value[:77] + "..."
    return value


# -- feedback -------------------------------------------------------------------

def _index(flat: int, shape: list) -> str:
    if not shape or isinstance(shape[0], list):
        return f"item {flat + 1}" if shape else "the value"
    return "[" + ", ".join(str(i) for i in np.unravel_index(flat, shape)) + "]"


def _entry_feedback(shape: list, right: np.ndarray, carried: np.ndarray,
                    errors: dict[int, str], policy: CreditPolicy) -> str:
    n = len(right)
    parts = []
    if n > 1:
        parts.append(f"{int(right.sum())} of {n} entries correct" +
                     ("" if policy.per_entry else " (all needed for credit)"))
    wrong = [i for i in np.flatnonzero(~right & ~carried) if i not in errors]
    if wrong:
        listed = ", ".join(_index(i, shape) for i in wrong[:MAX_LISTED])
        more = f" and {len(wrong) - MAX_LISTED} more" if len(wrong) > MAX_LISTED else ""
        parts.append(("wrong: " + listed + more) if n > 1 else "not within tolerance")
    for i, msg in list(errors.items())[:MAX_LISTED]:
        parts.append(f"{_index(i, shape)}: {msg}" if n > 1 else msg)
    return "; ".join(parts)


def _with_mistake(text: str, mistake: Mistake | None) -> str:
    return f"{text}. It looks like {mistake.feedback}." if mistake else text
