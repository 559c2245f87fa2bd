"""Blanks: one setting of a conv or pool layer asked back from the shapes around it.

Homework also asks backwards: "a 205 x 205 x 10 input gives 66 x 66 x 96 with stride 3
and no padding: what is the kernel size?" A :class:`Blank` names the layer (1-based)
and the setting left blank: ``k``, ``stride``, ``padding`` (conv and pool layers) or
``filters`` (conv layers). Written as instructors write it, with a ``?`` in the layer
notation (``CONV?-96(3,0)``, ``CONV5-96(?,0)``, ``CONV5-?(3,0)``, ``POOL-2(?)``), it is
matched against the network's layers; it is stored as a dict::

    {"layer": 1, "setting": "k", "accept_all": false}

Solving ``floor((H + 2P - k)/S) + 1 = H_out`` for one setting, the others fixed, gives
a range of whole numbers (:func:`fit`, exact, both sides H and W): the floor lets up
to S kernel sizes fit one output size, several strides fit a small output, and with
a stride of 3 or more several paddings. A blank is asked only when one value fits,
unless the question accepts all of them (``accept_all``). The number of filters is
the output's channel count, always one value.

In the solution's graph (:func:`blank_steps`) the blanked layer's output shape and
its input shape are given (the sheet prints them): constant steps, which the rows of a
student's table never replace (their copies are steps of their own that nothing reads,
:func:`shape_parts`), so the later rows start again from the given shape. The step
``blank`` solves for the setting from those two shapes, and the layer's weights and
biases are counted with the blank's value (a student's own value, for carried-forward
credit).

>>> layers = [Conv(10, 96, stride=3, padding=0)]
>>> b = parse_blank("CONV?-96(3,0)", layers)
>>> b, list(fit(layers[0], "k", (10, 205, 205), (96, 66, 66)).values)
(Blank(layer=1, setting='k', accept_all=False), [8, 9, 10])
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from deepdrill.errors import ParamError

from .layers import (Conv, Layer, LayerRow, LayerStep, Pool, Shape, as_shape, count, names,
                     parse_layer)
from .randomness import choice
from .steps import Graph, NotApplicable, Slip, Step

SETTINGS = {Conv: ("k", "filters", "stride", "padding"), Pool: ("k", "stride", "padding")}
SYMBOL = {"k": "k", "stride": "S", "padding": "P", "filters": "N"}
WHAT = {"k": "kernel size", "stride": "stride", "padding": "padding",
        "filters": "number of filters"}
COUNTED = ("k", "filters")  # the settings a layer's weights and biases depend on
BLANK = "blank"  # the step (and answer field) of the blank's value
COPIED = "copied_"  # a given shape as a student copies it: a step nothing reads
EXAMPLE = '"CONV?-96(3,0)" or {"layer": 1, "setting": "k"}'


@dataclass(frozen=True)
class Blank:
    """The setting left blank in one layer (1-based); ``accept_all``: accept every value
    that fits when several do."""

    layer: int
    setting: str
    accept_all: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"layer": self.layer, "setting": self.setting, "accept_all": self.accept_all}

    def given_rows(self) -> tuple[int, ...]:
        """The layers whose output shapes the sheet gives: the blanked layer's and the one
        before it (its input)."""
        return (self.layer - 1, self.layer) if self.layer > 1 else (self.layer,)


# -- reading the parameter ------------------------------------------------------------

def parse_blank(spec: Any, layers: Sequence[Layer]) -> Blank | None:
    """``asks`` as a :class:`Blank` (None: no blank), checked against the layers.

    >>> net = [parse_layer(x) for x in ("CONV3-16", "POOL-2", "CONV3-32(2,1)")]
    >>> parse_blank({"layer": "CONV3-32(?,1)", "accept_all": True}, net)
    Blank(layer=3, setting='stride', accept_all=True)
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        return _matching(spec, layers)
    if not isinstance(spec, Mapping):
        raise ParamError(f"asks must name a layer's setting, e.g. {EXAMPLE}, not {spec!r}")
    unknown = sorted(set(spec) - {"layer", "setting", "accept_all"})
    if unknown or "layer" not in spec:
        raise ParamError(f"asks takes layer, setting and accept_all (e.g. {EXAMPLE}), "
                         f"not {', '.join(unknown) or 'no layer'}")
    accept_all = spec.get("accept_all", False)
    if not isinstance(accept_all, bool):
        raise ParamError(f"asks: accept_all must be true or false, not {accept_all!r}")
    where = spec["layer"]
    if isinstance(where, str):
        found = _matching(where, layers)
        if spec.get("setting", found.setting) != found.setting:
            raise ParamError(f"asks: the ? in {where!r} stands for {found.setting}, not "
                             f"{spec['setting']!r}")
        return replace(found, accept_all=accept_all)
    return _at(where, spec.get("setting"), layers, accept_all)


