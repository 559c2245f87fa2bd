"""Reading a student's value of one field against the stored key.

Nothing here raises on a student's value: a value of the wrong shape, text where a
number belongs or a NaN becomes a message, and the rest is still read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepdrill.model.fields import (Field, Kind, describe_shape, flatten, is_ragged, shape_of,
                                    size)
from deepdrill.model import expressions
from deepdrill.model.tolerance import MAX_EXACT, matches
from deepdrill.model.variant import Mistake

from .numbers import NonFinite, NotANumber, parse_integer, parse_number

MAX_ECHO = 2000  # leaves of a given value echoed back in the report
_PLAIN = (int, float)
_PLAIN_TYPES = frozenset(_PLAIN)
_WHOLE_ONLY = frozenset((int,))


@dataclass(slots=True)
class Reading:
    """A student's value of one field, read against the key.

    Per-entry facts are bitmasks over the field's flat entries (bit i: entry i), as
    plain ints: a class's worth of grading asks them millions of times, for a few
    numbers each, where numpy's per-call cost would dominate.
    """

    field: Field
    share: float  # the field's points
    given: Any  # as submitted
    echo: Any = None
    values: list[float] | None = None  # flat floats in the key's order, NaN where unreadable
    errors: dict[int, str] | None = None  # entry -> why it could not be read
    ok: int | None = None  # matches the key
    # right from the student's own values of the steps it depends on, when those were
    # right (rounded): full credit; when they were wrong: carried-forward credit
    rounded: int | None = None
    carried: int | None = None
    consistent_with: dict[str, Any] | None = None  # made when first credited
    shape_problem: str | None = None
    mistake: Mistake | None = None
    key_value: Any = None
    exact: bool = False  # every entry exactly the key's: nothing to recompute from it
    formula: Any = None  # of an expression field: the parsed formula
    n: int = 0  # entries (of the key's shape)
    want: list[float] | None = None  # the key's entries as floats (of a numeric field)
    readable: int = 0  # the entries given as numbers

    @property
    def all(self) -> int:
        """Every entry's bit."""
        return (1 << self.n) - 1

    @property
    def credited(self) -> int:
        if self.ok is None:
            return 0
        return self.ok | (self.rounded or 0) | (self.carried or 0)

    @property
    def wrong(self) -> int:
        """The entries given as numbers and credited by nothing (yet)."""
        ok = self.ok
        if ok is None:
            return 0
        return self.readable & ~(ok | (self.rounded or 0) | (self.carried or 0))

    @property
    def needs_following(self) -> bool:
        """Numbers that are wrong, or numbers in another shape (a mistake's, perhaps; text
        in the place of an array is no mistake to look for)."""
        if self.shape_problem:
            return isinstance(self.given, list)
        return bool(self.wrong)


def bits(mask: int) -> list[int]:
    """The indices of a bitmask's set bits, in order."""
    return [i for i, b in enumerate(bin(mask)[:1:-1]) if b == "1"] if mask > 0 else []


def ones(n: int) -> int:
    """The mask of n entries, all set."""
    return (1 << n) - 1


def span(mask: int, start: int, stop: int) -> int:
    """Bits start..stop-1 of a mask, shifted down to 0."""
    return (mask >> start) & ones(stop - start)


def readable_bits(values: list[float]) -> int:
    mask, bit = 0, 1
    for x in values:
        if x == x:  # not NaN
            mask |= bit
        bit <<= 1
    return mask


def read_field(f: Field, expected: Any, given: Any, share: float) -> Reading:
    r = Reading(f, share, given, key_value=expected)
    if given is None:
        return r
    if f.kind is Kind.EXPRESSION:
        return read_formula(r)
    leaves = flatten(given)  # once: conform() keeps their order, echo and parsing reuse them
    if given == expected and _PLAIN_TYPES.issuperset(map(type, leaves)):
        # Exactly the key, in plain JSON numbers (type() also keeps out True == 1): the
        # common case for counts, shapes and integer maps needs no parsing or tolerance.
        r.echo, r.values, r.n = given, [float(x) for x in leaves], len(leaves)
        r.want = r.values
        r.readable = r.ok = r.all
        r.exact = True
        return r
    r.echo = echo_value(given, leaves)
    key_leaves: list[Any] = []
    if not _nested_alike(given, expected, key_leaves):  # the common case needs no shapes
        want_shape = shape_of(expected)
        if conform(given, want_shape) is None:
            r.shape_problem = f"expected {describe_shape(want_shape)}, got {describe_given(given)}"
            r.n = size(want_shape)
            return r
        key_leaves = flatten(expected)
    r.values, r.errors = read_leaves(f, leaves)
    r.n = len(r.values)
    r.readable = readable_bits(r.values) if r.errors else r.all
    r.want = want = [float(x) for x in key_leaves]
    r.ok = matches(f.tolerance, r.values, want) & r.readable
    r.exact = r.ok == r.all and r.values == want
    for other in f.alternatives:  # another accepted answer: the whole value must be it
        if r.ok != r.all and r.readable == r.all and \
                matches(f.tolerance, r.values, [float(x) for x in flatten(other)]) == r.all:
            r.ok = r.all
    return r


