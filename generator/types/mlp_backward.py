"""mlp_backward: backpropagation through a small dense network, then one SGD step.

Parameters: those of ``mlp_forward`` (one layer is enough here), ``target``, ``loss``
and ``learning_rate`` (default 0.1). ``loss: cross_entropy`` goes with a softmax output
and a class ``target`` (an index from 0, or one-hot): L = -ln s_t. ``loss: mse`` goes with
any other output activation and a ``target`` of one number per output: L is the mean over
the n outputs, (1/n) sum_i (a_i - y_i)^2, as PyTorch's ``MSELoss`` (so dL/da = 2(a - y)/n).

Answers, one item per layer where the answer is per layer: ``loss``; ``deltas``
(delta_l = dL/dz_l); ``grad_weights`` (dL/dW_l = delta_l a_(l-1)^T); ``grad_biases``
(= delta_l); ``updated_weights`` and ``updated_biases`` after one SGD step
(W - learning_rate * dL/dW, as ``torch.optim.SGD`` without momentum). Chains: each
delta from the layer above's delta, the gradients from the deltas, the updates from
the gradients. The output delta and the backward rule are derived by sympy, once per
shape (:mod:`deepdrill.generator.mlp`), and printed in the worked solution.

Entries weigh their work (``WORK``): a hidden delta its sum over the units above, a
gradient entry a product, an update a product and a difference, dL/db next to nothing
(a copy of delta); an entry that is 0 because a ReLU clipped its unit, or that the
update leaves unchanged, a little. Mistakes: the activation derivative left out;
the gradient added instead of subtracted; the outer product taken as a delta^T (the
transposed gradient); for the MSE, the gradient of half the summed squares (a - y).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from deepdrill.errors import ParamError
from deepdrill.generator import latex, mlp
from deepdrill.generator.exercise import Exercise, jsonable, numbers, register, require
from deepdrill.generator.randomness import choice
from deepdrill.generator.steps import Graph, NotApplicable, Slip, Step, run
from deepdrill.model.fields import real

from .cross_entropy import check_target, one_hot
from .mlp_forward import OPTIONS, output_activation, sample_network

LOSSES = ("cross_entropy", "mse")
MSE_OUTPUTS = ("none", "sigmoid", "tanh", "relu")
LEARNING_RATES = (0.1, 0.2, 0.5, 1.0)
WORK = {"loss": 2.0, "output_delta": 2.0, "product": 1.0, "update": 0.5, "copy": 0.1, "zero": 0.1,
        "unchanged": 0.1}
VISIBLE = 0.03  # every non-zero gradient moves its weight by at least this share
MAX_STEP = 10  # and by at most this much
CANCELLATION = 0.15  # a hidden delta keeps this share of its terms' size
RESIDUE = 1e-12  # relative size below which a sum is rounding residue
MAX_TARGET_PROBABILITY = 0.85  # of a drawn class: 1 - s_t keeps its digits when s_t is rounded
TARGET_GAP = 0.2  # between an output and its drawn mse target


# -- the backward steps (pure: the grader feeds them a student's own values) -------------

def target_vector(target: Any, loss: str, layers: list[dict]) -> np.ndarray:
    n = len(layers[-1]["bias"])
    if loss == "cross_entropy":
        return one_hot(target, np.zeros(n))
    return np.atleast_1d(np.asarray(target, dtype=float))


def cross_entropy_loss(output: Any, y: np.ndarray) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(-np.log(np.asarray(output, dtype=float)[int(np.argmax(y))]))


def mse_loss(output: Any, y: np.ndarray) -> float:
    return float(np.mean((np.asarray(output, dtype=float) - y) ** 2))


def mse_gradient(output: Any, y: np.ndarray) -> np.ndarray:
    """dL/da = 2(a - y)/n for the mean over the n outputs."""
    return 2 * (np.asarray(output, dtype=float) - y) / len(y)


def derivative(kind: str, value: Any) -> np.ndarray:
    """f'(z): from z for ReLU (1 where z > 0) and the identity, from a = f(z) for the
    sigmoid (a(1 - a)) and tanh (1 - a^2)."""
    v = np.asarray(value, dtype=float)
    return {"relu": lambda: (v > 0).astype(float), "none": lambda: np.ones_like(v),
            "sigmoid": lambda: v * (1 - v), "tanh": lambda: 1 - v ** 2}[kind]()


def softmax_delta(output: Any, y: np.ndarray) -> np.ndarray:
    return np.asarray(output, dtype=float) - y


def chain(grad: Any, fprime: Any) -> np.ndarray:
    return np.asarray(grad, dtype=float) * np.asarray(fprime, dtype=float)


def sent_back(index: int, layers: list[dict], above: Any) -> np.ndarray:
    """W_(l+1)^T delta_(l+1): what reaches layer l's activations (``index``: the layer
    above, from 0). Then delta_l = this * f'(z_l) (:func:`chain`)."""
    w = np.asarray(layers[index]["weights"], dtype=float)
    d = mlp.carries(above)
    if d.shape != (len(w),):
        raise NotApplicable("a delta of the wrong length")
    back = w.T @ d
    scale = np.abs(w).T @ np.abs(d)  # a cancellation's residue (1e-17) is the exact 0
    return np.where(np.abs(back) <= RESIDUE * scale, 0.0, back)


