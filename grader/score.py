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

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from deepdrill.model.fields import Kind, flatten, size
from deepdrill.model.variant import Mistake, Variant

from .follow import Steps
from .reading import Reading, bits, formula_mistake, kind_of, ones, read_field

MAX_LISTED = 4  # wrong entries named in one feedback line


@dataclass(frozen=True)
class CreditPolicy:
    """How a question's points are earned.

    ``carry_forward`` is the share of an entry's credit earned by a value computed
    right from the student's own wrong earlier values (1: full, 0: none).
    """

    per_entry: bool = True  # an array earns credit per correct entry; False: all or nothing
    carry_forward: float = 1.0


@dataclass(slots=True)
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
    # of a value partly right: the flat indices of the entries credited by nothing, and of
    # those credited as carried forward (feedback sheets mark them)
    wrong_entries: list[int] | None = None
    carried_entries: list[int] | None = None

    def to_json(self) -> dict[str, Any]:
        memo = _ROUNDED  # (rounded()'s memo, looked up here first: a report asks this most)
        top = memo.get(self.max_score) or rounded(self.max_score)
        score = top if self.score == self.max_score else \
            memo.get(self.score) or rounded(self.score)
        out = {"correct": self.correct, "score": score, "max_score": top,
               "expected": self.expected, "given": self.given, "feedback": self.feedback,
               "mistake": self.mistake}
        if self.carried:
            out["carried_forward"] = rounded(self.carried)
            out["consistent_with"] = self.consistent_with
        if self.wrong_entries is not None:
            out["wrong_entries"] = self.wrong_entries
            out["carried_entries"] = self.carried_entries
        return out


@dataclass(slots=True)
class QuestionResult:
    score: float
    max_score: float
    fields: dict[str, FieldResult]
    notes: list[str] = field(default_factory=list)
    carried: float = field(init=False)  # the part of ``score`` earned by carried-forward credit

    def __post_init__(self) -> None:
        self.carried = sum(f.carried for f in self.fields.values())

    def to_json(self) -> dict[str, Any]:
        return {"score": rounded(self.score), "max_score": rounded(self.max_score),
                "carried_forward": rounded(self.carried),
                "fields": {k: v.to_json() for k, v in self.fields.items()},
                "notes": self.notes}


_ROUNDED: dict[float, float] = {}


def rounded(x: float) -> float:
    """``round(x, 4)`` as reports give scores, remembered: a class's scores are a few
    hundred distinct numbers, and rounding one is slow. (Zero is not remembered: -0.0
    would be taken for 0.0.)"""
    if not x:
        return round(x, 4)
    r = _ROUNDED.get(x)
    if r is None:
        if len(_ROUNDED) >= 4096:
            _ROUNDED.clear()
        r = _ROUNDED[x] = round(x, 4)
    return r


def grade_question(variant: Variant, answers: Any, points: float,
                   policy: CreditPolicy = CreditPolicy()) -> QuestionResult:
    """Grade a student's answers for one question (a dict of field -> value, or anything bad)."""
    notes: list[str] = []
    if answers is None:
        answers, notes = {}, ["no answers for this question"]
    elif not isinstance(answers, dict):
        notes.append(f"expected an object of fields here, got {kind_of(answers)}")
        answers = {}
    if not answers.keys() <= variant.answers.keys():  # (the key has every field)
        extra = sorted(answers.keys() - variant.answers.keys())
        notes.append("ignored unknown field(s): " + ", ".join(str(e)[:40] for e in extra[:10]))
    total_weight = sum([f.weight for f in variant.fields]) or 1.0
    if not notes and _is_the_key(answers, variant):
        results = {}
        for f in variant.fields:
            share = points * f.weight / total_weight
            results[f.name] = FieldResult(True, share, share, variant.answers[f.name],
                                          answers[f.name], "correct")
        return QuestionResult(sum(r.score for r in results.values()), float(points), results,
                              notes)
    readings = {f.name: read_field(f, variant.answers[f.name], answers.get(f.name),
                                   points * f.weight / total_weight)
                for f in variant.fields}
    if any(r.needs_following for r in readings.values()):
        Steps(variant, readings).follow()
    for r in readings.values():  # formulas are not followed: their mistakes are named here
        if r.formula is not None and r.mistake is None:
            r.mistake = formula_mistake(r, variant.mistakes)
    results = {name: score_field(r, policy) for name, r in readings.items()}
    return QuestionResult(sum(r.score for r in results.values()), float(points), results, notes)


