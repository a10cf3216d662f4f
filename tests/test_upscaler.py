"""The Python API: ``srgan_mlx.Upscaler`` on PIL images and arrays, against the generator and the command line."""

import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from test_picture import make_inputs

import srgan_mlx
from srgan_mlx.cli import main
from srgan_mlx.errors import UserError
from srgan_mlx.files.picture import from_array
from srgan_mlx.upscaling.inference import bytes_per_pixel, receptive_field_radius, super_resolve
from srgan_mlx.upscaling.upscaler import Upscaler, model_label

RNG = np.random.default_rng(3)
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601


def reference(generator, rgb: np.ndarray) -> np.ndarray:
    """The generator's whole-image output for float RGB in [0, 1]."""
    return super_resolve(generator, rgb.astype(np.float32), tile=10_000)


def test_package_import_stays_cheap_and_api_is_lazy():
    code = (
        "import sys, srgan_mlx; assert 'mlx' not in sys.modules and 'PIL' not in sys.modules, 'eager'; "
        "assert 'Upscaler' in dir(srgan_mlx); from srgan_mlx import Upscaler; print(Upscaler.__module__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "srgan_mlx.upscaling.upscaler"
    assert srgan_mlx.Upscaler is Upscaler


def test_float_arrays_are_the_generator_output(tiny_generator):
    generator = tiny_generator(4)
    image = RNG.random((9, 11, 3))
    up = Upscaler(generator)
    for dtype in (np.float32, np.float64):
        out = up(image.astype(dtype))
        assert out.dtype == dtype and out.shape == (36, 44, 3)
        np.testing.assert_allclose(out, reference(generator, image), atol=1e-6)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_arrays_keep_their_dtype(tiny_generator, dtype):
    generator = tiny_generator(4)
    peak = np.iinfo(dtype).max
    image = RNG.integers(0, peak, (9, 11, 3), dtype=dtype, endpoint=True)
    out = Upscaler(generator)(image)
    assert out.dtype == dtype and out.shape == (36, 44, 3)
    expected = np.rint(np.clip(reference(generator, image / peak) * peak, 0, peak))
    assert np.abs(out.astype(np.float64) - expected).max() <= 1  # float32 vs float64 input rounding
    if dtype == np.uint16:
        assert np.any(out % 257)  # not 8-bit values scaled up: 16 bits kept


@pytest.mark.parametrize("shape", [(9, 11), (9, 11, 1)])
def test_gray_arrays_come_back_gray(tiny_generator, shape):
    generator = tiny_generator(4)
    image = RNG.integers(0, 256, shape, dtype=np.uint8)
    out = Upscaler(generator)(image)
    assert out.shape == (36, 44) + shape[2:] and out.dtype == np.uint8
    rgb = reference(generator, np.repeat(image.reshape(9, 11, 1) / 255, 3, axis=2))
    luma = rgb[..., 0] * LUMA[0] + rgb[..., 1] * LUMA[1] + rgb[..., 2] * LUMA[2]
    assert np.abs(out.reshape(36, 44) - np.rint(luma * 255)).max() <= 1


def test_alpha_is_upscaled_separately(tiny_generator):
    generator = tiny_generator(4)
    image = RNG.integers(0, 256, (8, 10, 4), dtype=np.uint8)
    image[:, :5, 3] = 0
    image[:, 5:, 3] = 255
    out = Upscaler(generator)(image)
    assert out.shape == (32, 40, 4)
    assert out[:, :16, 3].max() == 0 and out[:, 24:, 3].min() == 255  # bicubic keeps flat regions flat
    np.testing.assert_allclose(out[..., :3], np.rint(reference(generator, image[..., :3] / 255) * 255), atol=1)
    gray_alpha = Upscaler(generator)(image[..., 2:])
    assert gray_alpha.shape == (32, 40, 2) and gray_alpha[:, :16, 1].max() == 0


def test_pil_images_keep_their_mode(tiny_generator, tmp_path):
    up = Upscaler(tiny_generator(4))
    for name, ((width, height), mode) in make_inputs(tmp_path).items():
        with Image.open(tmp_path / name) as image:
            out = up(image)
        assert isinstance(out, Image.Image)
        assert out.size == (4 * image.width, 4 * image.height), name
        assert out.mode == mode or (name, out.mode) == ("rotated.jpg", "RGB"), name


def test_same_pixels_as_the_command_line(model, tmp_path):
    inputs = make_inputs(tmp_path)
    up = Upscaler(model, max_memory=40 * 2**20)
    for name in ("rgb.png", "rgba.png", "la.png", "l.png", "gray16.png", "p.png"):
        out = tmp_path / f"cli_{name}"
        result = CliRunner().invoke(main, ["upscale", str(tmp_path / name), "--model", model, "-o", str(out),
                                           "--max-memory", "40MB", "--quiet"])
        assert result.exit_code == 0, result.output
        with Image.open(tmp_path / name) as image, Image.open(out) as written:
            api = up(image)
            assert api.mode == written.mode == inputs[name][1], name
            np.testing.assert_array_equal(np.asarray(api), np.asarray(written), err_msg=name)


def test_tile_and_memory_budget_work_as_on_the_command_line(tiny_generator):
    generator = tiny_generator(4)
    picture = from_array(RNG.random((60, 52, 3)).astype(np.float32))  # 3120 pixels

    def tiles(up: Upscaler) -> int:
        totals = []
        up.upscale_picture(picture, on_tile=lambda done, total: totals.append(total))
        return totals[-1]

    assert tiles(Upscaler(generator)) == 1
    assert tiles(Upscaler(generator, tile=7)) == 9 * 8
    margin = 2 * receptive_field_radius(generator)  # a 20 px core: 44 x 44 = 1936 pixels per tile
    assert tiles(Upscaler(generator, max_memory=(20 + margin) ** 2 * bytes_per_pixel(generator))) == 3 * 3


def test_models_by_name_path_or_generator(tiny_generator, model, tmp_path):
    assert Upscaler().label == "srresnet" and Upscaler().scale == 4
    assert Upscaler(model).label == "g"
    checkpoint = tmp_path / "runs" / "step_00000100"
    assert model_label(checkpoint / "generator.safetensors") == "step_00000100"
    checkpoint.mkdir(parents=True)
    (checkpoint / "generator_ema.safetensors").touch()  # a moving average beside it: the checkpoint's name is its
    assert model_label(checkpoint / "generator.safetensors") == "step_00000100 raw"
    assert model_label(checkpoint / "generator_ema.safetensors") == "step_00000100"
    assert model_label(tmp_path / "runs" / "mine") == "mine"
    assert Upscaler(tiny_generator(2), label="blend").label == "blend"
    with pytest.raises(UserError, match=r"unknown model 'srresnett'; shipped models: srresnet, srgan \(or give"):
        Upscaler("srresnett")
    with pytest.raises(UserError, match="nope/g.safetensors: no such file or folder"):
        Upscaler(str(tmp_path / "nope" / "g.safetensors"))


def test_bad_arguments(tiny_generator):
    generator = tiny_generator(4)
    with pytest.raises(ValueError, match="alpha"):
        Upscaler(generator, alpha="nearest")
    with pytest.raises(TypeError, match="PIL image or a numpy array"):
        Upscaler(generator)("photo.png")
    with pytest.raises(ValueError, match="C in 1-4"):
        Upscaler(generator)(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(TypeError, match="int32"):
        Upscaler(generator)(np.zeros((4, 4, 3), np.int32))
    generator.train()
    with pytest.raises(ValueError, match="eval mode"):
        Upscaler(generator)
