"""The torch.nn oracle for layer tables: shapes from a forward pass, counts from .parameters().

Shared by the tests of ``generator/layers.py`` and of every exercise type that counts
with layers. Modules live on torch's "meta" device by default: shapes and parameter
counts come out without initialising weights or computing a single product (a real
5x5 convolution of a 512-channel map takes a while).
"""

import math

import torch
from torch import nn

from deepdrill.generator.layers import BatchNorm, Conv, Dense, Dropout, Flatten, Pool, ReLU


def torch_module(layer, shape, device="meta"):
    """The torch.nn module for one parsed layer receiving ``shape`` ((C, H, W) or (N,))."""
    kw = {"device": device, "dtype": torch.float64}
    if isinstance(layer, Conv):
        return nn.Conv2d(shape[0], layer.filters, layer.k, layer.stride, layer.padding,
                         bias=layer.bias, **kw)
    if isinstance(layer, Pool):
        cls = nn.MaxPool2d if layer.mode == "max" else nn.AvgPool2d
        return cls(layer.k, layer.stride, layer.padding)
    if isinstance(layer, Dense):
        linear = nn.Linear(math.prod(shape), layer.units, bias=layer.bias, **kw)
        return nn.Sequential(nn.Flatten(), linear) if len(shape) == 3 else linear
    if isinstance(layer, BatchNorm):
        return (nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d)(shape[0], **kw)
    return {ReLU: nn.ReLU, Dropout: nn.Dropout, Flatten: nn.Flatten}[type(layer)]()


@torch.inference_mode()
def torch_rows(input_shape, layers, device="meta"):
    """(output shape, parameters, multiplications) per layer, computed with torch.nn.

    Multiplications: every conv output value is one k*k*C_in dot product; an FC
    layer makes inputs * units products; nothing else multiplies.
    """
    x = torch.zeros((1, *input_shape), device=device, dtype=torch.float64)
    rows = []
    for layer in layers:
        module = torch_module(layer, tuple(x.shape[1:]), device).eval()
        y = module(x)
        params = sum(p.numel() for p in module.parameters())
        if isinstance(layer, Conv):
            mults = y.numel() * layer.k ** 2 * x.shape[1]
        elif isinstance(layer, Dense):
            mults = x.numel() * layer.units
        else:
            mults = 0
        rows.append((tuple(y.shape[1:]), params, mults))
        x = y
    return rows
