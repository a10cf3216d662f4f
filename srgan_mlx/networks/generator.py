"""The SRGAN generator (SRResNet), Ledig et al. 2017, Figure 4.

Input: low-resolution RGB in [0, 1], NHWC. Output: high-resolution RGB in
[-1, 1] (the paper's ranges), ``scale`` times larger, from a linear last layer
(no tanh), so callers clip when they convert to pixels.
PReLU slopes are per channel (the paper does not say; Keras ``PReLU(shared_axes=[1, 2])``
in the TensorFlow re-implementation is per channel too).
"""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn

from .kernels import conv_norm, conv_prelu, prelu_pixel_shuffle
from .layers import Conv2d

SCALES = (2, 4, 8)


class ResidualBlock(nn.Module):
    """conv3x3 - BN - PReLU - conv3x3 - BN, plus the identity."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = Conv2d(channels, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm(channels)
        self.act = nn.PReLU(channels)
        self.conv2 = Conv2d(channels, channels, 3, padding=1)
        self.bn2 = nn.BatchNorm(channels)

    def __call__(self, x: mx.array) -> mx.array:
        y = conv_norm(self.conv1, self.bn1, x, "prelu", self.act.weight)
        return conv_norm(self.conv2, self.bn2, y, residual=x)


class UpsampleBlock(nn.Module):
    """conv3x3 to 4x channels, pixel shuffle x2, PReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = Conv2d(channels, channels * 4, 3, padding=1)
        self.act = nn.PReLU(channels)

    def __call__(self, x: mx.array) -> mx.array:
        return prelu_pixel_shuffle(self.conv(x), self.act.weight, 2)


class Generator(nn.Module):
    """SRResNet: 9x9 head, residual body with a long skip, x2 pixel-shuffle stages, 9x9 tail."""

    def __init__(self, scale: int = 4, num_blocks: int = 16, channels: int = 64):
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale}")
        self.scale = scale
        self.num_blocks = num_blocks
        self.channels = channels
        self.head = Conv2d(3, channels, 9, padding=4)
        self.head_act = nn.PReLU(channels)
        self.blocks = [ResidualBlock(channels) for _ in range(num_blocks)]
        self.body_conv = Conv2d(channels, channels, 3, padding=1)
        self.body_bn = nn.BatchNorm(channels)
        self.upsample = [UpsampleBlock(channels) for _ in range(int(math.log2(scale)))]
        self.tail = Conv2d(channels, 3, 9, padding=4)
        self._norm_frozen = False

    def freeze_norm(self) -> "Generator":
        """Keep every BatchNorm layer in eval mode from now on, in training too: it normalises with its running
        statistics, which stay as they are, while its scale and shift still learn (a GAN fine-tune that cannot
        shift the statistics SRResNet learnt; ESRGAN, section 3.1, blames batch statistics for GAN artefacts).
        Train such a generator inside a training step (:func:`srgan_mlx.networks.kernels.unfused`)."""
        self._norm_frozen = True
        return self.train(self.training)

    def train(self, mode: bool = True) -> "Generator":
        super().train(mode)
        if self._norm_frozen:
            for module in self.modules():
                if isinstance(module, nn.BatchNorm):
                    module.train(False)
        return self

    def config(self) -> dict:
        """Constructor arguments, saved beside the weights."""
        return {"scale": self.scale, "num_blocks": self.num_blocks, "channels": self.channels}

    def __call__(self, x: mx.array) -> mx.array:
        skip = conv_prelu(self.head, x, self.head_act.weight, self.training)
        y = skip
        for block in self.blocks:
            y = block(y)
        y = conv_norm(self.body_conv, self.body_bn, y, residual=skip)
        for stage in self.upsample:
            y = stage(y)
        return self.tail(y)
