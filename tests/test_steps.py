"""The SRGAN step's optional pixel loss (``--pixel-weight``): it enters the generator's gradient, and 0 is the paper's."""

from functools import partial

import numpy as np
import pytest

import srgan_mlx  # noqa: F401  (loads the BLAS before mlx)
import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten

from srgan_mlx.discriminator import Discriminator
from srgan_mlx.generator import Generator
from srgan_mlx.steps import SRGANStep

CROP = 24


def networks(seed=0):
    mx.random.seed(seed)
    return Generator(4, num_blocks=2, channels=16), Discriminator(CROP)


def content(sr, hr):  # any content loss will do; VGG is not what is tested here
    return mx.mean(mx.square(sr - hr))


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    hr = rng.uniform(-1, 1, (2, CROP, CROP, 3)).astype(np.float32)
    lr = rng.uniform(0, 1, (2, CROP // 4, CROP // 4, 3)).astype(np.float32)
    return mx.array(lr), mx.array(hr)


def arrays(module):
    return {k: np.array(v) for k, v in tree_flatten(module.parameters())}


def one_step(batch, pixel_weight, optimizer=lambda: optim.SGD(learning_rate=1.0)):
    generator, discriminator = networks()
    step = SRGANStep(generator, discriminator, content, optimizer(), optimizer(), 1e-3, pixel_weight)
    out = step(*batch)
    mx.eval(out, step.state)
    return generator, discriminator, {k: v.item() for k, v in out.items()}


def test_pixel_loss_enters_the_generators_gradient(batch):
    """With plain SGD at rate 1 an update is minus the gradient, so the two runs' generators differ by
    ``weight`` times the gradient of the L1 pixel loss on [0, 1] values, computed here from its definition."""
    weight = 0.5
    plain, _, _ = one_step(batch, 0.0)
    pixel, _, losses = one_step(batch, weight)
    reference, _ = networks()
    lr, hr = batch

    def l1(lr, hr):
        return mx.mean(mx.abs((reference(lr) + 1) / 2 - (hr + 1) / 2))

    value, grads = nn.value_and_grad(reference, l1)(lr, hr)
    assert losses["pixel"] == pytest.approx(value.item(), rel=1e-5)
    assert losses["loss"] == pytest.approx(
        losses["content"] + 1e-3 * losses["adversarial"] + weight * losses["pixel"], rel=1e-6
    )
    grads = {k: np.array(v) for k, v in tree_flatten(grads)}
    moved, expected = arrays(pixel), arrays(plain)
    scale = max(np.abs(g).max() for g in grads.values())
    for key, grad in grads.items():
        np.testing.assert_allclose(moved[key] - expected[key], -weight * grad, atol=1e-4 * scale, err_msg=key)


def test_zero_weight_is_the_papers_step_bit_for_bit(batch):
    """Weight 0 against the paper's step written out here (content + 1e-3 x -log D(G(x)), then D's update),
    compiled the same way: identical weights and Adam states after two steps."""
    generator, discriminator = networks()
    opt_g, opt_d = optim.Adam(1e-3), optim.Adam(1e-3)
    state = [generator.state, discriminator.state, opt_g.state, opt_d.state, mx.random.state]

    def g_loss(lr, hr):
        sr = generator(lr)
        return content(sr, hr) + 1e-3 * mx.mean(mx.logaddexp(0.0, -discriminator(sr))), sr

    def d_loss(hr, sr):
        return mx.mean(mx.logaddexp(0.0, -discriminator(hr))) + mx.mean(mx.logaddexp(0.0, discriminator(sr)))

    @partial(mx.compile, inputs=state, outputs=state)
    def paper(lr, hr):
        (loss, sr), grads = nn.value_and_grad(generator, g_loss)(lr, hr)
        opt_g.update(generator, grads)
        opt_d.update(discriminator, nn.value_and_grad(discriminator, d_loss)(hr, mx.stop_gradient(sr))[1])
        return loss

    ours_g, ours_d = networks()
    ours_opt_g, ours_opt_d = optim.Adam(1e-3), optim.Adam(1e-3)
    ours = SRGANStep(ours_g, ours_d, content, ours_opt_g, ours_opt_d, 1e-3, 0.0)
    for _ in range(2):
        expected = paper(*batch)
        mx.eval(expected, state)
        got = ours(*batch)
        mx.eval(got, ours.state)
        assert got["loss"].item() == expected.item()
    for a, b in ((ours_g, generator), (ours_d, discriminator)):
        assert arrays(a).keys() == arrays(b).keys()
        for key, value in arrays(a).items():
            assert np.array_equal(value, arrays(b)[key]), key
    for a, b in ((ours_opt_g, opt_g), (ours_opt_d, opt_d)):
        for (key, value), (_, other) in zip(tree_flatten(a.state), tree_flatten(b.state)):
            assert np.array_equal(np.array(value), np.array(other)), key
