"""Where the networks run, and which convolution implementation runs there.

Devices: ``--device auto|cpu|gpu`` on the commands. ``auto`` (the default) is MLX's GPU
when this MLX build has one (Metal on a Mac, CUDA with ``mlx-cuda-*`` on Linux), else the
CPU.

Convolutions: :class:`srgan_mlx.networks.layers.Conv2d` asks :func:`conv_path` which implementation
to use, at the time a network is called (or traced by ``mx.compile``), for the device that
call runs on (MLX's default device):

* ``mlx``: ``mx.conv2d`` for every layer. The default on a GPU, where MLX's own kernels
  (cuDNN on CUDA) beat the CPU-tuned forms; Metal gets it too, which is what MLX tunes for Metal.
* ``onednn``: oneDNN's convolutions (the kernels inside TensorFlow's CPU path) through the
  MLX primitive of :mod:`srgan_mlx.native.onednn`, forward and both gradients, the fastest on
  the CPU (docs/performance.md). The default on the CPU when the extension is built and
  loadable (Linux x86_64).
* ``tuned``: the CPU-tuned forms of :mod:`srgan_mlx.networks.conv` where they were measured
  faster than MLX's CPU ``conv2d`` (large kernels, very unequal channel counts, strided
  input gradients, per-image im2col), ``mx.conv2d`` elsewhere. The CPU default where the
  extension is not available; ``srgan-mlx info`` says why.

``SRGAN_MLX_CONV=mlx|tuned|onednn`` forces one path (for measurements and tests): ``mlx`` and
``tuned`` on every device, ``onednn`` on the CPU only, and only where the extension loads
(else a one-line error with the reason); ``auto`` or unset picks per device as above.
"""

from __future__ import annotations

import os

import mlx.core as mx

from .. import environment
from ..errors import UserError, warn
from ..native import unavailable_reason
from ..native.loader import missing_extension_warning

DEVICES = ("auto", "cpu", "gpu")
CONV_PATHS = ("mlx", "tuned", "onednn")


def gpu_backend() -> str | None:
    """``metal`` or ``cuda`` when this MLX build can use a GPU here, else None."""
    if mx.metal.is_available():
        return "metal"
    if mx.cuda.is_available():
        return "cuda"
    return None


def select_device(name: str = "auto") -> mx.Device:
    """Make ``name`` (auto, cpu or gpu) MLX's default device and return it; a missing GPU is a UserError. On a
    Linux x86_64 CPU without the native extension it should have, one warning with the fix."""
    if name not in DEVICES:
        raise UserError(f"unknown device {name!r} (choose from {', '.join(DEVICES)})")
    if name == "gpu" and gpu_backend() is None:
        raise UserError(
            "--device gpu: this MLX build has no usable GPU (on Linux install the CUDA build: "
            "pip install 'srgan-mlx[cuda]'; on a Mac, Metal needs Apple silicon)"
        )
    device = mx.gpu if name == "gpu" or (name == "auto" and gpu_backend()) else mx.cpu
    mx.set_default_device(device)
    if device == mx.cpu:
        missing = missing_extension_warning()
        if missing:
            warn(missing)  # once per command that runs a network: each calls this once
    return mx.default_device()


def conv_path(device: mx.Device | None = None) -> str:
    """The convolution implementation for ``device`` (default: MLX's default device): ``mlx``, ``tuned`` or ``onednn``."""
    forced = os.environ.get(environment.CONV, "auto").strip().lower() or "auto"
    if forced not in CONV_PATHS and forced != "auto":
        raise UserError(f"{environment.CONV}={forced!r}: expected auto, {', '.join(CONV_PATHS[:-1])} or {CONV_PATHS[-1]}")
    device = mx.default_device() if device is None else device
    if forced == "onednn":
        if device.type == mx.gpu:
            raise UserError(f"{environment.CONV}=onednn: oneDNN runs on the CPU only (use --device cpu)")
        if unavailable_reason():
            raise UserError(f"{environment.CONV}=onednn: the oneDNN extension is unavailable: {unavailable_reason()}")
    if forced != "auto":
        return forced
    if device.type == mx.gpu:
        return "mlx"
    return "tuned" if unavailable_reason() else "onednn"
