"""mlp_forward: the forward pass through a small fully connected network.

Parameters: ``x`` (one example, n_0 numbers) and ``layers``, each
``{"weights": n_l x n_(l-1), "bias": n_l numbers, "activation": relu | sigmoid | tanh |
softmax | none}`` (see :mod:`deepdrill.generator.mlp`; softmax on the last layer only;
at least 2 layers, so there is a hidden layer). Layer l computes z = W a + b and
a = f(z), from a_0 = x.

Answers: ``pre_activations`` (z of every layer, one list per layer), ``activations``
(a of every hidden layer, one list per hidden layer) and ``output`` (a of the last
layer: the network's output is its last activation, asked once under its own name).
Chains: a layer's activations come from its own pre-activations, the next layer's
pre-activations from these activations (one step per layer, as ``parts``).

Entries weigh the work they need: a pre-activation its fan-in plus one (the products and the bias), an
activation ``WORK`` of it (a ReLU little, a calculator key more, the identity next to
nothing). Mistakes: the output activation applied twice; softmax as the logits divided
by their sum; the biases left out.

Random networks have 2-3 inputs, 1-2 hidden layers of 2-3 units and 1-3 outputs
(options ``inputs``, ``hidden_layers``, ``width``, ``outputs``); hidden layers use the
option ``activation`` (default ReLU), the output ``output_activation`` (default drawn
from softmax, sigmoid and none). Inputs, weights and biases are small non-zero integers
or one-decimal numbers; a layer feeding a sigmoid, tanh or softmax has one-decimal
weights of at most 1, so its pre-activations stay where those functions are readable.
A sigmoid, tanh or softmax needs a calculator: the sheet says so. Every drawn network
keeps its pre-activations clear of 0 and 1, every ReLU layer alive (and, with three
ReLU units or more, one clipped), a student who rounds each step to 3 significant
figures within tolerance, and an all-0 or all-1 answer below 8 % of the points.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from deepdrill.errors import ParamError
from deepdrill.generator import latex, mlp
from deepdrill.generator.exercise import Exercise, jsonable, register, require
from deepdrill.generator.randomness import choice
from deepdrill.generator.steps import Slip
from deepdrill.model.fields import real

from .softmax import ZERO_SUM, logits_unexponentiated

WORK = {"relu": 0.25, "sigmoid": 0.5, "tanh": 0.5, "softmax": 0.5, "none": 0.1}
OUTPUT_CHOICES = ("softmax", "sigmoid", "none")  # a random output layer's activation
REFUSAL = ("found no hand-friendly network for these options (pre-activations clear of 0, "
           "no dead ReLU layer, nothing earned by constant answers); choose other options")
Complete = Callable[[np.random.Generator, Any, list], dict]
OPTIONS = {"hidden_layers": None, "width": None, "inputs": None, "outputs": None,
           "activation": "relu", "output_activation": None}


def hidden_activation(options: dict[str, Any]) -> str:
    kind = options["activation"]
    if kind not in mlp.HIDDEN_ACTIVATIONS:
        raise ParamError(f"option activation (of the hidden layers) must be one of "
                         f"{', '.join(mlp.HIDDEN_ACTIVATIONS)}, not {kind!r}")
    return kind


def output_activation(rng: np.random.Generator, options: dict[str, Any],
                      allowed: tuple[str, ...] | None = None,
                      default: tuple[str, ...] = OUTPUT_CHOICES) -> str:
    allowed = allowed or mlp.ACTIVATIONS
    kind = options["output_activation"]
    if kind is None:  # softmax needs 2 outputs
        return choice(rng, [k for k in default if k != "softmax" or options["outputs"] != 1])
    if kind not in allowed:
        raise ParamError(f"option output_activation must be one of {', '.join(allowed)}, "
                         f"not {kind!r}")
    return kind


def sample_network(rng: np.random.Generator, pinned: dict[str, Any], options: dict[str, Any],
                   output_kind: str, accept: Callable[[dict[str, Any]], bool],
                   complete: Complete | None = None) -> dict[str, Any]:
    """x, layers and what ``complete(rng, x, layers)`` adds (mlp_backward's target and
    learning rate): pinned values kept, the rest drawn until ``accept(params)``. A network
    pinned whole is the instructor's: only the rest is drawn, accepted if it can be."""
    def rest(r: np.random.Generator, x: Any, layers: list[dict]) -> dict[str, Any]:
        return {"x": x, "layers": layers, **(complete(r, x, layers) if complete else {}),
                **pinned}

    if "layers" in pinned:
        n0 = mlp.input_width(pinned["layers"])
        _, layers = mlp.check_network([1] * n0, pinned["layers"])

        def draw(r: np.random.Generator) -> dict[str, Any]:
            x = pinned["x"] if "x" in pinned else \
                jsonable(mlp.draw_input(r, n0, bool(r.random() < mlp.INTEGER_SHARE)))
            return rest(r, x, layers)
        if "x" in pinned:
            try:
                return mlp.draw_fair(rng, draw, accept, "")
            except ParamError:
                return draw(rng)
        return mlp.draw_fair(rng, draw, lambda p: mlp.layers_fit(p["x"], layers) and accept(p),
                             REFUSAL + " or pin x as well")
    n_in = len(pinned["x"]) if isinstance(pinned.get("x"), list) else None
    shape = mlp.architecture(rng, options, n_in, output_kind)
    kinds = [hidden_activation(options)] * (len(shape) - 2) + [output_kind]
    return mlp.draw_fair(rng, lambda r: rest(r, *mlp.draw_network(r, shape, kinds,
                                                                  pinned.get("x"))),
                         lambda p: mlp.relu_clips_somewhere(p["x"], p["layers"]) and accept(p),
                         REFUSAL)


