"""The oneDNN convolution extension equals mx.conv2d on every layer of the three networks, forward and
both gradients, also under mx.compile; its loader refuses what it must and says why."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mlx.core as mx

from srgan_mlx import environment
from srgan_mlx.errors import UserError
from srgan_mlx.native import loader as native_extension, onednn
from srgan_mlx.networks import layers
from srgan_mlx.networks.devices import conv_path
from srgan_mlx.networks.discriminator import Discriminator, UNetDiscriminator
from srgan_mlx.networks.generator import Generator
from srgan_mlx.networks.vgg import VGG19Features

needs_extension = pytest.mark.skipif(
    native_extension.extension() is None, reason=f"oneDNN extension unavailable: {native_extension.unavailable_reason()}"
)
EPS = float(np.finfo(np.float32).eps)


def layer_shapes():
    """(input shape, weight shape, stride, padding) of every convolution the three networks run: the paper's
    x4 generator on a 24x24 input, the discriminator and VGG19 to relu5_4 on 96x96, batch 2."""
    seen = []

    def record(self, x):
        key = (tuple(x.shape), tuple(self.weight.shape), self.stride[0], self.padding[0])
        if key not in seen:
            seen.append(key)
        return mx.zeros((x.shape[0], *self._out_hw(x), self.weight.shape[0]))

    def out_hw(self, x):
        k = self.weight.shape[1]
        return [(x.shape[i] + 2 * self.padding[0] - k) // self.stride[0] + 1 for i in (1, 2)]

    patch = pytest.MonkeyPatch()
    patch.setattr(layers.Conv2d, "__call__", record)
    patch.setattr(layers.Conv2d, "_out_hw", out_hw, raising=False)
    try:
        Generator(4)(mx.zeros((2, 24, 24, 3)))
        Discriminator(96)(mx.zeros((2, 96, 96, 3)))
        VGG19Features()(mx.zeros((2, 96, 96, 3)), ("relu5_4",))
    finally:
        patch.undo()
    return seen


LAYER_SHAPES = layer_shapes()


def test_every_layer_kind_is_collected():
    kernels_strides = {(w[1], s) for _, w, s, _ in LAYER_SHAPES}
    assert kernels_strides == {(9, 1), (3, 1), (3, 2)}
    # generator 5 (9x9 head, 3x3 body, two 64->256 at 24 and 48 px, 9x9 tail); discriminator 8;
    # VGG19 adds 5 (its 3->64, 64->128, 128->256 and 256->512 layers have the discriminator's shapes)
    assert len(LAYER_SHAPES) == 18, LAYER_SHAPES


def assert_close(ours, reference, terms, what):
    """Equal up to float32 rounding of a sum of ``terms`` products, relative to the largest value."""
    ours, reference = np.array(ours), np.array(reference)
    assert ours.shape == reference.shape, what
    error = np.abs(ours - reference).max()
    allowed = 4 * EPS * np.sqrt(terms) * np.abs(reference).max()
    assert error <= allowed, f"{what}: max error {error:.3g} > {allowed:.3g}"


@needs_extension
@pytest.mark.parametrize("x_shape,w_shape,stride,pad", LAYER_SHAPES, ids=lambda v: str(v).replace(" ", ""))
def test_layer_matches_mx_conv2d(x_shape, w_shape, stride, pad):
    keys = mx.random.split(mx.random.key(sum(x_shape) + sum(w_shape)), 3)
    x = mx.random.normal(x_shape, key=keys[0])
    w = mx.random.normal(w_shape, key=keys[1]) / np.sqrt(np.prod(w_shape[1:]))
    expected = mx.conv2d(x, w, stride=stride, padding=pad)
    cotangent = mx.random.normal(expected.shape, key=keys[2])
    out, k, cin, cout = onednn.conv2d(x, w, stride, pad), w_shape[1], w_shape[3], w_shape[0]
    assert_close(out, expected, k * k * cin, "forward")

    def grads(conv):
        return mx.grad(lambda x, w: (conv(x, w) * cotangent).sum(), argnums=(0, 1))(x, w)

    dx, dw = grads(lambda x, w: onednn.conv2d(x, w, stride, pad))
    ref_dx, ref_dw = grads(lambda x, w: mx.conv2d(x, w, stride=stride, padding=pad))
    assert_close(dx, ref_dx, k * k * cout, "input gradient")
    assert_close(dw, ref_dw, int(np.prod(expected.shape[:3])), "weight gradient")


@needs_extension
@pytest.mark.parametrize("stride", [1, 2])
def test_fused_bias_and_its_gradient(stride):
    keys = mx.random.split(mx.random.key(11 + stride), 4)
    x = mx.random.normal((2, 12, 12, 16), key=keys[0])
    w = mx.random.normal((32, 3, 3, 16), key=keys[1]) * 0.1
    b = mx.random.normal((32,), key=keys[2])
    c = mx.random.normal((2, 12 // stride, 12 // stride, 32), key=keys[3])

    def value_and_grads(conv):
        return mx.value_and_grad(lambda x, w, b: (conv(x, w, b) * c).sum(), argnums=(0, 1, 2))(x, w, b)

    (ours, ours_g) = value_and_grads(lambda x, w, b: onednn.conv2d(x, w, stride, 1, b))
    (ref, ref_g) = value_and_grads(lambda x, w, b: mx.conv2d(x, w, stride=stride, padding=1) + b)
    assert abs(ours.item() - ref.item()) <= 1e-5 * abs(ref).item() + 1e-3
    for got, want, terms in zip(ours_g, ref_g, (9 * 32, 2 * 144 // stride**2, 2 * 144 // stride**2)):
        assert_close(got, want, terms, "gradient")
    with pytest.raises(ValueError, match="bias must be float32 of shape"):
        onednn.conv2d(x, w, stride, 1, mx.zeros((31,)))


@needs_extension
@pytest.mark.parametrize("x_shape,w_shape", [((2, 96, 96, 64), (3, 9, 9, 64)), ((1, 9, 7, 5), (2, 9, 9, 5)),
                                             ((2, 8, 11, 4), (3, 5, 5, 4)), ((1, 10, 10, 6), (4, 7, 7, 6))])
def test_few_outputs_on_pixel_blocks_matches_mx_conv2d(x_shape, w_shape):
    """The generator's 9x9 64->3 tail (and odd sizes, other kernels) computed on 2x2 blocks."""
    keys = mx.random.split(mx.random.key(sum(x_shape)), 3)
    x = mx.random.normal(x_shape, key=keys[0])
    w = mx.random.normal(w_shape, key=keys[1]) / np.sqrt(np.prod(w_shape[1:]))
    k, pad = w_shape[1], w_shape[1] // 2
    expected = mx.conv2d(x, w, padding=pad)
    cotangent = mx.random.normal(expected.shape, key=keys[2])
    assert_close(onednn.conv2d_few_outputs(x, w, pad), expected, k * k * x_shape[3], "forward")

    def grads(conv):
        return mx.grad(lambda x, w: (conv(x, w) * cotangent).sum(), argnums=(0, 1))(x, w)

    dx, dw = grads(lambda x, w: onednn.conv2d_few_outputs(x, w, pad))
    ref_dx, ref_dw = grads(lambda x, w: mx.conv2d(x, w, padding=pad))
    assert_close(dx, ref_dx, 4 * k * k * w_shape[0], "input gradient")
    assert_close(dw, ref_dw, int(np.prod(expected.shape[:3])), "weight gradient")


