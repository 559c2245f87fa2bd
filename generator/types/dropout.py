"""dropout: what a dropout layer outputs, given its mask, in training or at test time.

``activations`` is a list of numbers or a batch of rows; ``mask`` is 0/1 of the same
shape (1: the unit is kept); ``keep_prob`` is p, the probability that a unit is kept
(PyTorch's ``nn.Dropout`` takes the *drop* probability 1 - p instead). The two
schemes, with x the activations and m the mask:

=============  =======================  ==================
scheme          train                   test
=============  =======================  ==================
``inverted``   y = x * m / p            y = x
``standard``   y = x * m                y = p * x
=============  =======================  ==================

Both keep the expected training output equal to what the next layer sees at test
time: inverted dropout (PyTorch's, ``F.dropout``) scales the kept units up by 1/p while
training, so E[y] = x and evaluation is the identity; standard dropout (the original
paper's) leaves the kept units as they are, so E[y] = p x while training and the test
output is scaled down by p to match. At test time no unit is dropped: the mask of the
last training step is given, and applying it is a mistake.

The steps: the probability used (``keep``), the scheme's factor (1/p or p), the scale
this phase applies (the factor, or 1), the units that pass (x * m in training, x at
test time) and ``output``. Each mistake swaps a different step, so any two combine:
scaled at the wrong phase (for standard dropout at test time: forgot to multiply by
p), p where 1/p belongs (or 1/p where p belongs), the drop probability 1 - p used as
p, and the mask applied at test time. In the phase where the scheme does not scale,
also the other scheme's rule (a changed parameter: inverted dropout's test output
taken as p x, standard dropout's training output as x * m / p); in the other phase
that rule is the wrong phase's.

Draws: activations of one or two decimals a clear margin from 0, chosen so that
dividing by p gives short decimals (x a multiple of 0.3 when p = 0.75); at least one
unit dropped per row and at most half (no answer mostly zeros), and no output that is
0 or 1 by accident. The 0 of a dropped unit weighs little (DROPPED): reading it off the
mask needs no arithmetic, so an all-zero answer earns a few per cent at most.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from deepdrill.generator import latex
from deepdrill.generator.exercise import (
    Exercise,
    int_option,
    jsonable,
    numbers,
    register,
    require,
)
from deepdrill.generator.randomness import choice, draw_until
from deepdrill.generator.steps import Slip, Step, run

from deepdrill.errors import ParamError
from deepdrill.model.fields import real

SCHEMES, PHASES = ("inverted", "standard"), ("train", "test")
TRAIN_SHARE = 0.7  # of drawn variants in the training phase (the rest: test time)
# keep probabilities a student divides by on paper, each with the step of its activations
# (x a multiple of the step makes x / p a short decimal: 0.3k / 0.75 = 0.4k)
STEPS = {0.5: 0.1, 0.8: 0.4, 0.75: 0.3, 0.25: 0.1, 0.4: 0.2}
UNITS, MIN_UNITS, MAX_UNITS = (5, 6), 3, 8  # per row
MAX_ROWS = 4  # of a batch
VALUE_BOUND = 3.0  # |x| at most this
MIN_SIZE = 0.2  # |x| at least this: no activation near 0
MAX_VALUE = 1e6  # pinned values of a sheet's size
DROPPED = 0.05  # entry weight of a dropped unit's 0 (the kept ones weigh 1)
MAX_DRAWS = 200


# -- the steps (pure: the grader may feed them a student's values) --------------------

def keep(keep_prob: Any) -> float:
    """The keep probability p the student works with."""
    return float(keep_prob)


def factor(scheme: str, keep: float) -> float:
    """The scheme's scaling: 1/p (inverted, in training) or p (standard, at test time)."""
    return 1 / keep if scheme == "inverted" else keep


def scales_now(scheme: str, phase: str) -> bool:
    """Whether this phase scales: inverted dropout scales in training, standard at test."""
    return (scheme == "inverted") == (phase == "train")


def scale(scheme: str, phase: str, factor: float) -> float:
    return factor if scales_now(scheme, phase) else 1.0


def passed(activations: Any, mask: Any, phase: str) -> np.ndarray:
    """The units that get through: x * m in training; all of x at test time."""
    x = np.asarray(activations, dtype=float)
    return x * np.asarray(mask, dtype=float) + 0.0 if phase == "train" else x  # no -0


def output(passed: Any, scale: float) -> np.ndarray:
    """y = passed * scale, rid of binary residue (0.2 * 0.4 = 0.08000000000000002)."""
    return np.round(np.asarray(passed, dtype=float) * scale, 12) + 0.0


GRAPH = (
    Step("keep", keep, ("keep_prob",)),
    Step("factor", factor, ("scheme", "keep")),
    Step("scale", scale, ("scheme", "phase", "factor")),
    Step("passed", passed, ("activations", "mask", "phase")),
    Step("output", output, ("passed", "scale")),
)


# -- mistakes ------------------------------------------------------------------------

