"""Pictures: every common image mode for the RGB model and back, from files, PIL images and arrays."""

import functools

import numpy as np
import pytest
from PIL import Image, ImageCms

from srgan_mlx.errors import UserError
from srgan_mlx.files.picture import Picture, read_picture, resize_bicubic, write_picture

RNG = np.random.default_rng(0)


def _pixels(*shape, dtype=np.uint8):
    return RNG.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)


@functools.cache
def srgb_profile() -> bytes:
    """One sRGB profile (its bytes hold a creation time, so it is made once)."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def palette_with_transparency() -> Image.Image:
    image = Image.fromarray(_pixels(10, 12, 3)).quantize(8)
    image.info["transparency"] = 0
    return image


def make_inputs(folder):
    """One small file per mode people have; returns {name: (size (w, h), expected mode)}."""
    Image.fromarray(_pixels(10, 12, 3)).save(folder / "rgb.png", icc_profile=srgb_profile())
    Image.fromarray(_pixels(10, 12, 4)).save(folder / "rgba.png")
    Image.fromarray(_pixels(10, 12, 2)).save(folder / "la.png")
    Image.fromarray(_pixels(10, 12)).save(folder / "l.png")
    Image.fromarray(_pixels(10, 12, dtype=np.uint16)).save(folder / "gray16.png")
    palette_with_transparency().save(folder / "p.png", transparency=0)
    Image.fromarray(_pixels(10, 12, 4), "CMYK").save(folder / "cmyk.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(_pixels(10, 12, 3)).save(folder / "rotated.jpg", exif=exif)
    return {
        "rgb.png": ((12, 10), "RGB"),
        "rgba.png": ((12, 10), "RGBA"),
        "la.png": ((12, 10), "LA"),
        "l.png": ((12, 10), "L"),
        "gray16.png": ((12, 10), "I;16"),
        "p.png": ((12, 10), "RGBA"),
        "cmyk.jpg": ((12, 10), "RGB"),
        "rotated.jpg": ((10, 12), "RGB"),
    }


def test_read_every_mode(tmp_path):
    for name, (size, mode) in make_inputs(tmp_path).items():
        picture = read_picture(tmp_path / name)
        assert (picture.size, picture.mode) == (size, mode), name
        assert picture.rgb.dtype == np.float32 and picture.rgb.shape == (size[1], size[0], 3)
        assert 0 <= picture.rgb.min() and picture.rgb.max() <= 1
        assert (picture.alpha is not None) == (mode in ("RGBA", "LA")), name
    assert read_picture(tmp_path / "rgb.png").icc_profile == srgb_profile()
    assert read_picture(tmp_path / "cmyk.jpg").icc_profile is None


def test_palette_transparency_becomes_alpha(tmp_path):
    image = palette_with_transparency()
    image.save(tmp_path / "p.png", transparency=0)
    alpha = read_picture(tmp_path / "p.png").alpha
    np.testing.assert_array_equal(alpha == 0, np.asarray(image) == 0)


@pytest.mark.parametrize("name", ["out.png", "out.jpg", "out.webp"])
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "I;16"])
def test_write_round_trip(tmp_path, name, mode):
    rgb = RNG.random((8, 9, 3), dtype=np.float32)
    if mode in ("L", "LA", "I;16"):
        rgb[:] = rgb[:, :, :1]
    alpha = RNG.random((8, 9), dtype=np.float32) if mode in ("RGBA", "LA") else None
    write_picture(tmp_path / name, Picture(rgb, alpha, mode, srgb_profile()), quality=90)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left
    back = read_picture(tmp_path / name)
    assert back.size == (9, 8)
    assert back.icc_profile == srgb_profile()
    if name == "out.png":
        assert back.mode == mode
        tolerance = 0.5 / 65535 if mode == "I;16" else 0.5 / 255 + 1e-6
        np.testing.assert_allclose(back.rgb, rgb, atol=tolerance)
    if name == "out.jpg":
        assert back.alpha is None  # composited onto white


def test_sixteen_bit_gray_keeps_precision(tmp_path):
    gray = np.linspace(0, 65535, 64 * 64).astype(np.uint16).reshape(64, 64)
    Image.fromarray(gray).save(tmp_path / "g.png")
    picture = read_picture(tmp_path / "g.png")
    write_picture(tmp_path / "back.png", picture)
    with Image.open(tmp_path / "back.png") as image:
        np.testing.assert_array_equal(np.asarray(image), gray)


def test_unreadable_files_are_one_line_user_errors(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    (tmp_path / "text.jpg").write_text("hello")
    Image.fromarray(_pixels(64, 64, 3)).save(tmp_path / "cut.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "cut.png").read_bytes()[:200])
    for name in ("bad.png", "text.jpg", "cut.png", "missing.png"):
        with pytest.raises(UserError) as info:
            read_picture(tmp_path / name)
        message = str(info.value)
        assert message.startswith(f"{tmp_path / name}: ") and "\n" not in message


def test_unsupported_output_extension(tmp_path):
    picture = Picture(np.zeros((2, 2, 3), np.float32), None, "RGB")
    with pytest.raises(UserError, match="unsupported output extension"):
        write_picture(tmp_path / "out.gif", picture)


def test_bicubic_alpha_is_clipped():
    plane = np.zeros((6, 6), np.float32)
    plane[:, 3:] = 1
    resized = resize_bicubic(plane, (24, 12))
    assert resized.shape == (12, 24) and resized.min() == 0 and resized.max() == 1
