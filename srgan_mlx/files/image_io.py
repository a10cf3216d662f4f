"""Image files: which files count as images, how they are opened and turned upright, what an unreadable one
says, and how images are written.

Every reader in the package (upscale's pictures, training data, evaluation)
opens files here, so they share one policy:

* **EXIF orientation is applied everywhere**: pixels come back upright, and
  the header-only size (:func:`read_header`) is the upright size, so it always
  equals the decoded one. The orientation is taken from the metadata PIL has
  read before the pixels (JPEG, WebP and TIFF headers, a PNG ``eXIf`` chunk
  placed before the image data); a tag written after a PNG's pixels is ignored.
* **One wording for failures**: ``<path>: no such file``, or
  ``<path>: not a readable image`` with PIL's reason in parentheses when it
  gives one.

Training and evaluation read 8-bit RGB pixels (:func:`load_image`);
:mod:`srgan_mlx.files.picture` reads every mode for the upscaler. Images are
written atomically in the format their extension names (png, jpg/jpeg, webp).
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from ..atomic import atomic_path
from ..defaults import FORMAT_EXTENSIONS, QUALITY
from ..errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
"""Files taken as images when a folder is scanned."""
GRAY_MODES = ("1", "L", "LA", "La")
HIGH_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
PIL_FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}
"""PIL's name of each output format."""
FORMATS = {suffix: PIL_FORMATS[name] for suffix, name in FORMAT_EXTENSIONS.items()}
"""Output formats (PIL's names) by file extension."""
SUFFIXES_TEXT = ", ".join(list(FORMAT_EXTENSIONS)[:-1]) + " or " + list(FORMAT_EXTENSIONS)[-1]
"""The output extensions, as messages name them: ``.png, .jpg, .jpeg or .webp``."""
READ_ERRORS = (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError, SyntaxError)

UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
"""The turn that makes a stored image upright, by EXIF orientation (1 and invalid values: none)."""


def is_image_file(path: Path) -> bool:
    """A visible regular file with an image extension (:data:`IMAGE_SUFFIXES`)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()


class TooLarge(UserError):
    """An image with more pixels than may be opened (a decompression bomb's header, or a caller's limit)."""


def unreadable(path: Path, exc: Exception) -> UserError:
    """The one-line error for a file that cannot be read as an image."""
    if isinstance(exc, Image.DecompressionBombError):
        return TooLarge(f"{path}: too many pixels to open ({exc})")
    if isinstance(exc, FileNotFoundError):
        return UserError(f"{path}: no such file")
    if isinstance(exc, UnidentifiedImageError):
        return UserError(f"{path}: not a readable image")
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return UserError(f"{path}: not a readable image ({reason})")


_PILLOW_GUARD = threading.Lock()


def _open(file: str | os.PathLike | BinaryIO) -> Image.Image:
    """``Image.open`` without Pillow's decompression-bomb guard (a warning from 89 megapixels, a refusal from 179):
    srgan-mlx sets its own limits from the header (``upscale --max-pixels``, ``serve --max-pixels``) and words them
    itself. The guard is Pillow's global setting: it is off only while the header is read, under a lock."""
    with _PILLOW_GUARD:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(file)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


@contextlib.contextmanager
def opened(path: Path, source: BinaryIO | None = None) -> Iterator[Image.Image]:
    """``path`` opened by PIL (header read, pixels not decoded; no Pillow pixel limit: see :func:`_open`); a read
    failure inside becomes :func:`unreadable`. ``source``: read this file object instead (an upload), ``path`` only
    naming it in messages."""
    try:
        with _open(path if source is None else source) as image:
            yield image
    except READ_ERRORS as exc:
        raise unreadable(path, exc) from None


def image_size(path: Path) -> tuple[int, int]:
    """Upright (width, height) of any image file this package reads, from its header alone."""
    with opened(path) as image:
        width, height = image.size
        return (height, width) if orientation(image) >= 5 else (width, height)


def orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8) of an opened image, from the metadata read so far; 1 when absent or invalid."""
    # Image.getexif itself: PNG's override would decode the whole image to look for an eXIf chunk after the pixels
    value = Image.Image.getexif(image).get(ExifTags.Base.Orientation, 1)
    return value if value in UPRIGHT else 1


def decode(image: Image.Image) -> Image.Image:
    """The pixels of an opened image, turned upright as its EXIF orientation says."""
    turn = UPRIGHT.get(orientation(image))  # before load(): a PNG's late chunks must not change the answer
    image.load()
    return image if turn is None else image.transpose(turn)


def reduces_depth(image: Image.Image) -> bool:
    """Whether PIL decodes this opened file's 16-bit samples to 8 bits (16-bit RGB, RGBA, LA and CMYK files).

    16-bit grayscale is decoded at 16 bits (mode ``I;16``); PIL has no 16-bit colour mode.
    """
    if image.mode in HIGH_DEPTH_MODES:
        return False
    rawmodes = (tile.args if isinstance(tile.args, str) else (tile.args or ("",))[0] for tile in image.tile)
    return any(";16" in str(rawmode) for rawmode in rawmodes)


def read_header(path: Path) -> tuple[int, int]:
    """Upright (width, height) of an 8-bit image file, from its header, without decoding the pixels."""
    with opened(path) as image:
        mode, (width, height) = image.mode, image.size
        turned = orientation(image) >= 5  # orientations 5-8 swap width and height
    if mode in HIGH_DEPTH_MODES:
        raise UserError(f"{path}: {mode} (16-bit/float) images are not supported, use 8-bit")
    return (height, width) if turned else (width, height)


def load_image(path: Path) -> tuple[np.ndarray, bool]:
    """Upright 8-bit RGB pixels (HxWx3 uint8) and whether the file is grayscale; alpha is dropped."""
    with opened(path) as image:
        gray = image.mode in GRAY_MODES
        return np.asarray(decode(image).convert("RGB")), gray


def output_format(path: str | os.PathLike) -> str:
    """The PIL format name for an output path's extension; :class:`UserError` if unsupported."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"{path}: unsupported output extension {suffix!r} (use {SUFFIXES_TEXT})")
    return FORMATS[suffix]


class _Counted:
    """A file for PIL to write into that reports each write's size; no ``fileno``, so that PIL's encoders write
    through it in blocks instead of straight to the descriptor."""

    def __init__(self, file: BinaryIO, on_bytes: Callable[[int], None]):
        self.file, self.on_bytes = file, on_bytes

    def write(self, data) -> int:
        written = self.file.write(data)
        self.on_bytes(len(data))
        return written

    def tell(self) -> int:
        return self.file.tell()

    def seek(self, *args) -> int:
        return self.file.seek(*args)

    def flush(self) -> None:
        self.file.flush()


def write_image(path: str | os.PathLike, image: Image.Image, quality: int = QUALITY,
                on_bytes: Callable[[int], None] | None = None) -> None:  # fmt: skip
    """Atomically write a PIL image to ``path`` in the format its extension names, with its ICC profile.

    ``quality`` applies to JPEG and WebP; ``on_bytes(n)`` is told of every ``n`` bytes written (progress).
    """
    format = output_format(path)
    options = {"quality": quality} if format in ("JPEG", "WEBP") else {}
    if image.info.get("icc_profile"):
        options["icc_profile"] = image.info["icc_profile"]
    try:
        with atomic_path(path) as tmp:
            if on_bytes is None:
                image.save(tmp, format=format, **options)
            else:
                with open(tmp, "wb") as file:
                    image.save(_Counted(file, on_bytes), format=format, **options)
    except (OSError, ValueError) as exc:  # ValueError: a format's own limit, e.g. WebP's 16383 px
        raise UserError(f"{path}: cannot write image ({exc})") from None
