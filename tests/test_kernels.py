"""The native multi-threaded kernels (``srgan_mlx.networks.kernels``) against MLX's own operations, written out here: forward,
every gradient and the BatchNorm statistics, on the networks' own channel counts and map sizes, also under
``mx.compile``; the fused Adam against ``mlx.optimizers.Adam``; the same bits whatever the number of threads."""

import os
import subprocess
import sys

import numpy as np
import pytest

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten

from srgan_mlx import environment
from srgan_mlx import native
from srgan_mlx.networks import kernels
from srgan_mlx.networks.discriminator import Discriminator
from srgan_mlx.networks.generator import Generator

pytestmark = pytest.mark.skipif(native.extension() is None, reason=f"no native extension: {native.unavailable_reason()}")
EPS = 1e-5


def ext():
    return native.extension()


def close(a, b, what, rtol=2e-5):
    """Equal to float32 rounding, relative to the largest magnitude of the reference."""
    a, b = np.array(a), np.array(b)
    assert a.shape == b.shape, what
    np.testing.assert_allclose(a, b, atol=rtol * max(np.abs(b).max(), 1e-6), rtol=0, err_msg=what)


def reference_norm_act(x, gamma, beta, activation, slope, alpha, residual):
    """BatchNorm on batch statistics (biased variance), then the activation, then the residual: MLX ops."""
    mean = mx.mean(x, axis=(0, 1, 2))
    var = mx.mean(mx.square(x - mean), axis=(0, 1, 2))
    z = (x - mean) / mx.sqrt(var + EPS) * gamma + beta
    if activation == "prelu":
        z = mx.where(z > 0, z, z * slope)
    elif activation == "leaky":
        z = mx.where(z > 0, z, z * alpha)
    return (z if residual is None else z + residual), mean, var


def away_from_the_kink(rng, shape, gamma, beta):
    """Inputs whose normalised values z = gamma * xhat + beta all keep |z| > 0.01: where z is ~0 the activation's
    branch depends on the last bit of z, and the two computations may take different ones."""
    x = rng.normal(size=shape)
    x = (x - x.mean(axis=(0, 1, 2))) / x.std(axis=(0, 1, 2))
    z = x * gamma + beta
    x = np.where(np.abs(z) < 0.01, x + np.sign(z + 1e-12) * 0.03 / gamma, x)
    return (2.0 * x + 0.5).astype(np.float32)


SHAPES = [  # (batch, side, channels) of the layers that use the kernel: generator body, discriminator
    (4, 24, 64), (2, 48, 64), (2, 48, 128), (2, 24, 128), (2, 24, 256), (2, 12, 256), (2, 12, 512), (2, 6, 512),
]


@pytest.mark.parametrize("n, side, channels", SHAPES)
@pytest.mark.parametrize("activation, residual", [("none", True), ("prelu", False), ("leaky", False)])
def test_norm_act_forward_and_gradients(n, side, channels, activation, residual):
    rng = np.random.default_rng(channels + side)
    gamma = rng.uniform(0.5, 1.5, channels)
    beta = rng.normal(0, 0.5, channels)
    x = mx.array(away_from_the_kink(rng, (n, side, side, channels), gamma, beta))
    gamma, beta = mx.array(gamma.astype(np.float32)), mx.array(beta.astype(np.float32))
    slope = mx.array(rng.uniform(0.05, 0.4, channels).astype(np.float32))
    res = mx.array(rng.normal(size=x.shape).astype(np.float32)) if residual else None
    cot = mx.array(rng.normal(size=x.shape).astype(np.float32))
    prelu = slope if activation == "prelu" else None

    def native(x, gamma, beta, slope, res):
        return ext().norm_act(x, gamma, beta, activation, slope if prelu is not None else None, 0.2, EPS, res)

    def reference(x, gamma, beta, slope, res):
        return reference_norm_act(x, gamma, beta, activation, slope, 0.2, res)

    for name, got, want in zip(("y", "mean", "var"), native(x, gamma, beta, slope, res),
                               reference(x, gamma, beta, slope, res)):  # fmt: skip
        close(got, want, name)
    args = (x, gamma, beta, slope, res if residual else mx.zeros_like(x))
    argnums = (0, 1, 2, 3, 4)

    def loss(f):
        return lambda *a: mx.sum(f(*a)[0] * cot)

    got = mx.compile(mx.grad(loss(native), argnums=argnums))(*args)
    want = mx.grad(loss(reference), argnums=argnums)(*args)
    for name, g, w in zip(("dx", "dgamma", "dbeta", "dslope", "dresidual"), got, want):
        if name == "dslope" and activation != "prelu":
            continue
        close(g, w, name, rtol=1e-4)  # sums over up to 36,864 rows