def _is_the_key(answers: dict[str, Any], variant: Variant) -> bool:
    """Whether the answers are the key's, number for number and written alike (the same
    JSON: ``true`` equals 1 in Python, but it is no count), in fields without formulas:
    then every field is simply correct, as reading each would find. A class hands in
    many of these."""
    if answers != variant.answers or any(f.kind is Kind.EXPRESSION for f in variant.fields):
        return False
    try:
        return orjson.dumps(answers) == orjson.dumps(variant.answers)
    except orjson.JSONEncodeError:
        return False


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
    every = r.all
    if r.rounded is None and r.ok == every:  # the common case: right against the key
        return FieldResult(True, share, share, r.key_value, r.echo, "correct")
    w = f.entry_weights
    total = (_weight(every, w) if w is not None else r.n) or 1.0
    right = r.ok | (r.rounded or 0)
    carried = (r.carried or 0) & ~right
    cf = policy.carry_forward
    if policy.per_entry:
        full = share * _weight(right, w) / total
        part = share * cf * _weight(carried, w) / total
    else:
        full = share if right == every else 0.0
        part = share * cf if right != every and (right | carried) == every else 0.0
    score = float(full + part)
    part = float(part)
    if right == every:
        note = "correct" if r.ok == every else \
            "correct (right from your own values of the fields it depends on)"
        return FieldResult(True, score, share, r.key_value, r.echo, note)
    how = "carried forward" + (f", {cf:.0%} of the credit" if cf < 1 else "")
    if carried and (right | carried) == every:
        feedback = f"right for your {_values_text(r.consistent_with)} ({how})"
    else:
        feedback = _entry_feedback(f.shape, r.n, right, carried, r.errors or {}, policy,
                                   r.formula is not None or bool(f.symbols))
        if carried:
            feedback += f"; {carried.bit_count()} right for your " \
                        f"{_values_text(r.consistent_with)} ({how})"
    return FieldResult(False, score, share, r.key_value, r.echo,
                       _with_mistake(feedback, mistake), name, part,
                       r.consistent_with or None if carried else None,
                       bits(every & ~right & ~carried), bits(carried))


def _weight(mask: int, weights: tuple[float, ...] | None) -> float:
    """The summed weight of a mask's entries (each weighs 1 without entry weights)."""
    if weights is None:
        return float(mask.bit_count())
    if mask == ones(len(weights)):
        return pairwise_sum(weights)
    return pairwise_sum([weights[i] for i in bits(mask)])


def pairwise_sum(values: list[float]) -> float:
    """A sum in numpy's order (its pairwise summation of float64), so a score on a rounding
    boundary comes out as reports have always given it, without numpy's per-call cost."""
    n = len(values)
    if n < 8:
        total = 0.0
        for x in values:
            total += x
        return total
    if n > 128:
        half = n // 2
        half -= half % 8
        return pairwise_sum(values[:half]) + pairwise_sum(values[half:])
    lanes = [float(x) for x in values[:8]]
    end = n - n % 8
    for i in range(8, end, 8):
        for j in range(8):
            lanes[j] += values[i + j]
    total = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + \
        ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
    for x in values[end:]:
        total += x
    return total


def _values_text(values: dict[str, Any]) -> str:
    """'variance 2.4', 'normalized [-0.4564, 0.2282, ...]': the values named in feedback."""
    def short(v: Any) -> str:
        if type(v) in (int, float):
            return f"{float(v):.4g}"
        flat = [f"{float(x):.4g}" for x in flatten(v)[:4]]
        return "[" + ", ".join(flat[:3]) + (", ...]" if len(flat) > 3 else "]")
    return ", ".join(f"{k} {short(v)}" for k, v in values.items())


# -- feedback -------------------------------------------------------------------

def _index(flat: int, shape: list) -> str:
    """Where an entry is, as the student indexes their JSON: ``[1, 0]``, or ``[2][1]`` in a
    list of items of different shapes."""
    if not shape:
        return "the value"
    if len(shape) == 1 and type(shape[0]) is int:  # a vector or a matrix: most fields
        return f"[{flat % shape[0]}]"
    if len(shape) == 2 and type(shape[0]) is int and type(shape[1]) is int:
        row, column = divmod(flat, shape[1])
        return f"[{row % shape[0]}, {column}]"
    if isinstance(shape[0], list):
        for item, s in enumerate(shape):
            n = size(s)
            if flat < n:
                return f"[{item}]" + "".join(f"[{i}]" for i in _unravel(flat, s)) \
                    if s else f"[{item}]"
            flat -= n
    return "[" + ", ".join(str(i) for i in _unravel(flat, shape)) + "]"


def _unravel(flat: int, shape: list) -> list[int]:
    """numpy's unravel_index of one row-major index, in plain Python."""
    if any(isinstance(d, list) for d in shape):
        return [int(i) for i in np.unravel_index(flat, shape)]  # (fails as numpy fails)
    out = []
    for d in reversed(shape):
        flat, i = divmod(flat, d)
        out.append(i)
    return out[::-1]


def _entry_feedback(shape: list, n: int, right: int, carried: int, errors: dict[int, str],
                    policy: CreditPolicy, formula: bool = False) -> str:
    parts = []
    if n > 1:
        parts.append(f"{right.bit_count()} of {n} entries correct" +
                     ("" if policy.per_entry else " (all needed for credit)"))
    wrong = [i for i in bits(ones(n) & ~right & ~carried) if i not in errors]
    if wrong:
        listed = ", ".join(_index(i, shape) for i in wrong[:MAX_LISTED])
        more = f" and {len(wrong) - MAX_LISTED} more" if len(wrong) > MAX_LISTED else ""
        parts.append(("wrong: " + listed + more) if n > 1 else
                     "not the expected formula" if formula else "not within tolerance")
    for i, msg in list(errors.items())[:MAX_LISTED]:
        parts.append(f"{_index(i, shape)}: {msg}" if n > 1 else msg)
    return "; ".join(parts)


def _with_mistake(text: str, mistake: Mistake | None) -> str:
    return f"{text}. It looks like {mistake.feedback}." if mistake else text
