"""Benchmark evaluation (Set5, Set14, ...) with the standard SR protocol.

For each HR image: modcrop to a multiple of ``scale``; LR read from a folder or
made with MATLAB-exact bicubic ``imresize(hr, 1/scale)``; SR from the upscaler
(or MATLAB bicubic ``imresize(lr, scale)``), quantised to uint8; PSNR and SSIM
(see :mod:`srgan_mlx.quality.metrics`) on luma with ``scale`` border pixels removed, and the colour
bias (mean SR - HR per RGB channel, 8-bit levels) with the same border; optionally NIQE
(:mod:`srgan_mlx.quality.niqe`) of the SR output with the same border.

:func:`evaluate_images` needs no HR: NIQE of each image as it is, or of its super-resolution.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from ..errors import UserError
from ..files.image_io import IMAGE_SUFFIXES, is_image_file, load_image, read_header
from .imresize import imresize, modcrop, to_uint8
from .metrics import SSIM_WINDOW, colour_bias, psnr, rgb_to_gray, ssim
from .niqe import BLOCK, niqe

PROTOCOL = (
    "LR = MATLAB bicubic imresize(modcrop(HR, s), 1/s) unless given; SR quantised to uint8; "
    "PSNR/SSIM on Y of MATLAB rgb2ycbcr (float, unrounded; gray levels for grayscale HR), "
    "border = s pixels; SSIM = MATLAB ssim_index (11x11 Gaussian, sigma 1.5, K1 0.01, K2 0.03, L 255, valid); "
    "bias_r/g/b = mean SR - HR per RGB channel in 8-bit levels, same border"
)
NIQE_PROTOCOL = (
    "NIQE = the MATLAB release's (Mittal et al. 2013) with its pristine model: Y of MATLAB rgb2ycbcr "
    "rounded (gray levels for grayscale files), 96x96 blocks, two scales"
)

SuperResolve = Callable[[np.ndarray], np.ndarray]
BIAS_KEYS = ("bias_r", "bias_g", "bias_b")
"""Row keys of the colour bias, mean SR - HR per RGB channel (:func:`srgan_mlx.quality.metrics.colour_bias`)."""
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "niqe": False}
"""Which way each quality measure improves."""


def improves(measure: str, value: float, best: float | None) -> bool:
    """Whether ``value`` of ``measure`` beats ``best`` (None: nothing measured yet)."""
    if best is None:
        return True
    return value > best if HIGHER_IS_BETTER[measure] else value < best


class Images(NamedTuple):
    """One evaluated image's pixels as the metrics saw them: HxWx3 uint8 RGB (gray files as R = G = B)."""

    lr: np.ndarray
    sr: np.ndarray
    hr: np.ndarray  # modcropped


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; hidden files are skipped."""
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if is_image_file(p))
    if not files:
        raise UserError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def find_lr(lr_dir: Path, hr_path: Path, scale: int) -> Path:
    """The LR file for ``hr_path``: ``<name>x<scale>.png``, ``<name>x<scale><ext>`` or the same name."""
    names = dict.fromkeys((f"{hr_path.stem}x{scale}.png", f"{hr_path.stem}x{scale}{hr_path.suffix}", hr_path.name))
    for name in names:
        if (lr_dir / name).is_file():
            return lr_dir / name
    raise UserError(f"{lr_dir}: no LR image for {hr_path.name} (looked for {', '.join(names)})")


def pair_inputs(
    files: list[Path], scale: int, lr_dir: Path | None, with_niqe: bool = False
) -> list[tuple[Path, Path | None]]:
    """(HR, LR or None) per image, after checking every header and size, so input errors come before any work."""
    pairs = []
    for hr_path in files:
        width, height = read_header(hr_path)
        width, height = width - width % scale, height - height % scale
        needed, metric = (BLOCK, f"NIQE's {BLOCK}x{BLOCK} block") if with_niqe else (SSIM_WINDOW, "SSIM")
        if min(width, height) - 2 * scale < needed:
            raise UserError(
                f"{hr_path}: too small ({width}x{height} after modcrop) for a {scale}-pixel border and {metric}"
            )
        lr_path = None
        if lr_dir is not None:
            lr_path = find_lr(lr_dir, hr_path, scale)
            size, expected = read_header(lr_path), (width // scale, height // scale)
            if size != expected:
                raise UserError(
                    f"{lr_path}: size {size[0]}x{size[1]}, expected {expected[0]}x{expected[1]} "
                    f"(HR {hr_path.name} modcropped to a multiple of {scale}, divided by {scale})"
                )
        pairs.append((hr_path, lr_path))
    return pairs


def super_resolve_uint8(lr: np.ndarray, scale: int, upscaler: SuperResolve | None, name: str) -> np.ndarray:
    """SR as uint8: ``upscaler`` on [0, 1] floats (rounded like MATLAB's im2uint8), or MATLAB bicubic."""
    if upscaler is None:
        return imresize(lr, float(scale))
    sr = np.asarray(upscaler(lr.astype(np.float32) / 255.0))
    expected = (lr.shape[0] * scale, lr.shape[1] * scale, 3)
    if sr.shape != expected:
        raise UserError(
            f"{name}: upscaler returned shape {sr.shape} for LR {lr.shape}, expected {expected} (check --scale)"
        )
    if not np.all(np.isfinite(sr)):
        raise UserError(f"{name}: upscaler returned non-finite values")
    return to_uint8(sr.astype(np.float64) * 255.0)


def image_niqe(path: Path, image: np.ndarray, border: int) -> float:
    """NIQE of ``image`` (made from ``path``); an image without texture is a :class:`UserError`."""
    try:
        return niqe(image, border)
    except ValueError as exc:
        raise UserError(f"{path}: {exc}") from None


def evaluate_image(
    path: Path, scale: int, lr_path: Path | None, upscaler: SuperResolve | None, with_niqe: bool = False
) -> tuple[dict, Images]:
    """PSNR/SSIM, colour bias (and NIQE of SR) of one HR image against its super-resolved LR (``lr_path`` or
    MATLAB-bicubic), and the images themselves."""
    hr, gray = load_image(path)
    hr = modcrop(hr, scale)
    lr = imresize(hr, 1.0 / scale) if lr_path is None else load_image(lr_path)[0]
    sr = super_resolve_uint8(lr, scale, upscaler, path.name)
    images = Images(lr, sr, hr)
    bias = dict(zip(BIAS_KEYS, colour_bias(sr, hr, scale)))
    if gray:
        hr, sr = hr[..., 0], rgb_to_gray(sr)
    row = {"name": path.stem, "psnr": psnr(hr, sr, scale), "ssim": ssim(hr, sr, scale), **bias}
    if with_niqe:
        row["niqe"] = image_niqe(path, sr, scale)
    return row, images


def means(rows: list[dict]) -> dict:
    """The mean of every metric over the per-image rows."""
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0] if key != "name"}


