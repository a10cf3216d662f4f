"""The work between the convolutions on every core: BatchNorm with its activation and residual, PReLU with pixel
shuffle, LeakyReLU/ReLU, 2x2 max pooling, Adam; in inference, BatchNorm folded into the convolution before it, and
a convolution's LeakyReLU or scaled residual (RRDBNet's) fused into it.

MLX runs its own CPU element-wise kernels and reductions on one thread. The native extension
(``csrc/kernels.cpp``) has multi-threaded MLX primitives for these, with their gradients; the functions
here use them where they apply (CPU, float32, the extension loaded, ``SRGAN_MLX_KERNELS`` not ``0``)
and compute the same thing with MLX's own operations elsewhere (a GPU, macOS, no extension). The MLX
forms are the definition: tests hold the native kernels to them on the networks' own shapes. The
decision is made when a network is called or traced, like the convolution path's.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim

from .. import environment, native
from .devices import conv_path

_unfused = threading.local()


@contextmanager
def unfused():
    """Within, eval-mode layers run as their separate, differentiable operations rather than fused inference
    primitives (which have no gradient and fold weights eagerly): the training steps trace their graphs in it."""
    depth = getattr(_unfused, "depth", 0)
    _unfused.depth = depth + 1
    try:
        yield
    finally:
        _unfused.depth = depth


def available() -> bool:
    """Whether the native kernels run calls made now: the extension is loaded, the default device is the CPU and
    ``SRGAN_MLX_KERNELS=0`` does not turn them off."""
    return (
        os.environ.get(environment.KERNELS, "").strip() != "0"
        and mx.default_device().type == mx.cpu
        and native.extension() is not None
    )


def _native(*arrays: mx.array) -> bool:
    return available() and all(a.dtype == mx.float32 for a in arrays if a is not None)


def batch_norm(
    norm: nn.BatchNorm,
    x: mx.array,
    activation: str = "none",
    slope: mx.array | None = None,
    alpha: float = 0.0,
    residual: mx.array | None = None,
) -> mx.array:
    """``act(norm(x)) + residual``; ``activation`` is ``none``, ``prelu`` (per-channel ``slope``) or ``leaky``
    (``alpha``). In training mode the native kernel normalises with the batch statistics and the running
    statistics are updated exactly as ``nn.BatchNorm`` does (unbiased variance)."""
    if norm.training and norm.track_running_stats and "weight" in norm and _native(x, residual):
        y, mean, var = native.extension().norm_act(
            x, norm.weight, norm.bias, activation, slope, alpha, norm.eps, residual
        )
        count = x.size // x.shape[-1]
        mu = norm.momentum
        norm.running_mean = (1 - mu) * norm.running_mean + mu * mean
        norm.running_var = (1 - mu) * norm.running_var + mu * (var * (count / (count - 1)))
        return y
    y = norm(x)
    if activation != "none":
        y = apply_activation(y, activation, slope, alpha)
    return y if residual is None else y + residual


def conv_norm(
    conv: nn.Conv2d,
    norm: nn.BatchNorm,
    x: mx.array,
    activation: str = "none",
    slope: mx.array | None = None,
    residual: mx.array | None = None,
) -> mx.array:
    """``batch_norm(norm, conv(x), activation, slope, residual=residual)``; in eval mode on the native path, with
    the BatchNorm folded into the convolution's weights and bias (once per set of arrays) and the PReLU or the
    residual fused into the convolution as a oneDNN post-op: one primitive."""
    if norm.training or not _folding(conv, x, residual) or activation not in ("none", "prelu"):
        return batch_norm(norm, conv(x), activation, slope, residual=residual)
    weight, bias = _folded(conv, norm)
    if activation == "prelu" and residual is None:
        return native.extension().conv2d_fused(x, weight, conv.stride[0], conv.padding[0], bias, slope=slope)
    if activation == "none" and residual is not None:
        return native.extension().conv2d_fused(x, weight, conv.stride[0], conv.padding[0], bias, residual=residual)
    y = native.extension().conv2d(x, weight, conv.stride[0], conv.padding[0], bias)
    y = y if activation == "none" else apply_activation(y, activation, slope)
    return y if residual is None else y + residual


def conv_prelu(conv: nn.Conv2d, x: mx.array, slope: mx.array, training: bool) -> mx.array:
    """``prelu(conv(x))``, as one oneDNN primitive in inference on the native path."""
    if training or not _folding(conv, x) or "bias" not in conv:
        return apply_activation(conv(x), "prelu", slope)
    x, weight = _direct_kernel_channels(x, conv.weight)
    return native.extension().conv2d_fused(x, weight, conv.stride[0], conv.padding[0], conv.bias, slope=slope)


DIRECT_KERNEL_CHANNELS = 8
"""Input channels from which oneDNN convolves with its direct kernels (on AVX2: ``brgconv``)."""


def _direct_kernel_channels(x: mx.array, weight: mx.array) -> tuple[mx.array, mx.array]:
    """``x`` and ``weight`` with zero input channels added up to :data:`DIRECT_KERNEL_CHANNELS`: the same convolution.
    With fewer (an RGB input), oneDNN picks its GEMM kernel on AVX2, whose rounding of a pixel depends on the
    image's width (measured: up to 7e-7 on the generator's 9x9 head), so a tile would not equal the whole image
    bit for bit; its direct kernels compute every pixel alike at any size. The extra multiply-adds are the head's
    (under 1% of the generator's)."""
    missing = DIRECT_KERNEL_CHANNELS - x.shape[-1]
    if missing <= 0:
        return x, weight
    return mx.pad(x, [(0, 0)] * 3 + [(0, missing)]), mx.pad(weight, [(0, 0)] * 3 + [(0, missing)])


def conv_leaky(conv: nn.Conv2d, x: mx.array, alpha: float, training: bool) -> mx.array:
    """``leaky_relu(conv(x), alpha)``; in inference on the native path one oneDNN primitive (LeakyReLU is a PReLU
    whose slopes are all ``alpha``)."""
    if training or not _folding(conv, x) or "bias" not in conv:
        return apply_activation(conv(x), "leaky", alpha=alpha)
    slopes = _constant(alpha, conv.weight.shape[0])
    return native.extension().conv2d_fused(x, conv.weight, conv.stride[0], conv.padding[0], conv.bias, slope=slopes)


def conv_scaled_residual(
    conv: nn.Conv2d, x: mx.array, scale: float, residual: mx.array, training: bool
) -> mx.array:
    """``conv(x) * scale + residual``; in inference on the native path one oneDNN primitive: the convolution with
    its weight and bias multiplied by ``scale`` (once per set of arrays), the residual added as a post-op."""
    if training or not _folding(conv, x, residual) or "bias" not in conv:
        y = conv(x)
        return (y if scale == 1 else y * scale) + residual
    sources = (conv.weight, conv.bias)
    cached = getattr(conv, "_scaled_cache", None)
    if cached is None or cached[1] != scale or not all(a is b for a, b in zip(cached[0], sources)):
        scaled = (conv.weight * scale, conv.bias * scale) if scale != 1 else sources
        mx.eval(scaled)
        conv._scaled_cache = cached = (sources, scale, scaled)
    weight, bias = cached[2]
    return native.extension().conv2d_fused(x, weight, conv.stride[0], conv.padding[0], bias, residual=residual)


_CONSTANTS: dict[tuple[float, int], mx.array] = {}


def _constant(value: float, size: int) -> mx.array:
    """A float32 vector of ``size`` times ``value``, made once."""
    if (value, size) not in _CONSTANTS:
        _CONSTANTS[(value, size)] = mx.full((size,), value, dtype=mx.float32)
        mx.eval(_CONSTANTS[(value, size)])
    return _CONSTANTS[(value, size)]


def _folding(conv: nn.Conv2d, x: mx.array, residual: mx.array | None = None) -> bool:
    """Whether an eval-mode conv may run as a fused oneDNN primitive: not inside :func:`unfused`, native path,
    float32, the onednn convolution path and a convolution it computes (square kernel, one stride and padding)."""
    _, kh, kw, _ = conv.weight.shape
    return (
        not getattr(_unfused, "depth", 0)
        and _native(x, conv.weight, residual)
        and conv_path() == "onednn"
        and kh == kw
        and conv.stride[0] == conv.stride[1]
        and conv.padding[0] == conv.padding[1]
        and conv.groups == 1
        and conv.dilation == 1
    )


def _folded(conv: nn.Conv2d, norm: nn.BatchNorm) -> tuple[mx.array, mx.array]:
    """The weight and bias of ``norm(conv(.))`` in eval mode as one convolution: ``scale = gamma / sqrt(var + eps)``,
    ``W' = W * scale`` per output channel, ``b' = (b - mean) * scale + beta``. Kept on the conv until any of the
    arrays it came from is replaced (training, loading other weights)."""
    sources = (conv.weight, conv.get("bias"), norm.weight, norm.bias, norm.running_mean, norm.running_var)
    cached = getattr(conv, "_folded_cache", None)
    if cached is not None and all(a is b for a, b in zip(cached[0], sources)):
        return cached[1]
    scale = norm.weight / mx.sqrt(norm.running_var + norm.eps)
    bias = conv.bias if "bias" in conv else mx.zeros_like(norm.running_mean)
    folded = (conv.weight * scale[:, None, None, None], (bias - norm.running_mean) * scale + norm.bias)
    mx.eval(folded)
    conv._folded_cache = (sources, folded)
    return folded


def apply_activation(x: mx.array, activation: str, slope: mx.array | None = None, alpha: float = 0.0) -> mx.array:
    """PReLU (``slope`` per channel) or LeakyReLU (``alpha``; 0 is ReLU)."""
    if _native(x):
        return native.extension().activation(x, activation, slope, alpha, 1)
    if activation == "prelu":
        return nn.prelu(x, slope)
    return nn.relu(x) if alpha == 0 else nn.leaky_relu(x, alpha)


def prelu_pixel_shuffle(x: mx.array, slope: mx.array, r: int) -> mx.array:
    """PReLU with ``slope`` per output channel, then depth-to-space by ``r`` in PyTorch's channel order
    (:func:`pixel_shuffle`), in one pass."""
    if _native(x):
        return native.extension().activation(x, "prelu", slope, 0.0, r)
    # PReLU(shuffle(y)) == shuffle(PReLU'(y)), each conv channel taking the slope of the output channel it moves
    # to: applied first, it runs on the conv's contiguous output (MLX's kernel is ~8x slower on the strided view)
    return pixel_shuffle(nn.prelu(x, mx.repeat(slope, r * r)), r)


def pixel_shuffle(x: mx.array, r: int) -> mx.array:
    """Depth-to-space in PyTorch's channel order: (N, H, W, C*r*r) -> (N, H*r, W*r, C).

    Output channel ``c`` at sub-pixel ``(i, j)`` comes from input channel ``c*r*r + i*r + j``,
    as in ``torch.nn.PixelShuffle``, so weights trained in PyTorch transfer unchanged.
    """
    n, h, w, crr = x.shape
    c = crr // (r * r)
    x = x.reshape(n, h, w, c, r, r).transpose(0, 1, 4, 2, 5, 3)
    return x.reshape(n, h * r, w * r, c)


def max_pool2(x: mx.array) -> mx.array:
    """2x2 max pooling with stride 2 (NHWC)."""
    if _native(x):
        return native.extension().max_pool2(x)
    return nn.MaxPool2d(2, 2)(x)


NATIVE_ADAM_SIZE = 1 << 16
"""Arrays from this many elements get the native Adam update; smaller ones MLX's (fused by ``mx.compile``,
a few microseconds each, less than starting threads)."""


class Adam(optim.Adam):
    """``mlx.optimizers.Adam`` whose update of each large array is one multi-threaded native step where the kernels
    run (the same state, so checkpoints move between the two); MLX's own update elsewhere."""

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict):
        if parameter.size < NATIVE_ADAM_SIZE or not _native(parameter, gradient):
            return super().apply_single(gradient, parameter, state)
        beta1, beta2 = self.betas
        parameter, state["m"], state["v"] = native.extension().adam_step(
            parameter, gradient, state["m"], state["v"], self.learning_rate, self.step, beta1, beta2, self.eps,
            self.bias_correction,
        )  # fmt: skip
        return parameter
