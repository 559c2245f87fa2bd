"""conv2d_forward: a (multi-channel) convolution, optionally with bias and ReLU.

Convolution is what deep-learning frameworks compute (cross-correlation); with
``flip_kernel: true`` the kernel is rotated by 180 degrees first (true convolution).
A single-channel problem is given and answered as 2-D lists; otherwise the input
is (C, H, W), the kernel (C_out, C_in, kH, kW) and the output (C_out, H_out, W_out).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.exercise import Exercise, jsonable, register
from deepdrill.generator.fields import real
from deepdrill.generator.randomness import choice, ints
from deepdrill.generator.variant import Mistake

ACTIVATIONS = ("none", "relu")
MAX_DRAWS = 200  # redraws allowed to find a variant with no pre-activation exactly 0


def output_size(n: int, k: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - k) // stride + 1


def conv2d(x: np.ndarray, k: np.ndarray, bias: np.ndarray | None, stride: int,
           padding: int) -> np.ndarray:
    """Pre-activation of a convolution layer: x (C, H, W), k (C_out, C_in, kH, kW)."""
    c_out, _, kh, kw = k.shape
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
    h_out = output_size(x.shape[1], kh, stride, padding)
    w_out = output_size(x.shape[2], kw, stride, padding)
    out = np.zeros((c_out, h_out, w_out))
    for i in range(h_out):
        for j in range(w_out):
            window = xp[:, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, i, j] = np.tensordot(k, window, axes=3)
    if bias is not None:
        out += bias[:, None, None]
    return out


def as_arrays(params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Input (C, H, W), kernel (C_out, C_in, kH, kW) flipped if asked, bias (C_out,) or None."""
    x = np.asarray(params["input"], dtype=float)
    k = np.asarray(params["kernel"], dtype=float)
    x = x[None] if x.ndim == 2 else x
    k = k[None, None] if k.ndim == 2 else k
    if params["flip_kernel"]:
        k = k[:, :, ::-1, ::-1]
    b = params["bias"]
    bias = None if b is None else np.atleast_1d(np.asarray(b, dtype=float))
    return x, k, bias


def is_2d(params: dict[str, Any]) -> bool:
    return np.ndim(params["input"]) == 2 and np.ndim(params["kernel"]) == 2


