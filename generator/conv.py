"""Convolution, shared by the types that convolve: the kernels (vectorised over leading
batch axes, so a sampler can test many candidates at once) and the parameter checks.

Convolution is what deep-learning frameworks compute (cross-correlation); a kernel is
rotated by 180 degrees first only for true convolution (``flip_kernel``). Arrays are
(C, H, W) inputs and (C_out, C_in, kH, kW) kernels; a 2-D input or kernel is one channel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from deepdrill.errors import ParamError

from .exercise import numbers
from .layers import output_size

ACTIVATIONS = ("none", "relu")


def as_map(image: Any) -> np.ndarray:
    """The input as (C, H, W)."""
    x = np.asarray(image, dtype=float)
    return x[None] if x.ndim == 2 else x


def orient(kernel: Any, flip_kernel: bool) -> np.ndarray:
    """The kernel as slid over the input, (C_out, C_in, kH, kW): rotated when asked."""
    k = np.asarray(kernel, dtype=float)
    k = k[None, None] if k.ndim == 2 else k
    return k[..., ::-1, ::-1] if flip_kernel else k


def bias_vector(bias: Any, filters: np.ndarray) -> np.ndarray:
    """One bias per filter (zeros without a bias)."""
    if bias is None:
        return np.zeros(filters.shape[:-3])
    return np.broadcast_to(np.asarray(bias, dtype=float), filters.shape[:-3])


def pad(x: Any, padding: int) -> np.ndarray:
    """(..., C, H, W) with ``padding`` rings of zeros."""
    x = np.asarray(x, dtype=float)
    if not padding:
        return x
    out = np.zeros((*x.shape[:-2], x.shape[-2] + 2 * padding, x.shape[-1] + 2 * padding))
    out[..., padding:-padding, padding:-padding] = x
    return out


def convolve(padded: np.ndarray, filters: np.ndarray, biases: np.ndarray,
             stride: int) -> np.ndarray:
    """z[o, i, j] = sum over c, k, l of filters[o, c, k, l] * window(i, j)[c, k, l] + b[o]."""
    kh, kw = filters.shape[-2:]
    windows = sliding_window_view(padded, (kh, kw), axis=(-2, -1))[..., ::stride, ::stride, :, :]
    return np.einsum("...ockl,...cijkl->...oij", filters, windows) + biases[..., None, None]


def activate(preactivation: Any, activation: str) -> np.ndarray:
    z = np.asarray(preactivation, dtype=float)
    return np.maximum(z, 0.0) if activation == "relu" else z


def check_layer(p: dict[str, Any], c_out: int | None = None) -> tuple[int, int]:
    """Stride, padding, activation, flip and bias length: checked before anything is computed."""
    stride, padding = p["stride"], p["padding"]
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in (stride, padding)):
        raise ParamError("stride and padding must be whole numbers")
    if stride < 1 or padding < 0:
        raise ParamError("stride must be at least 1 and padding at least 0")
    if not isinstance(p["activation"], str) or p["activation"] not in ACTIVATIONS:
        raise ParamError(f"activation must be one of {', '.join(ACTIVATIONS)}")
    if not isinstance(p["flip_kernel"], (bool, np.bool_)):
        raise ParamError("flip_kernel must be true or false")
    if p["bias"] is not None:
        b = array(p["bias"], "bias")
        if c_out is not None and b.size != c_out:
            raise ParamError(f"bias needs one value per output channel ({c_out})")
    return int(stride), int(padding)


MAX_SIDE = 32  # of a padded input: a sheet shows nothing larger, and nothing larger is worked by hand


def check_fit(hw: tuple[int, int], khw: tuple[int, int], p: dict[str, Any]) -> tuple[int, int]:
    """The output side lengths, or ParamError when the kernel does not fit (or the padded
    input or the stride is beyond any sheet's size: a padding of 10^5 would need 300 GB)."""
    if max(hw) + 2 * int(p["padding"]) > MAX_SIDE or int(p["stride"]) > MAX_SIDE:
        raise ParamError(f"the padded input ({hw[0]}x{hw[1]}, padding {p['padding']}) and the "
                         f"stride must stay within {MAX_SIDE}, a sheet's size")
    out = tuple(output_size(n, k, int(p["stride"]), int(p["padding"])) for n, k in zip(hw, khw))
    if min(out) < 1:
        raise ParamError(f"the {khw[0]}x{khw[1]} kernel does not fit the {hw[0]}x{hw[1]} "
                         f"input with padding {p['padding']}")
    return out


FORMS = {"input": ((2, 3), "2-D (H, W) or 3-D (C, H, W)"),
         "kernel": ((2, 4), "2-D (kH, kW) or 4-D (C_out, C_in, kH, kW)"),
         "bias": ((0, 1), "a number or a list of numbers")}


def array(value: Any, name: str) -> np.ndarray:
    """A parameter as a non-empty array of finite numbers of the right rank, or ParamError."""
    arr = numbers(value, name)
    if arr.ndim not in FORMS[name][0] or not arr.size:
        raise ParamError(f"{name} must be {FORMS[name][1]}")
    return arr


# -- the backward pass (conv2d_backward) ----------------------------------------------

def rotate(kernel: Any) -> np.ndarray:
    """The kernel rotated by 180 degrees: both spatial axes reversed."""
    return np.asarray(kernel, dtype=float)[..., ::-1, ::-1]


def kernel_gradient(padded: np.ndarray, grad: np.ndarray, kernel_hw: tuple[int, int],
                    stride: int) -> np.ndarray:
    """dL/dW[o, c, k, l] = sum over i, j of grad[o, i, j] * padded[c, i*S + k, j*S + l]:
    the padded input correlated with the gradient at the pre-activation (no rotation)."""
    kh, kw = kernel_hw
    h, w = np.shape(grad)[-2:]
    windows = sliding_window_view(padded, (kh, kw), axis=(-2, -1))[..., ::stride, ::stride, :, :]
    return np.einsum("oij,cijkl->ockl", grad, windows[:, :h, :w])


def spread_gradient(grad: np.ndarray, kernel_hw: tuple[int, int], stride: int,
                    padded_hw: tuple[int, int]) -> np.ndarray:
    """The gradient at the pre-activation with S - 1 zeros between entries and kH - 1
    (kW - 1) rings of zeros around it (more at the bottom and right where the forward
    pass left input rows unused), so that sliding the rotated kernel over it, stride 1,
    gives the gradient of the padded input: a full convolution."""
    (kh, kw), (hp, wp) = kernel_hw, padded_hw
    c, h, w = np.shape(grad)
    out = np.zeros((c, hp + kh - 1, wp + kw - 1))
    out[:, kh - 1:kh - 1 + (h - 1) * stride + 1:stride,
        kw - 1:kw - 1 + (w - 1) * stride + 1:stride] = grad
    return out


def input_gradient(spread: np.ndarray, rotated: np.ndarray) -> np.ndarray:
    """dL/dX_pad[c] = sum over o of the spread gradient of filter o correlated with its
    rotated kernel slice for channel c."""
    swapped = np.swapaxes(rotated, 0, 1)  # (C_in, C_out, kH, kW): one "filter" per input channel
    return convolve(spread, swapped, np.zeros(swapped.shape[0]), 1)


def crop(x: np.ndarray, padding: int) -> np.ndarray:
    """(..., H + 2P, W + 2P) without its P outer rings."""
    x = np.asarray(x, dtype=float)
    return x[..., padding:-padding, padding:-padding] if padding else x
