"""The convolution every network uses, whose implementation depends on the device."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from .native import onednn
from .conv import conv2d_same, conv2d_strided
from .devices import conv_path

IM2COL_CHUNK_BYTES = 4 << 20  # im2col matrix of one image above which a batch is convolved image by image


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (weight ``(out, kh, kw, in)``, NHWC) whose implementation depends on the device.

    :func:`srgan_mlx.devices.conv_path` decides. ``mlx``: ``mx.conv2d`` (the GPU default).
    ``onednn`` (the CPU default where the extension loads): every float32 layer with a square
    kernel and symmetric padding, i.e. all of the generator, discriminator and VGG19 (3x3
    stride 1 and 2, 9x9), goes through oneDNN's convolution primitives, forward (bias fused)
    and both gradients (:mod:`srgan_mlx.native.onednn`); the 9x9 tail with 3 outputs on 2x2 pixel
    blocks (:func:`srgan_mlx.native.onednn.conv2d_few_outputs`). Measured per layer
    (``benchmarks/conv_layers.py``): 1.3-3x ``mx.conv2d``'s speed forward and for weight
    gradients, 2.5-300x for input gradients; anything else takes the ``tuned`` path.
    ``tuned`` (the CPU default without the extension): stride-1 square convolutions with a
    large kernel (5 and up) or very unequal channel counts (one side at least 4x the other: 3->64, 64->256) go
    through :func:`srgan_mlx.conv.conv2d_same` (one matrix product plus shifted copies or
    adds, with its own backward pass), where MLX's CPU ``conv2d`` is slowest (measured:
    9x9 64->3 at 96x96 10x, 3x3 3->64 5x, 3x3 64->256 at 24x24 1.6x faster fwd+bwd);
    strided convolutions use ``mx.conv2d`` forward with a faster input gradient
    (:func:`srgan_mlx.conv.conv2d_strided`); large maps are convolved image by image; the
    rest use ``mx.conv2d``. Every path computes the same convolution; parameters and
    their names are those of ``nn.Conv2d``, so weights load either way.
    """

    def __call__(self, x: mx.array) -> mx.array:
        path = conv_path()
        bias = self.bias if "bias" in self else None
        if path == "onednn" and self._symmetric() and x.dtype == self.weight.dtype == mx.float32:
            out_ch, k, _, _ = self.weight.shape
            if not (self.stride[0] == 1 and out_ch <= 4 and k >= 5 and k == 2 * self.padding[0] + 1):
                return onednn.conv2d(x, self.weight, self.stride[0], self.padding[0], bias)  # bias fused
            y = onednn.conv2d_few_outputs(x, self.weight, self.padding[0])  # the 9x9 tail: 3x faster
        else:
            y = self._mx_conv(x) if path == "mlx" else self._tuned_conv(x)
        return y if bias is None else y + bias

    def _symmetric(self) -> bool:
        """Square kernel, one stride and one padding for both axes, no dilation or groups."""
        _, kh, kw, _ = self.weight.shape
        return (
            kh == kw
            and self.stride[0] == self.stride[1]
            and self.padding[0] == self.padding[1]
            and self.dilation == 1
            and self.groups == 1
        )

    def _tuned_conv(self, x: mx.array) -> mx.array:
        out_ch, kh, kw, in_ch = self.weight.shape
        symmetric = self._symmetric()
        if symmetric and self.stride[0] == 1 and (kh >= 5 or 4 * min(in_ch, out_ch) <= max(in_ch, out_ch)):
            return conv2d_same(x, self.weight, self.padding[0])
        if symmetric and self.stride[0] > 1:
            # MLX's own input gradient of a strided conv is ~40x slower than its forward pass
            return conv2d_strided(x, self.weight, self.stride[0], self.padding[0])
        if x.shape[0] > 1 and x.shape[1] * x.shape[2] * kh * kw * in_ch * 4 > IM2COL_CHUNK_BYTES:
            # one image at a time: each one's im2col matrix stays in cache (forward 1.5-1.8x faster)
            return mx.concatenate([self._mx_conv(x[i : i + 1]) for i in range(x.shape[0])])
        return self._mx_conv(x)

    def _mx_conv(self, x: mx.array) -> mx.array:
        return mx.conv2d(x, self.weight, self.stride, self.padding, self.dilation, self.groups)
