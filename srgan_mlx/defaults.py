"""Every value a user can set or meet outside the training settings, in one place: the defaults, choices and limits
of ``upscale``, ``evaluate`` and ``serve``, of the Python API and of the server, and the shipped models' names.

The options' defaults and help texts, the functions' default arguments and the server's answers all read them
from here. Training's settings have their own one home: the fields of ``TrainConfig`` (``training/config.py``);
the ``SRGAN_MLX_*`` environment variables are listed in :mod:`srgan_mlx.environment`.
"""

from __future__ import annotations

# --- models -------------------------------------------------------------------------------------------------------
MODEL_NAMES = {"srresnet": "srresnet_x4.safetensors", "srgan": "srgan_x4.safetensors"}
"""The names ``--model`` knows, with the file each stands for in ``srgan_mlx/weights/``; ``model_io.shipped_names()``
says which this installation has (both, from this release on)."""
DEFAULT_MODEL = "srresnet"
"""The model ``upscale``, ``evaluate`` and ``Upscaler()`` run when none is named: the faithful one, which invents
nothing (docs/models.md says why it is not srgan)."""
FIDELITY_MODEL = "srresnet"
"""The realism dial's fidelity end (realism 0)."""
REALISTIC_MODEL = "srgan"
"""The realism dial's realistic end (realism 1) when ``--model`` is not given; ``serve`` offers it first."""
REALISM_RANGE = (0.0, 1.0)
"""The realism dial's range: the fidelity model at the low end, the realistic one at the high end."""

# --- output images ------------------------------------------------------------------------------------------------
OUTPUT_FORMATS = ("png", "jpg", "webp")
"""The formats images are written in, by the name ``--format`` and the server's API take; the first is the default."""
FORMAT_EXTENSIONS = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp"}
"""Each output file extension's format."""
QUALITY = 95
"""JPEG and WebP quality (1-100) of written images."""
ALPHA_METHODS = ("bicubic", "model")
"""How an alpha plane is upscaled (the first is the default): bicubic, or by the generator as a gray image."""

# --- memory -------------------------------------------------------------------------------------------------------
MAX_MEMORY = 2 * 1024**3
"""Working-memory budget of one tile's forward pass, in bytes (2 GiB: fits a laptop)."""

# --- serve --------------------------------------------------------------------------------------------------------
HOST = "127.0.0.1"
"""The address ``serve`` listens on: this machine only."""
PORT = 8000
MAX_UPLOAD = 64 * 1024**2
"""The largest upload ``serve`` accepts, in bytes."""
MAX_PIXELS = 2048 * 2048
"""The largest input ``serve`` accepts, in pixels (width x height), read from the header before decoding."""
TIMEOUT = 30
"""Seconds a connection may stay silent (no request, no byte of an upload) before it is closed or answered 408."""
MIN_UPLOAD_RATE = 64 * 1024
"""Bytes per second below which an upload, however steady, is answered 408: it must arrive within the timeout
plus its size at this rate (64 MB: 17 minutes), so a slow trickle cannot hold a connection for ever."""
MAX_CONNECTIONS = 32
"""Connections served at once (a browser opens about six); the next are answered 503 at once."""


def size_text(size: int) -> str:
    """A byte count as the options write it: ``2GB``, ``64MB``, ``512KB`` (powers of 1024), else bytes."""
    for unit, factor in (("TB", 1024**4), ("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"
