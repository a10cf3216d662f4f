"""``srgan-mlx evaluate``: the paper's bicubic scores, the upscaler contract, one-line errors."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from srgan_mlx.cli import main
from srgan_mlx.errors import UserError
from srgan_mlx.quality.evaluate import evaluate
from srgan_mlx.quality.imresize import imresize
from srgan_mlx.quality.metrics import psnr, ssim
from srgan_mlx.quality.niqe import niqe


def run(*args):
    return CliRunner().invoke(main, ["evaluate", *map(str, args)])


def test_bicubic_set5_x4_matches_paper(data_dir, tmp_path):
    out = tmp_path / "set5.json"
    result = run("--hr", data_dir / "Set5" / "HR", "--bicubic", "--scale", 4, "--json", out)
    assert result.exit_code == 0, result.output
    assert "butterfly" in result.stdout and "mean" in result.stdout
    results = json.loads(out.read_text())
    assert [row["name"] for row in results["images"]] == ["baby", "bird", "butterfly", "head", "woman"]
    assert results["mean"]["psnr"] == pytest.approx(28.43, abs=0.01)
    # MATLAB ssim_index; the paper's 0.8211 came from another SSIM implementation (daala)
    assert results["mean"]["ssim"] == pytest.approx(0.8111, abs=0.001)
    assert results["method"] == "bicubic" and results["scale"] == 4


def test_bicubic_set14_x4_from_lr_files_matches_paper(data_dir, tmp_path):
    out = tmp_path / "set14.json"
    lr_dir = data_dir / "Set14" / "LR_bicubic" / "X4"
    result = run("--hr", data_dir / "Set14" / "HR", "--lr", lr_dir, "--bicubic", "--json", out)
    assert result.exit_code == 0, result.output
    results = json.loads(out.read_text())
    assert len(results["images"]) == 14
    assert results["mean"]["psnr"] == pytest.approx(25.99, abs=0.01)
    assert results["mean"]["ssim"] == pytest.approx(0.7029, abs=0.001)


def save_images(folder, images):
    folder.mkdir()
    for name, pixels in images.items():
        Image.fromarray(pixels).save(folder / name)
    return folder


@pytest.fixture
def small_hr(tmp_path):
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 256, (9, 10, 3)), np.ones((4, 4, 1))).astype(np.uint8)
    return save_images(tmp_path / "hr", {"a.png": smooth[:35, :38], "b.png": smooth[..., 1]})


def nearest(lr):
    return np.repeat(np.repeat(lr, 4, axis=0), 4, axis=1)


def test_upscaler_contract_and_quantisation(small_hr):
    seen = []

    def upscaler(lr):
        assert lr.dtype == np.float32 and lr.ndim == 3 and lr.shape[2] == 3 and 0 <= lr.min() <= lr.max() <= 1
        seen.append(lr.shape)
        return nearest(lr)

    results = evaluate(small_hr, 4, upscaler=upscaler)
    assert seen == [(8, 9, 3), (9, 10, 3)]  # a.png modcropped to 32x36
    hr = np.asarray(Image.open(small_hr / "a.png"))[:32, :36]
    sr = nearest(imresize(hr, 0.25))
    bias = (sr[4:-4, 4:-4].astype(np.float64) - hr[4:-4, 4:-4]).mean(axis=(0, 1))  # per channel, border removed
    assert results["images"][0] == {
        "name": "a", "psnr": psnr(hr, sr, 4), "ssim": ssim(hr, sr, 4),
        "bias_r": pytest.approx(bias[0]), "bias_g": pytest.approx(bias[1]), "bias_b": pytest.approx(bias[2]),
    }  # fmt: skip
    gray = np.asarray(Image.open(small_hr / "b.png"))
    sr_gray = nearest(imresize(gray, 0.25)).astype(np.float64)
    assert results["images"][1]["psnr"] == pytest.approx(psnr(gray, sr_gray, 4), rel=1e-12)
    assert results["mean"]["psnr"] == pytest.approx((results["images"][0]["psnr"] + results["images"][1]["psnr"]) / 2)


def test_colour_bias_measures_a_cast(tmp_path):
    """A model that adds 8 levels of red and takes 5 of blue scores exactly that much more bias than one that
    does not; the table shows it, the JSON means hold it, and it is shown beside PSNR and SSIM."""
    rng = np.random.default_rng(1)
    hr = np.kron(rng.integers(40, 216, (10, 10, 3)), np.ones((4, 4, 1))).astype(np.uint8)  # no clipping below
    folder = save_images(tmp_path / "hr", {"c.png": hr})
    cast = np.array([8, 0, -5]) / 255.0
    plain = evaluate(folder, 4, upscaler=lambda lr: nearest(lr))["mean"]
    warm = evaluate(folder, 4, upscaler=lambda lr: nearest(lr) + cast)["mean"]
    for key, levels in zip(("bias_r", "bias_g", "bias_b"), (8, 0, -5)):
        assert warm[key] - plain[key] == pytest.approx(levels, abs=1e-9)
    assert warm["psnr"] < plain["psnr"]
    out = tmp_path / "r.json"
    result = run("--hr", folder, "--bicubic", "--json", out)
    assert result.exit_code == 0, result.output
    header, first = result.stdout.splitlines()[:2]
    assert header.split() == ["image", "PSNR", "(dB)", "SSIM", "bias", "R", "bias", "G", "bias", "B"]
    row = json.loads(out.read_text())["images"][0]
    assert first.split()[3:] == [format(row[k], "+.2f") for k in ("bias_r", "bias_g", "bias_b")]


def test_upscaler_with_wrong_scale_is_a_user_error(small_hr):
    with pytest.raises(UserError, match="a.png: upscaler returned shape"):
        evaluate(small_hr, 4, upscaler=lambda lr: lr)


def test_model_path(small_hr, tmp_path):
    from srgan_mlx.networks.generator import Generator
    from srgan_mlx.networks.weights_io import save_module

    config = {"scale": 4, "num_blocks": 1, "channels": 8}
    weights = tmp_path / "g.safetensors"
    save_module(weights, Generator(**config), "generator", config)
    result = run("--hr", small_hr, "--model", weights, "--tile", 6)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith("mean")
    result = run("--hr", small_hr, "--model", weights, "--scale", 2)
    assert result.exit_code == 1
    assert "generator upscales x4, but --scale is 2" in result.stderr


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_missing_folder(tmp_path):
    assert_one_line_error(run("--hr", tmp_path / "nope", "--bicubic"), "nope: no such folder")


def test_unreadable_image(small_hr):
    (small_hr / "broken.png").write_bytes(b"not a png")
    assert_one_line_error(run("--hr", small_hr, "--bicubic"), "broken.png: not a readable image")


def test_missing_or_wrong_size_lr(small_hr, tmp_path):
    lr_dir = save_images(tmp_path / "lr", {"ax4.png": np.zeros((8, 9, 3), np.uint8)})
    assert_one_line_error(run("--hr", small_hr, "--lr", lr_dir, "--bicubic"), "no LR image for b.png")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(lr_dir / "b.png")
    assert_one_line_error(run("--hr", small_hr, "--lr", lr_dir, "--bicubic"), "b.png: size 5x5, expected 10x9")


def test_hr_alone_evaluates_the_default_model(small_hr, tmp_path):
    """``--hr DIR`` with no method is the shipped default model, as ``upscale`` (the README's ``evaluate --hr
    Set14/HR --niqe``); two methods are a usage error."""
    bare, named = tmp_path / "bare.json", tmp_path / "named.json"
    result = run("--hr", small_hr, "--json", bare)
    assert result.exit_code == 0, result.output
    assert run("--hr", small_hr, "--model", "srresnet", "--json", named).exit_code == 0
    bare, named = json.loads(bare.read_text()), json.loads(named.read_text())
    assert bare["model"] == "srresnet" and bare["method"] == "srresnet"
    assert bare["images"] == named["images"]
    assert run("--hr", small_hr, "--bicubic", "--model", "x").exit_code == 2


@pytest.fixture
def textured(tmp_path):
    """An RGB and a grayscale image large enough for NIQE after a 4-pixel border."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:130, :150]
    base = 128 + 60 * np.sin(xx / 7 + 2 * np.sin(yy / 13)) + 30 * np.cos(yy / 5)
    rgb = np.clip(base[..., None] + rng.normal(0, 15, (130, 150, 3)), 0, 255).astype(np.uint8)
    return save_images(tmp_path / "textured", {"gray.png": rgb[..., 1], "rgb.png": rgb})


