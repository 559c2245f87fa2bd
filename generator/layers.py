"""The layer notation of the exercise catalogue: parse it, print it back, count with it.

Strings, as instructors write them on sheets (case-insensitive, spaces ignored):

=================  ===========================================================
``CONVk-N``        k x k convolution, N filters, stride 1, "same" padding floor(k/2)
``CONVk-N(S,P)``   the same with explicit stride S and zero padding P
``POOL-k``         k x k max pooling, stride k, no padding (``MAXPOOL-k`` too)
``POOL-k(S)``      stride S, so windows overlap when S < k
``POOL-k(S,P)``    stride S and padding P (an extension; needed to print padded pools)
``AVGPOOL-k``      average pooling, with ``(S)`` and ``(S,P)`` as for ``POOL``
``RELU``, ``BN``, ``DROPOUT``, ``FLATTEN``
``FC-N``           fully connected layer with N units
=================  ===========================================================

Dict form: one key, the layer's kind, holding its settings::

    {"conv": {"k": 5, "filters": 6, "stride": 1, "padding": 0, "bias": true}}
    {"pool": {"k": 2, "stride": 2, "padding": 0}}      {"avgpool": {...}}
    {"fc": {"units": 10, "bias": true}}
    {"relu": {}}   {"bn": {}}   {"dropout": {}}   {"flatten": {}}

``k``, ``filters`` and ``units`` are required; the rest default as in the strings
(conv: stride 1, padding floor(k/2); pool: stride k, padding 0; bias true).
``"bias": false`` is how a conv or FC layer says it has no bias; the strings
cannot say it, so :meth:`Layer.to_json` keeps such a layer in dict form.

Conventions (the catalogue's):

* output size of a conv or pool layer: ``floor((H + 2P - k) / S) + 1``;
* parameters: conv ``C_out * (k*k*C_in) + C_out``, FC ``in*out + out`` (bias terms
  only with a bias), batch norm 2 per channel, or per feature after flattening
  (gamma, beta); pooling, ReLU, dropout and flatten have none;
* multiplications: conv ``H_out*W_out*C_out*k*k*C_in``, FC ``in*out``; every other
  layer counts 0 (bias additions, comparisons in max pooling, the sums and the one
  division of average pooling, ReLU, dropout masks and batch norm's normalisation
  are not counted: the catalogue counts only the weighted layers' products);
* an FC layer right after a (C, H, W) feature map flattens it implicitly
  (C*H*W inputs), as if a FLATTEN stood before it.

Shapes are tuples: ``(C, H, W)`` for a feature map, ``(N,)`` for a vector.

Counting is a chain of steps (:mod:`deepdrill.generator.steps`), the same for every
type that counts with layers: per layer its output shape from the shape before it,
its weights and biases from that shape, their sum, and its multiplications (for a
convolution: its output positions times its weights). A type swaps some of these
steps to reproduce a mistake, and the grader re-runs them from a student's shapes.

>>> net = parse_layers(["CONV5-6(1,0)", "POOL-2", "FC-10"])
>>> [(row.output_shape, row.params) for row in trace((1, 32, 32), net)]
[((6, 28, 28), 156), ((6, 14, 14), 0), ((10,), 11770)]
>>> [layer.to_json() for layer in net]
['CONV5-6(1,0)', 'POOL-2', 'FC-10']
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Union

import numpy as np

from deepdrill.errors import ParamError
from deepdrill.model.tolerance import MAX_EXACT

from .steps import Graph, NotApplicable, Step, Values, run

Shape = tuple[int, ...]
SizeRule = Callable[[int, int, int, int], int]  # (n, k, stride, padding) -> output size
LayerSpec = Union[str, Mapping[str, Any]]

EXAMPLES = "CONV5-6, CONV5-6(1,0), POOL-2, POOL-3(2), AVGPOOL-2, RELU, BN, DROPOUT, FLATTEN, FC-10"


def output_size(n: int, k: int, stride: int, padding: int) -> int:
    """``floor((n + 2*padding - k) / stride) + 1``: one side of a conv or pool output.

    >>> output_size(28, 5, 1, 0), output_size(7, 2, 2, 0), output_size(32, 3, 1, 1)
    (24, 3, 32)
    """
    return (n + 2 * padding - k) // stride + 1


class Layer:
    """One layer of the notation. Subclasses are frozen dataclasses."""

    kind: ClassVar[str]  # the dict form's key

    def output_shape(self, shape: Shape, size_rule: SizeRule = output_size) -> Shape:
        """The shape this layer outputs for an input of ``shape``.

        ``size_rule`` computes one side of a conv or pool output; pass another rule
        to reproduce a student's wrong size formula.
        """
        return tuple(shape)

    def weight_count(self, shape: Shape) -> int:
        """Trainable weights for an input of ``shape`` (batch norm: its scales gamma)."""
        return 0

    def bias_count(self, shape: Shape) -> int:
        """Trainable biases for an input of ``shape`` (batch norm: its shifts beta)."""
        return 0

    def weight_shape(self, shape: Shape) -> Shape | None:
        """Shape of the weight tensor, ``(C_out, C_in, k, k)`` or ``(out, in)``; None if none.

        Fan-in is the product of all but the first entry, fan-out the first entry
        times the receptive field (entries from the third on).
        """
        return None

    def notation(self) -> str:
        """The layer in the string notation (biases cannot be expressed there)."""
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """The dict form's settings, complete (defaults filled in)."""
        return {}

    def to_json(self) -> str | dict[str, Any]:
        """Canonical form for storing: the string when it says everything, else the dict."""
        text = self.notation()
        return text if parse_layer(text) == self else {self.kind: self.settings()}

    def __str__(self) -> str:
        return self.notation()