def _at(i: Any, setting: Any, layers: Sequence[Layer], accept_all: bool) -> Blank:
    if isinstance(i, bool) or not isinstance(i, int) or not 1 <= i <= len(layers):
        raise ParamError(f"asks: layer must be a layer's position, 1 to {len(layers)}, "
                         f"or the layer with ? for the blank, not {i!r}")
    layer = layers[i - 1]
    settings = SETTINGS.get(type(layer))
    if settings is None:
        raise ParamError(f"asks: layer {i} is {layer}; only a CONV or POOL layer's settings "
                         f"can be asked")
    if setting not in settings:
        raise ParamError(f"asks: setting of layer {i} ({layer}) must be one of "
                         f"{', '.join(settings)}, not {setting!r}")
    return Blank(i, setting, accept_all)


_CONV = re.compile(r"CONV(\d+|\?)-(\d+|\?)(?:\((\d+|\?),(\d+|\?)\))?")
_POOL = re.compile(r"(?:AVG|MAX)?POOL-(\d+|\?)(?:\((\d+|\?)(?:,(\d+|\?))?\))?")


def _matching(text: str, layers: Sequence[Layer]) -> Blank:
    """The one layer that ``text`` (the notation with a ``?``) is, with ? filled in."""
    s = re.sub(r"\s+", "", text).upper()
    m = _CONV.fullmatch(s) or _POOL.fullmatch(s)
    if s.count("?") != 1 or m is None:
        raise ParamError(f"asks: write the layer with one ? for the blank, e.g. "
                         f"'CONV?-96(3,0)', 'CONV5-96(?,0)', 'CONV5-?(3,0)' or 'POOL-2(?)', "
                         f"not {text!r}")
    fields = ("k", "filters", "stride", "padding") if m.re is _CONV else \
        ("k", "stride", "padding")
    setting = fields[m.groups().index("?")]
    found = [i for i, layer in enumerate(layers, 1)
             if setting in SETTINGS.get(type(layer), ()) and _is(s, setting, layer)]
    if not found:
        raise ParamError(f"asks: no layer is {text!r} with the ? filled in; the layers are "
                         f"{', '.join(str(x) for x in layers)}")
    if len(found) > 1:
        listed = " and ".join(str(i) for i in found)
        raise ParamError(f"asks: {text!r} matches layers {listed}; name one, e.g. "
                         f'{{"layer": {found[-1]}, "setting": "{setting}"}}')
    return Blank(found[0], setting)


def _is(text: str, setting: str, layer: Layer) -> bool:
    try:
        filled = parse_layer(text.replace("?", str(getattr(layer, setting))))
    except ParamError:
        return False
    if isinstance(layer, Conv) and isinstance(filled, Conv):
        filled = replace(filled, bias=layer.bias)  # the strings cannot say "no bias"
    return filled == layer


