"""PSNR/SSIM on luma against straightforward reference computations."""

import math

import numpy as np
import pytest

from srgan_mlx.quality.metrics import luma, psnr, rgb_to_gray, rgb_to_y, ssim


def test_rgb_to_y_matches_matlab_formula():
    pixels = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [10, 200, 30]]], np.uint8)
    expected = [16.0, 235.0, 16 + 65.481, 16 + (65.481 * 10 + 128.553 * 200 + 24.966 * 30) / 255]
    np.testing.assert_allclose(rgb_to_y(pixels)[0], expected)


def test_grayscale_is_compared_on_gray_levels():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    np.testing.assert_allclose(luma(gray), gray)
    np.testing.assert_allclose(rgb_to_gray(np.repeat(gray[..., None], 3, axis=2)), gray)


def test_identical_images():
    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert psnr(img, img, 4) == math.inf
    assert ssim(img, img, 4) == pytest.approx(1.0)


def test_psnr_against_direct_formula():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (20, 24, 3)).astype(np.uint8)
    b = rng.integers(0, 256, (20, 24, 3)).astype(np.uint8)
    ya = 16 + (65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]) / 255
    yb = 16 + (65.481 * b[..., 0] + 128.553 * b[..., 1] + 24.966 * b[..., 2]) / 255
    mse = np.mean((ya[3:-3, 3:-3] - yb[3:-3, 3:-3]) ** 2)
    assert psnr(a, b, 3) == pytest.approx(10 * math.log10(255**2 / mse), rel=1e-12)


def reference_ssim(x, y):
    """Wang et al.'s SSIM, one 11x11 window at a time, with a 2-D Gaussian like fspecial."""
    r = np.arange(11) - 5
    w = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5**2))
    w /= w.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            px, py = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cov = (w * (px - mx) * (py - my)).sum()
            values.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_against_windowed_reference():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (22, 25)).astype(np.uint8)
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    expected = reference_ssim(a[2:-2, 2:-2].astype(float), b[2:-2, 2:-2].astype(float))
    assert ssim(a, b, 2) == pytest.approx(expected, rel=1e-9)
    assert 0 < expected < 1


def test_shape_mismatch_and_too_small():
    with pytest.raises(ValueError):
        psnr(np.zeros((8, 8, 3)), np.zeros((8, 9, 3)))
    with pytest.raises(ValueError):
        ssim(np.zeros((12, 12)), np.zeros((12, 12)), 1)