def scale_at_other_phase(scheme: str, phase: str, factor: float) -> float:
    return 1.0 if scales_now(scheme, phase) else factor


def reciprocal(scheme: str, keep: float) -> float:
    return keep if scheme == "inverted" else 1 / keep


def drop_probability(keep_prob: Any) -> float:
    return 1 - float(keep_prob)


def masked_always(activations: Any, mask: Any, phase: str) -> np.ndarray:
    return np.asarray(activations, dtype=float) * np.asarray(mask, dtype=float) + 0.0


WRONG_PHASE = {  # (scheme, phase): what the student did, and the rule
    ("inverted", "train"): "you did not divide by p during training; inverted dropout "
                           "scales the kept units by 1/p while training (so that test "
                           "time needs no scaling)",
    ("inverted", "test"): "you scaled by 1/p at test time; inverted dropout scales while "
                          "training, so at test time the layer passes x unchanged",
    ("standard", "train"): "you scaled by p during training; standard dropout only masks "
                           "while training and multiplies by p at test time",
    ("standard", "test"): "you forgot to multiply by p at test time; standard dropout "
                          "leaves the kept units unscaled in training, so at test time "
                          "every unit is scaled by p",
}


OTHER_SCHEME = {  # the other scheme's rule in the phase where this one does not scale
    "inverted": "you used standard dropout's test rule y = p x; inverted dropout scaled by "
                "1/p during training, so at test time it passes x unchanged",
    "standard": "you used inverted dropout's training rule y = x m / p; standard dropout "
                "does not scale during training (it multiplies by p at test time)",
}


def slips_for(scheme: str, phase: str, keep_prob: float) -> list[Slip]:
    slips = [Slip("wrong_phase", WRONG_PHASE[scheme, phase],
                  swaps={"scale": scale_at_other_phase})]
    if scheme == "inverted":
        slips.append(Slip("scaled_by_p", "you multiplied by p; inverted dropout divides the "
                          "kept units by the keep probability p", swaps={"factor": reciprocal}))
    else:
        slips.append(Slip("divided_by_p", "you divided by p; standard dropout multiplies by "
                          "the keep probability p at test time", swaps={"factor": reciprocal}))
    if not scales_now(scheme, phase):  # elsewhere the other scheme's rule is wrong_phase's
        slips.append(Slip("wrong_scheme", OTHER_SCHEME[scheme], change={
            "scheme": "standard" if scheme == "inverted" else "inverted"}))
    if keep_prob < 1:
        slips.append(Slip("drop_probability", "you used the drop probability 1 - p where the "
                          "keep probability p belongs (PyTorch's nn.Dropout(q) is given the "
                          "drop probability q)", swaps={"keep": drop_probability}))
    if phase == "test":
        slips.append(Slip("mask_at_test", "you applied the mask at test time; in evaluation "
                          "mode no unit is dropped", swaps={"passed": masked_always}))
    return slips


# -- drawing -------------------------------------------------------------------------