def notation(layer: Layer, setting: str) -> str:
    """The layer as the sheet prints it with its blank: stride and padding written out
    unless they say nothing about the blank.

    >>> notation(Conv(3, 64), "k"), notation(Conv(3, 64), "filters"), notation(Pool(2), "k")
    ('CONV?-64(1,1)', 'CONV3-?', 'POOL-?(2)')
    """
    shown = {s: "?" if s == setting else getattr(layer, s) for s in SETTINGS[type(layer)]}
    if isinstance(layer, Conv):
        base = f"CONV{shown['k']}-{shown['filters']}"
        same = layer.stride == 1 and layer.padding == layer.k // 2
        return base if setting == "filters" and same else \
            f"{base}({shown['stride']},{shown['padding']})"
    assert isinstance(layer, Pool)
    base = f"{'POOL' if layer.mode == 'max' else 'AVGPOOL'}-{shown['k']}"
    if setting != "padding" and not layer.padding:
        return f"{base}({shown['stride']})"
    return f"{base}({shown['stride']},{shown['padding']})"


# -- solving --------------------------------------------------------------------------

class Fit(NamedTuple):
    """The whole values ``lo..hi`` of a setting that fit (``hi`` None: no upper bound)."""

    lo: int
    hi: int | None

    @property
    def values(self) -> range:
        if self.hi is None:
            raise NotApplicable(f"every value from {self.lo} up fits")
        return range(self.lo, max(self.hi, self.lo - 1) + 1)

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and self.lo <= value and \
            (self.hi is None or value <= self.hi)


