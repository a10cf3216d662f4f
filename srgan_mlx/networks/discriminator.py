"""The discriminators: the SRGAN paper's (Ledig et al. 2017, Figure 4), one logit per image, optionally with its
dense layers spectrally normalised, and Real-ESRGAN's U-Net with spectral normalisation
(:class:`UNetDiscriminator`), one logit per pixel.

The paper's. Input: RGB in [-1, 1] (the generator's range), NHWC, ``input_size`` pixels square
(any size; the paper's 96 gives 6x6x512 features before the dense layers).
Output: one logit per image (no sigmoid; the losses work on logits so they never
overflow). Eight 3x3 convs (64, 64, 128, 128, 256, 256, 512, 512 channels,
strides 1, 2, 1, 2, ...), LeakyReLU 0.2, BatchNorm on all but the first, then
Dense 1024, LeakyReLU, Dense 1. The features are flattened in NHWC order.

``spectral_norm`` (``--discriminator paper-sn``): both dense layers are spectrally normalised
(:class:`SpectralNormLinear`); the convolutions are not, BatchNorm fixes their scale. Without it Adam grows the
first dense layer's largest singular value without bound (measured in an SRGAN fine-tune at learning rate 1e-4:
6.9 at step 100, 31.6 at step 300, docs/training.md), and with it the logits' spread and the generator's
adversarial gradient.
"""

from __future__ import annotations

from functools import lru_cache

import mlx.core as mx
import numpy as np
import mlx.nn as nn

from .kernels import apply_activation, batch_norm
from .layers import Conv2d, SpectralNormConv2d, SpectralNormLinear

WIDTHS = (64, 64, 128, 128, 256, 256, 512, 512)
SLOPE = 0.2  # LeakyReLU


class Discriminator(nn.Module):
    def __init__(self, input_size: int = 96, base_channels: int = 64, spectral_norm: bool = False):
        super().__init__()
        self.input_size = input_size
        self.base_channels = base_channels
        self.spectral_norm = spectral_norm
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
        dense = SpectralNormLinear if spectral_norm else nn.Linear
        self.fc1 = dense(features, 1024)
        self.fc2 = dense(1024, 1)

    def config(self) -> dict:
        return {"input_size": self.input_size, "base_channels": self.base_channels,
                **({"spectral_norm": True} if self.spectral_norm else {})}

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


class UNetDiscriminator(nn.Module):
    """Real-ESRGAN's discriminator (Wang et al. 2021, section 4.2): a U-Net that judges every pixel.

    Input: RGB in [-1, 1], NHWC, sides a multiple of 8. Output: one logit per pixel, ``(N, H, W)``. A 3x3 conv
    (``base_channels``, bias), three 4x4 stride-2 convs (x2, x4, x8 channels), then three steps up, each a
    bilinear x2 upsampling (:func:`upsample2`), a 3x3 conv and the skip from the encoder at that scale added after
    the activation; two more 3x3 convs and a 3x3 conv to one channel (bias). Every conv but the first and the last
    is spectrally normalised (:class:`SpectralNormConv2d`, no bias); LeakyReLU 0.2 after each but the last. No
    BatchNorm, so ``--d-batch`` changes nothing: a training step calls it on real and fake separately.
    """

    def __init__(self, base_channels: int = 64):
        super().__init__()
        self.base_channels = c = base_channels
        self.conv0 = Conv2d(3, c, 3, padding=1)
        self.down = [SpectralNormConv2d(c * 2**i, c * 2 ** (i + 1), 4, stride=2, padding=1) for i in range(3)]
        self.up = [SpectralNormConv2d(c * 2 ** (i + 1), c * 2**i, 3, padding=1) for i in (2, 1, 0)]
        self.extra = [SpectralNormConv2d(c, c, 3, padding=1) for _ in range(2)]
        self.conv_out = Conv2d(c, 1, 3, padding=1)

    def config(self) -> dict:
        return {"base_channels": self.base_channels}

    def __call__(self, x: mx.array) -> mx.array:
        if x.shape[1] % 8 or x.shape[2] % 8:
            raise ValueError(f"the U-Net discriminator expects sides that are multiples of 8, got {x.shape[1]}x{x.shape[2]}")
        skips = [apply_activation(self.conv0(x), "leaky", alpha=SLOPE)]
        for conv in self.down:
            skips.append(apply_activation(conv(skips[-1]), "leaky", alpha=SLOPE))
        y = skips.pop()
        for conv in self.up:
            y = apply_activation(conv(upsample2(y)), "leaky", alpha=SLOPE) + skips.pop()
        for conv in self.extra:
            y = apply_activation(conv(y), "leaky", alpha=SLOPE)
        return self.conv_out(y).squeeze(-1)


def upsample2(x: mx.array) -> mx.array:
    """Bilinear x2 upsampling of NHWC ``x``, pixel centres aligned as ``align_corners=False`` (PyTorch's
    ``F.interpolate``), borders repeated: each new pixel is 3/4 its source pixel and 1/4 the neighbour on its side.
    Computed as two matrix products (rows, then columns) with :func:`bilinear_matrix`: one multi-threaded pass each
    way, where shifted copies and element-wise sums took ~30x longer on the CPU."""
    n, h, w, c = x.shape
    x = (bilinear_matrix(h) @ x.reshape(n, h, w * c)).reshape(n * 2 * h, w, c)
    return (bilinear_matrix(w) @ x).reshape(n, 2 * h, 2 * w, c)


@lru_cache(maxsize=None)
def bilinear_matrix(n: int) -> mx.array:
    """The ``(2n, n)`` matrix of bilinear x2 upsampling along one axis (``align_corners=False``, borders repeated)."""
    matrix = np.zeros((2 * n, n), np.float32)
    for i in range(n):
        matrix[2 * i, max(i - 1, 0)] += 0.25
        matrix[2 * i, i] += 0.75
        matrix[2 * i + 1, i] += 0.75
        matrix[2 * i + 1, min(i + 1, n - 1)] += 0.25
    return mx.array(matrix)


def make_discriminator(name: str, input_size: int) -> nn.Module:
    """The discriminator ``--discriminator name`` chooses (``paper``, ``paper-sn`` or ``unet``) for
    ``input_size``-pixel crops."""
    if name in ("paper", "paper-sn"):
        return Discriminator(input_size, spectral_norm=name == "paper-sn")
    if name == "unet":
        return UNetDiscriminator()
    raise ValueError(f"unknown discriminator {name!r}: paper, paper-sn or unet")