def grad_weights(delta: Any, inputs: Any) -> np.ndarray:
    return np.outer(mlp.carries(delta), np.asarray(inputs, dtype=float))


def grad_bias(delta: Any) -> np.ndarray:
    return mlp.carries(delta).copy()


def updated(index: int, key: str, layers: list[dict], rate: float, grad: Any,
            sign: float = -1.0) -> np.ndarray:
    """W - rate * grad (``sign`` +1: the gradient added); a gradient laid out transposed is
    lined up with W first, as a student must to subtract it."""
    p, g = np.asarray(layers[index][key], dtype=float), np.asarray(grad, dtype=float)
    if g.shape != p.shape and g.T.shape == p.shape:
        g = g.T
    if g.shape != p.shape:
        raise NotApplicable("a gradient of another shape than the parameter")
    return p + sign * float(rate) * g


def fprime_input(kind: str, layer: int, n_layers: int) -> str:
    return f"z_{layer}" if kind in ("relu", "none") else mlp.step_names(n_layers)[layer - 1]


@functools.lru_cache(maxsize=256)
def backward_graph(kinds: tuple[str, ...], loss: str) -> Graph:
    n = len(kinds)
    acts = ["x", *mlp.step_names(n)]
    steps = [*mlp.forward_graph(kinds),
             Step("target_vector", target_vector, ("target", "loss", "layers")),
             Step("loss", cross_entropy_loss if loss == "cross_entropy" else mse_loss,
                  ("output", "target_vector"))]
    if loss == "cross_entropy":
        steps.append(Step(f"delta_{n}", softmax_delta, ("output", "target_vector")))
    else:
        steps += [Step("grad_output", mse_gradient, ("output", "target_vector")),
                  Step(f"fprime_{n}", functools.partial(derivative, kinds[-1]),
                       (fprime_input(kinds[-1], n, n),)),
                  Step(f"delta_{n}", chain, ("grad_output", f"fprime_{n}"))]
    for i in range(n - 1, 0, -1):
        steps += [Step(f"fprime_{i}", functools.partial(derivative, kinds[i - 1]),
                       (fprime_input(kinds[i - 1], i, n),)),
                  Step(f"back_{i}", functools.partial(sent_back, i),
                       ("layers", f"delta_{i + 1}")),
                  Step(f"delta_{i}", chain, (f"back_{i}", f"fprime_{i}"))]
    for i in range(1, n + 1):
        steps += [Step(f"grad_W_{i}", grad_weights, (f"delta_{i}", acts[i - 1])),
                  Step(f"grad_b_{i}", grad_bias, (f"delta_{i}",)),
                  Step(f"new_W_{i}", functools.partial(updated, i - 1, "weights"),
                       ("layers", "learning_rate", f"grad_W_{i}")),
                  Step(f"new_b_{i}", functools.partial(updated, i - 1, "bias"),
                       ("layers", "learning_rate", f"grad_b_{i}"))]
    return tuple(steps)


