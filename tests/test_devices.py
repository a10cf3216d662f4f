"""Device selection and the per-device convolution dispatch: both paths compute the same networks."""

import numpy as np
import pytest

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from srgan_mlx import environment
from srgan_mlx import native
from srgan_mlx.errors import UserError
from srgan_mlx.networks import layers
from srgan_mlx.networks.devices import conv_path, gpu_backend, select_device
from srgan_mlx.networks.discriminator import Discriminator
from srgan_mlx.networks.generator import Generator
from srgan_mlx.networks.vgg import VGG19Features


CPU_DEFAULT = "tuned" if native.unavailable_reason() else "onednn"


def test_default_path_per_device(monkeypatch):
    monkeypatch.delenv(environment.CONV, raising=False)
    assert conv_path(mx.Device(mx.cpu)) == CPU_DEFAULT
    assert conv_path(mx.Device(mx.gpu, 0)) == "mlx"
    monkeypatch.setenv(environment.CONV, "auto")
    assert conv_path(mx.Device(mx.gpu, 0)) == "mlx"


@pytest.mark.parametrize("forced", ["mlx", "tuned", " MLX "])
def test_environment_forces_a_path_on_every_device(monkeypatch, forced):
    monkeypatch.setenv(environment.CONV, forced)
    expected = forced.strip().lower()
    assert conv_path(mx.Device(mx.cpu)) == expected
    assert conv_path(mx.Device(mx.gpu, 0)) == expected


def test_bad_environment_value_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv(environment.CONV, "cudnn")
    with pytest.raises(UserError, match=r"SRGAN_MLX_CONV='cudnn': expected auto, mlx, tuned or onednn"):
        conv_path()


def test_select_device():
    assert select_device("cpu") == mx.Device(mx.cpu)
    expected = mx.gpu if gpu_backend() else mx.cpu
    assert select_device("auto").type == expected
    if gpu_backend() is None:
        with pytest.raises(UserError, match="no usable GPU"):
            select_device("gpu")
    with pytest.raises(UserError, match="unknown device"):
        select_device("tpu")
    select_device("cpu")


def forbid(monkeypatch, *names):
    """Make the tuned forms fail if called, to prove which path a network took."""

    def refuse(*args, **kwargs):
        raise AssertionError("tuned convolution called on the mlx path")

    for name in names:
        monkeypatch.setattr(layers, name, refuse)


def outputs_and_grads(model, x, path, monkeypatch, call=lambda m, x: m(x)):
    """Output and gradients (parameters and input) of sum(out * w) under a forced conv path."""
    monkeypatch.setenv(environment.CONV, path)
    out = call(model, x)
    w = mx.random.normal(out.shape, key=mx.random.key(5))

    def loss(params, x):
        model.update(params)
        return (call(model, x) * w).sum()

    grads = mx.grad(loss, argnums=(0, 1))(model.trainable_parameters(), x)
    mx.eval(out, grads)
    return np.array(out), {k: np.array(v) for k, v in tree_flatten(grads)}


def assert_same(a, b, tol=1e-4):
    """Equal to float rounding, relative to each array's largest value. Gradients that are zero up to
    rounding (a conv bias before BatchNorm: below a thousandth of the largest) must stay that small."""
    out_a, grads_a = a
    out_b, grads_b = b
    assert np.abs(out_a - out_b).max() <= tol * np.abs(out_b).max()
    assert grads_a.keys() == grads_b.keys()
    largest = max(np.abs(g).max() for g in grads_b.values())
    for key in grads_a:
        error, scale = np.abs(grads_a[key] - grads_b[key]).max(), np.abs(grads_b[key]).max()
        assert error <= (tol * scale if scale > 1e-3 * largest else 1e-3 * largest), key


NETWORKS = {
    # 9x9 head and tail (large-kernel path), 16 -> 64 upsampling convs (unequal channels)
    "generator": (lambda: Generator(4, num_blocks=2, channels=16), (2, 12, 12, 3), lambda m, x: m(x)),
    # strided convolutions (their own input gradient)
    "discriminator": (lambda: Discriminator(32, base_channels=16), (2, 32, 32, 3), lambda m, x: m(x)),
    # 3->64 head (unequal channels) and 48x48 maps of 64 channels (image-by-image im2col)
    "vgg": (VGG19Features, (2, 48, 48, 3), lambda m, x: m(x, ("relu2_2",))["relu2_2"]),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_every_path_gives_the_same_numbers(monkeypatch, name):
    make, shape, call = NETWORKS[name]
    mx.random.seed(1)
    model = make()
    if name == "vgg":
        model.unfreeze()
    model.train()
    x = mx.random.uniform(shape=shape, key=mx.random.key(2))
    tuned = outputs_and_grads(model, x, "tuned", monkeypatch, call)
    forbid(monkeypatch, "conv2d_same", "conv2d_strided")
    plain = outputs_and_grads(model, x, "mlx", monkeypatch, call)
    assert_same(tuned, plain)
    if native.extension() is not None:
        assert_same(outputs_and_grads(model, x, "onednn", monkeypatch, call), plain)


def test_tuned_path_uses_the_tuned_forms(monkeypatch):
    monkeypatch.setenv(environment.CONV, "tuned")
    forbid(monkeypatch, "conv2d_same")
    with pytest.raises(AssertionError, match="tuned convolution called"):
        Generator(4, num_blocks=1, channels=8)(mx.zeros((1, 8, 8, 3)))


def test_mlx_path_is_nn_conv2d(monkeypatch):
    monkeypatch.setenv(environment.CONV, "mlx")
    ours = layers.Conv2d(5, 7, 3, stride=2, padding=1)
    theirs = nn.Conv2d(5, 7, 3, stride=2, padding=1)
    theirs.update(ours.parameters())
    x = mx.random.normal((2, 9, 9, 5), key=mx.random.key(0))
    assert np.array_equal(np.array(ours(x)), np.array(theirs(x)))


def test_library_owner_is_the_installed_backend():
    from srgan_mlx.native.backends import backend_packages, library_owner

    packages = backend_packages()
    assert packages, "no MLX backend distribution found"
    if len(packages) == 1:
        assert library_owner() == next(iter(packages))


def test_info_names_devices_paths_and_models(monkeypatch):
    from click.testing import CliRunner

    from srgan_mlx.cli import main

    monkeypatch.delenv(environment.CONV, raising=False)
    result = CliRunner().invoke(main, ["info"])
    assert result.exit_code == 0, result.output
    assert f"convolutions: {CPU_DEFAULT}" in result.output
    assert "onednn: " in result.output and "kernels: " in result.output
    assert "model srresnet: scale 4, num_blocks 16, channels 64" in result.output
    assert ("gpu: none" in result.output) == (gpu_backend() is None)


@pytest.mark.parametrize(
    "owner, warns",
    [("mlx-cuda-13", False), ("mlx-cpu", True), (None, True)],
)
def test_library_note_warns_only_when_the_cuda_library_lost(monkeypatch, owner, warns):
    from srgan_mlx.native import backends

    monkeypatch.setattr(backends, "library_owner", lambda: owner)
    assert backends.library_note({"mlx-cpu": "0.32.4"}) is None
    note = backends.library_note({"mlx-cpu": "0.32.4", "mlx-cuda-13": "0.32.4"})
    assert note.startswith("warning:") == warns
    assert ("pip install --force-reinstall --no-deps mlx-cuda-13==0.32.4" in note) == warns