@dataclass(frozen=True)
class Conv(Layer):
    """k x k convolution; ``padding=None`` means "same" padding floor(k/2)."""

    k: int
    filters: int
    stride: int = 1
    padding: int = None  # type: ignore[assignment]  # filled in by __post_init__
    bias: bool = True
    kind: ClassVar[str] = "conv"

    def __post_init__(self) -> None:
        if self.padding is None:
            object.__setattr__(self, "padding", self.k // 2)
        _positive(self, k=self.k, filters=self.filters, stride=self.stride)
        _non_negative(self, padding=self.padding)

    def output_shape(self, shape: Shape, size_rule: SizeRule = output_size) -> Shape:
        return (self.filters, *_slide(self, shape, size_rule))

    def weight_count(self, shape: Shape) -> int:
        return math.prod(self.weight_shape(shape))

    def bias_count(self, shape: Shape) -> int:
        return self.filters if self.bias else 0

    def weight_shape(self, shape: Shape) -> Shape:
        return (self.filters, _feature_map(self, shape)[0], self.k, self.k)

    def notation(self) -> str:
        base = f"CONV{self.k}-{self.filters}"
        if self.stride == 1 and self.padding == self.k // 2:
            return base
        return f"{base}({self.stride},{self.padding})"

    def settings(self) -> dict[str, Any]:
        return {"k": self.k, "filters": self.filters, "stride": self.stride,
                "padding": self.padding, "bias": self.bias}


@dataclass(frozen=True)
class Pool(Layer):
    """k x k max (``mode="max"``) or average (``"avg"``) pooling; stride None means k."""

    k: int
    stride: int = None  # type: ignore[assignment]  # filled in by __post_init__
    padding: int = 0
    mode: str = "max"

    def __post_init__(self) -> None:
        if self.stride is None:
            object.__setattr__(self, "stride", self.k)
        if self.mode not in ("max", "avg"):
            raise ParamError(f"pooling mode must be 'max' or 'avg', not {self.mode!r}")
        _positive(self, k=self.k, stride=self.stride)
        _non_negative(self, padding=self.padding)
        if self.padding > self.k // 2:
            raise ParamError(f"{self}: padding {self.padding} is more than half the "
                             f"{self.k}x{self.k} window (at most {self.k // 2})")

    @property
    def kind(self) -> str:  # type: ignore[override]
        return "pool" if self.mode == "max" else "avgpool"

    def output_shape(self, shape: Shape, size_rule: SizeRule = output_size) -> Shape:
        h, w = _slide(self, shape, size_rule)
        return (shape[0], h, w)

    def notation(self) -> str:
        base = f"{'POOL' if self.mode == 'max' else 'AVGPOOL'}-{self.k}"
        if self.padding:
            return f"{base}({self.stride},{self.padding})"
        return base if self.stride == self.k else f"{base}({self.stride})"

    def settings(self) -> dict[str, Any]:
        return {"k": self.k, "stride": self.stride, "padding": self.padding}


@dataclass(frozen=True)
class Dense(Layer):
    """Fully connected layer (``FC-N``); flattens a (C, H, W) input implicitly."""

    units: int
    bias: bool = True
    kind: ClassVar[str] = "fc"

    def __post_init__(self) -> None:
        _positive(self, units=self.units)

    def output_shape(self, shape: Shape, size_rule: SizeRule = output_size) -> Shape:
        return (self.units,)

    def weight_count(self, shape: Shape) -> int:
        return math.prod(shape) * self.units

    def bias_count(self, shape: Shape) -> int:
        return self.units if self.bias else 0

    def weight_shape(self, shape: Shape) -> Shape:
        return (self.units, math.prod(shape))

    def notation(self) -> str:
        return f"FC-{self.units}"

    def settings(self) -> dict[str, Any]:
        return {"units": self.units, "bias": self.bias}


@dataclass(frozen=True)
class BatchNorm(Layer):
    """Batch norm: a scale gamma and a shift beta per channel (or per feature)."""

    kind: ClassVar[str] = "bn"

    def weight_count(self, shape: Shape) -> int:
        return shape[0]

    def bias_count(self, shape: Shape) -> int:
        return shape[0]

    def notation(self) -> str:
        return "BN"


@dataclass(frozen=True)
class ReLU(Layer):
    kind: ClassVar[str] = "relu"

    def notation(self) -> str:
        return "RELU"


@dataclass(frozen=True)
class Dropout(Layer):
    kind: ClassVar[str] = "dropout"

    def notation(self) -> str:
        return "DROPOUT"


@dataclass(frozen=True)
class Flatten(Layer):
    kind: ClassVar[str] = "flatten"

    def output_shape(self, shape: Shape, size_rule: SizeRule = output_size) -> Shape:
        return (math.prod(shape),)

    def notation(self) -> str:
        return "FLATTEN"


def multiplies(layer: Layer) -> bool:
    """Whether the layer's products are counted (convolutions and FC layers)."""
    return isinstance(layer, (Conv, Dense))


# -- counting as a chain of steps ------------------------------------------------

class Names(NamedTuple):
    """The names of one layer's steps, e.g. ``shape_3`` (layer 3) or ``shape_2.1``."""

    shape: str  # the output shape, from the shape before
    weights: str  # from the shape before
    biases: str  # from the shape before
    params: str  # weights + biases
    positions: str  # a convolution's output positions H_out * W_out, from its shape
    mults: str  # a convolution's positions * weights; an FC layer's weights; else 0


@functools.lru_cache(maxsize=4096)
def names(tag: Any) -> Names:
    return Names(*(f"{kind}_{tag}" for kind in Names._fields))


@dataclass(frozen=True)
class LayerStep:
    """A step function of one layer: ``fn(layer, *inputs)``.

    The inputs may be a student's values (numpy arrays); a shape the layer cannot
    take makes the step :class:`NotApplicable`, naming the layer by ``where``.
    """

    fn: Callable[..., Any]
    layer: Layer
    where: str

    def __call__(self, *inputs: Any) -> Any:
        try:
            return self.fn(self.layer, *inputs)
        except ParamError as err:
            raise NotApplicable(f"{self.where}, {err.message}") from None


def shape_after(layer: Layer, before: Any, size_rule: SizeRule = output_size) -> Shape:
    return layer.output_shape(as_shape(before), size_rule)


def weights_after(layer: Layer, before: Any) -> int:
    return layer.weight_count(as_shape(before))


def biases_after(layer: Layer, before: Any) -> int:
    return layer.bias_count(as_shape(before))


def positions(layer: Layer, shape: Any) -> int:
    """Output positions H_out * W_out of a convolution's output ``shape``."""
    _, h, w = _feature_map(layer, as_shape(shape))
    return h * w


def times(a: Any, b: Any) -> int:
    return count(a) * count(b)


def add(*counts: Any) -> int:
    return sum(count(c) for c in counts)


def total(*counts: Any) -> int:
    """The sum of counts that are not all zero: adding nothing but zeros is no work,
    and gives a student's all-zero answer no carried-forward credit for its total."""
    values = [count(c) for c in counts]
    if not any(values):
        raise NotApplicable("only zeros to add up")
    return sum(values)


def nothing() -> int:
    return 0


def count(value: Any) -> int:
    """A count from a step or a student's value (a number or a one-entry array)."""
    if type(value) is int:
        return value
    if isinstance(value, np.integer):  # a student's count, as the grader passes it
        return int(value)
    try:
        return int(np.asarray(value).item())
    except (TypeError, ValueError, OverflowError) as err:
        raise NotApplicable(f"{str(value)[:40]} is not a count") from err


@functools.lru_cache(maxsize=4096)  # the same layer at the same place recurs across a class
def layer_steps(layer: Layer, before: str, tag: Any, where: str) -> Graph:
    """One layer's steps (named by :func:`names`), receiving the shape named ``before``."""
    n = names(tag)
    steps = [Step(n.shape, LayerStep(shape_after, layer, where), (before,)),
             Step(n.weights, LayerStep(weights_after, layer, where), (before,)),
             Step(n.biases, LayerStep(biases_after, layer, where), (before,)),
             Step(n.params, add, (n.weights, n.biases))]
    if isinstance(layer, Conv):
        return (*steps, Step(n.positions, LayerStep(positions, layer, where), (n.shape,)),
                Step(n.mults, times, (n.positions, n.weights)))
    if isinstance(layer, Dense):
        return (*steps, Step(n.mults, count, (n.weights,)))
    return (*steps, Step(n.mults, nothing))


def chain_steps(layers: Sequence[Layer], before: str = "input_shape",
                branch: int | None = None, first: int = 1) -> Graph:
    """The steps of layers applied one after the other to the shape named ``before``.

    Layer i's steps are tagged ``i`` (``shape_3``), or ``b.i`` in branch b
    (``shape_2.1``), and errors name the layer as "layer i" or "branch b, layer i";
    the layers are numbered from ``first``.
    """
    steps: list[Step] = []
    for layer, (tag, where) in zip(layers, _labels(len(layers), branch, first)):
        steps += layer_steps(layer, before, tag, where)
        before = names(tag).shape
    return tuple(steps)


def swaps(layers: Sequence[Layer], step: str, fn: Callable[..., Any],
          which: Callable[[Layer], bool], branch: int | None = None) -> dict[str, LayerStep]:
    """A slip's swaps: the step ``step`` (a field of :class:`Names`) of every layer that
    ``which`` picks, computed by ``fn(layer, *inputs)`` instead."""
    return {getattr(names(tag), step): LayerStep(fn, layer, where)
            for layer, (tag, where) in zip(layers, _labels(len(layers), branch)) if which(layer)}


@functools.lru_cache(maxsize=1024)  # (asked for every slip of every student's network)
def _labels(n: int, branch: int | None, first: int = 1) -> tuple[tuple[Any, str], ...]:
    """Each layer's tag and how errors name it."""
    if branch is None:
        return tuple((i, f"layer {i}") for i in range(first, first + n))
    return tuple((f"{branch}.{i}", f"branch {branch}, layer {i}")
                 for i in range(first, first + n))


# Counts as students miscount them (swapped in by the types' slips).

def weights_one_channel(layer: Layer, before: Any) -> int:
    """A convolution's weights counted as if its input had one channel: k*k per filter."""
    return layer.weight_count((1, *as_shape(before)[1:]))


def no_biases(layer: Layer, before: Any) -> int:
    return 0


def has_bias(layer: Layer) -> bool:
    return multiplies(layer) and layer.bias  # type: ignore[attr-defined]


# -- one row of a layer table ---------------------------------------------------

@dataclass(frozen=True)
class LayerRow:
    """What one layer does to a given input: the row of a layer table."""

    layer: Layer
    input_shape: Shape
    output_shape: Shape
    params: int
    multiplications: int


def rows(values: Values, layers: Sequence[Layer], before: str = "input_shape",
         branch: int | None = None) -> tuple[LayerRow, ...]:
    """The rows of layers counted by :func:`chain_steps`, read from the steps' ``values``."""
    out = []
    for layer, (tag, _) in zip(layers, _labels(len(layers), branch)):
        n = names(tag)
        out.append(LayerRow(layer, tuple(values[before]), values[n.shape], values[n.params],
                            values[n.mults]))
        before = n.shape
    return tuple(out)


def trace(input_shape: Iterable[int], layers: Sequence[Layer]) -> tuple[LayerRow, ...]:
    """Run shapes through a network: one :class:`LayerRow` per layer.

    Raises :class:`ParamError` naming the layer (1-based position and notation)
    when a layer cannot take the shape it receives.

    >>> [row.output_shape for row in trace((3, 32, 32), parse_layers(["CONV3-16", "POOL-2"]))]
    [(16, 32, 32), (16, 16, 16)]
    """
    try:
        values = run(chain_steps(layers), {"input_shape": as_shape(input_shape)})
    except NotApplicable as err:  # on the right network, a plain error in the parameters
        raise ParamError(err.message) from None
    table = rows(values, layers)
    for i, row in enumerate(table, 1):
        if max(row.params, row.multiplications, math.prod(row.output_shape)) > MAX_EXACT:
            raise ParamError(f"layer {i}, {row.layer}: its counts exceed 2^53, too large to "
                             f"state or grade exactly; use a smaller input_shape")
    return table


def as_shape(value: Any) -> Shape:
    """A shape as a tuple: ``(C, H, W)`` or ``(N,)`` of positive integers (a student's
    numpy array too)."""
    if type(value) in (tuple, list) and len(value) in (1, 3) and \
            all(type(d) is int and d >= 1 for d in value):
        return tuple(value)  # the common case: a step's own value, or a parameter
    if isinstance(value, np.ndarray) and value.dtype.kind in "iu":
        value = value.tolist()  # a student's shape, as the grader passes it
        if len(value) in (1, 3) and all(type(d) is int and d >= 1 for d in value):
            return tuple(value)
    try:
        dims = tuple(value)
    except TypeError:
        dims = ()
    if len(dims) not in (1, 3) or not all(np.ndim(d) == 0 and _is_int(d) and d >= 1
                                          for d in dims):
        raise ParamError(f"a shape must be (C, H, W) or (N,) of positive integers, not {value!r}")
    return tuple(int(d) for d in dims)


# -- parsing -------------------------------------------------------------------

def parse_layers(specs: Iterable[LayerSpec]) -> tuple[Layer, ...]:
    """A list of strings or dicts as layers; errors name the layer's position.

    >>> parse_layers(["conv3-16 (2, 1)", {"fc": {"units": 10, "bias": False}}])
    (Conv(k=3, filters=16, stride=2, padding=1, bias=True), Dense(units=10, bias=False))
    """
    if isinstance(specs, (str, Mapping)) or not isinstance(specs, Iterable):
        raise ParamError("layers must be a list, e.g. [\"CONV5-6\", \"POOL-2\", \"FC-10\"]")
    out = []
    for i, spec in enumerate(specs, 1):
        try:
            out.append(parse_layer(spec))
        except ParamError as err:
            raise ParamError(f"layer {i}, {err.message}") from None
    return tuple(out)


def parse_layer(spec: LayerSpec | Layer) -> Layer:
    """One layer from its string or dict form (a :class:`Layer` is returned as is)."""
    if isinstance(spec, Layer):
        return spec
    if isinstance(spec, str):
        return _from_string(spec)
    if isinstance(spec, Mapping):
        return _from_dict(spec)
    raise ParamError(f"{spec!r} is not a layer; write a string such as {EXAMPLES} "
                     f"or a dict such as {{\"conv\": {{\"k\": 5, \"filters\": 6}}}}")


_CONV = re.compile(r"CONV(\d+)-(\d+)(?:\((\d+),(\d+)\))?")
_POOL = re.compile(r"(AVG|MAX)?POOL-(\d+)(?:\((\d+)(?:,(\d+))?\))?")
_FC = re.compile(r"FC-(\d+)")
_PLAIN: dict[str, Callable[[], Layer]] = {"RELU": ReLU, "BN": BatchNorm, "DROPOUT": Dropout,
                                          "FLATTEN": Flatten}


@functools.lru_cache(maxsize=4096)  # layers are frozen, so parsed ones can be shared
def _from_string(text: str) -> Layer:
    s = re.sub(r"\s+", "", text).upper()
    if s in _PLAIN:
        return _PLAIN[s]()
    if m := _CONV.fullmatch(s):
        k, n, stride, pad = m.groups()
        return Conv(int(k), int(n), int(stride or 1), None if pad is None else int(pad))
    if m := _POOL.fullmatch(s):
        avg, k, stride, pad = m.groups()
        return Pool(int(k), None if stride is None else int(stride), int(pad or 0),
                    "avg" if avg == "AVG" else "max")
    if m := _FC.fullmatch(s):
        return Dense(int(m.group(1)))
    raise ParamError(f"unknown layer {text!r}; write e.g. {EXAMPLES}")


_SETTINGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # kind: (required, optional)
    "conv": (("k", "filters"), ("stride", "padding", "bias")),
    "pool": (("k",), ("stride", "padding")),
    "avgpool": (("k",), ("stride", "padding")),
    "fc": (("units",), ("bias",)),
    "relu": ((), ()), "bn": ((), ()), "dropout": ((), ()), "flatten": ((), ()),
}