def backward(params: dict[str, Any]) -> dict[str, Any]:
    """Every step's value (forward and backward) for checked parameters."""
    return run(backward_graph(mlp.activations(params["layers"]), params["loss"]), params)


# -- slips ---------------------------------------------------------------------------

def transposed_outer(delta: Any, inputs: Any) -> np.ndarray:
    return grad_weights(delta, inputs).T


def half_squares_gradient(output: Any, y: np.ndarray) -> np.ndarray:
    return np.asarray(output, dtype=float) - y


def slips_for(params: dict[str, Any]) -> list[Slip]:
    layers, loss = params["layers"], params["loss"]
    n, kinds = len(layers), mlp.activations(layers)
    with_fprime = [i for i in range(1, n + 1) if kinds[i - 1] != "none" and
                   (i < n or loss == "mse")]
    out = []
    if with_fprime:
        out.append(Slip("forgot_activation_derivative", "you left out the activation's "
                        "derivative f'(z) when passing delta back through a layer",
                        swaps={f"fprime_{i}": np.ones_like for i in with_fprime}))
    out.append(Slip("added_gradient", "you added the gradient; gradient descent subtracts "
                    "it: W - learning_rate * dL/dW",
                    swaps={f"new_{p}_{i}": functools.partial(updated, i - 1, key, sign=1.0)
                           for i in range(1, n + 1)
                           for p, key in (("W", "weights"), ("b", "bias"))}))
    out.append(Slip("transposed_outer_product", "you took the outer product the wrong way "
                    "round (a delta^T); dL/dW = delta a^T has one row per unit, like W",
                    swaps={f"grad_W_{i}": transposed_outer for i in range(1, n + 1)}))
    if loss == "mse" and len(layers[-1]["bias"]) != 2:
        out.append(Slip("half_squared_error", "you used the gradient a - y of half the "
                        "summed squares; the mean squared error's is 2(a - y)/n",
                        swaps={"grad_output": half_squares_gradient}))
    return out


# -- drawing -----------------------------------------------------------------------------

def draw_target(rng: np.random.Generator, loss: str, kind: str, output: np.ndarray) -> Any:
    """A class whose probability is at most MAX_TARGET_PROBABILITY (s - y then keeps its
    digits), or one target per output, a one-decimal number at least TARGET_GAP from it
    (within the activation's range for a sigmoid or tanh)."""
    if loss == "cross_entropy":
        return int(choice(rng, [int(i) for i in np.flatnonzero(output <= MAX_TARGET_PROBABILITY)]
                          or [int(np.argmin(output))]))
    low, high = {"sigmoid": (0, 1), "tanh": (-1, 1)}.get(kind, (None, None))
    targets = []
    for a in output:
        lo, hi = (low, high) if low is not None else (np.floor(a) - 3, np.ceil(a) + 3)
        grid = np.round(np.arange(lo, hi + 0.05, 0.1 if rng.random() < 0.5 or low is not None
                                  else 1.0), 1)
        targets.append(choice(rng, list(grid[np.abs(grid - a) >= TARGET_GAP]) or [hi]))
    return jsonable(np.asarray(targets, dtype=float))


def steps_are_clear(params: dict[str, Any]) -> bool:
    """No hidden delta from heavy cancellation, a visible and moderate SGD step on every
    weight with a gradient, and outputs a clear distance from an MSE target."""
    v = backward(params)
    layers, n = params["layers"], len(params["layers"])
    for i in range(1, n):
        terms = np.abs(np.asarray(layers[i]["weights"]) * v[f"delta_{i + 1}"][:, None])
        live = v[f"fprime_{i}"] != 0
        if not np.all(np.abs(v[f"back_{i}"])[live] >= CANCELLATION * terms.sum(axis=0)[live]):
            return False
    return rate_fits(params["learning_rate"], layers, v)