def forward(params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(pre-activation, output), both (C_out, H_out, W_out)."""
    x, k, bias = as_arrays(params)
    z = conv2d(x, k, bias, params["stride"], params["padding"])
    y = np.maximum(z, 0.0) if params["activation"] == "relu" else z
    return z, y


@register
class Conv2dForward(Exercise):
    id = "conv2d_forward"
    title = "Convolution layer: forward pass"
    summary = "compute a (multi-channel) convolution, optionally with bias and ReLU"
    params = ("input", "kernel", "bias", "stride", "padding", "activation", "flip_kernel")
    options = {"size": None, "kernel_size": None, "in_channels": 1, "out_channels": 1,
               "bias": False}
    work_space = "7cm"

    def sample(self, rng, pinned, options):
        p = {"stride": 1, "padding": 0, "activation": "none", "flip_kernel": False,
             "bias": None, **pinned}
        c_in, c_out = int(options["in_channels"]), int(options["out_channels"])
        ks = options["kernel_size"] or choice(rng, [2, 3])
        size = options["size"] or choice(rng, [ks + 1, ks + 2] if c_in > 1 else [4, 5])
        for _ in range(MAX_DRAWS):
            draw = dict(p)
            if "input" not in pinned:
                x = ints(rng, (c_in, size, size), 0, 3)
                draw["input"] = x[0] if c_in == 1 else x
            if "kernel" not in pinned:
                k = ints(rng, (c_out, c_in, ks, ks), -2, 2)
                draw["kernel"] = k[0, 0] if c_in == c_out == 1 else k
            if "bias" not in pinned and options["bias"]:
                b = ints(rng, c_out, -3, 3, nonzero=True)
                draw["bias"] = int(b[0]) if c_out == 1 else b
            draw = jsonable(draw)
            if self._hand_friendly(self.check(draw)):
                return draw
        return draw  # pinned values leave nothing to redraw; use them as given

    def _hand_friendly(self, params: dict[str, Any]) -> bool:
        """No pre-activation exactly 0 under a ReLU, and no output channel all 0."""
        z, y = forward(params)
        positive_per_channel = np.all(np.any(z > 0, axis=(1, 2)))
        if params["activation"] == "relu" and (np.any(z == 0) or not positive_per_channel):
            return False
        return bool(np.all(np.any(y != 0, axis=(1, 2))))

    def check(self, params):
        p = {"bias": None, "stride": 1, "padding": 0, "activation": "none",
             "flip_kernel": False, **params}
        for name in ("input", "kernel"):
            if name not in p:
                raise ParamError(f"missing parameter {name!r}")
        x = np.asarray(p["input"], dtype=float)
        k = np.asarray(p["kernel"], dtype=float)
        if x.ndim not in (2, 3) or k.ndim not in (2, 4):
            raise ParamError("input must be 2-D (H, W) or 3-D (C, H, W); kernel 2-D (kH, kW) "
                             "or 4-D (C_out, C_in, kH, kW)")
        c_in = 1 if x.ndim == 2 else x.shape[0]
        k_in = 1 if k.ndim == 2 else k.shape[1]
        if c_in != k_in:
            raise ParamError(f"the input has {c_in} channel(s) but the kernel expects {k_in}")
        if p["activation"] not in ACTIVATIONS:
            raise ParamError(f"activation must be one of {', '.join(ACTIVATIONS)}")
        stride, padding = int(p["stride"]), int(p["padding"])
        if stride < 1 or padding < 0:
            raise ParamError("stride must be at least 1 and padding at least 0")
        kh, kw = k.shape[-2:]
        if output_size(x.shape[-2], kh, stride, padding) < 1 or \
                output_size(x.shape[-1], kw, stride, padding) < 1:
            raise ParamError("the kernel does not fit the (padded) input")
        c_out = 1 if k.ndim == 2 else k.shape[0]
        if p["bias"] is not None and np.size(p["bias"]) != c_out:
            raise ParamError(f"bias needs one value per output channel ({c_out})")
        p["stride"], p["padding"], p["flip_kernel"] = stride, padding, bool(p["flip_kernel"])
        return jsonable(p)

    def solve(self, params):
        _, y = forward(params)
        return {"output": jsonable(y[0] if is_2d(params) else y)}

    def fields(self, params):
        _, y = forward(params)
        shape = list(y.shape[1:]) if is_2d(params) else list(y.shape)
        return [real("output", "the output feature map", shape)]

    def mistakes(self, params):
        flip = params["flip_kernel"]
        wrong = [
            ("flipped_kernel" if not flip else "did_not_flip",
             {"flip_kernel": not flip},
             "you flipped the kernel; deep-learning convolution is cross-correlation, "
             "with no flip" if not flip else
             "you did not flip the kernel, but this exercise asks for true convolution"),
            ("ignored_padding", {"padding": 0}, "you ignored the zero padding"),
            ("ignored_stride", {"stride": 1}, "you moved the kernel by 1 instead of the stride"),
            ("dropped_bias", {"bias": None}, "you left out the bias"),
            ("forgot_relu", {"activation": "none"}, "you did not apply the ReLU"),
        ]
        out = [Mistake(name, text, self.solve({**params, **change}))
               for name, change, text in wrong]
        if np.ndim(params["input"]) == 3 and np.shape(params["input"])[0] > 1:
            first = {**params, "input": [params["input"][0]],
                     "kernel": [[kc[0]] for kc in params["kernel"]]}
            out.append(Mistake("one_channel_only",
                               "you used only the first input channel; a filter sums its "
                               "products over all input channels",
                               self.solve(first)))
        return out

    def problem(self, params):
        x, k, bias = as_arrays({**params, "flip_kernel": False})
        return {
            "two_d": is_2d(params),
            "inputs": [latex.matrix(c) for c in x],
            "kernels": [[latex.matrix(kc) for kc in ko] for ko in k],
            "bias": None if bias is None else [latex.num(b) for b in bias],
        }

    def steps(self, params, answers):
        x, k, bias = as_arrays(params)
        z, _ = forward(params)
        stride, pad = params["stride"], params["padding"]
        xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
        kh, kw = k.shape[2:]
        entries = []
        for o in range(z.shape[0]):
            for i in range(z.shape[1]):
                for j in range(z.shape[2]):
                    window = xp[:, i * stride:i * stride + kh, j * stride:j * stride + kw]
                    pairs = list(zip(window.ravel(), k[o].ravel()))
                    sum_tex = latex.dot(pairs)
                    if bias is not None:
                        sum_tex = latex.Tex(f"{sum_tex} + {latex.term(bias[o])}")
                    entries.append({
                        "channel": o + 1, "row": i + 1, "col": j + 1,
                        "sum": sum_tex, "value": latex.num(z[o, i, j]),
                        "relu": latex.num(max(z[o, i, j], 0.0)),
                    })
        return {
            "two_d": is_2d(params),
            "padded": [latex.matrix(c) for c in xp] if pad else [],
            "flipped": [[latex.matrix(kc) for kc in ko] for ko in k] if params["flip_kernel"] else [],
            "entries": entries,
            "out_h": z.shape[1], "out_w": z.shape[2],
            "h": x.shape[1], "w": x.shape[2], "kh": kh, "kw": kw,
            "output": _tex_maps(answers["output"], is_2d(params)),
        }


def _tex_maps(value: Any, two_d: bool) -> list[latex.Tex]:
    """One bmatrix per channel."""
    return [latex.matrix(value)] if two_d else [latex.matrix(c) for c in value]