@pytest.mark.parametrize("shape, activation, alpha, shuffle", [
    ((2, 24, 24, 256), "prelu", 0.0, 2),  # generator upsampling: 24 -> 48
    ((1, 48, 48, 256), "prelu", 0.0, 2),  # 48 -> 96
    ((2, 24, 24, 64), "prelu", 0.0, 1),  # generator head
    ((2, 96, 96, 64), "leaky", 0.2, 1),  # discriminator's first layer
    ((2, 96, 96, 64), "leaky", 0.0, 1),  # VGG19's ReLU
    ((4, 1024), "leaky", 0.2, 1),  # the dense layer
])  # fmt: skip
def test_activation_and_pixel_shuffle(shape, activation, alpha, shuffle):
    rng = np.random.default_rng(shape[-1] + shuffle)
    x = mx.array(rng.normal(size=shape).astype(np.float32))
    channels = shape[-1] // shuffle**2
    slope = mx.array(rng.uniform(0.05, 0.4, channels).astype(np.float32))

    def reference(x, slope):
        if shuffle > 1:  # PyTorch's order: output channel c at sub-pixel (i, j) is input channel c*r*r + i*r + j
            n, h, w, _ = x.shape
            x = x.reshape(n, h, w, channels, shuffle, shuffle).transpose(0, 1, 4, 2, 5, 3)
            x = x.reshape(n, h * shuffle, w * shuffle, channels)
        return mx.where(x > 0, x, x * (slope if activation == "prelu" else alpha))

    def native(x, slope):
        return ext().activation(x, activation, slope if activation == "prelu" else None, alpha, shuffle)

    want = reference(x, slope)
    close(native(x, slope), want, "y", rtol=0)
    cot = mx.array(rng.normal(size=want.shape).astype(np.float32))
    got = mx.compile(mx.grad(lambda x, s: mx.sum(native(x, s) * cot), argnums=(0, 1)))(x, slope)
    want = mx.grad(lambda x, s: mx.sum(reference(x, s) * cot), argnums=(0, 1))(x, slope)
    close(got[0], want[0], "dx", rtol=0)
    if activation == "prelu":
        close(got[1], want[1], "dslope", rtol=1e-4)


@pytest.mark.parametrize("shape", [(2, 96, 96, 64), (2, 48, 48, 128), (2, 12, 12, 512), (1, 7, 9, 3)])
def test_max_pool(shape):
    """Forward equals the maximum of each 2x2 window; the gradient goes to that maximum (distinct values)."""
    rng = np.random.default_rng(shape[1])
    x = mx.array(rng.permutation(np.prod(shape)).reshape(shape).astype(np.float32))
    h, w = shape[1] // 2, shape[2] // 2
    windows = np.array(x)[:, : 2 * h, : 2 * w].reshape(shape[0], h, 2, w, 2, shape[3])
    close(ext().max_pool2(x), windows.max(axis=(2, 4)), "y", rtol=0)
    cot = mx.array(rng.normal(size=(shape[0], h, w, shape[3])).astype(np.float32))
    got = mx.compile(mx.grad(lambda x: mx.sum(ext().max_pool2(x) * cot)))(x)
    want = mx.grad(lambda x: mx.sum(nn.MaxPool2d(2, 2)(x) * cot))(x)
    close(got, want, "dx", rtol=0)


