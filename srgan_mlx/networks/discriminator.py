"""The SRGAN discriminator, Ledig et al. 2017, Figure 4.

Input: RGB in [-1, 1] (the generator's range), NHWC, ``input_size`` pixels square
(any size; the paper's 96 gives 6x6x512 features before the dense layers).
Output: one logit per image (no sigmoid; the losses work on logits so they never
overflow). Eight 3x3 convs (64, 64, 128, 128, 256, 256, 512, 512 channels,
strides 1, 2, 1, 2, ...), LeakyReLU 0.2, BatchNorm on all but the first, then
Dense 1024, LeakyReLU, Dense 1. The features are flattened in NHWC order.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from .kernels import apply_activation, batch_norm
from .layers import Conv2d

WIDTHS = (64, 64, 128, 128, 256, 256, 512, 512)
SLOPE = 0.2  # LeakyReLU


class Discriminator(nn.Module):
    def __init__(self, input_size: int = 96, base_channels: int = 64):
        super().__init__()
        self.input_size = input_size
        self.base_channels = base_channels
        widths = [w * base_channels // 64 for w in WIDTHS]
        self.convs = []
        self.norms = []
        in_ch = 3
        for index, out_ch in enumerate(widths):
            self.convs.append(Conv2d(in_ch, out_ch, 3, stride=1 + index % 2, padding=1))
            if index:
                self.norms.append(nn.BatchNorm(out_ch))
            in_ch = out_ch
        side = input_size
        for _ in range(4):  # four stride-2 convs, padding 1: ceil(side / 2) each
            side = (side + 1) // 2
        features = side * side * in_ch
        self.fc1 = nn.Linear(features, 1024)
        self.fc2 = nn.Linear(1024, 1)

    def config(self) -> dict:
        return {"input_size": self.input_size, "base_channels": self.base_channels}

    def __call__(self, x: mx.array) -> mx.array:
        if x.shape[1] != self.input_size or x.shape[2] != self.input_size:
            raise ValueError(
                f"discriminator expects {self.input_size}x{self.input_size} inputs, got {x.shape[1]}x{x.shape[2]}"
            )
        y = apply_activation(self.convs[0](x), "leaky", alpha=SLOPE)
        for conv, norm in zip(self.convs[1:], self.norms):
            y = batch_norm(norm, conv(y), "leaky", alpha=SLOPE)
        y = apply_activation(self.fc1(y.reshape(y.shape[0], -1)), "leaky", alpha=SLOPE)
        return self.fc2(y).squeeze(-1)
