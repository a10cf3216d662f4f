"""SRGAN losses (Ledig et al. 2017, eq. 3-6), all on the networks' native ranges.

Images from the generator and the HR targets are in [-1, 1]; the VGG loss maps
them to [0, 1], and VGG19Features prepares them as its weights expect (their input
convention). Adversarial losses take logits and use ``softplus`` forms, so they stay
finite for any logit.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from .imresize import resize_matrix
from .vgg import LAYER_NAMES, VGG19Features

VGG_RESCALE = 1 / 12.75  # the paper's rescaling of VGG feature maps (its scale: the original VGG19, Caffe inputs)


def mse(a: mx.array, b: mx.array) -> mx.array:
    """Pixel-wise MSE (SRResNet-MSE content loss)."""
    return mx.mean(mx.square(a - b))


def pixel_l1(sr: mx.array, hr: mx.array) -> mx.array:
    """Mean absolute difference on [0, 1] pixel values (images in [-1, 1], hence the half): ESRGAN's pixel loss.

    L1 rather than MSE: it is ESRGAN's choice (Wang et al. 2018), so its weight 1e-2 carries over, and it
    grows linearly with a uniform colour offset rather than quadratically: a cast of 2 levels (0.008 on
    [0, 1]) costs 0.008 in L1 but 6e-5 in MSE, too little to weigh against the perceptual loss.
    """
    return mx.mean(mx.abs(sr - hr)) / 2


class LowFrequencyAnchor:
    """L1 between the SR output downscaled by MATLAB's bicubic ``imresize`` and the LR input, on [0, 1] values.

    The training LR is that same downscale of the HR crop, so the term is 0 for any SR whose low frequencies are
    the HR's: it pins colour and brightness (what the VGG ``relu5_4`` term barely sees) and leaves the texture above
    the LR's Nyquist frequency to the content and adversarial terms. The downscale is exact MATLAB ``imresize``
    (antialiased cubic, mirrored borders) as two matrix products, for square ``crop`` x ``crop`` outputs.
    """

    def __init__(self, crop: int, scale: int):
        self.matrix = mx.array(resize_matrix(crop, crop // scale, 1 / scale).astype("float32"))

    def downscale(self, images: mx.array) -> mx.array:
        """NHWC ``images`` (crop x crop) downscaled by ``scale`` along both axes."""
        rows = mx.einsum("oh,nhwc->nowc", self.matrix, images)
        return mx.einsum("pw,nowc->nopc", self.matrix, rows)

    def __call__(self, sr: mx.array, lr: mx.array) -> mx.array:
        return mx.mean(mx.abs(self.downscale((sr + 1) / 2) - lr))


def subpixel_bias(sr: mx.array, hr: mx.array, scale: int) -> mx.array:
    """L1 of the fixed sub-pixel pattern of ``sr - hr``: per image and channel, the mean difference at each of the
    ``scale`` x ``scale`` positions inside an LR pixel's block, less their mean, on [0, 1] values.

    A generator whose x2 pixel shuffles give each sub-pixel position its own offset prints a grid of period
    ``scale`` over the whole image; the VGG ``relu5_4`` and adversarial terms reward it as high-frequency energy
    (their gradients point along it) and the low-frequency anchor cannot see it (the downscale averages it out).
    Texture, which has no fixed phase relative to the LR grid, and a uniform offset leave this term at 0.
    """
    n, h, w, c = sr.shape
    blocks = ((sr - hr) / 2).reshape(n, h // scale, scale, w // scale, scale, c)
    phase = blocks.mean(axis=(1, 3))  # (n, scale, scale, c)
    return mx.mean(mx.abs(phase - phase.mean(axis=(1, 2), keepdims=True)))


class VGGLoss(nn.Module):
    """MSE between VGG19 feature maps of SR and HR at ``layer`` (default relu5_4), scaled by 1/12.75."""

    def __init__(self, vgg: VGG19Features, layer: str = "relu5_4", rescale: float = VGG_RESCALE):
        super().__init__()
        if layer not in LAYER_NAMES:
            raise ValueError(f"unknown VGG19 layer {layer!r}; known: {', '.join(LAYER_NAMES)}")
        self.vgg = vgg
        self.layer = layer
        self.rescale = rescale

    def __call__(self, sr: mx.array, hr: mx.array) -> mx.array:
        # two passes rather than one on the concatenation: the HR half then needs no backward pass
        fake = self.vgg((sr + 1) / 2, (self.layer,))[self.layer]
        real = mx.stop_gradient(self.vgg((hr + 1) / 2, (self.layer,))[self.layer])
        return mse(fake * self.rescale, real * self.rescale)


def generator_adversarial_loss(fake_logits: mx.array) -> mx.array:
    """-log D(G(x)), from logits: softplus(-logit)."""
    return mx.mean(mx.logaddexp(0.0, -fake_logits))


def discriminator_loss(real_logits: mx.array, fake_logits: mx.array) -> mx.array:
    """Binary cross-entropy with real = 1, fake = 0, from logits."""
    return mx.mean(mx.logaddexp(0.0, -real_logits)) + mx.mean(mx.logaddexp(0.0, fake_logits))
