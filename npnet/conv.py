"""Convolutional front ends for image inputs: Conv2D, MaxPool2D and Flatten.

Vectorised with im2col (a strided window *view*, never a pixel loop) and one GEMM;
the input gradient is scattered back by looping over the kh*kw kernel offsets only.
Inputs are (N, C, H, W), or (..., C, H, W) with any leading axes (e.g. (B, T, C, H, W)).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import init as initializers
from .layer import Layer, ShapeError, check_input


def _pair(value, name: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints -> (rows, cols), each >= minimum."""
    if isinstance(value, (int, np.integer)):
        pair = (int(value), int(value))
    else:
        try:
            pair = tuple(int(v) for v in value)
        except TypeError as exc:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}") from exc
        if len(pair) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return pair


def _out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Number of window positions along one axis: floor((size + 2 pad - kernel) / stride) + 1."""
    return (size + 2 * pad - kernel) // stride + 1


def _windows(xp: np.ndarray, kh: int, kw: int, sh: int, sw: int) -> np.ndarray:
    """Strided view of every (kh, kw) window: (N, C, Hp, Wp) -> (N, C, Ho, Wo, kh, kw). No copy."""
    return sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]


def _check_images(layer: Layer, x, channels: int | None, expected: str) -> np.ndarray:
    """Validate an (..., C, H, W) input; the error names the expected shape."""
    x = check_input(x, "x", -1, None, layer.dtype)
    if x.ndim < 3 or (channels is not None and x.shape[-3] != channels):
        raise ShapeError(f"{type(layer).__name__} expects x of shape {expected}, got {x.shape}")
    return x


def _conv_init(weight_init, shape: tuple, rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """Initial kernel (C_out, C_in, kh, kw) with convolutional fans.

    fan_in = C_in kh kw, fan_out = C_out kh kw. "glorot_uniform": U(-a, a), a = sqrt(6 / (fan_in + fan_out));
    "he_uniform": a = sqrt(6 / fan_in) (for a following ReLU). Any other name or callable is
    resolved by :func:`npnet.init.get` and called with the 4-D shape.
    """
    fan_in = shape[1] * shape[2] * shape[3]
    fan_out = shape[0] * shape[2] * shape[3]
    if weight_init in ("glorot_uniform", "xavier_uniform"):
        a = np.sqrt(6.0 / (fan_in + fan_out))
    elif weight_init in ("he_uniform", "kaiming_uniform"):
        a = np.sqrt(6.0 / fan_in)
    else:
        return np.asarray(initializers.get(weight_init)(shape, rng, dtype), dtype=dtype)
    return rng.uniform(-a, a, size=shape).astype(dtype)


class Conv2D(Layer):
    """2-D cross-correlation (what deep-learning libraries call convolution), with stride and zero padding.

    Equations (xp = x zero-padded by p on both sides of H and W; s = stride)::

        forward:   y[n, o, i, j] = b[o] + sum_{c, u, v} W[o, c, u, v] * xp[n, c, s*i + u, s*j + v]
                   im2col: X_col[(n,i,j), (c,u,v)] = xp[n, c, s*i+u, s*j+v]   (N*Ho*Wo, C_in*kh*kw)
                           Y = X_col W_mat^T + b,   W_mat = W.reshape(C_out, C_in*kh*kw)
        backward:  db[o]          += sum_{n,i,j} dy[n, o, i, j]
                   dW[o, c, u, v] += sum_{n,i,j} dy[n, o, i, j] * xp[n, c, s*i+u, s*j+v]   (dW_mat += dY^T X_col)
                   dxp[n, c, s*i+u, s*j+v] += sum_o dy[n, o, i, j] * W[o, c, u, v]        (col2im of dY W_mat)
                   dx = dxp with the padding cropped off

    Output size: Ho = floor((H + 2 p_h - kh) / s_h) + 1, Wo likewise.

    Parameters
    ----------
    in_channels : int (C_in)
    out_channels : int (C_out)
    kernel_size : int or (kh, kw)
    stride : int or (s_h, s_w), default 1
    padding : int or (p_h, p_w), default 0 (zeros on both sides)
    bias : bool, default True
    weight_init : str or callable, default "glorot_uniform"
        "glorot_uniform" or "he_uniform" with fans C_in*kh*kw and C_out*kh*kw, or any
        :mod:`npnet.init` name / callable ``init(shape, rng, dtype)``.
    dtype, rng : see :class:`npnet.layer.Layer`

    Params: ``W`` (C_out, C_in, kh, kw), ``b`` (C_out,).

    Shapes: x (N, C_in, H, W) -> y (N, C_out, Ho, Wo); any leading axes are allowed,
    (..., C_in, H, W) -> (..., C_out, Ho, Wo), e.g. (B, T, C, H, W) for a sequence of frames.

    Cache: the padded input xp (dW needs its windows; the window view is rebuilt in bprop
    for free instead of keeping the kh*kw-times larger column matrix) and the leading shape.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 bias: bool = True, weight_init="glorot_uniform", dtype=np.float64, rng=None):
        super().__init__(dtype, rng)
        if int(in_channels) < 1 or int(out_channels) < 1:
            raise ValueError(f"in_channels and out_channels must be >= 1, got {in_channels}, {out_channels}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride = _pair(stride, "stride", 1)
        self.padding = _pair(padding, "padding", 0)
        self.bias = bool(bias)
        self.weight_init = weight_init if isinstance(weight_init, str) else None
        kh, kw = self.kernel_size
        shape = (self.out_channels, self.in_channels, kh, kw)
        self.add_param("W", _conv_init(weight_init, shape, self.rng, self.dtype))  # (C_out, C_in, kh, kw)
        if self.bias:
            self.add_param("b", np.zeros(self.out_channels))                       # (C_out,)

    def get_config(self) -> dict:
        cfg = {"in_channels": self.in_channels, "out_channels": self.out_channels,
               "kernel_size": list(self.kernel_size), "stride": list(self.stride),
               "padding": list(self.padding), "bias": self.bias, "dtype": self.dtype.name}
        if self.weight_init is not None:
            cfg["weight_init"] = self.weight_init
        return cfg

    def output_shape(self, input_shape: tuple) -> tuple:
        """(..., C_in, H, W) -> (..., C_out, Ho, Wo); raises ShapeError if no window fits."""
        *lead, c, h, w = input_shape
        ho = _out_size(h, self.kernel_size[0], self.stride[0], self.padding[0])
        wo = _out_size(w, self.kernel_size[1], self.stride[1], self.padding[1])
        if ho < 1 or wo < 1:
            raise ShapeError(
                f"Conv2D input {tuple(input_shape)} is smaller than the kernel {self.kernel_size} "
                f"with padding {self.padding}: need H + 2*pad_h >= {self.kernel_size[0]} and "
                f"W + 2*pad_w >= {self.kernel_size[1]}")
        return (*lead, self.out_channels, ho, wo)

    def _prepare(self, x) -> tuple[np.ndarray, tuple, tuple]:
        x = _check_images(self, x, self.in_channels,
                          f"(N, {self.in_channels}, H, W) or (..., {self.in_channels}, H, W)")
        out_shape = self.output_shape(x.shape)
        x4 = x.reshape(-1, *x.shape[-3:])                                    # (N, C_in, H, W)
        ph, pw = self.padding
        if ph or pw:
            x4 = np.pad(x4, ((0, 0), (0, 0), (ph, ph), (pw, pw)))            # (N, C_in, H+2ph, W+2pw)
        return x4, x.shape, out_shape

    def _forward4(self, xp: np.ndarray) -> np.ndarray:
        """xp (N, C_in, Hp, Wp) padded -> y (N, C_out, Ho, Wo)."""
        kh, kw = self.kernel_size
        win = _windows(xp, kh, kw, *self.stride)                             # (N, C_in, Ho, Wo, kh, kw) view
        # One GEMM: tensordot copies the window view into the im2col matrix (N*Ho*Wo, C_in*kh*kw).
        y = np.tensordot(win, self.params["W"], axes=([1, 4, 5], [1, 2, 3]))  # (N, Ho, Wo, C_out)
        if self.bias:
            y += self.params["b"]
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2))                 # (N, C_out, Ho, Wo)

    def fprop(self, x: np.ndarray) -> np.ndarray:
        """x: (..., C_in, H, W) -> y: (..., C_out, Ho, Wo)."""
        xp, in_shape, out_shape = self._prepare(x)
        self._cache = {"xp": xp, "in_shape": in_shape, "out_shape": out_shape}
        return self._forward4(xp).reshape(out_shape)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The forward map alone: no cache (for inference)."""
        xp, _, out_shape = self._prepare(x)
        return self._forward4(xp).reshape(out_shape)

    def bprop(self, dy: np.ndarray) -> np.ndarray:
        """dy: (..., C_out, Ho, Wo) -> dx: (..., C_in, H, W); adds into grads['W'] and grads['b']."""
        cache = self._take_cache()
        xp, in_shape, out_shape = cache["xp"], cache["in_shape"], cache["out_shape"]
        dy = check_input(dy, "dy", -1, None, self.dtype)
        if dy.shape != out_shape:
            raise ShapeError(f"Conv2D.bprop expects dy of shape {out_shape}, got {dy.shape}")
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        n, c, hp, wp = xp.shape
        dy4 = dy.reshape(n, *out_shape[-3:])                                 # (N, C_out, Ho, Wo)
        ho, wo = dy4.shape[2], dy4.shape[3]
        if self.bias:
            self.grads["b"] += dy4.sum(axis=(0, 2, 3))                       # (C_out,)
        win = _windows(xp, kh, kw, sh, sw)                                   # (N, C_in, Ho, Wo, kh, kw) view
        self.grads["W"] += np.tensordot(dy4, win, axes=([0, 2, 3], [0, 2, 3]))  # (C_out, C_in, kh, kw)
        # Column gradient, laid out so each kernel offset (u, v) is one contiguous block.
        dcol = np.tensordot(self.params["W"], dy4, axes=([0], [1]))          # (C_in, kh, kw, N, Ho, Wo)
        dxp = np.zeros((n, c, hp, wp), dtype=self.dtype)                     # (N, C_in, Hp, Wp)
        dxp_t = dxp.transpose(1, 0, 2, 3)                                    # (C_in, N, Hp, Wp) view
        for u in range(kh):                                                  # col2im: kh*kw strided adds
            for v in range(kw):
                dxp_t[:, :, u:u + sh * (ho - 1) + 1:sh, v:v + sw * (wo - 1) + 1:sw] += dcol[:, u, v]
        dx = dxp[:, :, ph:hp - ph, pw:wp - pw]                               # (N, C_in, H, W)
        return np.ascontiguousarray(dx).reshape(in_shape)


class MaxPool2D(Layer):
    """Max pooling over (kh, kw) windows with stride s (no padding; windows must fit).

    Equations::

        forward:   y[n, c, i, j] = max_{u, v} x[n, c, s*i + u, s*j + v]
                   (u*, v*) = argmax, the first in row-major window order on ties
        backward:  dx[n, c, s*i + u*, s*j + v*] += dy[n, c, i, j]   (all other positions get 0;
                   overlapping windows, stride < kernel, add up)

    Parameters
    ----------
    kernel_size : int or (kh, kw), default 2
    stride : int or (s_h, s_w), default None (= kernel_size)
    dtype : see :class:`npnet.layer.Layer` (inputs are cast to it)

    Shapes: (..., C, H, W) -> (..., C, Ho, Wo), Ho = floor((H - kh) / s_h) + 1; trailing rows or
    columns that no window covers are dropped (and get zero gradient).

    Cache: the flat argmax offset u*·kw + v* of every window (N, C, Ho, Wo) and the input shape.
    """

    def __init__(self, kernel_size=2, stride=None, dtype=np.float64, rng=None):
        super().__init__(dtype, rng)
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", 1)

    def get_config(self) -> dict:
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "dtype": self.dtype.name}

    def output_shape(self, input_shape: tuple) -> tuple:
        *lead, c, h, w = input_shape
        ho = _out_size(h, self.kernel_size[0], self.stride[0], 0)
        wo = _out_size(w, self.kernel_size[1], self.stride[1], 0)
        if ho < 1 or wo < 1:
            raise ShapeError(f"MaxPool2D input {tuple(input_shape)} is smaller than the window "
                             f"{self.kernel_size}: need H >= {self.kernel_size[0]} and W >= {self.kernel_size[1]}")
        return (*lead, c, ho, wo)

    def _pool(self, x) -> tuple[np.ndarray, np.ndarray, tuple, tuple]:
        x = _check_images(self, x, None, "(N, C, H, W) or (..., C, H, W)")
        out_shape = self.output_shape(x.shape)
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        ho, wo = out_shape[-2:]
        x4 = x.reshape(-1, *x.shape[-3:])                                    # (N, C, H, W)
        # Running max over the kh*kw kernel offsets (strided slices, no window copy); a strict
        # ">" keeps the first offset in row-major order on ties.
        y = x4[:, :, 0:sh * (ho - 1) + 1:sh, 0:sw * (wo - 1) + 1:sw].copy()  # (N, C, Ho, Wo)
        idx = np.zeros(y.shape, dtype=np.intp)                               # (N, C, Ho, Wo)
        for u in range(kh):
            for v in range(kw):
                if u == 0 and v == 0:
                    continue
                cand = x4[:, :, u:u + sh * (ho - 1) + 1:sh, v:v + sw * (wo - 1) + 1:sw]  # (N, C, Ho, Wo) view
                better = cand > y
                np.copyto(y, cand, where=better)
                np.copyto(idx, u * kw + v, where=better)
        return y, idx, x.shape, out_shape

    def fprop(self, x: np.ndarray) -> np.ndarray:
        """x: (..., C, H, W) -> y: (..., C, Ho, Wo)."""
        y, idx, in_shape, out_shape = self._pool(x)
        self._cache = {"argmax": idx, "in_shape": in_shape, "out_shape": out_shape}
        return y.reshape(out_shape)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The forward map alone: no cache."""
        y, _, _, out_shape = self._pool(x)
        return y.reshape(out_shape)

    def bprop(self, dy: np.ndarray) -> np.ndarray:
        """dy: (..., C, Ho, Wo) -> dx: (..., C, H, W), routed to each window's argmax."""
        cache = self._take_cache()
        idx, in_shape, out_shape = cache["argmax"], cache["in_shape"], cache["out_shape"]
        dy = check_input(dy, "dy", -1, None, self.dtype)
        if dy.shape != out_shape:
            raise ShapeError(f"MaxPool2D.bprop expects dy of shape {out_shape}, got {dy.shape}")
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        dy4 = dy.reshape(idx.shape)                                          # (N, C, Ho, Wo)
        ho, wo = idx.shape[2], idx.shape[3]
        dx = np.zeros((idx.shape[0], *in_shape[-3:]), dtype=self.dtype)      # (N, C, H, W)
        for u in range(kh):                                                  # kh*kw strided adds
            for v in range(kw):
                routed = np.where(idx == u * kw + v, dy4, 0.0)               # (N, C, Ho, Wo)
                dx[:, :, u:u + sh * (ho - 1) + 1:sh, v:v + sw * (wo - 1) + 1:sw] += routed
        return dx.reshape(in_shape)


