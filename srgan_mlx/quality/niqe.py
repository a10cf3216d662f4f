"""NIQE, the no-reference naturalness score of Mittal, Soundararajan and Bovik ("Making a 'Completely
Blind' Image Quality Analyzer", IEEE SPL 2013), as the authors' MATLAB release computes it. Lower is
more natural.

1. Luma rounded to integers: Y of MATLAB ``rgb2ycbcr`` for colour, the gray levels for grayscale
   (:func:`srgan_mlx.quality.metrics.luma`, rounded like MATLAB's uint8); ``border`` pixels removed per side;
   then cropped at the bottom/right to whole 96x96 blocks.
2. Two scales: that image, and MATLAB ``imresize(img / 255, 0.5, 'bicubic')`` (antialiased) x 255
   (:mod:`srgan_mlx.quality.imresize`), unrounded.
3. At each scale, MSCN coefficients ``(I - mu) / (sigma + 1)``, ``mu`` and ``sigma`` the local mean and
   standard deviation under a 7x7 Gaussian window (sigma 7/6, replicated borders); ``I - mu`` that is 0
   in exact arithmetic (flat or linear neighbourhoods) is made exactly 0 (see :data:`FLAT`).
4. Per block (96x96, then 48x48 at half scale), 18 features: the shape and mean scale of an asymmetric
   generalised Gaussian (AGGD) fitted to the coefficients, then shape, mean, left and right scale of an
   AGGD fitted to the products of each coefficient with its horizontal, vertical and two diagonal
   neighbours (shifted circularly within the block, as MATLAB's ``circshift``). AGGD fits match moments:
   the shape is the value of the grid 0.2:0.001:10 whose ratio ``G(2/a)^2 / (G(1/a) G(3/a))`` is nearest.
5. Score ``sqrt((mu_p - mu_d) pinv((cov_p + cov_d) / 2) (mu_p - mu_d)^T)`` between the pristine model
   (``mu_p``, ``cov_p``) and the mean and covariance of the image's 36 features over its blocks.

Undefined features are handled as in MATLAB: a block whose coefficients (or products) have no negative
or no positive value gets NaN scales and the grid's first shape, 0.2 (MATLAB's ``min`` of an all-NaN
vector); the mean ignores NaNs per feature (``nanmean``), the covariance drops blocks with any NaN
(``nancov``). Where MATLAB has no answer: with a single complete block the covariance of the image's
features is taken as zero; with none (a flat image), :func:`niqe` raises ``ValueError``.

The pristine model, ``assets/niqe_pris_params.npz``, is the MATLAB release's, as distributed with BasicSR
(``basicsr/metrics/niqe_pris_params.npz``) under the Apache License 2.0 (see ``assets/NOTICE``).
"""

from __future__ import annotations

import math
from functools import cache
from importlib import resources

import numpy as np

from .imresize import imresize, to_uint8
from .metrics import filter_valid, gaussian_window, luma

BLOCK = 96
"""Block side at full scale (48 at half scale), the size the pristine model was fitted with."""
WINDOW = 7
WINDOW_SIGMA = 7 / 6
MSCN_C = 1.0
FLAT = 1e-9
"""``|I - mu|`` below this (gray levels) is rounding noise of a value that is 0 in exact arithmetic (a flat or
linear neighbourhood): it is set to 0, so it counts as neither negative nor positive in the AGGD fits. Left as
+-1e-14, such pixels moved baboon's NIQE by 1.4e-4 away from MATLAB's; any threshold from 1e-12 to 1e-6
gives the same score."""
SHAPE_GRID = 0.2 + 0.001 * np.arange(9801)
"""MATLAB's ``0.2:0.001:10``: the AGGD shapes the fit chooses from."""
NEIGHBOURS = ((0, 1), (1, 0), (1, 1), (-1, 1))
"""``circshift`` offsets (rows, columns): horizontal, vertical, main and anti diagonal neighbours."""
PRISTINE_MODEL = "assets/niqe_pris_params.npz"


@cache
def pristine_model() -> tuple[np.ndarray, np.ndarray]:
    """Mean (36,) and covariance (36, 36) of the features of the MATLAB release's pristine images."""
    with resources.as_file(resources.files(__package__) / PRISTINE_MODEL) as path, np.load(path) as params:
        return params["mu_pris_param"].ravel(), params["cov_pris_param"]