@needs_extension
@pytest.mark.parametrize("stride,k", [(1, 3), (2, 3), (1, 9)])
def test_compiled_training_step_matches(stride, k):
    """mx.compile over value_and_grad of a two-layer network, against mx.conv2d uncompiled."""
    keys = mx.random.split(mx.random.key(k + stride), 4)
    x = mx.random.normal((2, 20, 20, 8), key=keys[0])
    params = {"a": mx.random.normal((16, k, k, 8), key=keys[1]) * 0.1,
              "b": mx.random.normal((4, 3, 3, 16), key=keys[2]) * 0.1}

    def loss(conv, params, x):
        h = mx.maximum(conv(x, params["a"], stride, k // 2), 0)
        return (conv(h, params["b"], 1, 1) ** 2).mean()

    ours = mx.compile(mx.value_and_grad(lambda p, x: loss(onednn.conv2d, p, x), argnums=(0, 1)))
    reference = mx.value_and_grad(
        lambda p, x: loss(lambda x, w, s, p_: mx.conv2d(x, w, stride=s, padding=p_), p, x), argnums=(0, 1))
    for _ in range(2):  # the second call runs the compiled graph
        (value, (dp, dx)), (ref_value, (ref_dp, ref_dx)) = ours(params, x), reference(params, x)
        assert abs(value.item() - ref_value.item()) <= 1e-5 * abs(ref_value.item())
        for got, want in [(dp["a"], ref_dp["a"]), (dp["b"], ref_dp["b"]), (dx, ref_dx)]:
            assert_close(got, want, 2 * 20 * 20 * 16, "compiled gradient")


@needs_extension
def test_second_order_gradient_matches():
    """The vjps of the backward passes: d/dw of a function of the input gradient."""
    keys = mx.random.split(mx.random.key(7), 3)
    x = mx.random.normal((2, 9, 9, 4), key=keys[0])
    w = mx.random.normal((6, 3, 3, 4), key=keys[1]) * 0.2
    c = mx.random.normal((2, 5, 5, 6), key=keys[2])

    def outer(conv):
        def input_grad_norm(w):
            dx = mx.grad(lambda x: (conv(x, w) * c).sum())(x)
            dw = mx.grad(lambda w_: (conv(x, w_) * c).sum())(w)
            return (dx**2).sum() + (dw**3).sum()

        return mx.grad(input_grad_norm)(w)

    assert_close(outer(lambda x, w: onednn.conv2d(x, w, 2, 1)),
                 outer(lambda x, w: mx.conv2d(x, w, stride=2, padding=1)), 2 * 25 * 9, "second order")


@needs_extension
def test_strided_views_are_read_correctly():
    base = mx.random.normal((2, 6, 10, 12), key=mx.random.key(3))
    x = base.transpose(0, 2, 1, 3)[:, ::2]  # not row-contiguous
    w = mx.random.normal((5, 3, 3, 12), key=mx.random.key(4)) * 0.1
    assert_close(onednn.conv2d(x, w, 1, 1), mx.conv2d(x, w, padding=1), 9 * 12, "view")


@needs_extension
@pytest.mark.parametrize(
    "x,w,message",
    [(mx.zeros((1, 8, 8, 4), mx.float16), mx.zeros((2, 3, 3, 4), mx.float16), "float32 only"),
     (mx.zeros((1, 8, 8, 4)), mx.zeros((2, 3, 3, 5)), "input channels differ"),
     (mx.zeros((1, 8, 8, 4)), mx.zeros((2, 3, 5, 4)), "square kernels only"),
     (mx.zeros((8, 8, 4)), mx.zeros((2, 3, 3, 4)), "must be 4-D")],
)
def test_bad_arguments_are_refused(x, w, message):
    with pytest.raises(ValueError, match=message):
        onednn.conv2d(x, w, 1, 1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the BLAS loader acts on Linux only")
@pytest.mark.parametrize("transpose_a,transpose_b", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul_through_the_loaded_blas_matches_numpy(transpose_a, transpose_b):
    a = np.random.default_rng(0).standard_normal((70, 33) if transpose_a else (33, 70)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((45, 70) if transpose_b else (70, 45)).astype(np.float32)
    a_mx, b_mx = mx.array(a), mx.array(b)
    ours = (a_mx.T if transpose_a else a_mx) @ (b_mx.T if transpose_b else b_mx)
    expected = (a.T if transpose_a else a).astype(np.float64) @ (b.T if transpose_b else b)
    assert np.abs(np.array(ours) - expected).max() <= 8 * EPS * np.sqrt(70) * np.abs(expected).max()


def write_status(tmp_path, monkeypatch, **status):
    path = tmp_path / "_build.json"
    path.write_text(json.dumps(status))
    monkeypatch.setattr(native_extension, "BUILD_STATUS", path)


def test_loader_reports_a_failed_build(tmp_path, monkeypatch):
    monkeypatch.delenv(environment.ONEDNN, raising=False)
    write_status(tmp_path, monkeypatch, built=False, reason="no C++ compiler found")
    assert native_extension._why_not() == "not built: no C++ compiler found"


linux_x86_64 = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.uname().machine != "x86_64", reason="the extension is Linux x86_64 only"
)


@linux_x86_64
def test_loader_refuses_another_mlx(tmp_path, monkeypatch):
    from importlib import metadata

    monkeypatch.delenv(environment.ONEDNN, raising=False)
    write_status(tmp_path, monkeypatch, built=True, mlx_version="0.31.0", libmlx_size=1, libmlx_sha256="x")
    assert f"built for mlx 0.31.0, but mlx {metadata.version('mlx')} is installed" in native_extension._why_not()


@linux_x86_64
def test_loader_refuses_a_different_libmlx(tmp_path, monkeypatch):
    """What happens when mlx-cuda's libmlx.so replaced mlx-cpu's: same version, other file."""
    from importlib import metadata

    monkeypatch.delenv(environment.ONEDNN, raising=False)
    libmlx = native_extension._libmlx_path()
    write_status(tmp_path, monkeypatch, built=True, mlx_version=metadata.version("mlx"),
                 libmlx_size=libmlx.stat().st_size, libmlx_sha256="sha256=not-this-file")
    assert "mlx/lib/libmlx.so in place" in native_extension._why_not()


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("package_manager", [None, "apt-get"])
def test_a_build_without_a_compiler_warns_at_install(tmp_path, package_manager):
    """setup.py with no C++ compiler on PATH: the install goes on, with a framed warning naming the reason, the
    slowdown and the command that fixes it (the compiler from the system's package manager where there is one,
    then the same install again), recorded in the build record; the source tree's build is left alone."""
    tools = tmp_path / "bin"
    tools.mkdir()
    if package_manager:
        (tools / package_manager).write_text("#!/bin/sh\nexit 1\n")
        (tools / package_manager).chmod(0o755)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in (ROOT / "srgan_mlx" / "native").iterdir())
    env = {key: value for key, value in os.environ.items() if key != "CXX"}
    env["PATH"] = str(tools)
    run = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(tmp_path / "lib"),
                          "--build-temp", str(tmp_path / "build")], cwd=ROOT, env=env, capture_output=True, text=True,
                         start_new_session=True)  # fmt: skip  (no terminal: the /dev/tty copy stays out of the way)
    assert run.returncode == 0, run.stderr
    record = json.loads((tmp_path / "lib" / "srgan_mlx" / "native" / "_build.json").read_text())
    again = f"pip install {ROOT}"
    expected = f"{'' if os.geteuid() == 0 else 'sudo '}apt-get install -y g++ && {again}" if package_manager else (
        f"install a C++ compiler (g++ or clang++), then: {again}")
    assert record == {"built": False, "reason": "no C++ compiler found (Debian: apt-get install g++)", "fix": expected}
    assert ("srgan-mlx: WARNING: the native extension was not built (no C++ compiler found (Debian: apt-get install "
            "g++)).\nsrgan-mlx works without it, but upscaling and training on the CPU run about 50x slower.\n"
            f"Fix: {expected}\n") in run.stderr
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (ROOT / "srgan_mlx" / "native").iterdir()) == before