def read_pixels(folder):
    return {name: np.asarray(Image.open(folder / f"{name}.png")) for name in ("gray", "rgb")}


def test_niqe_column_for_sr_outputs(textured, tmp_path):
    out = tmp_path / "r.json"
    result = run("--hr", textured, "--bicubic", "--niqe", "--json", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].split() == [
        "image", "PSNR", "(dB)", "SSIM", "bias", "R", "bias", "G", "bias", "B", "NIQE"
    ]  # fmt: skip
    results = json.loads(out.read_text())
    for row in results["images"]:
        hr = read_pixels(textured)[row["name"]][:128, :148]
        sr = imresize(imresize(hr, 0.25), 4.0)  # a gray file: scored on its gray levels
        assert row["niqe"] == pytest.approx(niqe(sr, border=4), rel=1e-12)
        assert row["psnr"] == pytest.approx(psnr(hr, sr, 4))
    assert results["mean"]["niqe"] == pytest.approx(np.mean([row["niqe"] for row in results["images"]]))
    assert "NIQE" in results["protocol"]


def test_images_scored_as_they_are(textured, tmp_path):
    out = tmp_path / "r.json"
    for border in (0, 3):
        args = ("--border", border) if border else ()
        result = run("--images", textured, *args, "--json", out)
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[0].split() == ["image", "NIQE"]
        results = json.loads(out.read_text())
        pixels = read_pixels(textured)
        assert {row["name"]: row["niqe"] for row in results["images"]} == {
            name: niqe(img, border) for name, img in pixels.items()
        }
        assert results["method"] is None and results["scale"] is None and results["border"] == border