@cache
def shape_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per :data:`SHAPE_GRID` value ``a``: the moment ratio ``G(2/a)^2 / (G(1/a) G(3/a))`` the fit matches,
    ``sqrt(G(1/a) / G(3/a))`` (RMS of one side -> its AGGD scale) and ``G(2/a) / G(1/a)`` (for the mean)."""
    g1, g2, g3 = (np.array([math.gamma(k / a) for a in SHAPE_GRID]) for k in (1, 2, 3))
    return g2**2 / (g1 * g3), np.sqrt(g1 / g3), g2 / g1


def nearest_index(table: np.ndarray, values: np.ndarray) -> np.ndarray:
    """MATLAB's ``[~, i] = min((table - v).^2)`` per value, for an increasing ``table``: the nearest entry,
    the first one on a tie, and 0 for NaN."""
    upper = np.clip(np.searchsorted(table, values), 1, table.size - 1)
    lower = upper - 1
    index = np.where((table[upper] - values) ** 2 < (table[lower] - values) ** 2, upper, lower)
    return np.where(np.isnan(values), 0, index)


def fit_aggd(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Moment-matching AGGD fit of each row of ``samples`` (N, M): shape, mean, left and right scale, each (N,).

    The scales are the RMS of the negative (left) and positive (right) samples times
    ``sqrt(G(1/a) / G(3/a))``; the mean is ``(right - left) G(2/a) / G(1/a)``.
    """
    ratios, to_scale, to_mean = shape_tables()
    squares = samples * samples
    negative, positive = samples < 0, samples > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left_rms = np.sqrt(np.sum(squares, axis=1, where=negative) / negative.sum(axis=1))
        right_rms = np.sqrt(np.sum(squares, axis=1, where=positive) / positive.sum(axis=1))
        skew = left_rms / right_rms
        ratio = np.mean(np.abs(samples), axis=1) ** 2 / np.mean(squares, axis=1)
        ratio = ratio * (skew**3 + 1) * (skew + 1) / (skew**2 + 1) ** 2
    index = nearest_index(ratios, ratio)
    left, right = left_rms * to_scale[index], right_rms * to_scale[index]
    return SHAPE_GRID[index], (right - left) * to_mean[index], left, right


def mscn(image: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients of a 2-D float image (Gaussian 7x7, replicated borders)."""
    window = gaussian_window(WINDOW, WINDOW_SIGMA)

    def local_mean(x: np.ndarray) -> np.ndarray:
        return filter_valid(np.pad(x, WINDOW // 2, mode="edge"), window)

    mu = local_mean(image)
    sigma = np.sqrt(np.abs(local_mean(image * image) - mu * mu))
    deviation = image - mu
    deviation[np.abs(deviation) < FLAT] = 0.0
    return deviation / (sigma + MSCN_C)


def block_features(coefficients: np.ndarray, block: int) -> np.ndarray:
    """The 18 features of each ``block`` x ``block`` tile of ``coefficients``: (tiles, 18), tiles row by row."""
    h, w = coefficients.shape
    tiles = coefficients.reshape(h // block, block, w // block, block).swapaxes(1, 2).reshape(-1, block, block)
    shape, _, left, right = fit_aggd(tiles.reshape(len(tiles), -1))
    columns = [shape, (left + right) / 2]
    for offset in NEIGHBOURS:
        products = tiles * np.roll(tiles, offset, axis=(1, 2))
        columns.extend(fit_aggd(products.reshape(len(tiles), -1)))
    return np.stack(columns, axis=1)


def features(y: np.ndarray) -> np.ndarray:
    """(blocks, 36) features of a 2-D luma image made of whole 96x96 blocks: 18 at full scale, 18 at half."""
    half = imresize(y / 255.0, 0.5) * 255.0
    return np.concatenate([block_features(mscn(y), BLOCK), block_features(mscn(half), BLOCK // 2)], axis=1)


def distance(rows: np.ndarray) -> float:
    """NIQE of the features of an image's blocks, (blocks, 36), against the pristine model."""
    mu_p, cov_p = pristine_model()
    complete = rows[~np.isnan(rows).any(axis=1)]
    if len(complete) == 0:
        raise ValueError("NIQE is undefined: no 96x96 block has texture (flat image?)")
    mu_d = np.nanmean(rows, axis=0)
    cov_d = np.cov(complete, rowvar=False) if len(complete) > 1 else np.zeros_like(cov_p)
    d = mu_p - mu_d
    return float(np.sqrt(d @ np.linalg.pinv((cov_p + cov_d) / 2) @ d))


def niqe(image: np.ndarray, border: int = 0) -> float:
    """NIQE of an HxWx3 RGB (0-255, scored on rounded Y) or HxW grayscale image, ``border`` pixels removed per side.

    Raises ``ValueError`` if what is left is smaller than one 96x96 block, or has no textured block.
    """
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    y = to_uint8(luma(image)).astype(np.float64)
    if border:
        y = y[border:-border, border:-border]
    h, w = y.shape
    if min(h, w) < BLOCK:
        after = f" after removing a {border}-pixel border" if border else ""
        raise ValueError(f"too small for NIQE ({w}x{h}{after}; NIQE needs at least {BLOCK}x{BLOCK})")
    return distance(features(y[: h - h % BLOCK, : w - w % BLOCK]))
