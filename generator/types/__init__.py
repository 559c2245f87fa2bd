"""Every exercise type: one module each, named for its id.

A type is imported when first asked for (:func:`~deepdrill.generator.exercise.get`):
grading a key imports only the types it uses (several derive with sympy, which alone
takes a third of a second to import); :func:`load_all` imports every one.

Adding a type: copy a sibling module, give it a new id, write its two templates
under templates/<id>/, and add its id below.
"""

import importlib

MODULES = (
    "conv2d_forward",
    "softmax",
    "cross_entropy",
    "batchnorm_forward",
    "cnn_layer_table",
    "conv_cost",
    "conv2d_backward",
    "pooling",
    "batchnorm_backward",
    "residual_block",
    "mlp_forward",
    "softmax_regression",
    "activation_gradients",
    "mlp_backward",
    "dropout",
    "optimizer_step",
    "xavier_init",
)


def load(type_id: str) -> bool:
    """Import the type's module (registering the type); False if there is none."""
    if type_id not in MODULES:
        return False
    importlib.import_module(f"{__name__}.{type_id}")
    return True


def load_all() -> None:
    for name in MODULES:
        load(name)