def test_images_upscaled_default_border_is_scale(textured, tmp_path):
    out = tmp_path / "r.json"
    result = run("--images", textured, "--bicubic", "--scale", 2, "--json", out)
    assert result.exit_code == 0, result.output
    results = json.loads(out.read_text())
    pixels = read_pixels(textured)
    expected = {name: pytest.approx(niqe(imresize(img, 2.0), border=2), rel=1e-12) for name, img in pixels.items()}
    assert {row["name"]: row["niqe"] for row in results["images"]} == expected
    assert results["method"] == "bicubic" and results["scale"] == 2 and results["border"] == 2


def test_niqe_errors(small_hr, tmp_path):
    assert_one_line_error(
        run("--images", small_hr), "a.png: too small for NIQE: 38x35; NIQE needs at least 96x96"
    )
    assert_one_line_error(
        run("--images", small_hr, "--bicubic", "--scale", 2),
        "a.png: too small for NIQE: 72x66 (upscaled x2, 2-pixel border removed)",
    )
    assert_one_line_error(
        run("--hr", small_hr, "--bicubic", "--niqe"),
        "a.png: too small (36x32 after modcrop) for a 4-pixel border and NIQE's 96x96 block",
    )
    assert_one_line_error(run("--images", tmp_path / "nope"), "nope: no such folder")
    flat = save_images(tmp_path / "flat", {"flat.png": np.full((100, 100), 7, np.uint8)})
    assert_one_line_error(run("--images", flat), "flat.png: NIQE is undefined: no 96x96 block has texture")


