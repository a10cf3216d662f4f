"""Images as the RGB generator needs them, and back: files, PIL images and arrays of every common kind.

Every input becomes a :class:`Picture`: float32 RGB in [0, 1] for the network,
an optional alpha plane, the mode to give back, and the ICC profile.

* RGB, RGBA: as they are. Palette (P, PA) images become RGBA when they have
  transparency, else RGB; CMYK, YCbCr, LAB and HSV become RGB (the ICC
  profile of a non-RGB image is dropped, since it no longer describes the pixels).
* Grayscale L, LA, 1 and 16-bit (I;16, I): the gray plane is replicated to
  three channels for the model, and the result is turned back into gray with
  the ITU-R 601 luma weights (as PIL's RGB -> L); 16-bit in gives 16-bit out.
* 16-bit colour files (48-bit RGB PNG, 16-bit TIFF): PIL decodes them at 8
  bits per channel and cannot write 16-bit colour, so they come back as 8-bit
  (:attr:`Picture.reduced_depth` says so; ``srgan-mlx upscale`` warns once).
* Arrays (:func:`from_array`): HxW or HxWx1 gray, HxWx2 gray + alpha, HxWx3
  RGB, HxWx4 RGBA; uint8, uint16, or floats in [0, 1]. :func:`to_array` gives
  the same layout and dtype back, so 16-bit colour arrays keep 16 bits.

Files are read and written through :mod:`srgan_mlx.files.image_io` (EXIF
orientation applied, one error wording, atomic writes, format by extension).
JPEG has no alpha channel: transparent images are composited onto white.
JPEG and WebP are 8-bit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
from PIL import Image

from ..defaults import QUALITY
from .image_io import decode, opened, output_format, reduces_depth, write_image

LUMA = np.array([0.299, 0.587, 0.114], np.float32)
"""ITU-R 601 weights used to turn RGB back into gray (PIL's RGB -> L)."""

ARRAY_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
"""The picture mode of an HxWxC array, by C."""

_ROWS = 256
"""Rows converted at a time when quantising, so big images need no full-size temporaries."""


@dataclass
class Picture:
    """An image ready for the generator and the information needed to give it back."""

    rgb: np.ndarray
    """(H, W, 3) float32 in [0, 1]; gray images are replicated to three channels."""
    alpha: np.ndarray | None
    """(H, W) float32 in [0, 1], or None."""
    mode: str
    """The mode to give back: RGB, RGBA, L, LA or I;16."""
    icc_profile: bytes | None = None
    reduced_depth: bool = False
    """The file held 16-bit colour, which PIL decoded to 8 bits."""

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.rgb.shape[1], self.rgb.shape[0]

    @property
    def gray(self) -> bool:
        """Whether to give the picture back as gray (L, LA, I;16)."""
        return self.mode in ("L", "LA", "I;16")


def _to_float(array: np.ndarray, peak: float) -> np.ndarray:
    return np.asarray(array, np.float32) / np.float32(peak)


def gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    """(H, W) -> (H, W, 3), the plane repeated."""
    return np.repeat(gray[:, :, None], 3, axis=2)


def from_pil(image: Image.Image) -> Picture:
    """A PIL image of any common mode as a :class:`Picture` (see the module docstring for the modes)."""
    icc = image.info.get("icc_profile") or None
    mode = image.mode
    if mode in ("1", "L", "LA", "La"):
        image = image.convert("LA" if mode in ("LA", "La") else "L")
        gray = np.asarray(image)
        if image.mode == "LA":
            return Picture(gray_to_rgb(_to_float(gray[:, :, 0], 255)), _to_float(gray[:, :, 1], 255), "LA", icc)
        return Picture(gray_to_rgb(_to_float(gray, 255)), None, "L", icc)
    if mode.startswith("I"):  # I;16, I;16B, I;16L, I (16-bit PNG): keep 16 bits
        gray = _to_float(np.clip(np.asarray(image, np.float32), 0, 65535), 65535)
        return Picture(gray_to_rgb(gray), None, "I;16", icc)
    if mode not in ("RGB", "RGBA"):
        if mode not in ("P", "PA", "RGBa"):
            icc = None  # a CMYK/LAB/YCbCr profile does not describe the RGB result
        transparent = mode in ("PA", "RGBa") or "transparency" in image.info
        image = image.convert("RGBA" if transparent else "RGB")
    pixels = np.asarray(image)
    if image.mode == "RGBA":
        return Picture(_to_float(pixels[:, :, :3], 255), _to_float(pixels[:, :, 3], 255), "RGBA", icc)
    return Picture(_to_float(pixels, 255), None, "RGB", icc)


def read_picture(path: str | os.PathLike, source: BinaryIO | None = None) -> Picture:
    """Read any common image file, upright, as a :class:`Picture`; a bad file is a one-line :class:`UserError`.
    ``source``: read this file object instead, ``path`` only naming it in messages."""
    path = Path(path)
    with opened(path, source) as image:
        reduced = reduces_depth(image)
        upright = decode(image)
    picture = from_pil(upright)
    picture.reduced_depth = reduced
    return picture


def _array_peak(dtype: np.dtype) -> float | None:
    """The value of white for an array dtype: 255, 65535, or None for floats (1.0, no rounding)."""
    if dtype in (np.uint8, np.uint16):
        return float(np.iinfo(dtype).max)
    if np.issubdtype(dtype, np.floating):
        return None
    raise TypeError(f"expected a uint8, uint16 or float image array, got dtype {dtype}")


def from_array(array: np.ndarray) -> Picture:
    """An HxW or HxWxC image array (C = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA) as a :class:`Picture`."""
    array = np.asarray(array)
    planes = array[:, :, None] if array.ndim == 2 else array
    if planes.ndim != 3 or planes.shape[2] not in ARRAY_MODES:
        raise ValueError(f"expected an HxW or HxWxC image array with C in 1-4, got shape {array.shape}")
    peak = _array_peak(array.dtype)
    values = planes.astype(np.float32) if peak is None else _to_float(planes, peak)
    channels = planes.shape[2]
    color = gray_to_rgb(values[:, :, 0]) if channels <= 2 else values[:, :, :3]
    alpha = values[:, :, -1] if channels in (2, 4) else None
    return Picture(np.ascontiguousarray(color), alpha, ARRAY_MODES[channels])


def to_array(picture: Picture, like: np.ndarray) -> np.ndarray:
    """``picture`` in the layout (HxW or HxWxC) and dtype of the array ``like`` it came from."""
    planes = [to_gray(picture.rgb)[:, :, None] if picture.gray else picture.rgb]
    if picture.alpha is not None:
        planes.append(picture.alpha[:, :, None])
    values = np.concatenate(planes, axis=2) if len(planes) > 1 else planes[0]
    if like.ndim == 2:
        values = values[:, :, 0]
    if _array_peak(like.dtype) is None:
        return np.clip(values, 0, 1).astype(like.dtype, copy=False)
    return _quantise(values, like.dtype.type)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W) with the :data:`LUMA` weights."""
    return np.tensordot(rgb, LUMA, axes=([2], [0])).astype(np.float32, copy=False)


def resize_bicubic(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of an (H, W) float plane in [0, 1] to ``size`` = (width, height), clipped to [0, 1]."""
    resized = Image.fromarray(np.ascontiguousarray(plane, np.float32)).resize(size, Image.Resampling.BICUBIC)
    return np.clip(np.asarray(resized), 0, 1)