def rate_fits(rate: float, layers: list[dict], v: dict[str, Any]) -> bool:
    """The SGD step moves no weight by more than MAX_STEP, some weight of every layer
    visibly, and none to near 0 (W - rate * g keeps its digits when g is rounded); the
    gradients ``v`` do not depend on the rate."""
    for i, layer in enumerate(layers, 1):
        g = v[f"grad_W_{i}"]
        new = np.asarray(layer["weights"], dtype=float) - rate * g
        w = np.abs(np.asarray(layer["weights"], dtype=float))
        if np.abs(rate * g).max() > MAX_STEP or not np.any(moves(rate, g, new)) or \
                np.any(np.abs(new) < CANCELLATION * (w + np.abs(rate * g))):
            return False
    return True


def moves(rate: float, grad: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Which entries the SGD step moves visibly (by VISIBLE of the new value)."""
    return (grad != 0) & (np.abs(rate * grad) >= VISIBLE * np.abs(new))


def draw_rate(rng: np.random.Generator, params: dict[str, Any]) -> float:
    """A learning rate from LEARNING_RATES that makes a visible, moderate step (any one
    when none does: the draw is then refused)."""
    v = backward({**params, "learning_rate": 1.0})
    fits = [r for r in LEARNING_RATES if rate_fits(r, params["layers"], v)]
    return choice(rng, fits or list(LEARNING_RATES))


@register
class MlpBackward(Exercise):
    id = "mlp_backward"
    title = "Dense network: backpropagation and one SGD step"
    summary = "deltas, weight and bias gradients and one SGD update of a small dense network"
    params = ("x", "layers", "target", "loss", "learning_rate")
    options = {**OPTIONS, "loss": None}  # None: cross_entropy or mse
    packages = ("tikz",)
    need_space = r"24\baselineskip"  # the figure stays with the text below it
    work_space = "9cm"

    def sample(self, rng, pinned, options):
        loss, out = pinned.get("loss", options["loss"]), options["output_activation"]
        if loss is None:  # one that fits the output the options ask for, if they do
            loss = "cross_entropy" if out == "softmax" else "mse" if out is not None or \
                options["outputs"] == 1 else choice(rng, list(LOSSES))
        if loss not in LOSSES:
            raise ParamError(f"loss must be one of {', '.join(LOSSES)}, not {loss!r}")
        if loss == "cross_entropy":
            kind = output_activation(rng, options, ("softmax",), ("softmax",))
        else:
            kind = output_activation(rng, options, MSE_OUTPUTS, ("none", "sigmoid"))

        def complete(r: np.random.Generator, x: Any, layers: list[dict]) -> dict[str, Any]:
            out = {"x": x, "layers": layers, "loss": loss,
                   "target": pinned["target"] if "target" in pinned else
                   draw_target(r, loss, layers[-1]["activation"],
                               mlp.forward(x, layers)["output"])}
            try:
                rate = pinned.get("learning_rate") or draw_rate(r, self.check(out))
            except ParamError:  # a target that does not fit: refused by _fair
                rate = LEARNING_RATES[0]
            return {**out, "learning_rate": rate}
        return sample_network(rng, pinned, options, kind, self._fair, complete)

    def _fair(self, params: dict[str, Any]) -> bool:
        try:
            params = self.check(params)
        except ParamError:
            return False
        return steps_are_clear(params) and \
            mlp.fair(self.graph(params), params, self.fields, self.answers)

    def check(self, params):
        p = {"learning_rate": 0.1, **params}
        require(p, *self.params)
        x, layers = mlp.check_network(p["x"], p["layers"])
        mlp.check_forward(x, layers)
        loss, kind = p["loss"], layers[-1]["activation"]
        if loss not in LOSSES:
            raise ParamError(f"loss must be one of {', '.join(LOSSES)}, not {loss!r}")
        if (loss == "cross_entropy") != (kind == "softmax"):
            raise ParamError("cross_entropy goes with a softmax output layer, and mse with "
                             "any other: change the loss or the last layer's activation")
        n = len(layers[-1]["bias"])
        target = p["target"]
        if loss == "cross_entropy":
            check_target(target, np.zeros(n))
        else:
            t = np.atleast_1d(numbers(target, "target"))
            if t.shape != (n,) or np.abs(t).max() > mlp.MAX_VALUE:
                raise ParamError(f"an mse target is one number per output ({n}), each at "
                                 f"most {mlp.MAX_VALUE} in size")
            target = jsonable(t)
        rate = numbers(p["learning_rate"], "learning_rate")
        if rate.ndim or not 0 < rate <= 10:
            raise ParamError("learning_rate must be one number, more than 0 and at most 10")
        out = {"x": x, "layers": layers, "target": jsonable(target), "loss": loss,
               "learning_rate": jsonable(rate)}
        try:
            backward(out)
        except NotApplicable:
            raise ParamError("the gradient is 0 all through a layer here (a dead ReLU layer, "
                             "or an output equal to its target): nothing to backpropagate; "
                             "change the weights or the target") from None
        return out

    def graph(self, params):
        return backward_graph(mlp.activations(params["layers"]), params["loss"])

    def fields(self, params, values):
        n = len(params["layers"])
        idx = range(1, n + 1)

        def weights(names: list[str], work: list[float], zero: float = WORK["zero"],
                    source=lambda s: s) -> list[float]:
            """Per entry its work, or ``zero`` where the (source) gradient is 0."""
            return [float(zero if g == 0 else w) for s, w in zip(names, work)
                    for g in np.ravel(values[source(s)])]
        above = [WORK["output_delta"] if i == n else 1.0 + len(params["layers"][i]["bias"])
                 for i in idx]
        deltas = weights([f"delta_{i}" for i in idx], above)
        grads = weights([f"grad_W_{i}" for i in idx], [WORK["product"]] * n)
        grad_b = [WORK["copy"]] * sum(np.size(values[f"delta_{i}"]) for i in idx)
        new_w, new_b = ([float(WORK["update"] if m else WORK["unchanged"])
                         for i in idx for m in np.ravel(moves(
                             params["learning_rate"], values[f"grad_{p}_{i}"],
                             values[f"new_{p}_{i}"]))] for p in ("W", "b"))
        per = " (one item per layer, from layer 1)"
        vec = [[len(params["layers"][i - 1]["bias"])] for i in idx]
        mat = [list(np.shape(params["layers"][i - 1]["weights"])) for i in idx]
        return [
            real("loss", "the loss", [], weight=WORK["loss"]),
            real("deltas", "the deltas dL/dz of every layer" + per, vec, weight=sum(deltas),
                 entry_weights=deltas, parts=tuple(f"delta_{i}" for i in idx)),
            real("grad_weights", "the gradients dL/dW, each shaped like W" + per, mat,
                 weight=sum(grads), entry_weights=grads, parts=tuple(f"grad_W_{i}" for i in idx)),
            real("grad_biases", "the gradients dL/db" + per, vec, weight=sum(grad_b),
                 entry_weights=grad_b, parts=tuple(f"grad_b_{i}" for i in idx)),
            real("updated_weights", "the weights after one SGD step" + per, mat,
                 weight=sum(new_w), entry_weights=new_w, parts=tuple(f"new_W_{i}" for i in idx)),
            real("updated_biases", "the biases after one SGD step" + per, vec,
                 weight=sum(new_b), entry_weights=new_b, parts=tuple(f"new_b_{i}" for i in idx)),
        ]

    def slips(self, params):
        return slips_for(params)

    def problem(self, params):
        n = len(params["layers"][-1]["bias"])
        y = target_vector(params["target"], params["loss"], params["layers"])
        return {**mlp.network_tex(params), "loss": params["loss"], "n": n,
                "target": latex.row(y), "class": int(np.argmax(y)),
                "rate": latex.num(params["learning_rate"]), "L": len(params["layers"])}

    def worked(self, params, values):
        return mlp.backward_worked(params, values)
