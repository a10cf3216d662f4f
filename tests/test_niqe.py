"""NIQE: MATLAB's value on baboon, an independent loop-by-loop reference, invariances, errors."""

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import srgan_mlx
from srgan_mlx.quality.imresize import imresize
from srgan_mlx.quality.metrics import gaussian_window
from srgan_mlx.quality.niqe import WINDOW, WINDOW_SIGMA, features, nearest_index, niqe, pristine_model, shape_tables

PRISTINE_FILE = Path(srgan_mlx.__file__).parent / "quality" / "assets" / "niqe_pris_params.npz"


# An independent reference, written from the MATLAB release's description (computequality.m,
# computefeature.m, estimateaggdparam.m): explicit 2-D window, loops over blocks in MATLAB's
# column-major blkproc order, brute-force search of the shape grid, np.linalg.inv.


def ref_mscn(img):
    x = np.arange(-3, 4, dtype=np.float64)
    window = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * (7 / 6) ** 2))
    window /= window.sum()
    pad = np.pad(img, 3, mode="edge")
    mu, mu2 = np.zeros_like(img), np.zeros_like(img)
    low, high = np.full(img.shape, np.inf), np.full(img.shape, -np.inf)
    for i in range(7):
        for j in range(7):
            v = pad[i : i + img.shape[0], j : j + img.shape[1]]
            mu, mu2 = mu + window[i, j] * v, mu2 + window[i, j] * v * v
            low, high = np.minimum(low, v), np.maximum(high, v)
    sigma = np.sqrt(np.abs(mu2 - mu * mu))
    deviation = np.where(high - low < 1e-9, 0.0, img - mu)  # a constant neighbourhood is its own mean
    return deviation / (sigma + 1)


GRID = np.arange(9801) / 1000 + 0.2
RHO = np.array([math.gamma(2 / a) ** 2 / (math.gamma(1 / a) * math.gamma(3 / a)) for a in GRID])


def ref_aggd(values):
    v = values.ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        left = math.sqrt(np.mean(v[v < 0] ** 2)) if np.any(v < 0) else math.nan
        right = math.sqrt(np.mean(v[v > 0] ** 2)) if np.any(v > 0) else math.nan
        g = left / right if right else math.nan
        r = np.mean(np.abs(v)) ** 2 / np.mean(v**2)
    r = r * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    a = GRID[0 if math.isnan(r) else int(np.argmin((RHO - r) ** 2))]
    factor = math.sqrt(math.gamma(1 / a) / math.gamma(3 / a))
    return a, left * factor, right * factor


def ref_block(block):
    n = block.shape[0]
    a, left, right = ref_aggd(block)
    out = [a, (left + right) / 2]
    rows, cols = np.indices(block.shape)
    for dr, dc in ((0, 1), (1, 0), (1, 1), (-1, 1)):  # circshift(block, [dr dc])
        shifted = block[(rows - dr) % n, (cols - dc) % n]
        a, left, right = ref_aggd(block * shifted)
        out += [a, (right - left) * math.gamma(2 / a) / math.gamma(1 / a), left, right]
    return out


def ref_niqe(y):
    rows, cols = y.shape[0] // 96, y.shape[1] // 96
    y = y[: rows * 96, : cols * 96]
    per_scale = []
    for scale in (1, 2):
        m, b = ref_mscn(y), 96 // scale
        blocks = [m[i * b : (i + 1) * b, j * b : (j + 1) * b] for j in range(cols) for i in range(rows)]
        per_scale.append([ref_block(block) for block in blocks])
        y = imresize(y / 255, 0.5) * 255
    f = np.hstack([np.array(per_scale[0]), np.array(per_scale[1])])
    with np.load(PRISTINE_FILE) as params:
        mu_p, cov_p = params["mu_pris_param"][0], params["cov_pris_param"]
    complete = f[~np.isnan(f).any(axis=1)]
    cov_d = np.cov(complete.T) if len(complete) > 1 else np.zeros((36, 36))
    d = mu_p - np.nanmean(f, axis=0)
    return math.sqrt(d @ np.linalg.inv((cov_p + cov_d) / 2) @ d)