def draw_mask(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """0/1 with at least one 0 per row and at most half of the row dropped."""
    rows = np.ones((int(np.prod(shape[:-1])), shape[-1]), dtype=int)
    for r in rows:
        dropped = int(rng.integers(1, shape[-1] // 2, endpoint=True))
        r[rng.choice(shape[-1], size=dropped, replace=False)] = 0
    return rows.reshape(shape)


def draw_activations(rng: np.random.Generator, shape: tuple[int, ...],
                     keep_prob: float) -> np.ndarray:
    """Multiples of the keep probability's step, |x| in [MIN_SIZE, VALUE_BOUND]; about a
    third negative."""
    step = STEPS.get(keep_prob, 0.1)
    top = int(VALUE_BOUND / step + 1e-9)
    low = int(np.ceil(MIN_SIZE / step - 1e-9))
    k = rng.integers(low, top, size=shape, endpoint=True)
    sign = np.where(rng.random(shape) < 1 / 3, -1, 1)
    return np.round(sign * k * step, 2)


def nothing_free(p: dict[str, Any]) -> bool:
    """No output that is 0 or 1 except a dropped unit's 0, and not every kept output the
    same number."""
    try:
        y = run(GRAPH, p)["output"]
    except (TypeError, ValueError):  # a pinned value check() refuses with a message
        return True
    live = np.asarray(p["mask"]) == 1 if p["phase"] == "train" else np.ones(y.shape, bool)
    kept = y[live]
    return not np.any(np.isclose(kept, 0) | np.isclose(kept, 1)) and \
        len(np.unique(np.round(kept, 9))) > 1


@register
class Dropout(Exercise):
    id = "dropout"
    title = "Dropout: training and test time"
    summary = "a dropout layer's output for a given mask, inverted or standard, train or test"
    params = ("activations", "mask", "keep_prob", "scheme", "phase")
    # units None: 5 or 6; batch None: one vector; scheme, phase None: drawn
    options = {"units": None, "batch": None, "scheme": None, "phase": None}
    work_space = "4cm"

    def sample(self, rng, pinned, options):
        p = dict(pinned)
        for name, allowed in (("scheme", SCHEMES), ("phase", PHASES)):
            if options[name] is not None and options[name] not in allowed:
                raise ParamError(f"option {name} must be one of {', '.join(allowed)}, "
                                 f"not {options[name]!r}")
        if "scheme" not in p:
            p["scheme"] = options["scheme"] or choice(rng, list(SCHEMES))
        if "phase" not in p:
            p["phase"] = options["phase"] or \
                ("train" if rng.random() < TRAIN_SHARE else "test")
        if "keep_prob" not in p:
            p["keep_prob"] = choice(rng, list(STEPS))
        shape = _shape(rng, p, options)
        if "mask" not in p:
            p["mask"] = draw_mask(rng, shape)
        if "activations" not in p:
            def draw(r: np.random.Generator) -> dict[str, Any]:
                return {**p, "activations": draw_activations(r, shape, p["keep_prob"])}
            p = draw_until(rng, draw, nothing_free, tries=MAX_DRAWS,
                           refusal="no hand-friendly activations found for this keep_prob "
                                   "and mask; pin the activations")
        return jsonable(p)

    def check(self, params):
        p = {"scheme": "inverted", "phase": "train", **params}
        require(p, "activations", "mask", "keep_prob")
        x = numbers(p["activations"], "activations")
        if x.ndim not in (1, 2) or x.shape[-1] < 2 or x.shape[-1] > MAX_UNITS or \
                (x.ndim == 2 and not 1 <= len(x) <= MAX_ROWS):
            raise ParamError(f"activations must be a list of 2 to {MAX_UNITS} numbers, or up "
                             f"to {MAX_ROWS} such rows (a batch)")
        if np.abs(x).max() > MAX_VALUE:
            raise ParamError(f"activations must be numbers of a sheet's size, at most "
                             f"{MAX_VALUE:g} in size")
        m = numbers(p["mask"], "mask")
        if m.shape != x.shape or not np.all((m == 0) | (m == 1)):
            raise ParamError(f"mask must be 0s and 1s (1: the unit is kept) shaped like the "
                             f"activations, {'x'.join(map(str, x.shape))}")
        if not m.any():
            raise ParamError("a mask of all zeros drops every unit: nothing to compute; keep "
                             "at least one unit (a 1)")
        keep_prob = numbers(p["keep_prob"], "keep_prob")
        if keep_prob.ndim or not 0 < keep_prob <= 1:
            raise ParamError("keep_prob is the probability of keeping a unit: one number "
                             "greater than 0 and at most 1")
        for name, allowed in (("scheme", SCHEMES), ("phase", PHASES)):
            if p[name] not in allowed:
                raise ParamError(f"{name} must be one of {', '.join(allowed)}, not "
                                 f"{p[name]!r}")
        return jsonable({k: p[k] for k in self.params})

    def graph(self, params):
        return GRAPH

    def fields(self, params, values):
        shape = list(np.shape(params["activations"]))
        weights = None
        if params["phase"] == "train":
            weights = np.where(np.ravel(params["mask"]) == 1, 1.0, DROPPED)
        return [real("output", "the layer's output" + (", one row per example"
                                                       if len(shape) == 2 else ""),
                     shape, entry_weights=weights)]

    def slips(self, params):
        return slips_for(params["scheme"], params["phase"], float(params["keep_prob"]))

    def problem(self, params):
        x = np.asarray(params["activations"], dtype=float)
        p = float(params["keep_prob"])
        return {"batch": x.ndim == 2, "rows": len(x) if x.ndim == 2 else 1,
                "x": _array(x), "mask": _array(params["mask"]),
                "p": latex.num(p), "drop": latex.num(round(1 - p, 12)),
                "scheme": params["scheme"], "train": params["phase"] == "train"}

    def worked(self, params, values):
        p = float(params["keep_prob"])
        return {"scheme": params["scheme"], "train": params["phase"] == "train",
                "p": latex.num(p), "factor": latex.num(values["factor"]),
                "factor_rel": latex.relation(values["factor"]),
                "scales": bool(scales_now(params["scheme"], params["phase"])),
                "passed": _array(values["passed"]), "output": _array(values["output"])}


def _array(a: Any) -> latex.Tex:
    a = np.asarray(a, dtype=float)
    return latex.matrix(a) if a.ndim == 2 else latex.row(a)


def _shape(rng: np.random.Generator, p: dict[str, Any], options: dict[str, Any]) -> tuple:
    """The shape of a pinned mask or activations, else drawn from the options."""
    for name in ("activations", "mask"):
        if name in p:
            return tuple(numbers(p[name], name).shape)
    units = int_option("units", options["units"], MIN_UNITS, MAX_UNITS) \
        if options["units"] is not None else choice(rng, list(UNITS))
    if options["batch"] is None:
        return (units,)
    return (int_option("batch", options["batch"], 1, MAX_ROWS), units)