class Flatten(Layer):
    """Merge the axes from ``start_axis`` to the end into one.

    Equations::

        forward:   y = x.reshape(x.shape[:start_axis] + (prod(x.shape[start_axis:]),))
        backward:  dx = dy.reshape(x.shape)

    Parameters
    ----------
    start_axis : int, default 1
        First axis to merge. 1 gives (N, C, H, W) -> (N, C*H*W); -3 gives
        (..., C, H, W) -> (..., C*H*W) for any leading axes (e.g. (B, T, C, H, W) -> (B, T, C*H*W)).
    dtype : see :class:`npnet.layer.Layer`

    Cache: the input shape only.
    """

    def __init__(self, start_axis: int = 1, dtype=np.float64, rng=None):
        super().__init__(dtype, rng)
        self.start_axis = int(start_axis)

    def get_config(self) -> dict:
        return {"start_axis": self.start_axis, "dtype": self.dtype.name}

    def _out_shape(self, shape: tuple) -> tuple:
        a = self.start_axis if self.start_axis >= 0 else len(shape) + self.start_axis
        if not 0 <= a < len(shape):
            raise ShapeError(f"Flatten(start_axis={self.start_axis}) needs an input with at least "
                             f"{self.start_axis + 1 if self.start_axis >= 0 else -self.start_axis} "
                             f"dimensions, got shape {shape}")
        return (*shape[:a], int(np.prod(shape[a:], dtype=np.int64)))

    def fprop(self, x: np.ndarray) -> np.ndarray:
        """x: (d_0, ..., d_{a-1}, d_a, ..., d_end) -> (d_0, ..., d_{a-1}, d_a * ... * d_end)."""
        x = check_input(x, "x", -1, None, self.dtype)
        out_shape = self._out_shape(x.shape)
        self._cache = {"in_shape": x.shape, "out_shape": out_shape}
        return x.reshape(out_shape)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = check_input(x, "x", -1, None, self.dtype)
        return x.reshape(self._out_shape(x.shape))

    def bprop(self, dy: np.ndarray) -> np.ndarray:
        cache = self._take_cache()
        dy = check_input(dy, "dy", -1, None, self.dtype)
        if dy.shape != cache["out_shape"]:
            raise ShapeError(f"Flatten.bprop expects dy of shape {cache['out_shape']}, got {dy.shape}")
        return dy.reshape(cache["in_shape"])
