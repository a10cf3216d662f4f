"""MATLAB-compatible imresize: bit-exact against the benchmark LR files made by MATLAB.

Without the benchmark images (``SRGAN_MLX_DATA``) the corners of one image still check it: ``tests/data/matlab_corners.npz``
holds two 36x36 HR corners of Set14 ``face.png`` (276x276, a multiple of 2, 3 and 4, so ``modcrop``
keeps it whole) and, for x2, x3 and x4, the pixels of MATLAB's LR file (``LR_bicubic``) at those
corners that the rest of the image cannot reach. Made by ``python tests/test_imresize.py``.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srgan_mlx.quality.imresize import cubic, imresize, modcrop, to_uint8

FIXTURE = Path(__file__).with_name("data") / "matlab_corners.npz"
CORNER = 36  # HR pixels
CORNERS = ("top_left", "bottom_right")
SCALES = (2, 3, 4)


def unreached(scale: int) -> int:
    """LR pixels from a corner whose MATLAB bicubic support stays inside a ``CORNER``-pixel HR corner crop.

    MATLAB centres LR pixel x (1-based) at HR coordinate u = scale*x + (1 - scale)/2, and its
    antialiased kernel reaches 2*scale HR pixels either side: inside the crop while
    u + 2*scale <= CORNER. Beyond the image's own edges it mirrors back into the crop.
    """
    return int((CORNER - 0.5 - 1.5 * scale) // scale)


def corner_crops(data_dir: Path) -> dict[str, np.ndarray]:
    """The fixture, cut from Set14 ``face.png`` and its MATLAB LR files."""
    hr = np.asarray(Image.open(data_dir / "Set14" / "HR" / "face.png"))
    arrays = {"hr_top_left": hr[:CORNER, :CORNER], "hr_bottom_right": hr[-CORNER:, -CORNER:]}
    for scale in SCALES:
        lr = np.asarray(Image.open(data_dir / "Set14" / "LR_bicubic" / f"X{scale}" / f"facex{scale}.png"))
        n = unreached(scale)
        arrays[f"lr_x{scale}_top_left"] = lr[:n, :n]
        arrays[f"lr_x{scale}_bottom_right"] = lr[-n:, -n:]
    return arrays


@pytest.mark.parametrize("corner", CORNERS)
@pytest.mark.parametrize("scale", SCALES)
def test_reproduces_matlab_at_image_corners(scale, corner):
    """Runs in a bare clone: both far edges, mirrored borders, antialiasing, rounding after each pass."""
    with np.load(FIXTURE) as fixture:
        hr, expected = fixture[f"hr_{corner}"], fixture[f"lr_x{scale}_{corner}"]
    n = unreached(scale)
    assert hr.shape == (CORNER, CORNER, 3) and expected.shape == (n, n, 3)
    lr = imresize(hr, 1 / scale)
    np.testing.assert_array_equal(lr[:n, :n] if corner == "top_left" else lr[-n:, -n:], expected)


def test_fixture_is_cut_from_the_matlab_files(data_dir):
    with np.load(FIXTURE) as fixture:
        committed = dict(fixture)
    fresh = corner_crops(data_dir)
    assert committed.keys() == fresh.keys()
    for key, value in fresh.items():
        np.testing.assert_array_equal(committed[key], value, err_msg=key)


@pytest.mark.parametrize("dataset", ["Set5", "Set14"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_reproduces_matlab_lr_files(data_dir, dataset, scale):
    hr_files = sorted((data_dir / dataset / "HR").glob("*.png"))
    assert hr_files
    for hr_path in hr_files:
        hr = np.asarray(Image.open(hr_path))  # bridge.png stays 2-D (grayscale)
        lr_path = data_dir / dataset / "LR_bicubic" / f"X{scale}" / f"{hr_path.stem}x{scale}.png"
        expected = np.asarray(Image.open(lr_path))
        lr = imresize(modcrop(hr, scale), 1 / scale)
        assert lr.dtype == np.uint8
        np.testing.assert_array_equal(lr, expected, err_msg=f"{dataset}/{hr_path.name} x{scale}")


def test_cubic_kernel_values():
    x = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, -0.5])
    np.testing.assert_allclose(cubic(x), [1, 0.5625, 0, -0.0625, 0, 0, 0.5625])


def test_to_uint8_rounds_half_away_from_zero_and_saturates():
    np.testing.assert_array_equal(to_uint8(np.array([0.5, 1.49, 2.5, -0.7, 254.5, 300.0])), [1, 1, 3, 0, 255, 255])


def test_shapes_dtypes_and_constant_images():
    rng = np.random.default_rng(0)
    img = rng.random((13, 10, 3))
    assert imresize(img, 4).shape == (52, 40, 3)
    assert imresize(img, 1 / 3).shape == (5, 4, 3)  # ceil(13/3), ceil(10/3)
    assert imresize(img[..., 0], output_shape=(7, 21)).shape == (7, 21)
    assert imresize(img.astype(np.float32), 2).dtype == np.float64
    constant = np.full((9, 11, 3), 77, np.uint8)
    np.testing.assert_array_equal(imresize(constant, 1 / 2), 77)
    np.testing.assert_allclose(imresize(np.full((9, 11), 0.3), 3), 0.3)


def test_upscale_of_uint8_equals_rounded_float_passes():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)
    rows = to_uint8(imresize(img.astype(np.float64), output_shape=(32, 6)))
    np.testing.assert_array_equal(imresize(img, 4), to_uint8(imresize(rows.astype(np.float64), output_shape=(32, 24))))


def test_bad_arguments():
    img = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError):
        imresize(img)
    with pytest.raises(ValueError):
        imresize(img, 2, output_shape=(8, 8))
    with pytest.raises(ValueError):
        imresize(np.zeros((4, 4), np.int32), 2)


def test_modcrop():
    img = np.zeros((10, 7, 3))
    assert modcrop(img, 4).shape == (8, 4, 3)
    assert modcrop(img[..., 0], 3).shape == (9, 6)


if __name__ == "__main__":
    from conftest import DATA_DIR

    FIXTURE.parent.mkdir(exist_ok=True)
    np.savez_compressed(FIXTURE, **corner_crops(DATA_DIR))
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)", file=sys.stderr)
