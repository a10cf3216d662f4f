"""The MLX networks equal independent torch.nn references on the same weights."""

import numpy as np
import pytest
import torch

import srgan_mlx  # noqa: F401  (loads the BLAS before mlx)
import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

import torch_reference as ref
from srgan_mlx.discriminator import Discriminator
from srgan_mlx.generator import Generator
from srgan_mlx.layers import pixel_shuffle

TOL = 1e-4


def assert_close(actual, expected, tol=TOL):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    err = float(np.abs(actual - expected).max())
    assert err <= tol * scale, f"max abs error {err} > {tol} x {scale}"


def test_pixel_shuffle_matches_torch_order():
    x = mx.arange(2 * 3 * 4 * 12, dtype=mx.float32).reshape(2, 3, 4, 12)
    for r in (2,):
        expected = ref.nhwc(torch.nn.PixelShuffle(r)(ref.nchw(x)))
        assert np.array_equal(np.array(pixel_shuffle(x, r)), expected)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_generator_eval_mode(scale):
    torch_g = ref.randomize(ref.Generator(scale, num_blocks=2, channels=16), seed=scale).eval()
    g = Generator(scale, num_blocks=2, channels=16)
    ref.copy_to_mlx(torch_g, g)
    g.eval()
    x = mx.random.uniform(shape=(2, 11, 13, 3), key=mx.random.key(scale))
    assert_close(g(x), ref.nhwc(torch_g(ref.nchw(x))))


def test_generator_full_size_eval_mode():
    torch_g = ref.randomize(ref.Generator(), seed=7).eval()
    g = Generator()
    ref.copy_to_mlx(torch_g, g)
    g.eval()
    x = mx.random.uniform(shape=(1, 16, 16, 3), key=mx.random.key(7))
    assert_close(g(x), ref.nhwc(torch_g(ref.nchw(x))))


def test_generator_train_mode_output_gradients_and_batch_stats():
    torch_g = ref.randomize(ref.Generator(4, num_blocks=2, channels=16), seed=3).train()
    g = Generator(4, num_blocks=2, channels=16)
    ref.copy_to_mlx(torch_g, g)
    g.train()
    x = mx.random.uniform(shape=(3, 12, 12, 3), key=mx.random.key(1))
    weights = mx.random.normal((3, 48, 48, 3), key=mx.random.key(2))

    def loss(model, x):
        return (model(x) * weights).sum()

    value, grads = nn.value_and_grad(g, lambda x: loss(g, x))(x)
    torch_out = torch_g(ref.nchw(x))
    (torch_out * ref.nchw(weights)).sum().backward()
    assert_close(value, torch_out.mul(ref.nchw(weights)).sum().item(), tol=1e-4)

    torch_grads = {n: p.grad for n, p in torch_g.named_parameters()}
    for name, grad in tree_flatten(grads):
        expected = torch_grads[name].numpy()
        if expected.ndim == 4:
            expected = expected.transpose(0, 2, 3, 1)
        assert_close(grad, expected, tol=1e-4)
    # BatchNorm running statistics were updated the same way (unbiased variance, momentum 0.1)
    mlx_state = dict(tree_flatten(g.parameters()))
    for name, tensor in torch_g.state_dict().items():
        if "running" in name:
            assert_close(mlx_state[name], tensor.numpy())


@pytest.mark.parametrize("size", [96, 100])
def test_discriminator_train_and_eval(size):
    torch_d = ref.randomize(ref.Discriminator(size), seed=size)
    d = Discriminator(size)
    ref.copy_to_mlx(torch_d, d)
    x = mx.random.uniform(-1, 1, shape=(2, size, size, 3), key=mx.random.key(size))
    for train in (True, False):
        torch_d.train(train)
        d.train(train)
        assert_close(d(x), torch_d(ref.nchw(x)).detach().numpy())


def test_discriminator_rejects_wrong_size():
    with pytest.raises(ValueError, match="expects 96x96"):
        Discriminator(96)(mx.zeros((1, 64, 64, 3)))
