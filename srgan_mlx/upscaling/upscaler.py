"""The Python API: :class:`Upscaler`, a generator loaded once that upscales PIL images and numpy arrays.

::

    import srgan_mlx
    from PIL import Image

    up = srgan_mlx.Upscaler("srresnet")          # or a weights file (also a PyTorch .pth), a run folder, a network
    big = up(Image.open("photo.png"))            # PIL in -> PIL out, same mode (RGB, RGBA, L, LA, I;16)
    pixels = up(np.zeros((32, 32, 3), np.uint8)) # array in -> array out, same layout and dtype

``srgan-mlx upscale`` runs every file through an :class:`Upscaler`, so the API
and the command line give the same pixels, tiles and memory budget.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, TypeVar

import mlx.nn as nn
import numpy as np
from PIL import Image

from ..defaults import ALPHA_METHODS, DEFAULT_MODEL, MODEL_NAMES
from ..errors import warn
from ..files.model_io import load_generator
from ..files.picture import Picture, from_array, from_pil, gray_to_rgb, resize_bicubic, to_array, to_gray, to_pil
from ..files.run_folder import AVERAGE, GENERATOR, GENERATOR_FILES
from ..networks.kinds import Network
from .inference import smallest_tile_memory, smallest_tile_side, super_resolve

Model = str | os.PathLike | Network
ImageLike = TypeVar("ImageLike", Image.Image, np.ndarray)


def load_model(model: Model) -> Network:
    """The network ``model`` names: a :class:`Generator` or :class:`RRDBNet` itself, a shipped model's name, or a
    weights file (srgan-mlx's, or a PyTorch one :mod:`srgan_mlx.convert.models` recognises), checkpoint folder or
    training run folder (loaded strictly, in eval mode)."""
    return model if isinstance(model, nn.Module) else load_generator(model)


def model_label(model: Model) -> str:
    """A short name for ``model`` in pictures: the shipped model's name, else the weights file's or folder's name; a
    checkpoint's generator file is named by its checkpoint, ``<checkpoint> raw`` for the trained weights beside a
    moving average (which is what the checkpoint's name means)."""
    if isinstance(model, nn.Module):
        return "SR"
    if str(model) in MODEL_NAMES:
        return str(model)
    path = Path(model)
    if path.name.lower().endswith(".pth.tar"):  # SRGAN-PyTorch's checkpoints
        return path.name[: -len(".pth.tar")]
    if path.name not in GENERATOR_FILES:
        return path.stem
    averaged = path.name == f"{GENERATOR}.safetensors" and (path.parent / f"{AVERAGE}.safetensors").is_file()
    return f"{path.parent.name} raw" if averaged else path.parent.name


def _size(count: int) -> str:
    return f"{count / 2**20:.0f} MiB" if count >= 2**20 else f"{count / 2**10:.0f} KiB"


class Upscaler:
    """A super-resolution generator, loaded once, for PIL images and numpy arrays.

    ``model``: a shipped model's name (``srresnet``), a generator ``.safetensors``
    file, a PyTorch weights file (ESRGAN, Real-ESRGAN, BasicSR, SRGAN-PyTorch:
    docs/models.md), a checkpoint or run folder, or a :class:`Generator` or
    :class:`RRDBNet` in eval mode.
    ``tile`` (core side in input pixels) and ``max_memory`` (bytes for one
    tile's forward pass, default :data:`srgan_mlx.defaults.MAX_MEMORY`) are ``--tile`` and ``--max-memory`` of
    ``srgan-mlx upscale``; ``alpha`` is ``bicubic`` or ``model``. ``label``
    names the model in comparison pictures (default :func:`model_label`).

    Calling it with a PIL image returns a PIL image of the same mode (RGB,
    RGBA, L, LA, I;16; other modes as :mod:`srgan_mlx.files.picture` converts them,
    with the ICC profile in ``info``). With an HxW or HxWxC array (C = 1 gray,
    2 gray + alpha, 3 RGB, 4 RGBA; uint8, uint16, or floats in [0, 1]) it
    returns an array of the same layout and dtype, ``scale`` times larger:
    integers rounded, floats unrounded and clipped to [0, 1]. Gray goes through
    the RGB model as three equal channels and comes back as ITU-R 601 luma; alpha
    is upscaled separately. EXIF orientation is not looked at (the image is
    taken as given).
    """

    def __init__(
        self,
        model: Model = DEFAULT_MODEL,
        *,
        tile: int | None = None,
        max_memory: int | None = None,
        alpha: str = ALPHA_METHODS[0],
        label: str | None = None,
    ):
        if alpha not in ALPHA_METHODS:
            raise ValueError(f"alpha must be one of {ALPHA_METHODS}, got {alpha!r}")
        if tile is not None and tile < 1:
            raise ValueError(f"tile must be at least 1, got {tile}")
        if max_memory is not None and max_memory < 1:
            raise ValueError(f"max_memory must be a positive number of bytes, got {max_memory}")
        self.generator = load_model(model)
        if self.generator.training:
            raise ValueError("the generator must be in eval mode (generator.eval())")
        self.label = label or model_label(model)
        self.tile = tile
        self.max_memory = max_memory
        self.alpha = alpha
        if tile is None and max_memory is not None and max_memory < smallest_tile_memory(self.generator):
            side = smallest_tile_side(self.generator)
            warn(
                f"max memory {_size(max_memory)} is below what the smallest tile needs, about "
                f"{_size(smallest_tile_memory(self.generator))} ({side}x{side} input pixels with margins); "
                "using that tile size"
            )

    @property
    def scale(self) -> int:
        return self.generator.scale

    def _super_resolve(self, rgb: np.ndarray, on_tile: Callable[[int, int], None] | None) -> np.ndarray:
        return super_resolve(self.generator, rgb, self.tile, self.max_memory, on_tile)

    def upscale_picture(self, picture: Picture, on_tile: Callable[[int, int], None] | None = None) -> Picture:
        """Super-resolve the colour; upscale alpha bicubically or with the model (as gray)."""
        rgb = self._super_resolve(picture.rgb, on_tile)
        alpha = picture.alpha
        if alpha is not None:
            if self.alpha == "model":
                alpha = to_gray(self._super_resolve(gray_to_rgb(alpha), on_tile))
            else:
                alpha = resize_bicubic(alpha, (rgb.shape[1], rgb.shape[0]))
        return Picture(rgb, alpha, picture.mode, picture.icc_profile)

    def __call__(self, image: ImageLike) -> ImageLike:
        """Upscale a PIL image (-> PIL image) or an image array (-> array of the same layout and dtype)."""
        if isinstance(image, Image.Image):
            return to_pil(self.upscale_picture(from_pil(image)))
        if isinstance(image, np.ndarray):
            return to_array(self.upscale_picture(from_array(image)), image)
        raise TypeError(f"expected a PIL image or a numpy array, got {type(image).__name__}")
