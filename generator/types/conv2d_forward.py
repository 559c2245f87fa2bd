"""conv2d_forward: a (multi-channel) convolution, optionally with bias and ReLU.

Convolution is what deep-learning frameworks compute (cross-correlation); with
``flip_kernel: true`` the kernel is rotated by 180 degrees first (true convolution).
A single-channel problem is given and answered as 2-D lists; otherwise the input
is (C, H, W), the kernel (C_out, C_in, kH, kW) and the output (C_out, H_out, W_out).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from deepdrill.errors import ParamError
from deepdrill.generator import latex
from deepdrill.generator.exercise import Exercise, jsonable, register, require
from deepdrill.model.fields import real
from deepdrill.generator.layers import output_size
from deepdrill.generator.randomness import choice, ints
from deepdrill.model.variant import Mistake

ACTIVATIONS = ("none", "relu")
BATCH = 128  # candidates drawn and tested at once
MAX_BATCHES = 8  # batches tried before taking the last draw as it is
MAX_ZERO_SHARE = 0.25  # at most this share of outputs exactly 0 (else the answer is trivial)
MIN_SIGN_SHARE = 0.3  # under a ReLU, at least this share positive and this share negative


def conv2d(x: np.ndarray, k: np.ndarray, bias: np.ndarray | None, stride: int,
           padding: int) -> np.ndarray:
    """Pre-activation of a convolution layer: x (C, H, W), k (C_out, C_in, kH, kW)."""
    kh, kw = k.shape[2:]
    xp = pad(x, padding)
    windows = sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]
    out = np.tensordot(k, windows, axes=([1, 2, 3], [0, 3, 4]))
    if bias is not None:
        out = out + bias[:, None, None]
    return out


def pad(x: np.ndarray, padding: int) -> np.ndarray:
    """(C, H, W) with ``padding`` rings of zeros (np.pad is slow on tiny arrays)."""
    if not padding:
        return x
    c, h, w = x.shape
    out = np.zeros((c, h + 2 * padding, w + 2 * padding))
    out[:, padding:padding + h, padding:padding + w] = x
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
        x_pin = _as_nd(pinned.get("input"), 3)
        k_pin = _as_nd(pinned.get("kernel"), 4)
        c_in = x_pin.shape[0] if x_pin is not None else \
            k_pin.shape[1] if k_pin is not None else int(options["in_channels"])
        c_out = k_pin.shape[0] if k_pin is not None else int(options["out_channels"])
        size = x_pin.shape[1] if x_pin is not None else options["size"]
        ks = k_pin.shape[2] if k_pin is not None else options["kernel_size"] or \
            choice(rng, [k for k in (2, 3) if size is None or k < size] or [size])
        if size is None:  # keep the output near 3x3 to 4x4: a page of sums, not three
            size = choice(rng, [ks + 1, ks + 2] if c_in > 1 else [ks + 2, ks + 3])
            size = max(ks, size - int(p["padding"]))
        single = c_in == c_out == 1 and np.ndim(pinned.get("input", [[0]])) == 2
        _check_layer(p, c_out)
        if k_pin is not None and x_pin is not None and k_pin.shape[1] != x_pin.shape[0]:
            raise ParamError(f"the input has {x_pin.shape[0]} channel(s) but the kernel "
                             f"expects {k_pin.shape[1]}")
        h, w = (x_pin.shape[1:] if x_pin is not None else (size, size))
        kh, kw = (k_pin.shape[2:] if k_pin is not None else (ks, ks))
        if min(output_size(h, kh, int(p["stride"]), int(p["padding"])),
               output_size(w, kw, int(p["stride"]), int(p["padding"]))) < 1:
            raise ParamError(f"the {kh}x{kw} kernel does not fit the {h}x{w} input "
                             f"with padding {p['padding']}")
        # Under a ReLU no pre-activation may be exactly 0; zero-free values make that
        # likely even where padding leaves a single product in a window.
        relu = p["activation"] == "relu"
        for _ in range(MAX_BATCHES):
            xs = _batch(rng, x_pin, (c_in, h, w), 1 if relu else 0, 3, False)
            kb = _batch(rng, k_pin, (c_out, c_in, kh, kw), -2, 2, relu)
            bs = None
            if p["bias"] is not None:
                bs = np.broadcast_to(np.atleast_1d(np.asarray(p["bias"], dtype=float)),
                                     (BATCH, c_out))
            elif options["bias"]:
                bs = ints(rng, (BATCH, c_out), -3, 3, nonzero=True).astype(float)
            good = _hand_friendly(xs, kb, bs, p)
            i = int(np.argmax(good))
            if good[i] or (x_pin is not None and k_pin is not None):
                break
        draw = dict(p)
        if x_pin is None:
            draw["input"] = xs[i, 0] if single else xs[i]
        if k_pin is None:
            draw["kernel"] = kb[i, 0, 0] if single else kb[i]
        if bs is not None and "bias" not in pinned:
            draw["bias"] = int(bs[i, 0]) if single else bs[i]
        return jsonable(draw)

    def check(self, params):
        p = {"bias": None, "stride": 1, "padding": 0, "activation": "none",
             "flip_kernel": False, **params}
        require(p, "input", "kernel")
        x = np.asarray(p["input"], dtype=float)
        k = np.asarray(p["kernel"], dtype=float)
        if x.ndim not in (2, 3) or k.ndim not in (2, 4):
            raise ParamError("input must be 2-D (H, W) or 3-D (C, H, W); kernel 2-D (kH, kW) "
                             "or 4-D (C_out, C_in, kH, kW)")
        c_in = 1 if x.ndim == 2 else x.shape[0]
        k_in = 1 if k.ndim == 2 else k.shape[1]
        if c_in != k_in:
            raise ParamError(f"the input has {c_in} channel(s) but the kernel expects {k_in}")
        c_out = 1 if k.ndim == 2 else k.shape[0]
        stride, padding = _check_layer(p, c_out)
        kh, kw = k.shape[-2:]
        if output_size(x.shape[-2], kh, stride, padding) < 1 or \
                output_size(x.shape[-1], kw, stride, padding) < 1:
            raise ParamError("the kernel does not fit the (padded) input")
        p["stride"], p["padding"], p["flip_kernel"] = stride, padding, bool(p["flip_kernel"])
        return jsonable(p)

    def solve(self, params):
        _, y = forward(params)
        return {"output": jsonable(y[0] if is_2d(params) else y)}

    def fields(self, params):
        x, k, _ = as_arrays(params)
        h, w = (output_size(n, kn, params["stride"], params["padding"])
                for n, kn in zip(x.shape[1:], k.shape[2:]))
        shape = [h, w] if is_2d(params) else [k.shape[0], h, w]
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
               for name, change, text in wrong if _fits({**params, **change})]
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
        stride, padding = params["stride"], params["padding"]
        xp = pad(x, padding)
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
            "padded": [latex.matrix(c) for c in xp] if padding else [],
            "flipped": [[latex.matrix(kc) for kc in ko] for ko in k] if params["flip_kernel"] else [],
            "entries": entries,
            "out_h": z.shape[1], "out_w": z.shape[2],
            "h": x.shape[1], "w": x.shape[2], "kh": kh, "kw": kw,
            "output": _tex_maps(answers["output"], is_2d(params)),
        }


def _fits(params: dict[str, Any]) -> bool:
    """Whether the kernel fits the padded input (a mistake such as ignoring the padding may
    make it not fit: then that mistake cannot be made on this variant)."""
    x, k, _ = as_arrays(params)
    return min(output_size(n, kn, params["stride"], params["padding"])
               for n, kn in zip(x.shape[1:], k.shape[2:])) >= 1


def _check_layer(p: dict[str, Any], c_out: int) -> tuple[int, int]:
    """Stride, padding, activation and bias length: checked before anything is computed."""
    try:
        stride, padding = int(p["stride"]), int(p["padding"])
    except (TypeError, ValueError):
        raise ParamError("stride and padding must be whole numbers") from None
    if stride < 1 or padding < 0:
        raise ParamError("stride must be at least 1 and padding at least 0")
    if p["activation"] not in ACTIVATIONS:
        raise ParamError(f"activation must be one of {', '.join(ACTIVATIONS)}")
    if p["bias"] is not None and np.size(p["bias"]) != c_out:
        raise ParamError(f"bias needs one value per output channel ({c_out})")
    return stride, padding


def _as_nd(value: Any, ndim: int) -> np.ndarray | None:
    """A pinned 2-D input or kernel as 3-D or 4-D (None when not pinned)."""
    if value is None:
        return None
    a = np.asarray(value, dtype=float)
    while a.ndim < ndim:
        a = a[None]
    return a


def _batch(rng: np.random.Generator, pinned: np.ndarray | None, shape: tuple[int, ...],
           low: int, high: int, nonzero: bool) -> np.ndarray:
    """BATCH candidates of one array: drawn, or the pinned value repeated."""
    if pinned is not None:
        return np.broadcast_to(pinned, (BATCH, *pinned.shape))
    return ints(rng, (BATCH, *shape), low, high, nonzero=nonzero).astype(float)


def _hand_friendly(xs: np.ndarray, ks: np.ndarray, bs: np.ndarray | None,
                   p: dict[str, Any]) -> np.ndarray:
    """Per candidate: not mostly zeros; under a ReLU, no pre-activation exactly 0 and
    a fair share of both signs (so the ReLU matters but does not wipe the map)."""
    stride, padding = int(p["stride"]), int(p["padding"])
    kh, kw = ks.shape[-2:]
    if p["flip_kernel"]:
        ks = ks[..., ::-1, ::-1]
    b, c, h, w = xs.shape
    xp = np.zeros((b, c, h + 2 * padding, w + 2 * padding))
    xp[:, :, padding:padding + h, padding:padding + w] = xs
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    z = np.einsum("boikl,bihwkl->bohw", ks, win)
    if bs is not None:
        z = z + bs[:, :, None, None]
    z = z.reshape(b, -1)
    good = np.mean(z == 0, axis=1) <= MAX_ZERO_SHARE
    if p["activation"] == "relu":
        good &= np.all(z != 0, axis=1)
        good &= np.mean(z > 0, axis=1) >= MIN_SIGN_SHARE
        good &= np.mean(z < 0, axis=1) >= MIN_SIGN_SHARE
    return good


def _tex_maps(value: Any, two_d: bool) -> list[latex.Tex]:
    """One bmatrix per channel."""
    return [latex.matrix(value)] if two_d else [latex.matrix(c) for c in value]
