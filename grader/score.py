"""Scoring one question of one student against its stored variant.

Parse, then validate, then grade: every field gets a score, a maximum and
feedback; a bad value becomes a message and zero credit for that field (or
entry), never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepdrill.generator.fields import (Field, Kind, describe_shape, flatten, is_ragged, shape_of,
                                        size)
from deepdrill.generator.variant import Mistake, Variant

from .compare import entries_match
from .numbers import NonFinite, NotANumber, parse_integer, parse_number

MAX_LISTED = 4  # wrong entries named in one feedback line
MAX_ECHO = 2000  # leaves of a given value echoed back in the report
_PLAIN = (int, float)


@dataclass(frozen=True)
class CreditPolicy:
    """How a question's points are earned."""

    per_entry: bool = True  # an array earns credit per correct entry; False: all or nothing


@dataclass
class FieldResult:
    correct: bool
    score: float
    max_score: float
    expected: Any
    given: Any
    feedback: str
    mistake: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"correct": self.correct, "score": round(self.score, 4),
                "max_score": round(self.max_score, 4), "expected": self.expected,
                "given": self.given, "feedback": self.feedback, "mistake": self.mistake}


@dataclass
class QuestionResult:
    score: float
    max_score: float
    fields: dict[str, FieldResult]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"score": round(self.score, 4), "max_score": round(self.max_score, 4),
                "fields": {k: v.to_json() for k, v in self.fields.items()},
                "notes": self.notes}


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
    results = {}
    for f in variant.fields:
        share = points * f.weight / total_weight
        results[f.name] = grade_field(f, variant.answers[f.name], answers.get(f.name), share,
                                      variant.mistakes, policy)
    score = sum(r.score for r in results.values())
    return QuestionResult(score, float(points), results, notes)


def grade_field(f: Field, expected: Any, given: Any, max_score: float,
                mistakes: tuple[Mistake, ...] = (), policy: CreditPolicy = CreditPolicy()) -> FieldResult:
    if given is None:
        return FieldResult(False, 0.0, max_score, expected, None, "no answer")
    leaves = flatten(given)  # once: conform() keeps their order, echo and parsing reuse them
    if given == expected and all(type(x) in _PLAIN for x in leaves):
        # Exactly the key, in plain JSON numbers (type() also keeps out True == 1): the
        # common case for counts, shapes and integer maps needs no parsing or tolerance.
        return FieldResult(True, max_score, max_score, expected, given, "correct")
    echo = echo_value(given, leaves)
    want_shape = shape_of(expected)
    if conform(given, want_shape) is None:
        mistake = _shape_mistake(f, given, leaves, mistakes)
        text = f"expected {describe_shape(want_shape)}, got {describe_given(given)}"
        return FieldResult(False, 0.0, max_score, expected, echo,
                           _with_mistake(text, mistake), mistake and mistake.name)
    values, errors = read_leaves(f, leaves)
    want = np.asarray(flatten(expected), dtype=float)
    ok = np.zeros(len(want), dtype=bool)
    readable = ~np.isnan(values)
    ok[readable] = entries_match(f.tolerance, values[readable], want[readable])
    n_ok, n = int(ok.sum()), len(want)
    full = n_ok == n
    earned = max_score * (n_ok / n if policy.per_entry else float(full)) if n else max_score
    if full:
        return FieldResult(True, earned, max_score, expected, echo, "correct")
    mistake = _entry_mistake(f, values, ok, mistakes)
    feedback = _entry_feedback(want_shape, ok, errors, n_ok, n, policy)
    return FieldResult(False, earned, max_score, expected, echo,
                       _with_mistake(feedback, mistake), mistake and mistake.name)


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


def _entry_feedback(shape: list, ok: np.ndarray, errors: dict[int, str], n_ok: int, n: int,
                    policy: CreditPolicy) -> str:
    parts = []
    if n > 1:
        parts.append(f"{n_ok} of {n} entries correct" +
                     ("" if policy.per_entry else " (all needed for credit)"))
    wrong = [i for i in np.flatnonzero(~ok) if i not in errors]
    if wrong:
        listed = ", ".join(_index(i, shape) for i in wrong[:MAX_LISTED])
        more = f" and {len(wrong) - MAX_LISTED} more" if len(wrong) > MAX_LISTED else ""
        parts.append(("wrong: " + listed + more) if n > 1 else "not within tolerance")
    for i, msg in list(errors.items())[:MAX_LISTED]:
        parts.append(f"{_index(i, shape)}: {msg}" if n > 1 else msg)
    return "; ".join(parts)


def _with_mistake(text: str, mistake: Mistake | None) -> str:
    return f"{text}. It looks like {mistake.feedback}." if mistake else text


def _entry_mistake(f: Field, values: np.ndarray, ok: np.ndarray,
                   mistakes: tuple[Mistake, ...]) -> Mistake | None:
    """The mistake whose answer the student gave, on every entry they gave, if one is.

    Matching only the wrong entries is not enough: an entry right where the mistake
    gives another value shows the student did not make that mistake there.
    """
    given = ~np.isnan(values)
    if not (~ok & given).any():
        return None
    for m in mistakes:
        if f.name not in m.answers:
            continue
        theirs = np.asarray(flatten(m.answers[f.name]), dtype=float)
        if len(theirs) == len(values) and \
                np.all(entries_match(f.tolerance, values[given], theirs[given])):
            return m
    return None


def _shape_mistake(f: Field, given: Any, leaves: list[Any],
                   mistakes: tuple[Mistake, ...]) -> Mistake | None:
    """A mistake whose answer has the student's (wrong) shape and matches it."""
    got_shape = shape_of(given)
    candidates = [m for m in mistakes
                  if f.name in m.answers and shape_of(m.answers[f.name]) == got_shape]
    if not candidates:
        return None
    values, errors = read_leaves(f, leaves)
    if errors:
        return None
    for m in candidates:
        theirs = np.asarray(flatten(m.answers[f.name]), dtype=float)
        if np.all(entries_match(f.tolerance, values, theirs)):
            return m
    return None