def _from_dict(spec: Mapping[str, Any]) -> Layer:
    if len(spec) != 1:
        raise ParamError(f"a layer dict has exactly one key, the layer kind "
                         f"({', '.join(_SETTINGS)}), not {sorted(spec)}")
    (key, value), = spec.items()
    kind = str(key).lower()
    if kind not in _SETTINGS:
        raise ParamError(f"unknown layer kind {key!r}; kinds are {', '.join(_SETTINGS)}")
    settings = dict(value or {})
    required, optional = _SETTINGS[kind]
    missing = [s for s in required if s not in settings]
    unknown = sorted(set(settings) - set(required) - set(optional))
    if missing or unknown:
        takes = ", ".join(required + optional) or "no settings"
        what = f"missing {', '.join(missing)}" if missing else f"unknown {', '.join(unknown)}"
        raise ParamError(f"{kind} layer: {what}; {kind} takes {takes}")
    for name, v in settings.items():
        ok = isinstance(v, bool) if name == "bias" else (v is None or _is_int(v))
        if not ok:
            want = "true or false" if name == "bias" else "a whole number"
            raise ParamError(f"{kind} layer: {name} must be {want}, not {v!r}")
        if name != "bias" and v is not None:
            settings[name] = int(v)
    if kind == "conv":
        return Conv(**settings)
    if kind in ("pool", "avgpool"):
        return Pool(mode="max" if kind == "pool" else "avg", **settings)
    if kind == "fc":
        return Dense(**settings)
    return _PLAIN[kind.upper()]()