def _nested_alike(given: Any, expected: Any, leaves: list[Any]) -> bool:
    """Whether ``given`` nests lists exactly as ``expected`` does (then it is in the key's
    shape as it is); the key's leaves are appended to ``leaves`` on the way."""
    if type(expected) is not list:
        leaves.append(expected)
        return type(given) is not list
    if type(given) is not list or len(given) != len(expected):
        return False
    if list not in set(map(type, expected)):  # a list of numbers (the innermost level)
        leaves += expected
        return list not in set(map(type, given))
    return all(_nested_alike(g, e, leaves) for g, e in zip(given, expected))


def read_formula(r: Reading) -> Reading:
    """A formula: parsed by the grammar (never evaluated as code) and compared with the
    key's by meaning. Its one entry is right or wrong; text that does not parse gets the
    parser's message (where, and what was expected)."""
    r.echo = _echo_leaf(r.given)
    r.ok, r.n = 0, 1
    try:
        r.formula = expressions.parse(r.given, r.field.symbols)
    except expressions.FormulaError as err:
        r.errors = {0: str(err)}
        return r
    r.ok = int(expressions.equivalent(r.formula, expressions.parse(r.key_value, r.field.symbols)))
    r.exact = bool(r.ok)
    return r


def formula_mistake(r: Reading, mistakes: tuple[Mistake, ...]) -> Mistake | None:
    """The stored mistake whose formula the student's wrong one means, if any."""
    if r.formula is None or r.ok is None or r.ok == r.all:
        return None
    for m in mistakes:
        theirs = m.answers.get(r.field.name)
        if isinstance(theirs, str) and expressions.equivalent(
                r.formula, expressions.parse(theirs, r.field.symbols)):
            return m
    return None


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


def read_leaves(f: Field, leaves: list[Any]) -> tuple[list[float], dict[int, str]]:
    """Each leaf as a float (NaN where unreadable), and the messages for the unreadable ones."""
    whole = f.kind is Kind.INTEGER
    types = set(map(type, leaves))
    if types <= _WHOLE_ONLY if whole else types <= _PLAIN_TYPES:  # JSON numbers (no bools)
        if leaves and -MAX_EXACT <= min(leaves) and max(leaves) <= MAX_EXACT:
            return list(map(float, leaves)), {}  # (an inf would fail the range)
    parse = parse_integer if whole else parse_number
    out: list[float] = []
    errors: dict[int, str] = {}
    for i, leaf in enumerate(leaves):
        kind = type(leaf)  # a plain JSON number is what parsing it gives (not a float in
        # a whole-number field, which must be whole)
        if kind is int and -MAX_EXACT <= leaf <= MAX_EXACT or \
                kind is float and not whole and leaf - leaf == 0:
            out.append(float(leaf))
            continue
        try:
            out.append(float(parse(leaf)))
        except NotANumber as err:
            out.append(math.nan)
            errors[i] = str(err)
    return out, errors


def describe_given(value: Any) -> str:
    if not isinstance(value, list):
        return kind_of(value)
    s = shape_of(value)
    return describe_shape(s) if size(s) <= 10_000 else f"a list of {len(value)} items"


def kind_of(value: Any) -> str:
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
    types = set(map(type, leaves))
    if types <= _PLAIN_TYPES and (int not in types or leaves and
                                  -2 ** 63 <= min(leaves) and max(leaves) < 2 ** 63):
        return value  # plain numbers that JSON tools keep (the common case)
    if all(_kept(v) for v in leaves):
        return value  # the common case: plain numbers and short strings, kept as given
    return [echo_value(v) for v in value]


def _kept(leaf: Any) -> bool:
    """Whether :func:`_echo_leaf` keeps a leaf as it is (a float always)."""
    return type(leaf) is float or _echo_leaf(leaf) is leaf


def _echo_leaf(value: Any) -> Any:
    if isinstance(value, NonFinite):
        return value.text
    if type(value) is int and not -2 ** 63 <= value < 2 ** 63:  # beyond what JSON tools keep
        digits, sign = str(abs(value)), "-" if value < 0 else ""
        return f"<a whole number of {len(digits)} digits, {sign}{digits[:12]}...>"
    if isinstance(value, dict):
        return "<an object, not shown>"
    if isinstance(value, str) and len(value) > 80:
        return value[:77] + "..."
    return value


def flat(value: Any, n: int) -> list[float] | None:
    """A step's value as n flat floats, or None when it cannot be (wrong size, not numbers)."""
    if value is None:
        return None
    if type(value) in _PLAIN:
        return [float(value)] if n == 1 else None
    if type(value) is list:  # JSON: numbers, or lists of numbers (a matrix, ragged rows)
        items: list[Any] = []
        for v in value:
            if type(v) is list:
                items += v
            else:
                items.append(v)
        if _PLAIN_TYPES.issuperset(map(type, items)):  # (no deeper lists, no text, no bools)
            return list(map(float, items)) if len(items) == n else None
    try:
        if isinstance(value, (list, tuple)) and any(isinstance(v, (list, tuple, np.ndarray))
                                                    for v in value):
            out = np.concatenate([np.ravel(np.asarray(v, dtype=float)) for v in value]).tolist()
        else:
            out = np.ravel(np.asarray(value, dtype=float)).tolist()
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None