@pytest.mark.parametrize("bias_correction", [False, True])
def test_fused_adam_equals_mlx_adam(bias_correction):
    """Three updates of a nested tree (dicts and lists) with a learning-rate schedule: parameters and moments equal
    MLX's Adam to float rounding, and the state has the same layout (checkpoints move between them). The large
    array takes the native update, the small ones MLX's."""
    rng = np.random.default_rng(0)

    def tree():
        return {"a": mx.array(rng.normal(size=(kernels.NATIVE_ADAM_SIZE // 64 + 3, 64)).astype(np.float32)),
                "blocks": [{"w": mx.array(rng.normal(size=(5,)).astype(np.float32))} for _ in range(3)]}  # fmt: skip

    params = tree()
    schedule = optim.step_decay(1e-2, 0.5, 2)
    ours = kernels.Adam(schedule, [0.8, 0.99], bias_correction=bias_correction)
    theirs = optim.Adam(schedule, [0.8, 0.99], bias_correction=bias_correction)
    p_ours, p_theirs = params, params
    for _ in range(3):
        grads = tree()
        p_ours = ours.apply_gradients(grads, p_ours)
        p_theirs = theirs.apply_gradients(grads, p_theirs)
    state_ours, state_theirs = dict(tree_flatten(ours.state)), dict(tree_flatten(theirs.state))
    assert state_ours.keys() == state_theirs.keys()
    for key in state_theirs:
        close(state_ours[key], state_theirs[key], key, rtol=1e-6)
    for (key, a), (_, b) in zip(tree_flatten(p_ours), tree_flatten(p_theirs)):
        close(a, b, key, rtol=1e-6)


@pytest.mark.parametrize("network", ["generator", "discriminator"])
def test_networks_train_mode_equal_the_mlx_path(network, monkeypatch):
    """A training-mode forward and backward of each network, native kernels against SRGAN_MLX_KERNELS=0:
    outputs, every parameter gradient and the BatchNorm running statistics after it."""
    rng = np.random.default_rng(1)
    mx.random.seed(0)
    if network == "generator":
        model, x = Generator(4, num_blocks=3, channels=64), rng.uniform(0, 1, (2, 24, 24, 3))
    else:
        model, x = Discriminator(96), rng.uniform(-1, 1, (2, 96, 96, 3))
    x = mx.array(x.astype(np.float32))
    start = model.parameters()

    def run():
        model.update(start)
        out, grads = nn.value_and_grad(model, lambda x: mx.sum(mx.sin(model(x))))(x)
        mx.eval(out, grads, model.parameters())
        return out, dict(tree_flatten(grads)), dict(tree_flatten(model.parameters()))

    native = run()
    monkeypatch.setenv(environment.KERNELS, "0")
    plain = run()
    close(native[0], plain[0], "output", rtol=1e-4)
    largest = max(float(np.abs(np.array(g)).max()) for g in plain[1].values())
    for key in plain[1]:
        if before_norm(key):  # BatchNorm removes a constant: these gradients are 0 up to rounding, in both
            assert float(np.abs(np.array(plain[1][key])).max()) < 1e-3 * largest, key
            continue
        close(native[1][key], plain[1][key], key, rtol=2e-3)  # gradients through up to 19 layers
    for key in plain[2]:
        if "running" in key:
            close(native[2][key], plain[2][key], key, rtol=1e-5)


def before_norm(key: str) -> bool:
    """The bias of a convolution that BatchNorm follows (residual blocks, the body's last conv, D's convs 1-7)."""
    return key.endswith(".bias") and (
        key.startswith(("blocks.", "body_conv.")) or (key.startswith("convs.") and not key.startswith("convs.0."))
    )


THREADS_SCRIPT = """
import hashlib, numpy as np, srgan_mlx, mlx.core as mx
from srgan_mlx import native
rng = np.random.default_rng(0)
x = mx.array(rng.normal(size=(4, 24, 24, 64)).astype(np.float32))
g, b, s = (mx.array(rng.uniform(0.5, 1.5, 64).astype(np.float32)) for _ in range(3))
cot = mx.array(rng.normal(size=x.shape).astype(np.float32))
f = lambda x, g, b, s: mx.sum(native.extension().norm_act(x, g, b, "prelu", s)[0] * cot)
grads = mx.grad(f, argnums=(0, 1, 2, 3))(x, g, b, s)
print(hashlib.sha256(b"".join(np.array(a).tobytes() for a in grads)).hexdigest())
"""


def test_same_bits_whatever_the_number_of_threads():
    digests = set()
    for threads in ("1", "2", "3"):
        env = {**os.environ, "OMP_NUM_THREADS": threads}
        out = subprocess.run([sys.executable, "-c", THREADS_SCRIPT], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        digests.add(out.stdout.strip())
    assert len(digests) == 1


@pytest.mark.parametrize("shape", [(16, 24, 24, 64), (32, 48, 48, 128), (4, 3), (1, 1, 1, 7)])
def test_channel_sum_is_the_bias_gradient(shape):
    """The convolutions' bias gradient: the sum over every axis but the last, against MLX's, and its own gradient."""
    rng = np.random.default_rng(shape[-1])
    x = mx.array(rng.normal(size=shape).astype(np.float32))
    close(ext().channel_sum(x), mx.sum(x, axis=tuple(range(x.ndim - 1))), "sum", rtol=1e-5)
    cot = mx.array(rng.normal(size=shape[-1:]).astype(np.float32))
    got = mx.grad(lambda x: mx.sum(ext().channel_sum(x) * cot))(x)
    close(got, mx.broadcast_to(cot, shape), "gradient", rtol=0)