def test_a_build_skipped_on_purpose_says_nothing(tmp_path):
    env = {**os.environ, "SRGAN_MLX_BUILD_ONEDNN": "0"}
    run = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(tmp_path / "lib"),
                          "--build-temp", str(tmp_path / "build")], cwd=ROOT, env=env, capture_output=True, text=True,
                         start_new_session=True)  # fmt: skip
    assert run.returncode == 0 and "WARNING" not in run.stderr, run.stderr
    record = json.loads((tmp_path / "lib" / "srgan_mlx" / "native" / "_build.json").read_text())
    assert record == {"built": False, "reason": "SRGAN_MLX_BUILD_ONEDNN=0"}


@pytest.fixture
def failed_build(tmp_path, monkeypatch):
    """This process as if the install had found no compiler (on Linux x86_64): the extension unavailable, and a
    build record with the fix."""
    if not sys.platform.startswith("linux") or os.uname().machine != "x86_64":
        pytest.skip("the extension is built on Linux x86_64 only")
    fix = "sudo apt-get install -y g++ && pip install -e /src/srgan-mlx"
    write_status(tmp_path, monkeypatch, built=False, reason="no C++ compiler found", fix=fix)
    monkeypatch.setattr(native_extension, "_checked", True)
    monkeypatch.setattr(native_extension, "_module", None)
    monkeypatch.setattr(native_extension, "_reason", "not built: no C++ compiler found")
    monkeypatch.delenv(environment.CONV, raising=False)
    return fix


