"""Helpers for the tests of the SRGAN step and its losses (test_steps, test_losses): tiny networks, a stand-in
content loss, the recipe's terms, and moves checked against gradients."""

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten

from srgan_mlx.networks.discriminator import Discriminator
from srgan_mlx.networks.generator import Generator
from srgan_mlx.training.config import TrainConfig
from srgan_mlx.training.loss_terms import WeightedTerm, generator_terms

CROP = 24


def networks(seed=0):
    mx.random.seed(seed)
    return Generator(4, num_blocks=2, channels=16), Discriminator(CROP)


def content(sr, hr):  # any content loss will do; VGG is not what is tested here
    return mx.mean(mx.square(sr - hr))


def recipe_terms(**weights):
    """The generator terms of an SRGAN config with these fields (srgan_mlx.training.loss_terms), its content loss
    replaced by :func:`content`."""
    terms = generator_terms(TrainConfig(stage="srgan", crop=CROP, **weights), vgg=None)
    return [WeightedTerm(n, w, (lambda o: content(o.sr, o.hr)) if n == "content" else f) for n, w, f in terms]


def arrays(module):
    return {k: np.array(v) for k, v in tree_flatten(module.parameters())}


def sgd():
    return optim.SGD(learning_rate=1.0)  # an update is minus the gradient


def bce(real_logits, fake_logits):
    """Binary cross-entropy, real 1 and fake 0, written with log-sigmoid."""
    return -mx.mean(nn.log_sigmoid(real_logits)) - mx.mean(nn.log_sigmoid(-fake_logits))


def assert_moved_by(after, before, grads, scale_of=None):
    """``after - before == -grads`` for every array, to a tolerance relative to the largest gradient."""
    grads = {k: np.array(v) for k, v in tree_flatten(grads)}
    scale = max(np.abs(g).max() for g in grads.values())
    for key, grad in grads.items():
        np.testing.assert_allclose(after[key] - before[key], -grad, atol=2e-4 * scale, err_msg=key)


def _windows(array, window, scale):
    """Per window of ``window`` LR pixels: its slice of ``array`` (NHWC numpy) and its sub-pixel pattern, the mean
    at each of the ``scale`` x ``scale`` positions (strided slices) minus the mean of those, shape
    ``(positions, n, c)``."""
    side = window * scale
    for top in range(0, array.shape[1], side):
        for left in range(0, array.shape[2], side):
            part = array[:, top : top + side, left : left + side]
            positions = [(i, j) for i in range(scale) for j in range(scale)]
            means = np.stack([part[:, i::scale, j::scale].mean(axis=(1, 2)) for i, j in positions])
            yield (slice(top, top + side), slice(left, left + side)), means - means.mean(axis=0)


def _subtract(out, where, pattern, scale):
    """``out``'s window ``where`` less ``pattern`` (positions, n, c) at each sub-pixel position, in place."""
    part = out[:, where[0], where[1]]
    for k, values in enumerate(pattern):
        part[:, k // scale :: scale, k % scale :: scale] -= values[:, None, None, :]


def without_subpixel_pattern(gradient, window, scale=4):
    """``gradient`` (NHWC numpy) less, in each window of ``window`` LR pixels, the mean at each of the ``scale`` x
    ``scale`` sub-pixel positions minus the mean of those (written with strided slices of each window)."""
    out = gradient.copy()
    for where, pattern in _windows(gradient, window, scale):
        _subtract(out, where, pattern, scale)
    return out


def without_growing_pattern(gradient, grid_of, window, scale=4):
    """``gradient`` (NHWC numpy) less, in each window of ``window`` LR pixels and each image and channel, the part of
    its sub-pixel pattern ``p`` along ``q``, the pattern of ``grid_of`` (SR - HR) averaged over the images and
    windows, where descent would lengthen ``q``: ``min(<p, q>, 0) / |q|^2 q`` (patterns written with strided
    slices); and the part removed, per window."""
    q = np.mean([pattern.mean(axis=1) for _, pattern in _windows(grid_of, window, scale)], axis=0)[:, None]
    out, removed = gradient.copy(), []
    for where, p in _windows(gradient, window, scale):
        growth = np.minimum((p * q).sum(axis=0), 0) / np.maximum((q * q).sum(axis=0), 1e-30) * q
        removed.append(growth)
        _subtract(out, where, growth, scale)
    return out, removed


def artifact_map_reference(sr, hr, reference, window=7):
    """LDL's map from its description, with explicit windows: per pixel the unbiased variance of the channel-summed
    |HR - SR| (on [0, 1]) over its mirrored 7 x 7 neighbourhood, times the crop's unbiased variance of it ** 0.2,
    0 where the reference's residual is larger."""
    residual = np.abs(hr - sr).sum(axis=-1) / 2
    stable = np.abs(hr - reference).sum(axis=-1) / 2
    reach = window // 2
    out = np.zeros_like(residual)
    for i, image in enumerate(residual):
        padded = np.pad(image, reach, mode="reflect")
        for y in range(image.shape[0]):
            for x in range(image.shape[1]):
                out[i, y, x] = padded[y : y + window, x : x + window].var(ddof=1)
        out[i] *= image.var(ddof=1) ** 0.2
    out[residual < stable] = 0
    return out[..., None]


def assert_step_matches(out, networks_before, references):
    """One SGD step (rate 1) of G and D is the reference's: the step's ``loss`` and ``d_loss`` are the reference
    values, and each network moved by minus the reference gradients (D's trainable arrays; its kept statistics
    are not trained). ``networks_before``: (generator, its arrays before, discriminator, its arrays before);
    ``references``: (G's loss, G's gradients, D's loss, D's gradients)."""
    generator, before_g, discriminator, before_d = networks_before
    g_value, g_grads, d_value, d_grads = references
    assert out["loss"].item() == pytest.approx(g_value.item(), rel=1e-5)
    assert out["d_loss"].item() == pytest.approx(d_value.item(), rel=1e-5)
    assert_moved_by(arrays(generator), before_g, g_grads)
    trainable_d = dict(tree_flatten(discriminator.trainable_parameters()))
    assert_moved_by({k: v for k, v in arrays(discriminator).items() if k in trainable_d}, before_d, d_grads)
