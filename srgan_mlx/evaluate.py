"""Benchmark evaluation (Set5, Set14, ...) with the standard SR protocol.

For each HR image: modcrop to a multiple of ``scale``; LR read from a folder or
made with MATLAB-exact bicubic ``imresize(hr, 1/scale)``; SR from the upscaler
(or MATLAB bicubic ``imresize(lr, scale)``), quantised to uint8; PSNR and SSIM
(see :mod:`srgan_mlx.metrics`) on luma with ``scale`` border pixels removed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import UserError
from .image_io import IMAGE_SUFFIXES, is_image_file, load_image, read_header
from .imresize import imresize, modcrop, to_uint8
from .metrics import SSIM_WINDOW, psnr, rgb_to_gray, ssim

PROTOCOL = (
    "LR = MATLAB bicubic imresize(modcrop(HR, s), 1/s) unless given; SR quantised to uint8; "
    "PSNR/SSIM on Y of MATLAB rgb2ycbcr (float, unrounded; gray levels for grayscale HR), "
    "border = s pixels; SSIM = MATLAB ssim_index (11x11 Gaussian, sigma 1.5, K1 0.01, K2 0.03, L 255, valid)"
)

Upscaler = Callable[[np.ndarray], np.ndarray]


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


def pair_inputs(files: list[Path], scale: int, lr_dir: Path | None) -> list[tuple[Path, Path | None]]:
    """(HR, LR or None) per image, after checking every header and size, so input errors come before any work."""
    pairs = []
    for hr_path in files:
        width, height = read_header(hr_path)
        width, height = width - width % scale, height - height % scale
        if min(width, height) - 2 * scale < SSIM_WINDOW:
            raise UserError(
                f"{hr_path}: too small ({width}x{height} after modcrop) for a {scale}-pixel border and SSIM"
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


def super_resolve_uint8(lr: np.ndarray, scale: int, upscaler: Upscaler | None, name: str) -> np.ndarray:
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


def evaluate_image(path: Path, scale: int, lr_path: Path | None, upscaler: Upscaler | None) -> dict:
    """PSNR/SSIM of one HR image against its super-resolved LR (read from ``lr_path`` or MATLAB-bicubic)."""
    hr, gray = load_image(path)
    hr = modcrop(hr, scale)
    lr = imresize(hr, 1.0 / scale) if lr_path is None else load_image(lr_path)[0]
    sr = super_resolve_uint8(lr, scale, upscaler, path.name)
    if gray:
        hr, sr = hr[..., 0], rgb_to_gray(sr)
    return {"name": path.stem, "psnr": psnr(hr, sr, scale), "ssim": ssim(hr, sr, scale)}


def evaluate(
    hr_dir: str | os.PathLike,
    scale: int,
    lr_dir: str | os.PathLike | None = None,
    upscaler: Upscaler | None = None,
    on_image: Callable[[dict], None] | None = None,
) -> dict:
    """Evaluate every image in ``hr_dir``; ``upscaler`` None means MATLAB bicubic.

    ``upscaler`` maps an HxWx3 float32 LR in [0, 1] to an (sH)x(sW)x3 float32 SR in [0, 1].
    ``on_image`` is called with each per-image result as it is ready. Returns
    ``{"scale", "hr_dir", "lr_dir", "protocol", "images": [{"name", "psnr", "ssim"}], "mean": {"psnr", "ssim"}}``.
    """
    if scale < 1:
        raise UserError(f"scale must be a positive integer, got {scale}")
    hr_dir = Path(hr_dir)
    lr_dir = Path(lr_dir) if lr_dir is not None else None
    files = list_images(hr_dir)
    if lr_dir is not None and not lr_dir.is_dir():
        raise UserError(f"{lr_dir}: no such folder")
    rows = []
    for hr_path, lr_path in pair_inputs(files, scale, lr_dir):
        rows.append(evaluate_image(hr_path, scale, lr_path, upscaler))
        if on_image is not None:
            on_image(rows[-1])
    return {
        "scale": scale,
        "hr_dir": str(hr_dir),
        "lr_dir": None if lr_dir is None else str(lr_dir),
        "protocol": PROTOCOL,
        "images": rows,
        "mean": {key: float(np.mean([row[key] for row in rows])) for key in ("psnr", "ssim")},
    }
