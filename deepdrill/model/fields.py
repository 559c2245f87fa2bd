"""Answer fields: what a student fills in, its shape, how closely it must match, and
which steps of the solution it reads.

A *shape* is JSON-friendly:

* a list of ints is a rectangular array: ``[]`` a scalar, ``[3]`` a vector,
  ``[2, 2]`` a matrix;
* a list of shapes is a ragged list, one shape per item: ``[[3], [3], [1]]`` is
  three items, two of length 3 and one of length 1 (a layer table's output shapes).

A field reads the solution's step of the same name, or, when it has ``parts``, one
step per item (a layer table's ``output_shapes`` are the steps ``shape_1``,
``shape_2``, ...), so the grader can follow a student's own values step by step.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from typing import Any

from .tolerance import Tolerance

Shape = list  # list[int] (rectangular) or list[Shape] (ragged)


class Kind(str, enum.Enum):
    INTEGER = "integer"  # shapes, counts: parsed as whole numbers
    REAL = "real"  # compared with a tolerance
    EXPRESSION = "expression"  # a formula typed as text, compared by meaning


@dataclass(frozen=True)
class Field:
    """One answer a student submits, e.g. ``output`` of a convolution.

    ``weight`` is the field's share of the question's points, relative to the other
    fields; ``entry_weights`` (one per entry, row-major; None: all equal) weigh the
    entries by the work they need, so that a row that only copies its input earns
    little. ``parts`` names the steps the field's items read (empty: the step named
    like the field).
    """

    name: str
    label: str  # what the sheet calls it: "the output feature map"
    kind: Kind
    shape: Shape
    tolerance: Tolerance
    weight: float = 1.0
    entry_weights: tuple[float, ...] | None = None
    parts: tuple[str, ...] = ()
    alternatives: tuple[Any, ...] = ()  # other accepted answers (a blank with several values)
    depends_on: tuple[str, ...] = ()  # the fields whose steps this one's are computed from
    symbols: tuple[str, ...] = ()  # of an expression field: the names a formula may use

    @property
    def steps(self) -> tuple[str, ...]:
        return self.parts or (self.name,)

    @functools.cached_property  # (a key's variants share their fields: worked out once)
    def slices(self) -> list[tuple[str, tuple[int, int], Shape]]:
        """Each step the field reads, with its slice of the flat entries and its shape."""
        if not self.parts:
            return [(self.name, (0, size(self.shape)), self.shape)]
        out, start = [], 0
        shapes = self.shape if is_ragged(self.shape) else [self.shape[1:]] * len(self.parts)
        for step, shape in zip(self.parts, shapes):
            n = size(shape)
            out.append((step, (start, start + n), shape))
            start += n
        return out

    def to_json(self) -> dict[str, Any]:
        out = {"name": self.name, "label": self.label, "kind": self.kind.value,
               "shape": self.shape, "tolerance": self.tolerance.to_json(),
               "weight": self.weight}
        if self.entry_weights is not None:
            out["entry_weights"] = list(self.entry_weights)
        if self.parts:
            out["parts"] = list(self.parts)
        if self.alternatives:
            out["alternatives"] = list(self.alternatives)
        if self.depends_on:
            out["depends_on"] = list(self.depends_on)
        if self.symbols:
            out["symbols"] = list(self.symbols)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Field":
        ew, get = data.get("entry_weights"), data.get
        # A grader reads a class's key, some 16 fields per student: filled in directly,
        # as the frozen dataclass's __init__ would, without its per-attribute setattr.
        field = object.__new__(cls)
        field.__dict__.update(
            name=data["name"], label=data["label"], kind=_KINDS[data["kind"]],
            shape=data["shape"], tolerance=Tolerance.from_json(data["tolerance"]),
            weight=get("weight", 1.0), entry_weights=None if ew is None else tuple(ew),
            parts=tuple(get("parts", ())), alternatives=tuple(get("alternatives", ())),
            depends_on=tuple(get("depends_on", ())), symbols=tuple(get("symbols", ())))
        return field


_KINDS = {k.value: k for k in Kind}


def integer(name: str, label: str, shape: Shape, weight: float = 1.0, *,
            entry_weights: Any = None, parts: tuple[str, ...] = (),
            alternatives: tuple[Any, ...] = ()) -> Field:
    """A whole-number field: exact, but counts of 10^8 and more to 3 significant figures.

    ``alternatives`` are other whole answers the grader accepts, each of the field's shape
    (every valid value of a blank that has several)."""
    return Field(name, label, Kind.INTEGER, shape, Tolerance.count(), weight,
                 None if entry_weights is None else tuple(float(w) for w in entry_weights),
                 tuple(parts), tuple(alternatives))


def real(name: str, label: str, shape: Shape, weight: float = 1.0, *,
         tolerance: Tolerance | None = None, entry_weights: Any = None,
         parts: tuple[str, ...] = ()) -> Field:
    """A real-valued field; its default absolute floor is set from the answer when the
    variant is made (see :func:`deepdrill.model.tolerance.default_floor`)."""
    return Field(name, label, Kind.REAL, shape, tolerance or Tolerance(), weight,
                 None if entry_weights is None else tuple(float(w) for w in entry_weights),
                 tuple(parts))


def formula(name: str, label: str, symbols: tuple[str, ...], weight: float = 1.0) -> Field:
    """A formula answer: text in ``symbols`` (``s_i - y_i``), graded by meaning
    (:mod:`deepdrill.model.expressions`); its key is the formula as text."""
    return Field(name, label, Kind.EXPRESSION, [], Tolerance(), weight, symbols=tuple(symbols))


# -- shapes -------------------------------------------------------------------

def is_ragged(shape: Shape) -> bool:
    return bool(shape) and isinstance(shape[0], list)


def shape_of(value: Any) -> Shape:
    """The shape of a JSON value: rectangular when it can be, ragged otherwise."""
    if not isinstance(value, list):
        return []
    dims, v = [], value
    while isinstance(v, list):  # candidate dims along the first items
        dims.append(len(v))
        if not v:
            break
        v = v[0]
    if _is_rectangular(value, dims):
        return dims
    items = [shape_of(v) for v in value]
    if items and all(s == items[0] and not is_ragged(s) for s in items):
        return [len(value), *items[0]]
    return items


def _is_rectangular(value: list, dims: list[int]) -> bool:
    """Level by level, every list has the candidate length and nothing is nested deeper.
    (Plain Python: for answer-sized lists it is several times faster than numpy.)"""
    level = [value]
    for d in dims:
        below = []
        for item in level:
            if not isinstance(item, list) or len(item) != d:
                return False
            below.extend(item)
        level = below
    return not any(isinstance(x, list) for x in level)


def size(shape: Shape) -> int:
    if is_ragged(shape):
        return sum(size(s) for s in shape)
    n = 1
    for d in shape:
        n *= d
    return n


def skeleton(shape: Shape) -> Any:
    """A blank answer of the given shape: nulls where the numbers go."""
    if is_ragged(shape):
        return [skeleton(s) for s in shape]
    if not shape:
        return None
    return [skeleton(shape[1:]) for _ in range(shape[0])]


def describe_shape(shape: Shape) -> str:
    """Words for a shape, as the sheet and the grader's messages say it."""
    if is_ragged(shape):
        if all(len(s) == 1 and isinstance(s[0], int) for s in shape):  # every item a flat list
            lengths = sorted({s[0] for s in shape})
            return f"a list of {len(shape)} lists of {' or '.join(map(str, lengths))} numbers"
        return f"a list of {len(shape)} items of different shapes"
    if not shape:
        return "a number"
    if len(shape) == 1:
        return f"a list of {shape[0]} numbers"
    if len(shape) == 2:
        return f"a {shape[0]}x{shape[1]} matrix"
    return "an array of shape " + "x".join(str(d) for d in shape)


_LIST = {list}


def flatten(value: Any) -> list[Any]:
    """The leaves of a nested list in row-major order."""
    if not isinstance(value, list):
        return [value]
    kinds = set(map(type, value))
    if not any(issubclass(k, list) for k in kinds):  # a vector (at C speed)
        return list(value)
    if kinds == _LIST:  # a matrix, or rows of a ragged list, of numbers
        out: list[Any] = []
        for row in value:
            if any(issubclass(k, list) for k in set(map(type, row))):
                break  # deeper: walked below
            out += row
        else:
            return out
    out = []
    stack = [iter(value)]
    while stack:
        for v in stack[-1]:
            if isinstance(v, list):
                stack.append(iter(v))
                break
            out.append(v)
        else:
            stack.pop()
    return out

