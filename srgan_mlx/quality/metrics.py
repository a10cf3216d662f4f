"""PSNR and SSIM on luma, as the standard SR benchmark protocol computes them.

Colour (HxWx3) images are compared on Y of MATLAB's ``rgb2ycbcr``,
``16 + (65.481 R + 128.553 G + 24.966 B) / 255`` on 0-255 values, kept in
float64 without rounding (the BasicSR/EDSR convention). Grayscale (HxW) images
are compared on their gray levels as they are, with no ``rgb2ycbcr``, as the
MATLAB benchmark scripts do for single-channel files (Set14 ``bridge``); this
is what gives the published 25.99 dB for bicubic Set14 x4.
SSIM is Wang et al.'s MATLAB ``ssim_index``: 11x11 Gaussian window (sigma 1.5),
K1 = 0.01, K2 = 0.03, L = 255, 'valid' filtering, no downsampling.
:func:`colour_bias` watches colour, which luma does not see: the mean SR - HR per RGB channel.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_C1 = (0.01 * 255) ** 2
SSIM_C2 = (0.03 * 255) ** 2


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Y (16-235) of an HxWx3 RGB image with 0-255 values, as float64, unrounded."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {img.shape}")
    return 16.0 + img @ Y_WEIGHTS


def rgb_to_gray(img: np.ndarray) -> np.ndarray:
    """Full-range luma (0-255) of an HxWx3 image: ``(Y - 16) * 255 / 219``, i.e. 0.299 R + 0.587 G + 0.114 B.

    Used to compare a colour output against a grayscale reference; R = G = B = v gives v.
    """
    return (rgb_to_y(img) - 16.0) * (255.0 / 219.0)


def luma(img: np.ndarray) -> np.ndarray:
    """What the metrics compare: Y for an HxWx3 image, the gray levels themselves for an HxW one."""
    img = np.asarray(img)
    return img.astype(np.float64) if img.ndim == 2 else rgb_to_y(img)


def _pair(a: np.ndarray, b: np.ndarray, border: int) -> tuple[np.ndarray, np.ndarray]:
    """Both images with ``border`` pixels removed per side, after checking that shapes agree."""
    if np.shape(a) != np.shape(b):
        raise ValueError(f"image shapes differ: {np.shape(a)} vs {np.shape(b)}")
    crop = (slice(border, -border), slice(border, -border)) if border else (slice(None), slice(None))
    return np.asarray(a)[crop], np.asarray(b)[crop]


def psnr(a: np.ndarray, b: np.ndarray, border: int = 0) -> float:
    """PSNR in dB (peak 255) between the lumas (see :func:`luma`); ``inf`` for identical images."""
    ya, yb = map(luma, _pair(a, b, border))
    mse = np.mean((ya - yb) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def colour_bias(sr: np.ndarray, hr: np.ndarray, border: int = 0) -> tuple[float, float, float]:
    """Mean ``sr - hr`` of each RGB channel in 8-bit levels, ``border`` pixels removed per side.

    A colour cast shows as channels far from 0 (a warm cast: R above, B below).
    """
    if np.ndim(sr) != 3 or np.shape(sr)[2] != 3:
        raise ValueError(f"expected HxWx3 RGB images, got shape {np.shape(sr)}")
    a, b = _pair(sr, hr, border)
    difference = a.astype(np.float64) - b.astype(np.float64)
    return tuple(float(v) for v in difference.mean(axis=(0, 1)))


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian; its outer product is MATLAB's ``fspecial('gaussian', size, sigma)``."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of a 2-D array with the 1-D window ``g`` on both axes."""
    rows = sliding_window_view(img, g.size, axis=0) @ g
    return sliding_window_view(rows, g.size, axis=1) @ g


def ssim(a: np.ndarray, b: np.ndarray, border: int = 0) -> float:
    """Mean SSIM between the lumas (MATLAB ``ssim_index`` variant, see module docstring)."""
    x, y = map(luma, _pair(a, b, border))
    if min(x.shape) < SSIM_WINDOW:
        raise ValueError(f"images too small for SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} window after cropping: {x.shape}")
    g = gaussian_window()
    mu_x, mu_y = filter_valid(x, g), filter_valid(y, g)
    var_x = filter_valid(x * x, g) - mu_x**2
    var_y = filter_valid(y * y, g) - mu_y**2
    cov = filter_valid(x * y, g) - mu_x * mu_y
    num = (2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)
    den = (mu_x**2 + mu_y**2 + SSIM_C1) * (var_x + var_y + SSIM_C2)
    return float(np.mean(num / den))
