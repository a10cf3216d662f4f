"""Where the networks run, and which convolution implementation runs there.

Devices: ``--device auto|cpu|gpu`` on the commands. ``auto`` (the default) is MLX's GPU
when this MLX build has one (Metal on a Mac, CUDA with ``mlx-cuda-*`` on Linux), else the
CPU.

Convolutions: :class:`srgan_mlx.layers.Conv2d` asks :func:`conv_path` which implementation
to use, at the time a network is called (or traced by ``mx.compile``), for the device that
call runs on (MLX's default device):

* ``mlx``: ``mx.conv2d`` for every layer. The default on a GPU: MLX's own GPU kernels
  (cuDNN on CUDA) were 1.6-1.7x faster than the CPU-tuned forms on an NVIDIA H200
  (``../shared/FACTS.md`` section 5). Metal could not be measured for this project; it
  defaults to ``mx.conv2d`` too, which is what MLX tunes for Metal.
* ``onednn``: oneDNN's convolutions (the kernels inside TensorFlow's CPU path) through the
  MLX primitive of :mod:`srgan_mlx.onednn`, forward and both gradients, 1.3-300x faster than
  ``mx.conv2d`` per layer and pass (README, "Where the CPU time goes"). The default on the CPU
  when the extension is built and loadable (Linux x86_64).
* ``tuned``: the CPU-tuned forms of :mod:`srgan_mlx.conv` where they were measured
  faster than MLX's CPU ``conv2d`` (large kernels, very unequal channel counts, strided
  input gradients, per-image im2col), ``mx.conv2d`` elsewhere. The CPU default where the
  extension is not available; ``srgan-mlx info`` says why.

``SRGAN_MLX_CONV=mlx|tuned|onednn`` forces one path (for measurements and tests): ``mlx`` and
``tuned`` on every device, ``onednn`` on the CPU only, and only where the extension loads
(else a one-line error with the reason); ``auto`` or unset picks per device as above.
"""

from __future__ import annotations

import os
from importlib import metadata

import mlx.core as mx

from . import onednn
from .checksums import record_hash
from .errors import UserError

DEVICES = ("auto", "cpu", "gpu")
BACKEND_PACKAGES = ("mlx-metal", "mlx-cpu", "mlx-cuda-12", "mlx-cuda-13")
"""The distributions that provide MLX's native library; on Linux they all install ``mlx/lib/libmlx.so``."""
CONV_ENV = "SRGAN_MLX_CONV"
CONV_PATHS = ("mlx", "tuned", "onednn")


def gpu_backend() -> str | None:
    """``metal`` or ``cuda`` when this MLX build can use a GPU here, else None."""
    if mx.metal.is_available():
        return "metal"
    if mx.cuda.is_available():
        return "cuda"
    return None


def select_device(name: str = "auto") -> mx.Device:
    """Make ``name`` (auto, cpu or gpu) MLX's default device and return it; a missing GPU is a UserError."""
    if name not in DEVICES:
        raise UserError(f"unknown device {name!r} (choose from {', '.join(DEVICES)})")
    if name == "gpu" and gpu_backend() is None:
        raise UserError(
            "--device gpu: this MLX build has no usable GPU (on Linux install the CUDA build: "
            "pip install 'srgan-mlx[cuda]'; on a Mac, Metal needs Apple silicon)"
        )
    device = mx.gpu if name == "gpu" or (name == "auto" and gpu_backend()) else mx.cpu
    mx.set_default_device(device)
    return mx.default_device()


def conv_path(device: mx.Device | None = None) -> str:
    """The convolution implementation for ``device`` (default: MLX's default device): ``mlx``, ``tuned`` or ``onednn``."""
    forced = os.environ.get(CONV_ENV, "auto").strip().lower() or "auto"
    if forced not in CONV_PATHS and forced != "auto":
        raise UserError(f"{CONV_ENV}={forced!r}: expected auto, {', '.join(CONV_PATHS[:-1])} or {CONV_PATHS[-1]}")
    device = mx.default_device() if device is None else device
    if forced == "onednn":
        if device.type == mx.gpu:
            raise UserError(f"{CONV_ENV}=onednn: oneDNN runs on the CPU only (use --device cpu)")
        if onednn.unavailable_reason():
            raise UserError(f"{CONV_ENV}=onednn: the oneDNN extension is unavailable: {onednn.unavailable_reason()}")
    if forced != "auto":
        return forced
    if device.type == mx.gpu:
        return "mlx"
    return "tuned" if onednn.unavailable_reason() else "onednn"


def backend_packages() -> dict[str, str]:
    """The installed MLX backend distributions, name -> version."""
    found = {}
    for name in BACKEND_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def library_owner() -> str | None:
    """Which installed backend distribution's ``mlx/lib/libmlx.so`` is the file in place (None: unknown).

    ``mlx-cpu`` and ``mlx-cuda-*`` write the same file, so with both installed the one
    installed last wins; the file's SHA-256 against each distribution's RECORD tells which.
    """
    for name in backend_packages():
        dist = metadata.distribution(name)
        for entry in dist.files or []:
            if entry.as_posix() != "mlx/lib/libmlx.so" or entry.hash is None:
                continue
            path = dist.locate_file(entry)
            if not os.path.isfile(path) or os.path.getsize(path) != entry.size:
                continue
            if record_hash(path) == entry.hash.value:
                return name
    return None


def library_note(packages: dict[str, str]) -> str | None:
    """With several backend distributions installed, which one's ``libmlx.so`` is in place, and the fix when a
    CUDA build was asked for but the CPU library won (None with a single distribution)."""
    if len(packages) < 2:
        return None
    owner = library_owner()
    cuda = [name for name in packages if name.startswith("mlx-cuda")]
    if owner in cuda or not cuda:
        return f"mlx/lib/libmlx.so in place: {owner or 'unknown'}'s (installed: {', '.join(packages)})"
    return (
        f"warning: {', '.join(packages)} all install mlx/lib/libmlx.so and the one in place is "
        f"{owner or 'unknown'}'s, not the CUDA build's; for the GPU: "
        f"pip install --force-reinstall --no-deps {cuda[0]}=={packages[cuda[0]]}"
    )
