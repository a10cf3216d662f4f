"""Reading and writing images as people have them, for the RGB generator.

Every input becomes a :class:`Picture`: float32 RGB in [0, 1] for the network,
an optional alpha plane, the mode to write back, and the ICC profile.

* RGB, RGBA: as they are. Palette (P, PA) images become RGBA when they have
  transparency, else RGB; CMYK, YCbCr, LAB and HSV become RGB (the ICC
  profile of a non-RGB image is dropped, since it no longer describes the pixels).
* Grayscale L, LA, 1 and 16-bit (I;16, I): the gray plane is replicated to
  three channels for the model, and the result is turned back into gray with
  the ITU-R 601 luma weights (as PIL's RGB -> L); 16-bit input gives 16-bit output.
* The EXIF orientation is applied on reading (the output is upright, without
  an orientation tag).

Output format follows the file extension (png, jpg/jpeg, webp). JPEG has no
alpha channel: transparent images are composited onto white. JPEG and WebP
are 8-bit. Writes are atomic.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .atomic import atomic_path
from .errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
"""Files taken as images when a folder is scanned."""
GRAY_MODES = ("1", "L", "LA", "La")
HIGH_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
READ_ERRORS = (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError, SyntaxError)
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
"""Output formats by file extension."""

LUMA = np.array([0.299, 0.587, 0.114], np.float32)
"""ITU-R 601 weights used to turn RGB back into gray (PIL's RGB -> L)."""

_ROWS = 256
"""Rows converted at a time when quantising, so big images need no full-size temporaries."""


@dataclass
class Picture:
    """An image ready for the generator and the information needed to write it back."""

    rgb: np.ndarray
    """(H, W, 3) float32 in [0, 1]; gray images are replicated to three channels."""
    alpha: np.ndarray | None
    """(H, W) float32 in [0, 1], or None."""
    mode: str
    """The mode to write: RGB, RGBA, L, LA or I;16."""
    icc_profile: bytes | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.rgb.shape[1], self.rgb.shape[0]


def _to_float(array: np.ndarray, peak: float) -> np.ndarray:
    return np.asarray(array, np.float32) / np.float32(peak)


def gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    """(H, W) -> (H, W, 3), the plane repeated."""
    return np.repeat(gray[:, :, None], 3, axis=2)


def _open(path: Path) -> Image.Image:
    """Open, decode and orient ``path``; any failure becomes a one-line :class:`UserError`."""
    try:
        with Image.open(path) as image:
            image.load()
            return ImageOps.exif_transpose(image)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image file PIL can read") from None
    except READ_ERRORS as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: cannot read image ({message})") from None


def read_picture(path: str | os.PathLike) -> Picture:
    """Read any common image file as a :class:`Picture` (see the module docstring for the modes)."""
    path = Path(path)
    image = _open(path)
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


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W) with the :data:`LUMA` weights."""
    return np.tensordot(rgb, LUMA, axes=([2], [0])).astype(np.float32, copy=False)


def resize_bicubic(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of an (H, W) float plane in [0, 1] to ``size`` = (width, height), clipped to [0, 1]."""
    resized = Image.fromarray(np.ascontiguousarray(plane, np.float32)).resize(size, Image.Resampling.BICUBIC)
    return np.clip(np.asarray(resized), 0, 1)


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


def _to_pil(picture: Picture, format: str = "PNG") -> Image.Image:
    """The PIL image to write for ``picture`` in ``format`` (PNG, JPEG or WEBP)."""
    gray = picture.mode in ("L", "LA", "I;16")
    rgb, alpha = picture.rgb, picture.alpha
    if format == "JPEG" and alpha is not None:
        rgb, alpha = _composite_on_white(rgb, alpha), None
    if gray:
        plane = to_gray(rgb)
        if picture.mode == "I;16" and format == "PNG":
            return Image.fromarray(_quantise(plane, np.uint16))
        image = Image.fromarray(_quantise(plane, np.uint8))
    else:
        image = Image.fromarray(_quantise(rgb, np.uint8))
    if alpha is not None:
        image.putalpha(Image.fromarray(_quantise(alpha, np.uint8)))
    return image


def output_format(path: str | os.PathLike) -> str:
    """The PIL format name for an output path's extension; :class:`UserError` if unsupported."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"{path}: unsupported output extension {suffix!r} (use .png, .jpg, .jpeg or .webp)")
    return FORMATS[suffix]


def write_picture(path: str | os.PathLike, picture: Picture, quality: int = 95) -> None:
    """Atomically write ``picture`` to ``path`` in the format its extension names, keeping the ICC profile.

    ``quality`` applies to JPEG and WebP.
    """
    format = output_format(path)
    image = _to_pil(picture, format)
    options = {"quality": quality} if format in ("JPEG", "WEBP") else {}
    if picture.icc_profile:
        options["icc_profile"] = picture.icc_profile
    try:
        with atomic_path(path) as tmp:
            image.save(tmp, format=format, **options)
    except OSError as exc:
        raise UserError(f"{path}: cannot write image ({exc})") from None


# 8-bit RGB pixels, as the measurement protocol and the training data use them


def is_image_file(path: Path) -> bool:
    """A visible regular file with an image extension (:data:`IMAGE_SUFFIXES`)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()


def unreadable(path: Path, exc: Exception) -> UserError:
    """The one-line error for an image PIL cannot read (PIL's own message when it adds something)."""
    detail = "" if isinstance(exc, UnidentifiedImageError) else f" ({exc})"
    return UserError(f"{path}: not a readable image{detail}")


def read_header(path: Path) -> tuple[int, int]:
    """(width, height) of an 8-bit image file, from its header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            mode, size = im.mode, im.size
    except READ_ERRORS as exc:
        raise unreadable(path, exc) from None
    if mode in HIGH_DEPTH_MODES:
        raise UserError(f"{path}: {mode} (16-bit/float) images are not supported, use 8-bit")
    return size


def load_image(path: Path) -> tuple[np.ndarray, bool]:
    """8-bit RGB pixels (HxWx3 uint8) and whether the file is grayscale; alpha is dropped."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB")), im.mode in GRAY_MODES
    except READ_ERRORS as exc:
        raise unreadable(path, exc) from None
