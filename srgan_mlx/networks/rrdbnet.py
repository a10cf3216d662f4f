"""ESRGAN's generator, RRDBNet (Wang et al. 2018), as BasicSR and Real-ESRGAN (Wang et al. 2021) define it. NHWC.

::

    [pixel-unshuffle by u]                     Real-ESRGAN's x2 (u = 2): 12 input channels at half size
    conv_first 3x3 -> features
    num_blocks x RRDB, conv_body 3x3, + the conv_first output (long skip)
    stages x [nearest-neighbour x2, conv 3x3, LeakyReLU 0.2]
    conv_hr 3x3, LeakyReLU 0.2, conv_last 3x3 -> RGB

An RRDB (residual in residual dense block) is three residual dense blocks, ``out * 0.2 + x``; a residual dense
block is five 3x3 convolutions, each on the concatenation (in channel order) of the block's input and every
earlier convolution's output, ``growth`` channels each and LeakyReLU 0.2 after the first four, the fifth back to
``features`` channels, ``x5 * 0.2 + x``. No BatchNorm. The output is ``scale = 2 ** stages / u`` times the input:
ESRGAN and Real-ESRGAN x4 have u = 1 and two stages, Real-ESRGAN x2 u = 2 and two, ESRGAN's 2018 files one to
three stages (x2, x4, x8).

Input RGB in [0, 1]; output RGB in [0, 1] (:data:`RRDBNet.output_range`; not clamped here). Parameters are named
as BasicSR's, except the upsampling convolutions, ``upsample.<i>`` (BasicSR: ``conv_up1``, ``conv_up2``).
Inference on the native CPU path fuses each LeakyReLU and each scaled residual into its convolution
(:mod:`srgan_mlx.networks.kernels`). :meth:`RRDBNet.head`, each block, :meth:`RRDBNet.join` and :meth:`RRDBNet.reconstruct`
are the passes the tiler (:mod:`srgan_mlx.upscaling.inference`) runs over an image one after the other.
"""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn

from .kernels import conv_leaky, conv_scaled_residual
from .layers import Conv2d

SLOPE = 0.2
"""LeakyReLU's negative slope."""
RESIDUAL_SCALE = 0.2
"""Each dense block's and each RRDB's residual branch is multiplied by this before the addition."""
UNSHUFFLES = (1, 2, 4)
STAGES = (1, 2, 3)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convolutions and a scaled residual."""

    def __init__(self, features: int, growth: int):
        super().__init__()
        self.conv1 = Conv2d(features, growth, 3, padding=1)
        self.conv2 = Conv2d(features + growth, growth, 3, padding=1)
        self.conv3 = Conv2d(features + 2 * growth, growth, 3, padding=1)
        self.conv4 = Conv2d(features + 3 * growth, growth, 3, padding=1)
        self.conv5 = Conv2d(features + 4 * growth, features, 3, padding=1)

    def __call__(self, x: mx.array) -> mx.array:
        dense = x
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            dense = mx.concatenate([dense, conv_leaky(conv, dense, SLOPE, self.training)], axis=-1)
        return conv_scaled_residual(self.conv5, dense, RESIDUAL_SCALE, x, self.training)


class RRDB(nn.Module):
    """Three residual dense blocks and a scaled residual around them."""

    def __init__(self, features: int, growth: int):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(features, growth)
        self.rdb2 = ResidualDenseBlock(features, growth)
        self.rdb3 = ResidualDenseBlock(features, growth)

    def __call__(self, x: mx.array) -> mx.array:
        return self.rdb3(self.rdb2(self.rdb1(x))) * RESIDUAL_SCALE + x


def pixel_unshuffle(x: mx.array, r: int) -> mx.array:
    """Space-to-depth in PyTorch's channel order: (N, H, W, C) -> (N, H/r, W/r, C*r*r), channel ``c*r*r + i*r + j``
    holding sub-pixel ``(i, j)`` of channel ``c`` (``torch.nn.functional.pixel_unshuffle``)."""
    n, h, w, c = x.shape
    x = x.reshape(n, h // r, r, w // r, r, c).transpose(0, 1, 3, 5, 2, 4)
    return x.reshape(n, h // r, w // r, c * r * r)


def upsample_nearest(x: mx.array) -> mx.array:
    """Nearest-neighbour x2: every pixel becomes a 2x2 block."""
    n, h, w, c = x.shape
    return mx.broadcast_to(x[:, :, None, :, None, :], (n, h, 2, w, 2, c)).reshape(n, 2 * h, 2 * w, c)


class RRDBNet(nn.Module):
    """ESRGAN / Real-ESRGAN's generator; ``scale`` is ``2 ** stages / unshuffle`` (see the module docstring)."""

    output_range = (0.0, 1.0)
    """What the last layer's values mean: RGB in [0, 1] (SRResNet's :class:`Generator` gives [-1, 1])."""

    def __init__(self, scale: int = 4, num_blocks: int = 23, features: int = 64, growth: int = 32, unshuffle: int = 1):
        super().__init__()
        stages = math.log2(scale * unshuffle)
        if unshuffle not in UNSHUFFLES or stages not in STAGES or scale < 2:
            raise ValueError(
                f"scale {scale} with pixel-unshuffle {unshuffle} is not an RRDBNet this supports "
                f"(unshuffle one of {UNSHUFFLES}, scale x unshuffle 2, 4 or 8, scale at least 2)"
            )
        self.scale = scale
        self.num_blocks = num_blocks
        self.features = features
        self.growth = growth
        self.unshuffle = unshuffle
        self.conv_first = Conv2d(3 * unshuffle * unshuffle, features, 3, padding=1)
        self.body = [RRDB(features, growth) for _ in range(num_blocks)]
        self.conv_body = Conv2d(features, features, 3, padding=1)
        self.upsample = [Conv2d(features, features, 3, padding=1) for _ in range(int(stages))]
        self.conv_hr = Conv2d(features, features, 3, padding=1)
        self.conv_last = Conv2d(features, 3, 3, padding=1)

    def config(self) -> dict:
        """Constructor arguments, saved beside the weights."""
        return {
            "scale": self.scale, "num_blocks": self.num_blocks, "features": self.features, "growth": self.growth,
            "unshuffle": self.unshuffle,
        }  # fmt: skip

    def head(self, x: mx.array) -> mx.array:
        """``conv_first`` of the (pixel-unshuffled) input: ``features`` channels at 1/``unshuffle`` of its size."""
        return self.conv_first(pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x)

    def join(self, trunk: mx.array, head: mx.array) -> mx.array:
        """``conv_body`` of the blocks' output plus the long skip from :meth:`head`."""
        return conv_scaled_residual(self.conv_body, trunk, 1.0, head, self.training)

    def features_of(self, x: mx.array) -> mx.array:
        """The trunk's output (``features`` channels at 1/``unshuffle`` of the input's size), before upsampling."""
        first = self.head(x)
        y = first
        for block in self.body:
            y = block(y)
        return self.join(y, first)

    def reconstruct(self, features: mx.array) -> mx.array:
        """The image from the trunk's output: the upsampling stages, ``conv_hr`` and ``conv_last``."""
        y = features
        for conv in self.upsample:
            y = conv_leaky(conv, upsample_nearest(y), SLOPE, self.training)
        return self.conv_last(conv_leaky(self.conv_hr, y, SLOPE, self.training))

    def __call__(self, x: mx.array) -> mx.array:
        return self.reconstruct(self.features_of(x))