def test_niqe_usage_errors(small_hr):
    for args in (
        ("--hr", small_hr, "--images", small_hr, "--bicubic"),
        ("--bicubic",),
        ("--hr", small_hr, "--bicubic", "--border", 2),
        ("--images", small_hr, "--lr", small_hr),
        ("--images", small_hr, "--bicubic", "--model", "x"),
        ("--images", small_hr, "--tile", 8),
    ):
        assert run(*args).exit_code == 2, args


def test_set14_niqe_as_in_readme(data_dir, tmp_path):
    out = tmp_path / "r.json"
    assert run("--images", data_dir / "Set14" / "HR", "--border", 4, "--json", out).exit_code == 0
    assert json.loads(out.read_text())["mean"]["niqe"] == pytest.approx(4.9236, abs=5e-4)
    assert run("--hr", data_dir / "Set14" / "HR", "--bicubic", "--niqe", "--json", out).exit_code == 0
    assert json.loads(out.read_text())["mean"]["niqe"] == pytest.approx(7.6156, abs=5e-4)


def luma(rgb):
    """MATLAB rgb2ycbcr's Y on 0-255 input, unrounded: written out here, not taken from the metrics module."""
    rgb = rgb.astype(np.float64)
    return 16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255


@pytest.mark.parametrize("scale", [2, 8])
def test_other_scales_remove_a_border_of_the_scale(textured, tmp_path, scale):
    """x2 and x8 (x4 would hide a border fixed at 4): modcrop to the scale, MATLAB bicubic down and up, PSNR on Y
    with ``scale`` pixels off every side, the colour bias on the same pixels; SSIM with that border too."""
    out = tmp_path / "r.json"
    result = run("--hr", textured, "--bicubic", "--scale", scale, "--json", out)
    assert result.exit_code == 0, result.output
    row = next(r for r in json.loads(out.read_text())["images"] if r["name"] == "rgb")
    hr = np.asarray(Image.open(textured / "rgb.png"))
    hr = hr[: hr.shape[0] - hr.shape[0] % scale, : hr.shape[1] - hr.shape[1] % scale]
    sr = imresize(imresize(hr, 1 / scale), float(scale))
    inner = (slice(scale, -scale), slice(scale, -scale))
    mse = np.mean((luma(hr)[inner] - luma(sr)[inner]) ** 2)
    assert row["psnr"] == pytest.approx(10 * np.log10(255**2 / mse), rel=1e-12)
    bias = (sr[inner].astype(np.float64) - hr[inner]).mean(axis=(0, 1))
    assert [row["bias_r"], row["bias_g"], row["bias_b"]] == pytest.approx(list(bias), rel=1e-9, abs=1e-12)
    assert row["ssim"] == pytest.approx(ssim(hr, sr, scale), rel=1e-12)
    assert row["ssim"] != pytest.approx(ssim(hr, sr, 4), rel=1e-6)


@pytest.mark.parametrize("scale", [2, 8])
def test_a_model_of_another_scale(textured, tmp_path, scale, tiny_generator):
    from srgan_mlx.networks.weights_io import save_module

    generator = tiny_generator(scale)
    weights = tmp_path / f"x{scale}.safetensors"
    save_module(weights, generator, "generator", generator.config())
    out = tmp_path / "r.json"
    result = run("--hr", textured, "--model", weights, "--scale", scale, "--json", out)
    assert result.exit_code == 0, result.output
    results = json.loads(out.read_text())
    assert results["scale"] == scale and len(results["images"]) == 2
    other = 2 if scale == 8 else 8
    result = run("--hr", textured, "--model", weights, "--scale", other)
    assert result.exit_code == 1 and f"generator upscales x{scale}, but --scale is {other}" in result.stderr