def texture(h, w, seed=0):
    """A textured 8-bit luma image (waves plus noise), as float64."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    base = 128 + 60 * np.sin(xx / 7.0 + 2 * np.sin(yy / 13.0)) + 30 * np.cos(yy / 5.0)
    return np.clip(np.round(base + rng.normal(0, 12, (h, w))), 0, 255)


def with_flat_corner(img):
    """``img`` with a constant top-left 110x110 area: the first block is flat at both scales."""
    img = img.copy()
    img[:110, :110] = 100.0
    return img


def test_matches_matlab_on_baboon(data_dir):
    # MATLAB R2021a niqe: 5.72957338 (Y of rgb2ycbcr, rounded; no border). We agree to 5e-7; scoring
    # the +-1e-14 rounding noise of flat neighbourhoods as signed values would give 5.72971.
    path = data_dir / "niqe" / "baboon.png"
    if not path.is_file():
        pytest.skip(f"{path} not found (shared research data)")
    rgb = np.asarray(Image.open(path).convert("RGB"))
    assert niqe(rgb) == pytest.approx(5.72957338, abs=1e-5)


@pytest.mark.parametrize(
    "img",
    [with_flat_corner(texture(200, 300)), texture(250, 230, seed=1), texture(96, 100, seed=2)],
    ids=["flat-block", "crop-leftover", "one-block"],
)
def test_matches_independent_reference(img):
    assert niqe(img) == pytest.approx(ref_niqe(img), rel=1e-9)


def test_flat_block_features_as_matlab():
    f = features(with_flat_corner(texture(192, 288)))
    flat = f[0]  # top-left block, both scales
    assert f.shape == (6, 36)
    assert np.all(flat[[0, 18]] == 0.2)  # MATLAB's min over all-NaN picks the grid's first shape
    assert np.all(np.isnan(flat[[1, 19]]))
    assert not np.isnan(f[1:]).any()


def test_flat_image_is_undefined():
    with pytest.raises(ValueError, match="no 96x96 block has texture"):
        niqe(np.full((200, 200), 50.0))


def test_rgb_scored_on_rounded_y_gray_on_gray_levels():
    rng = np.random.default_rng(3)
    rgb = np.clip(texture(150, 170)[..., None] + rng.normal(0, 20, (150, 170, 3)), 0, 255).astype(np.uint8)
    y = 16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255
    assert niqe(rgb) == niqe(np.floor(y + 0.5))
    gray = texture(150, 170)
    assert niqe(gray.astype(np.uint8)) == niqe(gray) == niqe(gray + 0.4) == niqe(gray - 0.4)
    assert niqe(gray + 0.6) == niqe(gray + 1)


def test_border_and_whole_blocks():
    img = texture(300, 330)
    assert niqe(img, border=5) == niqe(img[5:-5, 5:-5])
    assert niqe(img) == niqe(img[:288, :288])  # what does not fill a 96x96 block is cropped


def test_rotation_by_180_degrees():
    img = with_flat_corner(texture(192, 288))
    assert niqe(img[::-1, ::-1]) == pytest.approx(niqe(img), abs=1e-9)


def test_too_small_and_bad_input():
    with pytest.raises(ValueError, match=r"too small for NIQE \(200x95; NIQE needs at least 96x96\)"):
        niqe(texture(95, 200))
    with pytest.raises(ValueError, match=r"\(94x94 after removing a 3-pixel border"):
        niqe(texture(100, 100), border=3)
    with pytest.raises(ValueError, match="border must be >= 0"):
        niqe(texture(100, 100), border=-1)
    with pytest.raises(ValueError, match="expected an HxWx3 RGB image"):
        niqe(np.zeros((100, 100, 4)))
    assert math.isfinite(niqe(texture(96, 96)))


def test_window_is_matlab_fspecial():
    g = gaussian_window(WINDOW, WINDOW_SIGMA)
    with np.load(PRISTINE_FILE) as params:
        np.testing.assert_allclose(np.outer(g, g), params["gaussian_window"], rtol=0, atol=1e-15)


def test_shape_search_is_matlab_min():
    ratios = shape_tables()[0]
    np.testing.assert_allclose(ratios, RHO, rtol=1e-13)
    assert np.all(np.diff(ratios) > 0)  # nearest_index relies on it
    rng = np.random.default_rng(4)
    midpoints = (ratios[:-1] + ratios[1:]) / 2
    values = np.concatenate([rng.uniform(-0.1, 0.9, 5000), ratios[::97], midpoints[::89], [np.nan]])
    expected = [0 if math.isnan(v) else int(np.argmin((ratios - v) ** 2)) for v in values]
    np.testing.assert_array_equal(nearest_index(ratios, values), expected)


def test_pristine_model_is_shipped():
    mu, cov = pristine_model()
    assert mu.shape == (36,) and cov.shape == (36, 36)
    np.testing.assert_array_equal(cov, cov.T)
    assert np.linalg.eigvalsh(cov).min() > 0