# -- helpers ---------------------------------------------------------------------

def _is_int(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    try:
        return int(v) == v
    except (TypeError, ValueError, OverflowError):
        return False


def _positive(layer: Layer, **values: int) -> None:
    for name, v in values.items():
        if not _is_int(v) or v < 1:
            raise ParamError(f"{type(layer).__name__.lower()} layer: {name} must be a whole "
                             f"number of at least 1, not {v!r}")


def _non_negative(layer: Layer, **values: int) -> None:
    for name, v in values.items():
        if not _is_int(v) or v < 0:
            raise ParamError(f"{type(layer).__name__.lower()} layer: {name} must be a whole "
                             f"number of at least 0, not {v!r}")


def _feature_map(layer: Layer, shape: Shape) -> Shape:
    if len(shape) != 3:
        raise ParamError(f"{layer} needs a (C, H, W) feature map but receives a vector of "
                         f"{shape[0]} features; convolution and pooling come before FLATTEN "
                         f"and FC layers")
    return tuple(shape)


def _slide(layer: Conv | Pool, shape: Shape, size_rule: SizeRule) -> tuple[int, int]:
    """Output height and width of a window sliding over a (C, H, W) input."""
    _, h, w = _feature_map(layer, shape)
    k, s, p = layer.k, layer.stride, layer.padding
    if min(h, w) + 2 * p < k:
        padded = f" ({h + 2 * p}x{w + 2 * p} with padding {p})" if p else ""
        what = "kernel" if isinstance(layer, Conv) else "window"
        raise ParamError(f"{layer}: the {k}x{k} {what} is larger than its {h}x{w} "
                         f"input{padded}")
    out = size_rule(h, k, s, p), size_rule(w, k, s, p)
    if min(out) < 1:
        raise ParamError(f"{layer}: the output would be {out[0]}x{out[1]}")
    return out
