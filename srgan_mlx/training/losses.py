"""SRGAN losses (Ledig et al. 2017, eq. 3-6), all on the networks' native ranges.

Images from the generator and the HR targets are in [-1, 1]; the VGG loss maps
them to [0, 1], and VGG19Features prepares them as its weights expect (their input
convention). Adversarial losses take logits and use ``softplus`` forms, so they stay
finite for any logit.
"""

from __future__ import annotations

from functools import lru_cache

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from ..networks.vgg import LAYER_NAMES, VGG19Features
from ..quality.imresize import resize_matrix

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


def subpixel_pattern(images: mx.array, scale: int, window: int = 0) -> mx.array:
    """The fixed sub-pixel pattern of NHWC ``images``: per image, channel and window, the mean at each of the
    ``scale`` x ``scale`` positions inside an LR pixel's block, less their mean; shape ``(n, rows, scale, cols,
    scale, c)``. ``window``: the side of a window in LR pixels (it divides the image's); 0, the whole image."""
    n, h, w, c = images.shape
    rows, cols = (h // scale // window, w // scale // window) if window else (1, 1)
    blocks = images.reshape(n, rows, h // scale // rows, scale, cols, w // scale // cols, scale, c)
    phase = blocks.mean(axis=(2, 5))
    return phase - phase.mean(axis=(2, 4), keepdims=True)


def subpixel_bias(sr: mx.array, hr: mx.array, scale: int, window: int = 0) -> mx.array:
    """L1 of the fixed sub-pixel pattern of ``sr - hr`` (:func:`subpixel_pattern`) on [0, 1] values.

    A generator whose x2 pixel shuffles give each sub-pixel position its own offset prints a grid of period
    ``scale``; the VGG and adversarial terms reward it as high-frequency energy (their gradients point along it)
    and the low-frequency anchor cannot see it (the downscale averages it out). Texture, which has no fixed phase
    relative to the LR grid, and a uniform offset leave this term near 0; over small windows it also sees a grid
    printed on part of the crop (a hatch on smooth skin), at the price of counting more of the texture's chance
    pattern.
    """
    return mx.mean(mx.abs(subpixel_pattern((sr - hr) / 2, scale, window)))


def grid_blind(images: mx.array, scale: int, window: int = 0, target: mx.array | None = None) -> mx.array:
    """``images`` as they are, but a gradient that flows back through them loses its fixed sub-pixel pattern
    (:func:`subpixel_pattern`, per image, channel and ``window``, tiled back over the pixels): a loss computed on
    them does not push a grid of period ``scale``, whatever it rewards, while everything else in its gradient
    (texture, colour) passes unchanged. The generator's update can still print one as a side effect where it is
    large (a strong adversarial term: docs/training.md, candidate H). The pattern is an orthogonal projection P, so the gradient
    ``g`` becomes ``(I - P) g``.

    With ``target`` (the HR batch; no gradient reaches it), only the part that would grow the grid the images
    print is removed: with ``q`` the batch's mean pattern of ``images - target`` per channel (over every image and
    window: the grid a generator prints everywhere, where the target's chance patterns average out) and ``p`` the
    gradient's pattern in one window of one image, the component of ``p`` along ``q`` where descent (``-p``)
    lengthens ``q``, ``min(<p, q>, 0) / |q|^2 q``; where descent shortens ``q`` the gradient passes whole. So a
    term may pull the grid down (an adversarial term whose D has learnt that a grid is fake, a perceptual term
    that no longer rewards it) but not push it up, to first order.

    Why: on SRResNet the L1 perceptual loss over LDL's VGG19 layers descends along the grid the generator already
    has (conv3_4, conv4_4 and conv5_4 do; conv1_2 opposes it with a 250x smaller push) and the same pattern comes
    back batch after batch, so Adam, which moves every parameter at ``lr`` whatever the gradient's size, grows it
    (``experiments/grid_push.py``); later in training the same terms point against the grid (docs/training.md).
    """
    if target is None:
        return _blind_identity(scale, window)(images)
    return _growth_blind_identity(scale, window)(images, mx.stop_gradient(target))


def _tiled(pattern: mx.array, shape: tuple[int, ...]) -> mx.array:
    """A :func:`subpixel_pattern`-shaped array repeated over the pixels of NHWC ``shape``."""
    n, h, w, c = shape
    rows, scale, cols = pattern.shape[1:4]
    blocks = (n, rows, h // scale // rows, scale, cols, w // scale // cols, scale, c)
    return mx.broadcast_to(pattern[:, :, None, :, :, None], blocks).reshape(shape)


@lru_cache
def _blind_identity(scale: int, window: int):
    @mx.custom_function
    def identity(images):
        return images

    @identity.vjp
    def without_pattern(primals, cotangent, output):
        return cotangent - _tiled(subpixel_pattern(cotangent, scale, window), cotangent.shape)

    return identity


@lru_cache
def _growth_blind_identity(scale: int, window: int):
    @mx.custom_function
    def identity(images, target):
        return images

    @identity.vjp
    def without_growth(primals, cotangent, output):
        images, target = primals
        pattern = subpixel_pattern(cotangent, scale, window)
        grid = subpixel_pattern(images - target, scale, window).mean(axis=(0, 1, 3), keepdims=True)
        along = mx.minimum((pattern * grid).sum(axis=(2, 4), keepdims=True), 0)
        length = (grid * grid).sum(axis=(2, 4), keepdims=True)
        growth = mx.where(length > 0, along / mx.maximum(length, 1e-30), 0) * grid
        return cotangent - _tiled(growth, cotangent.shape), mx.zeros_like(target)

    return identity


DISTANCES = {
    "mse": lambda a, b: mx.mean(mx.square(a - b)),
    "l1": lambda a, b: mx.mean(mx.abs(a - b)),
}
"""The distances a perceptual loss can put between feature maps, by name."""


def layer_weights(spec: str) -> dict[str, float]:
    """``"relu5_4"`` or ``"conv1_2:0.1,conv5_4:1"`` -> ``{layer: weight}`` (a bare name weighs 1); ValueError naming
    what is wrong. ``conv`` layers are taken before their ReLU, ``relu`` layers after it."""
    weights = {}
    for item in spec.split(","):
        name, _, weight = item.strip().partition(":")
        if name not in LAYER_NAMES:
            raise ValueError(f"unknown VGG19 layer {name!r}; known: {', '.join(LAYER_NAMES)}")
        if name in weights:
            raise ValueError(f"VGG19 layer {name} given twice")
        try:
            weights[name] = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"the weight of {name} must be a number, got {weight!r}") from None
        if not weights[name] > 0:
            raise ValueError(f"the weight of {name} must be above 0, got {weight}")
    return weights


class PerceptualLoss(nn.Module):
    """Sum over VGG19 layers of ``weight * distance(rescale * phi(SR), rescale * phi(HR))``.

    The paper's content loss is the default: ``relu5_4``, MSE, feature maps scaled by 1/12.75 (their scale:
    the original VGG19 on Caffe inputs). ESRGAN's and LDL's perceptual losses are L1 on ``conv`` layers
    (before the ReLU) with per-layer weights, e.g. ``layers="conv1_2:0.1,conv2_2:0.1,conv3_4:1,conv4_4:1,conv5_4:1"``,
    ``distance="l1"``; their weights were set for torchvision's VGG19, whose inputs are ``255 x 0.226 = 57.6``
    times smaller than Caffe's, so the original VGG19's feature maps come out about that much larger at every
    layer (a ReLU network scales with its input, up to the biases): ``rescale=1/57.6`` puts them on the scale
    those weights expect (``experiments/vgg_feature_scale.py`` measures the ratio layer by layer).
    """

    def __init__(self, vgg: VGG19Features, layers: str | dict[str, float] = "relu5_4", distance: str = "mse",
                 rescale: float = VGG_RESCALE):  # fmt: skip
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"unknown distance {distance!r}; known: {', '.join(DISTANCES)}")
        self.vgg = vgg
        self.layers = layer_weights(layers) if isinstance(layers, str) else dict(layers)
        self.distance = distance
        self.rescale = rescale

    def __call__(self, sr: mx.array, hr: mx.array) -> mx.array:
        names = tuple(self.layers)
        # two passes rather than one on the concatenation: the HR half then needs no backward pass
        fake = self.vgg((sr + 1) / 2, names)
        real = self.vgg((hr + 1) / 2, names)
        distance = DISTANCES[self.distance]
        total = None
        for name, weight in self.layers.items():
            value = distance(fake[name] * self.rescale, mx.stop_gradient(real[name]) * self.rescale)
            value = value if weight == 1 else weight * value
            total = value if total is None else total + value
        return total


def _reflected(length: int, reach: int) -> mx.array:
    """Indices ``-reach .. length + reach - 1`` mirrored into ``0 .. length - 1`` without repeating the edge."""
    index = np.abs(np.arange(-reach, length + reach))
    return mx.array(np.where(index >= length, 2 * (length - 1) - index, index))


def local_variance(x: mx.array, window: int) -> mx.array:
    """Unbiased variance of NHWC ``x`` over each ``window`` x ``window`` neighbourhood (mirrored borders)."""
    reach = window // 2
    _, h, w, _ = x.shape
    x = mx.take(mx.take(x, _reflected(h, reach), axis=1), _reflected(w, reach), axis=2)

    def box_sum(values):
        for axis, length in ((1, h), (2, w)):
            sums = mx.cumsum(values, axis=axis)
            sums = mx.concatenate([mx.zeros_like(mx.take(sums, mx.array([0]), axis=axis)), sums], axis=axis)
            upper = mx.take(sums, mx.arange(window, length + window), axis=axis)
            values = upper - mx.take(sums, mx.arange(length), axis=axis)
        return values

    count = window * window
    total, squares = box_sum(x), box_sum(x * x)
    return mx.maximum((squares - total * total / count) / (count - 1), 0.0)


def artifact_map(sr: mx.array, hr: mx.array, reference: mx.array, window: int = 7) -> mx.array:
    """LDL's refined artifact map (Liang et al., CVPR 2022, eq. 5-7), on [0, 1] values, shape (n, h, w, 1).

    The residual ``r = sum over channels |HR - SR|``; per pixel, its local variance over a ``window`` x
    ``window`` neighbourhood times the whole crop's variance of ``r`` to the power 1/5; zero wherever the
    reference generator's residual is larger (there SR's detail is no worse than the stable model's, so it is
    taken for texture, not an artefact). Variances unbiased, borders mirrored.
    """
    residual = mx.sum(mx.abs(hr - sr), axis=-1, keepdims=True) / 2
    stable = mx.sum(mx.abs(hr - reference), axis=-1, keepdims=True) / 2
    crop_weight = mx.var(residual, axis=(1, 2, 3), keepdims=True, ddof=1) ** 0.2
    weight = local_variance(residual, window) * crop_weight
    return mx.where(residual < stable, 0.0, weight)


def artifact_loss(sr: mx.array, hr: mx.array, reference: mx.array) -> mx.array:
    """LDL's artifact loss: L1 on [0, 1] values of ``M * SR`` against ``M * HR``, ``M`` the
    :func:`artifact_map` against ``reference`` (the moving-average generator's SR). ``M`` is a weight: no
    gradient flows through it."""
    weight = mx.stop_gradient(artifact_map(sr, hr, reference))
    return mx.mean(mx.abs(weight * (sr - hr))) / 2


def generator_adversarial_loss(fake_logits: mx.array) -> mx.array:
    """-log D(G(x)), from logits: softplus(-logit)."""
    return mx.mean(mx.logaddexp(0.0, -fake_logits))


def discriminator_loss(real_logits: mx.array, fake_logits: mx.array) -> mx.array:
    """Binary cross-entropy with real = 1, fake = 0, from logits."""
    return mx.mean(mx.logaddexp(0.0, -real_logits)) + mx.mean(mx.logaddexp(0.0, fake_logits))


def relativistic_logits(real_logits: mx.array, fake_logits: mx.array) -> tuple[mx.array, mx.array]:
    """The relativistic average discriminator's logits (ESRGAN, after Jolicoeur-Martineau 2018): how much more
    real each real image looks than the fakes on average, and each fake than the reals."""
    return real_logits - fake_logits.mean(), fake_logits - real_logits.mean()


def relativistic_discriminator_loss(real_logits: mx.array, fake_logits: mx.array) -> mx.array:
    """RaGAN for D, as ESRGAN trains it: the mean of binary cross-entropy on ``real - mean(fake)`` (1) and on
    ``fake - mean(real)`` (0), each side's gradient flowing through its own logits only (the other side's mean
    is held constant)."""
    real = real_logits - mx.stop_gradient(fake_logits.mean())
    fake = fake_logits - mx.stop_gradient(real_logits.mean())
    return (mx.mean(mx.logaddexp(0.0, -real)) + mx.mean(mx.logaddexp(0.0, fake))) / 2


def relativistic_generator_loss(real_logits: mx.array, fake_logits: mx.array) -> mx.array:
    """RaGAN for G: the same cross-entropy with the labels swapped (reals should look less real than the fakes,
    fakes more real than the reals); ``real_logits`` are constants here, the fakes' mean carries gradient."""
    real, fake = relativistic_logits(real_logits, fake_logits)
    return (mx.mean(mx.logaddexp(0.0, real)) + mx.mean(mx.logaddexp(0.0, -fake))) / 2