@register
class MlpForward(Exercise):
    id = "mlp_forward"
    title = "Dense network: forward pass"
    summary = "pre-activations, activations and output of a small fully connected network"
    params = ("x", "layers")
    options = OPTIONS
    packages = ("tikz",)
    need_space = r"24\baselineskip"  # the figure stays with the text below it
    work_space = "7cm"

    def sample(self, rng, pinned, options):
        if "x" in pinned and "layers" in pinned:
            return dict(pinned)
        return sample_network(rng, pinned, options, output_activation(rng, options), self._fair)

    def _fair(self, params: dict[str, Any]) -> bool:
        return mlp.fair(self.graph(params), params, self.fields, self.answers)

    def check(self, params):
        require(params, *self.params)
        x, layers = mlp.check_network(params["x"], params["layers"], min_layers=2)
        mlp.check_forward(x, layers)
        return {"x": x, "layers": layers}

    def graph(self, params):
        return mlp.forward_graph(mlp.activations(params["layers"]))

    def fields(self, params, values):
        n = mlp.sizes(params["x"], params["layers"])
        kinds = mlp.activations(params["layers"])
        z_work = [float(n[i] + 1) for i in range(len(kinds)) for _ in range(n[i + 1])]
        a_work = [WORK[k] for k, m in zip(kinds[:-1], n[1:-1]) for _ in range(m)]
        out_work = [WORK[kinds[-1]]] * n[-1]
        return [
            real("pre_activations", "the pre-activations z = Wa + b, one list per layer",
                 [[m] for m in n[1:]], weight=sum(z_work), entry_weights=z_work,
                 parts=tuple(f"z_{i}" for i in range(1, len(n)))),
            real("activations", "the activations a = f(z) of the hidden layers, one list "
                 "per hidden layer", [[m] for m in n[1:-1]], weight=sum(a_work),
                 entry_weights=a_work, parts=tuple(mlp.step_names(len(kinds))[:-1])),
            real("output", "the network's output (the last layer's activation)", [n[-1]],
                 weight=sum(out_work), entry_weights=out_work),
        ]

    def slips(self, params):
        layers = params["layers"]
        kind, last = layers[-1]["activation"], len(layers)
        out = []
        if kind in ("sigmoid", "tanh", "softmax"):
            out.append(Slip("activation_twice", f"you applied the output layer's {kind} "
                            f"twice; each layer applies its activation once",
                            swaps={"output": mlp.applied_twice(kind)}))
        if kind == "softmax" and abs(mlp.forward(params["x"], layers)[f"z_{last}"].sum()) > \
                ZERO_SUM:
            out.append(Slip("ratio_of_logits", "you divided the output logits by their sum; "
                            "softmax divides the exponentials e^z by their sum",
                            swaps={f"exps_{last}": logits_unexponentiated}))
        if any(np.any(layer["bias"]) for layer in layers):
            out.append(Slip("forgot_bias", "you left out the biases: z = Wa + b",
                            change=mlp.without_biases))
        return out

    def problem(self, params):
        return mlp.network_tex(params)

    def worked(self, params, values):
        hidden = [latex.row(values[a]) for a in mlp.step_names(len(params["layers"]))[:-1]]
        return {"layers": mlp.forward_layers(params, values),
                "answers": {"pre_activations": [latex.row(values[f"z_{i}"]) for i in
                                                range(1, len(params["layers"]) + 1)],
                            "activations": hidden, "output": latex.row(values["output"])}}