def evaluate(
    hr_dir: str | os.PathLike,
    scale: int,
    lr_dir: str | os.PathLike | None = None,
    upscaler: SuperResolve | None = None,
    on_image: Callable[[dict, Images], None] | None = None,
    with_niqe: bool = False,
) -> dict:
    """Evaluate every image in ``hr_dir``; ``upscaler`` None means MATLAB bicubic.

    ``upscaler`` maps an HxWx3 float32 LR in [0, 1] to an (sH)x(sW)x3 float32 SR in [0, 1].
    ``on_image(row, images)`` is called with each per-image result as it is ready and the
    :class:`Images` it was computed from. ``with_niqe`` adds the SR outputs' NIQE (``scale``
    border pixels removed) to every row and the mean. Returns ``{"scale", "hr_dir", "lr_dir",
    "protocol", "images": [{"name", "psnr", "ssim", "bias_r", "bias_g", "bias_b"[, "niqe"]}], "mean": {...}}``.
    """
    if scale < 1:
        raise UserError(f"scale must be a positive integer, got {scale}")
    hr_dir = Path(hr_dir)
    lr_dir = Path(lr_dir) if lr_dir is not None else None
    files = list_images(hr_dir)
    if lr_dir is not None and not lr_dir.is_dir():
        raise UserError(f"{lr_dir}: no such folder")
    rows = []
    for hr_path, lr_path in pair_inputs(files, scale, lr_dir, with_niqe):
        row, images = evaluate_image(hr_path, scale, lr_path, upscaler, with_niqe)
        rows.append(row)
        if on_image is not None:
            on_image(row, images)
    return {
        "scale": scale,
        "hr_dir": str(hr_dir),
        "lr_dir": None if lr_dir is None else str(lr_dir),
        "protocol": PROTOCOL + (f"; {NIQE_PROTOCOL}, on SR with the same border" if with_niqe else ""),
        "images": rows,
        "mean": means(rows),
    }


def evaluate_images(
    image_dir: str | os.PathLike,
    border: int = 0,
    scale: int | None = None,
    upscaler: SuperResolve | None = None,
    on_image: Callable[[dict], None] | None = None,
) -> dict:
    """NIQE of every image in ``image_dir``, no reference needed, ``border`` pixels removed per side.

    ``scale`` None scores the images as they are; an integer scores their x``scale`` super-resolution,
    the image being the LR input of ``upscaler`` (None: MATLAB bicubic), quantised to uint8 as in
    :func:`evaluate`. Grayscale files are scored on their gray levels. Returns ``{"image_dir",
    "scale", "border", "protocol", "images": [{"name", "niqe"}], "mean": {"niqe"}}``.
    """
    if border < 0:
        raise UserError(f"border must be >= 0, got {border}")
    if scale is not None and scale < 1:
        raise UserError(f"scale must be a positive integer, got {scale}")
    image_dir = Path(image_dir)
    files = list_images(image_dir)
    for path in files:
        width, height = (side * (scale or 1) - 2 * border for side in read_header(path))
        if min(width, height) < BLOCK:
            steps = ([f"upscaled x{scale}"] if scale else []) + ([f"{border}-pixel border removed"] if border else [])
            size = f"{max(width, 0)}x{max(height, 0)}" + (f" ({', '.join(steps)})" if steps else "")
            raise UserError(f"{path}: too small for NIQE: {size}; NIQE needs at least {BLOCK}x{BLOCK}")
    rows = []
    for path in files:
        image, gray = load_image(path)
        if scale is not None:
            image = super_resolve_uint8(image, scale, upscaler, path.name)
        rows.append({"name": path.stem, "niqe": image_niqe(path, rgb_to_gray(image) if gray else image, border)})
        if on_image is not None:
            on_image(rows[-1])
    what = "each image as it is" if scale is None else f"each image's x{scale} SR (SR quantised to uint8)"
    return {
        "image_dir": str(image_dir),
        "scale": scale,
        "border": border,
        "protocol": f"{NIQE_PROTOCOL}; of {what}, border = {border} pixels",
        "images": rows,
        "mean": means(rows),
    }