def test_info_says_what_a_failed_build_costs_and_the_fix(failed_build):
    from click.testing import CliRunner
    from srgan_mlx.cli import main

    result = CliRunner().invoke(main, ["info"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    at = lines.index("onednn: not in use, not built: no C++ compiler found; the CPU runs the pure-MLX 'tuned' "
                     "convolutions")  # fmt: skip
    assert lines[at + 2] == ("  warning: upscaling and training on the CPU run about 50x slower without it; fix: "
                             f"{failed_build}")  # fmt: skip


def test_a_command_that_runs_a_network_warns_once(failed_build, tmp_path, model):
    from click.testing import CliRunner
    from PIL import Image
    from srgan_mlx.cli import main

    Image.new("RGB", (12, 10), (40, 90, 160)).save(tmp_path / "in.png")
    result = CliRunner().invoke(main, ["upscale", str(tmp_path / "in.png"), "--model", model, "--quiet"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "srgan-mlx: warning: the native extension is not in use (not built: no C++ compiler found); upscaling and "
        f"training on the CPU run about 50x slower without it; fix: {failed_build}"
    ]


def test_no_warning_where_the_extension_is_off_on_purpose(failed_build, monkeypatch):
    monkeypatch.setattr(native_extension, "_reason", "disabled by SRGAN_MLX_ONEDNN=0")
    assert native_extension.missing_extension_warning() is None
    monkeypatch.setattr(native_extension, "_reason", "not built: SRGAN_MLX_BUILD_ONEDNN=0")
    assert native_extension.missing_extension_warning() is None
    monkeypatch.setattr(native_extension, "_reason", "built for mlx 0.31.0, but mlx 0.32.4 is installed (reinstall)")
    assert native_extension.missing_extension_warning().endswith(f"fix: {failed_build}")


def test_forcing_an_unavailable_extension_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(native_extension, "_checked", True)
    monkeypatch.setattr(native_extension, "_module", None)
    monkeypatch.setattr(native_extension, "_reason", "not built: no C++ compiler found")
    monkeypatch.setenv(environment.CONV, "onednn")
    with pytest.raises(UserError, match=r"SRGAN_MLX_CONV=onednn: the oneDNN extension is unavailable: not built"):
        conv_path(mx.Device(mx.cpu))
    monkeypatch.delenv(environment.CONV)
    assert conv_path(mx.Device(mx.cpu)) == "tuned"


def test_forcing_onednn_on_the_gpu_is_refused(monkeypatch):
    monkeypatch.setenv(environment.CONV, "onednn")
    with pytest.raises(UserError, match="oneDNN runs on the CPU only"):
        conv_path(mx.Device(mx.gpu, 0))


def test_disabled_extension_falls_back_to_the_tuned_path():
    """SRGAN_MLX_ONEDNN=0 in a fresh process: info says why, and a network runs on the tuned convolutions."""
    env = {**os.environ, environment.ONEDNN: "0"}
    env.pop(environment.CONV, None)
    info = subprocess.run([sys.executable, "-m", "srgan_mlx", "info"], capture_output=True, text=True, env=env)
    assert info.returncode == 0, info.stderr
    assert "convolutions: tuned" in info.stdout
    assert "onednn: not in use, disabled by SRGAN_MLX_ONEDNN=0" in info.stdout
    probe = ("import srgan_mlx, sys, mlx.core as mx; from srgan_mlx.networks.generator import Generator; "
             "from srgan_mlx.native import extension; y = Generator(4, num_blocks=1, channels=8)(mx.zeros((1, 8, 8, 3))); "
             "mx.eval(y); print(y.shape, extension(), 'srgan_mlx.native._ext' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["(1,", "32,", "32,", "3)", "None", "False"]


@needs_extension
def test_onednn_path_sends_every_layer_of_the_networks_to_the_extension(monkeypatch):
    def refuse(self, x, weight):
        raise AssertionError("a layer left the oneDNN path")

    monkeypatch.setenv(environment.CONV, "onednn")
    monkeypatch.setattr(layers.Conv2d, "_tuned_conv", refuse)
    monkeypatch.setattr(layers.Conv2d, "_mx_conv", refuse)
    mx.eval(Generator(4, num_blocks=1, channels=8)(mx.zeros((1, 8, 8, 3))))
    mx.eval(Discriminator(32, base_channels=8)(mx.zeros((1, 32, 32, 3))))
    mx.eval(UNetDiscriminator(base_channels=8)(mx.zeros((1, 32, 32, 3))))
    mx.eval(VGG19Features()(mx.zeros((1, 32, 32, 3)), ("relu5_4",))["relu5_4"])


@needs_extension
def test_extension_loads_in_a_fresh_process_before_mlx():
    """Nothing but srgan_mlx imported: the loader itself brings in libmlx.so and libdnnl first."""
    probe = "import srgan_mlx.native as o; print(o.extension() is not None, o.unavailable_reason())"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "None"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc settings on Linux only")
def test_freed_memory_setting_and_its_opt_out(monkeypatch):
    from srgan_mlx import heap

    assert heap.keep_freed_memory() is True
    monkeypatch.setenv(environment.KEEP_FREED_MEMORY, "0")
    assert heap.keep_freed_memory() is False


@needs_extension
def test_bfloat16_opt_in(monkeypatch):
    """SRGAN_MLX_ONEDNN_BF16=1: bfloat16 products (error ~2^-9 relative) where the processor has the kernels,
    float32 where it has not (then as exact as without the option); each of the three passes is held to what
    oneDNN reports it multiplied in (:func:`srgan_mlx.native.onednn.ran_in_bfloat16`), not to its kernel's name.

    Run on AVX2 (AMD EPYC Zen 3: float32 fallback, ``brgconv:avx2`` and ``jit:avx2`` kernels); the decision rule
    itself is checked on AVX-512, AVX512-BF16 and AMX lines by :func:`test_bfloat16_is_read_from_the_data_types`
    (an AMX Xeon's kernels are ``brgconv:avx512_core_amx``, with no "bf16" in the name)."""
    keys = mx.random.split(mx.random.key(21), 3)
    x = mx.random.normal((2, 10, 10, 32), key=keys[0])
    w = mx.random.normal((16, 3, 3, 32), key=keys[1]) / np.sqrt(9 * 32)
    c = mx.random.normal((2, 10, 10, 16), key=keys[2])

    def value_and_grads(conv):
        out = conv(x, w)
        return [out, *mx.grad(lambda x, w: (conv(x, w) * c).sum(), argnums=(0, 1))(x, w)]

    reference = value_and_grads(lambda x, w: mx.conv2d(x, w, padding=1))
    monkeypatch.setenv(environment.ONEDNN_BF16, "1")
    ours = value_and_grads(lambda x, w: onednn.conv2d(x, w, 1, 1))
    mx.eval(ours)
    listed = native_extension.extension().implementations()
    lines = {}
    for line in listed.splitlines():
        if "10x10 32->16" in line and " bf16:" in line:
            lines[line.split(" ", 1)[0]] = line
    assert set(lines) == {"forward", "backward_data", "backward_weights"}, listed
    for got, want, kind in zip(ours, reference, ("forward", "backward_data", "backward_weights")):
        native = onednn.ran_in_bfloat16(lines[kind])
        error = np.abs(np.array(got) - np.array(want)).max() / np.abs(np.array(want)).max()
        assert (2**-12 < error < 2**-6) if native else error < 1e-5, (error, lines[kind])


@pytest.mark.parametrize("line, bfloat16", [
    # AVX2 (AMD EPYC Zen 3, the lines this test's shapes gave there): no bfloat16 kernels, float32 fallback
    ("forward n2 10x10 32->16 k3 s1 p1 bf16: brgconv:avx2 [f32 x f32]", False),
    ("backward_data n2 10x10 32->16 k3 s1 p1 bf16: brg_fwd:avx2+brgconv:avx2 [f32 x f32]", False),
    ("backward_weights n2 10x10 32->16 k3 s1 p1 bf16: jit:avx2 [f32 x f32]", False),
    # AVX-512 without BF16 (Skylake, Ice Lake): float32 fallback
    ("backward_data n2 10x10 32->16 k3 s1 p1 bf16: brgconv_bwd_d:avx512_core [f32 x f32]", False),
    # AVX512-BF16 (Zen 4/5, Cooper Lake)
    ("forward n2 10x10 32->16 k3 s1 p1 bf16: brgconv:avx512_core_bf16 [bf16 x bf16]", True),
    # AMX (Sapphire Rapids and later): the names that fooled a name-based rule
    ("forward n2 10x10 32->16 k3 s1 p1 bf16: brgconv:avx512_core_amx [bf16 x bf16]", True),
    ("backward_weights n2 10x10 32->16 k3 s1 p1 bf16: brgconv_bwd_w:avx512_core_amx [bf16 x bf16]", True),
    # float32 asked for on an AMX machine, and a name with "bf16" in it that multiplied float32
    ("forward n2 10x10 32->16 k3 s1 p1: brgconv:avx512_core_amx [f32 x f32]", False),
    ("forward n2 10x10 32->16 k3 s1 p1 bf16: jit_bf16:avx512_core_bf16 [f32 x f32]", False),
])  # fmt: skip
def test_bfloat16_is_read_from_the_data_types(line, bfloat16):
    assert onednn.ran_in_bfloat16(line) is bfloat16


def test_a_line_without_data_types_is_refused():
    with pytest.raises(ValueError, match="no operand data types"):
        onednn.ran_in_bfloat16("forward n2 10x10 32->16 k3 s1 p1 bf16: brgconv:avx512_core_bf16")
