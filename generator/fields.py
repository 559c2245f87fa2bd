"""Answer fields: what a student fills in, its shape and how closely it must match.

A *shape* is JSON-friendly:

* a list of ints is a rectangular array: ``[]`` a scalar, ``[3]`` a vector,
  ``[2, 2]`` a matrix;
* a list of shapes is a ragged list, one shape per item: ``[[3], [3], [1]]`` is
  three items, two of length 3 and one of length 1 (a layer table's output shapes).
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, replace
from typing import Any, Union

Shape = list  # list[int] (rectangular) or list[Shape] (ragged)

DEFAULT_RTOL = 1e-2
DEFAULT_ATOL = 1e-3


class Kind(str, enum.Enum):
    INTEGER = "integer"  # shapes, counts: exact
    REAL = "real"  # compared with a tolerance


class Mode(str, enum.Enum):
    EXACT = "exact"
    RELABS = "relabs"  # |x - x*| <= max(atol, rtol * |x*|)
    SIGFIGS = "sigfigs"  # equal when both are rounded to `sigfigs` significant figures


@dataclass(frozen=True)
class Tolerance:
    mode: Mode = Mode.RELABS
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    sigfigs: int | None = None

    @classmethod
    def exact(cls) -> "Tolerance":
        return cls(Mode.EXACT, 0.0, 0.0)

    def overridden(self, rtol: float | None = None, atol: float | None = None,
                   sigfigs: int | None = None) -> "Tolerance":
        """This tolerance with an assignment's per-field settings applied."""
        if self.mode is Mode.EXACT:
            return self
        if sigfigs is not None:
            return Tolerance(Mode.SIGFIGS, self.rtol, self.atol, int(sigfigs))
        return replace(self, mode=Mode.RELABS,
                       rtol=self.rtol if rtol is None else float(rtol),
                       atol=self.atol if atol is None else float(atol))

    def describe(self) -> str:
        if self.mode is Mode.EXACT:
            return "exact"
        if self.mode is Mode.SIGFIGS:
            return f"{self.sigfigs} significant figures"
        return f"within max({self.atol:g}, {self.rtol:g}*|answer|)"

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode.value, "rtol": self.rtol, "atol": self.atol,
                "sigfigs": self.sigfigs}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Tolerance":
        return _tolerance(data["mode"], data["rtol"], data["atol"], data.get("sigfigs"))


@dataclass(frozen=True)
class Field:
    """One answer a student submits, e.g. ``output`` of a convolution."""

    name: str
    label: str  # what the sheet calls it: "the output feature map"
    kind: Kind
    shape: Shape
    tolerance: Tolerance
    weight: float = 1.0  # share of the question's points, relative to the other fields

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "kind": self.kind.value,
                "shape": self.shape, "tolerance": self.tolerance.to_json(),
                "weight": self.weight}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Field":
        return cls(data["name"], data["label"], _KINDS[data["kind"]], data["shape"],
                   Tolerance.from_json(data["tolerance"]), data.get("weight", 1.0))


_KINDS = {k.value: k for k in Kind}


@functools.lru_cache(maxsize=256)  # a class key repeats a handful of tolerances thousands of times
def _tolerance(mode: str, rtol: float, atol: float, sigfigs: int | None) -> Tolerance:
    return Tolerance(Mode(mode), rtol, atol, sigfigs)


def integer(name: str, label: str, shape: Shape, weight: float = 1.0) -> Field:
    return Field(name, label, Kind.INTEGER, shape, Tolerance.exact(), weight)


def real(name: str, label: str, shape: Shape, weight: float = 1.0,
         tolerance: Tolerance | None = None) -> Field:
    return Field(name, label, Kind.REAL, shape, tolerance or Tolerance(), weight)


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


def flatten(value: Any) -> list[Any]:
    """The leaves of a nested list in row-major order."""
    if not isinstance(value, list):
        return [value]
    out: list[Any] = []
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


Number = Union[int, float]