def side_fit(setting: str, n: int, out: int, layer: Conv | Pool) -> Fit:
    """The values of ``setting`` with ``floor((n + 2P - k)/S) + 1 = out`` for one side
    (the layer's other settings fixed), before the layers' own limits.

    The floor equation says ``S(out - 1) <= n + 2P - k <= S*out - 1``.

    >>> side_fit("k", 205, 66, Conv(10, 96, 3, 0)), side_fit("stride", 32, 16, Conv(3, 8, 2, 1))
    (Fit(lo=8, hi=10), Fit(lo=2, hi=2))
    """
    k, s, p, q = layer.k, layer.stride, layer.padding, out - 1
    if q < 0:
        return Fit(1, 0)
    if setting == "k":
        return Fit(n + 2 * p - s * q - s + 1, n + 2 * p - s * q)
    if setting == "padding":
        return Fit(-((n - k - s * q) // 2), (s * q + s - 1 + k - n) // 2)
    m = n + 2 * p - k  # stride: floor(m / S) = q
    if m < 0:
        return Fit(1, 0)
    return Fit(m + 1, None) if q == 0 else Fit(m // (q + 1) + 1, m // q)


def fit(layer: Layer, setting: str, before: Shape, after: Shape) -> Fit:
    """Every value of the blank that maps the shape ``before`` to ``after`` (their H and
    W; the filters from the channels), within the layers' limits: k and S at least 1,
    P at least 0, a pool's padding at most half its window."""
    if setting == "filters":
        return Fit(after[0], after[0])
    if not isinstance(layer, (Conv, Pool)) or len(before) != 3 or len(after) != 3:
        raise NotApplicable(f"{layer} maps a (C, H, W) map to a (C, H, W) map")
    lo = 0 if setting == "padding" else 1
    hi: int | None = None
    if isinstance(layer, Pool) and setting == "k":
        lo = max(lo, 2 * layer.padding)
    if isinstance(layer, Pool) and setting == "padding":
        hi = layer.k // 2
    for n, out in zip(before[1:], after[1:]):
        side = side_fit(setting, n, out, layer)
        lo = max(lo, side.lo)
        hi = side.hi if hi is None else hi if side.hi is None else min(hi, side.hi)
    return Fit(lo, hi)


def valid_values(table: Sequence[LayerRow], blank: Blank) -> range:
    """Every value of the blank that fits the layer table's shapes; a ParamError says
    how to ask a blank that has one."""
    row = table[blank.layer - 1]
    layer, before, after = row.layer, row.input_shape, row.output_shape
    f = fit(layer, blank.setting, before, after)
    where = f"asks: layer {blank.layer}, {notation(layer, blank.setting)}, maps " \
            f"{tuple(before)} to {tuple(after)}"
    if f.hi is None:
        raise ParamError(f"{where}, which every {WHAT[blank.setting]} from {f.lo} up does "
                         f"(the output is 1x1); ask another setting or layer")
    values = f.values
    if len(values) > 1 and not blank.accept_all:
        listed = ", ".join(str(v) for v in values[:-1]) + f" or {values[-1]}"
        raise ParamError(f"{where}: {WHAT[blank.setting]} {listed} all fit (the floor in "
                         f"floor((H + 2P - k)/S) + 1 lets several); add accept_all: true to "
                         f"accept every one, or ask a setting that one value fits")
    return values


# -- the steps --------------------------------------------------------------------------

@dataclass(frozen=True)
class Solve:
    """The step ``blank``: the setting solved from the shapes before and after the layer
    (given on the sheet). When several values fit (a question that accepts all of them),
    the layer's own: the key's."""

    layer: Layer
    setting: str

    def __call__(self, before: Any, after: Any) -> int:
        values = fit(self.layer, self.setting, as_shape(before), as_shape(after)).values
        own = getattr(self.layer, self.setting)
        if len(values) == 1:
            return values[0]
        if own in values:  # several fit: the question accepts all of them
            return own
        raise NotApplicable(f"{len(values)} values of {self.setting} fit these shapes")


@dataclass(frozen=True)
class Missolve:
    """A blank solved from a wrong size formula: ``floor((H + 2P - k)/S) = H_out`` (the
    +1 left out) or the padding left out. Of the values that fit it and not the right
    formula, the one nearest the layer's own (what a student's algebra gives)."""

    layer: Layer
    setting: str
    wrong: str  # "plus_one" or "padding"

    def __call__(self, before: Any, after: Any) -> int:
        before, after = as_shape(before), as_shape(after)
        right = fit(self.layer, self.setting, before, after)
        if self.wrong == "plus_one":
            slipped = fit(self.layer, self.setting, before, (after[0], *(d + 1 for d in after[1:])))
        else:
            slipped = fit(replace(self.layer, padding=0), self.setting, before, after)
        own = getattr(self.layer, self.setting)
        top = slipped.hi if slipped.hi is not None else max(slipped.lo, own) + 1
        values = [v for v in range(slipped.lo, top + 1) if v not in right]
        if not values:
            raise NotApplicable("this slip gives no other value here")
        return min(values, key=lambda v: (abs(v - own), v))


BLANK_SLIPS = (
    ("blank_forgot_plus_one",
     "you solved floor((H + 2P - k)/S) = H_out for the blank, without the +1",
     "plus_one", ("k", "stride", "padding")),
    ("blank_forgot_padding", "you left out the padding P when solving for the blank",
     "padding", ("k", "stride")),
)


@dataclass(frozen=True)
class Filled:
    """A step of the blanked layer that counts with its blank (weights and biases for a
    blank k or filter count): ``fn(layer with the blank's value, *inputs)``."""

    fn: Callable[..., Any]
    layer: Layer
    setting: str
    where: str

    def __call__(self, *inputs: Any) -> Any:
        *rest, value = inputs
        try:
            return self.fn(replace(self.layer, **{self.setting: count(value)}), *rest)
        except ParamError as err:  # a student's blank the layer cannot take
            raise NotApplicable(f"{self.where}, {err.message}") from None


@dataclass(frozen=True)
class Given:
    """A shape the sheet gives: a step with no inputs."""

    shape: Shape

    def __call__(self) -> Shape:
        return self.shape


def input_name(blank: Blank) -> str:
    """The step holding the blanked layer's input shape."""
    return names(blank.layer - 1).shape if blank.layer > 1 else "input_shape"


def blank_steps(steps: Graph, layers: Sequence[Layer], blank: Blank,
                shapes: Sequence[Shape]) -> Graph:
    """A layer chain's steps with the blank: the given rows' shapes as constants
    (``shapes``: every layer's output shape), the step ``blank`` after the blanked layer's
    shape, and its weights and biases counted with the blank."""
    layer, n = layers[blank.layer - 1], names(blank.layer)
    given = {names(i).shape: Given(shapes[i - 1]) for i in blank.given_rows()}
    filled = (n.weights, n.biases) if blank.setting in COUNTED else ()
    out = []
    for s in steps:
        if s.name in given:
            out += [Step(s.name, given[s.name]), Step(COPIED + s.name, given[s.name])]
        elif s.name in filled:
            out.append(Step(s.name, Filled(s.fn.fn, layer, blank.setting, s.fn.where),
                            (*s.inputs, BLANK)))
        else:
            out.append(s)
        if s.name == n.shape:
            out.append(Step(BLANK, Solve(layer, blank.setting), (input_name(blank), n.shape)))
    return tuple(out)


def shape_parts(count: int, blank: Blank | None) -> tuple[str, ...]:
    """The steps a table's output shapes read: ``shape_i``, but a given row's copy."""
    given = blank.given_rows() if blank else ()
    return tuple(COPIED * (i in given) + names(i).shape for i in range(1, count + 1))


def blank_swaps(swaps: Mapping[str, Any], blank: Blank) -> dict[str, Any]:
    """A table slip's swaps on a network with a blank: none of the given shapes (the sheet
    prints them), and the blanked layer's counts still take the blank."""
    given = {names(i).shape for i in blank.given_rows()}
    n = names(blank.layer)
    filled = (n.weights, n.biases) if blank.setting in COUNTED else ()
    out = {}
    for name, fn in swaps.items():
        if name in given:
            continue
        if name in filled and isinstance(fn, LayerStep):
            fn = Filled(fn.fn, fn.layer, blank.setting, fn.where)
        out[name] = fn
    return out


def slips_with_blank(slips: Sequence[Slip], layers: Sequence[Layer], blank: Blank) -> list[Slip]:
    """A table's slips on a network with a blank (none swaps a given shape), then the
    blank's own: solved without the +1, or without the padding (when it has one)."""
    layer = layers[blank.layer - 1]
    kept = [Slip(s.name, s.feedback, blank_swaps(s.swaps, blank)) for s in slips]
    return [s for s in kept if s.swaps] + [
        Slip(name, feedback, {BLANK: Missolve(layer, blank.setting, wrong)})
        for name, feedback, wrong, settings in BLANK_SLIPS
        if blank.setting in settings and (wrong != "padding" or layer.padding)]


# -- drawing ------------------------------------------------------------------------

MIN_DRAWN = 2  # a drawn blank is never 0 or 1: a constant answer must not earn it


def drawable(table: Sequence[LayerRow], setting: str) -> list[Blank]:
    """The blanks a draw may ask in a layer table (``setting`` or "any"): one value fits,
    at least 2."""
    out = []
    for i, row in enumerate(table, 1):
        for s in SETTINGS.get(type(row.layer), ()):
            f = fit(row.layer, s, row.input_shape, row.output_shape) \
                if setting in (s, "any") else None
            if f is not None and f.hi == f.lo >= MIN_DRAWN:
                out.append(Blank(i, s))
    return out


def draw_blank(rng: np.random.Generator, table: Sequence[LayerRow], setting: str) -> Blank:
    """A blank of ``setting`` (for "any": a setting first, then a layer, both uniform), or a
    ParamError when the layers have none."""
    found = drawable(table, setting)
    if not found:
        what = "setting" if setting == "any" else WHAT[setting]
        raise ParamError(f"option blank={setting!r}: no conv or pool layer of these layers has "
                         f"a {what} that the shapes around it fix to one value of at least "
                         f"{MIN_DRAWN}; pin asks instead")
    kind = choice(rng, sorted({b.setting for b in found}))
    return choice(rng, [b for b in found if b.setting == kind])


def no_blank_in(specs: Any) -> None:
    """A ``?`` belongs in ``asks``: say so rather than call the layer unknown."""
    for i, spec in enumerate(specs if isinstance(specs, list) else [], 1):
        if isinstance(spec, str) and "?" in spec:
            raise ParamError(f"layer {i}, {spec!r}: a blank goes in asks, not in layers; "
                             f"write the layer with its value and asks = {spec!r}")

