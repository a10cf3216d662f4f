"""Inference folds each eval-mode BatchNorm into the convolution before it (``scale = gamma / sqrt(var + eps)``).
Held here against eval-mode BatchNorm written out in numpy (float64) and against MLX's own ``nn.BatchNorm``, no
PyTorch needed, with running variances near epsilon, where leaving epsilon out or adding it in the wrong place
changes the output several times over."""

import numpy as np
import pytest

import mlx.core as mx
import mlx.nn as nn

from srgan_mlx import environment
from srgan_mlx.native import loader
from srgan_mlx.networks import kernels
from srgan_mlx.networks.generator import Generator
from srgan_mlx.networks.layers import Conv2d

folds = kernels.available() and loader.extension() is not None


def conv_numpy(x: np.ndarray, w: np.ndarray, b: np.ndarray, pad: int) -> np.ndarray:
    """Stride-1 NHWC convolution, (O, k, k, I) weights, float64."""
    k = w.shape[1]
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    height, width = x.shape[1] + 2 * pad - k + 1, x.shape[2] + 2 * pad - k + 1
    out = np.zeros((x.shape[0], height, width, w.shape[0]))
    for i in range(k):
        for j in range(k):
            out += np.einsum("nhwc,oc->nhwo", padded[:, i : i + height, j : j + width], w[:, i, j])
    return out + b


def layer_pair(channels=8, seed=0):
    rng = np.random.default_rng(seed)
    conv = Conv2d(channels, channels, 3, padding=1)
    conv.weight = mx.array(rng.normal(0, 0.2, conv.weight.shape).astype(np.float32))
    conv.bias = mx.array(rng.normal(0, 0.1, conv.bias.shape).astype(np.float32))
    norm = nn.BatchNorm(channels)
    norm.weight = mx.array(rng.uniform(0.5, 1.5, channels).astype(np.float32))
    norm.bias = mx.array(rng.normal(0, 0.3, channels).astype(np.float32))
    norm.running_mean = mx.array(rng.normal(0, 0.2, channels).astype(np.float32))
    norm.running_var = mx.array(rng.uniform(1e-7, 2e-6, channels).astype(np.float32))  # below eps = 1e-5
    conv.eval()
    norm.eval()
    return conv, norm


def reference(conv, norm, x, activation="none", slope=None, residual=None, root=None):
    """Eval-mode BatchNorm, from its definition: (y - mean) / sqrt(var + eps) * gamma + beta (``root``: another
    denominator, to show what a wrong one does)."""
    y = conv_numpy(np.array(x, np.float64), np.array(conv.weight, np.float64), np.array(conv.bias, np.float64), 1)
    var, mean = np.array(norm.running_var, np.float64), np.array(norm.running_mean, np.float64)
    denominator = np.sqrt(var + norm.eps) if root is None else root(var, norm.eps)
    y = (y - mean) / denominator * np.array(norm.weight, np.float64) + np.array(norm.bias, np.float64)
    if activation == "prelu":
        y = np.where(y >= 0, y, y * np.array(slope, np.float64))
    return y if residual is None else y + np.array(residual, np.float64)


@pytest.mark.parametrize("activation, with_residual", [("none", False), ("prelu", False), ("none", True)])
def test_folded_batchnorm_equals_eval_mode_batchnorm(activation, with_residual):
    conv, norm = layer_pair()
    keys = mx.random.split(mx.random.key(3), 3)
    x = mx.random.normal((2, 9, 7, 8), key=keys[0])
    slope = mx.random.uniform(0.05, 0.3, (8,), key=keys[1]) if activation == "prelu" else None
    residual = mx.random.normal((2, 9, 7, 8), key=keys[2]) if with_residual else None
    if folds:
        assert kernels._folding(conv, x, residual)  # the fused, folded oneDNN primitive is what runs
    ours = np.array(kernels.conv_norm(conv, norm, x, activation, slope, residual))
    want = reference(conv, norm, x, activation, slope, residual)
    scale = np.abs(want).max()
    assert np.abs(ours - want).max() <= 1e-5 * scale, np.abs(ours - want).max() / scale


def test_epsilon_matters_at_these_variances():
    """A fold that forgot epsilon, or put it outside the root, would be far outside the tolerance above."""
    conv, norm = layer_pair()
    x = mx.random.normal((2, 9, 7, 8), key=mx.random.key(3))
    want = reference(conv, norm, x)
    for wrong in (lambda var, eps: np.sqrt(var), lambda var, eps: np.sqrt(var) + eps):
        assert np.abs(reference(conv, norm, x, root=wrong) - want).max() > 0.5 * np.abs(want).max()


def test_a_generator_with_tiny_running_variances_equals_its_unfolded_self(monkeypatch):
    """The whole inference path (folded, fused primitives where the extension runs) against the same generator on
    MLX's own operations: ``mx.conv2d`` and ``nn.BatchNorm`` in eval mode."""
    mx.random.seed(5)
    generator = Generator(4, num_blocks=2, channels=16)
    rng = np.random.default_rng(5)
    for norm in [bn for block in generator.blocks for bn in (block.bn1, block.bn2)] + [generator.body_bn]:
        norm.running_mean = mx.array(rng.normal(0, 0.05, 16).astype(np.float32))
        norm.running_var = mx.array(rng.uniform(1e-7, 2e-6, 16).astype(np.float32))
        norm.weight = mx.array(rng.uniform(0.5, 1.5, 16).astype(np.float32) * 1e-3)  # keep activations in range
    generator.eval()
    x = mx.random.uniform(shape=(1, 12, 10, 3), key=mx.random.key(6))
    ours = np.array(generator(x))
    monkeypatch.setenv(environment.CONV, "mlx")
    monkeypatch.setenv(environment.KERNELS, "0")
    plain = np.array(generator(x))
    assert np.abs(ours - plain).max() <= 1e-4 * np.abs(plain).max(), np.abs(ours - plain).max()
