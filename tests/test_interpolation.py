"""Network interpolation (the --realism dial): endpoints exact, blends linear in every array, shapes checked."""

import numpy as np
import pytest

import mlx.core as mx
from mlx.utils import tree_flatten

from srgan_mlx.errors import UserError
from srgan_mlx.networks.generator import Generator
from srgan_mlx.upscaling.interpolation import interpolate


def arrays(generator):
    return {k: np.array(v) for k, v in tree_flatten(generator.parameters())}


@pytest.fixture
def pair(tiny_generator):
    return tiny_generator(seed=1), tiny_generator(seed=2)


def test_endpoints_are_the_two_generators_exactly(pair):
    a, b = pair
    x = mx.random.uniform(shape=(1, 10, 12, 3), key=mx.random.key(0))
    for realism, expected in ((0.0, a), (1.0, b)):
        blended = interpolate(a, b, realism)
        assert not blended.training
        assert all(np.array_equal(v, arrays(expected)[k]) for k, v in arrays(blended).items())
        assert np.array_equal(np.array(blended(x)), np.array(expected(x)))


@pytest.mark.parametrize("realism", [0.25, 0.5, 0.75])
def test_every_array_is_the_weighted_mean(pair, realism):
    a, b = pair
    blended, wa, wb = arrays(interpolate(a, b, realism)), arrays(a), arrays(b)
    assert blended.keys() == wa.keys()
    running = [k for k in blended if "running" in k]
    assert running, "BatchNorm statistics must be blended too"
    for key, value in blended.items():
        np.testing.assert_allclose(value, (1 - realism) * wa[key] + realism * wb[key], rtol=1e-6, atol=1e-7)
    assert not np.array_equal(blended[running[0]], wa[running[0]])


def test_shapes_and_range_are_checked(pair):
    a, _ = pair
    other = Generator(4, num_blocks=3, channels=16)
    with pytest.raises(UserError, match="different shapes"):
        interpolate(a, other, 0.5)
    with pytest.raises(UserError, match="between 0 and 1"):
        interpolate(a, a, 1.5)


def saved(generator, path):
    from srgan_mlx.networks.weights_io import save_module

    save_module(path, generator, "generator", generator.config())
    return str(path)


def test_realism_on_the_command_line(pair, tmp_path):
    """upscale --realism R --model A --fidelity-model B: 0 is B's output, 1 is A's, 0.5 the blended network's."""
    from click.testing import CliRunner
    from PIL import Image

    from srgan_mlx.cli import main
    from srgan_mlx.upscaling.upscaler import Upscaler

    fidelity, realistic = pair
    a, b = saved(realistic, tmp_path / "gan.safetensors"), saved(fidelity, tmp_path / "psnr.safetensors")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (14, 11, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    with Image.open(tmp_path / "in.png") as image:
        expected = {0.0: Upscaler(fidelity)(image), 1.0: Upscaler(realistic)(image),
                    0.5: Upscaler(interpolate(fidelity, realistic, 0.5))(image)}
    for realism, want in expected.items():
        out = tmp_path / f"out_{realism}.png"
        result = CliRunner().invoke(main, ["upscale", str(tmp_path / "in.png"), "-o", str(out), "--quiet", "--compare",
                                           "--realism", str(realism), "--model", a, "--fidelity-model", b])
        assert result.exit_code == 0, result.output
        with Image.open(out) as written:
            np.testing.assert_array_equal(np.asarray(written), np.asarray(want))
    assert not np.array_equal(np.asarray(expected[0.0]), np.asarray(expected[1.0]))


def test_realism_needs_the_models_it_blends(pair, tmp_path):
    from click.testing import CliRunner

    from srgan_mlx.cli import main

    result = CliRunner().invoke(main, ["upscale", "x.png", "--realism", "0.5", "--model", "srgan-x8"])
    assert result.exit_code == 1 and "unknown model 'srgan-x8'" in result.output
    result = CliRunner().invoke(main, ["upscale", "x.png", "--realism", "2"])
    assert result.exit_code == 2 and "realism must be between 0 and 1, got 2" in result.output  # the server's words
    other = saved(Generator(4, num_blocks=3, channels=16), tmp_path / "other.safetensors")
    result = CliRunner().invoke(main, ["evaluate", "--images", str(tmp_path), "--realism", "0.5", "--model", other,
                                       "--fidelity-model", saved(pair[0], tmp_path / "psnr.safetensors")])
    assert result.exit_code == 1 and "different shapes" in result.output and "Traceback" not in result.output


def test_half_precision_stays_close_to_float32(pair):
    """--half computes in float16: outputs within a few 8-bit levels of float32, same tiling."""
    from srgan_mlx.files.model_io import with_dtype

    generator = pair[0]
    half = with_dtype(generator, mx.float16)
    assert half is not generator and generator.head.weight.dtype == mx.float32
    assert all(v.dtype == mx.float16 for _, v in tree_flatten(half.parameters()))
    from srgan_mlx.upscaling.inference import super_resolve

    rgb = np.random.default_rng(1).random((20, 17, 3), dtype=np.float32)
    full, reduced = super_resolve(generator, rgb), super_resolve(half, rgb)
    assert reduced.dtype == np.float32
    assert np.abs(full - reduced).max() < 4 / 255 and np.abs(full - reduced).mean() < 0.5 / 255
    np.testing.assert_array_equal(super_resolve(half, rgb, tile=7), reduced)