def resize_picture_bicubic(picture: Picture, size: tuple[int, int]) -> Picture:
    """Every plane of ``picture`` resized bicubically to ``size`` = (width, height)."""
    rgb = np.stack([resize_bicubic(picture.rgb[:, :, c], size) for c in range(3)], axis=2)
    alpha = None if picture.alpha is None else resize_bicubic(picture.alpha, size)
    return Picture(rgb, alpha, picture.mode, picture.icc_profile)


def _quantise(values: np.ndarray, dtype: type) -> np.ndarray:
    """Float in [0, 1] -> rounded integers of ``dtype``, a block of rows at a time."""
    peak = np.iinfo(dtype).max
    out = np.empty(values.shape, dtype)
    for row in range(0, values.shape[0], _ROWS):
        block = values[row : row + _ROWS] * peak
        np.clip(block, 0, peak, out=block)
        out[row : row + _ROWS] = np.rint(block)
    return out


def _composite_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Flatten a transparent image onto white, a block of rows at a time."""
    out = np.empty_like(rgb)
    for row in range(0, rgb.shape[0], _ROWS):
        a = alpha[row : row + _ROWS, :, None]
        out[row : row + _ROWS] = rgb[row : row + _ROWS] * a + (1 - a)
    return out


def flatten(picture: Picture) -> Image.Image:
    """``picture`` as an 8-bit RGB PIL image to look at: gray as gray, transparency composited onto white."""
    rgb = picture.rgb if picture.alpha is None else _composite_on_white(picture.rgb, picture.alpha)
    if picture.gray:
        rgb = gray_to_rgb(to_gray(rgb))
    return Image.fromarray(_quantise(rgb, np.uint8))


def to_pil(picture: Picture, format: str = "PNG") -> Image.Image:
    """The PIL image to write for ``picture`` in ``format`` (PNG, JPEG or WEBP); ``info`` holds its ICC profile."""
    rgb, alpha = picture.rgb, picture.alpha
    if format == "JPEG" and alpha is not None:
        rgb, alpha = _composite_on_white(rgb, alpha), None
    if picture.gray:
        plane = to_gray(rgb)
        if picture.mode == "I;16" and format == "PNG":
            image = Image.fromarray(_quantise(plane, np.uint16))
        else:
            image = Image.fromarray(_quantise(plane, np.uint8))
    else:
        image = Image.fromarray(_quantise(rgb, np.uint8))
    if alpha is not None:
        image.putalpha(Image.fromarray(_quantise(alpha, np.uint8)))
    if picture.icc_profile:
        image.info["icc_profile"] = picture.icc_profile
    return image


def write_picture(path: str | os.PathLike, picture: Picture, quality: int = QUALITY,
                  on_bytes: Callable[[int], None] | None = None) -> None:  # fmt: skip
    """Atomically write ``picture`` to ``path`` in the format its extension names, keeping the ICC profile;
    ``on_bytes(n)``: told of the bytes written."""
    write_image(path, to_pil(picture, output_format(path)), quality, on_bytes)
