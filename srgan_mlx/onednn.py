"""The oneDNN convolution extension (``srgan_mlx._onednn``, built from ``csrc/``): load it safely or say why not.

The extension is an MLX C++ primitive compiled against the headers of the pinned ``mlx-cpu``
wheel; MLX's C++ API has no stable ABI, so it is loaded only when the ``libmlx.so`` in place is
the very file it was built against (a CUDA build of MLX replaces it; another mlx version
changes it). Its oneDNN library, ``libdnnl`` from the PyPI package ``onednn-cpu-gomp``, is
loaded first with ``RTLD_GLOBAL`` (the build leaves no RPATH into pip's temporary build
environment). Anything missing or different makes :func:`unavailable_reason` say so, and
srgan-mlx runs on its pure-MLX convolutions; loading never raises (calling :func:`conv2d` without the
extension does: :func:`srgan_mlx.devices.conv_path` never picks it then).

``SRGAN_MLX_ONEDNN=0`` disables the extension (for comparisons and the fallback tests).
``SRGAN_MLX_ONEDNN_BF16=1`` makes the convolutions multiply in bfloat16 (inputs rounded to 8
significant bits, sums and results in float32) where the processor has bfloat16 kernels
(AVX512-BF16: Zen 4/5, Sapphire Rapids): 2x the float32 speed, opt-in because it changes the
numbers at the third significant digit.
This module must not import MLX at import time: :mod:`srgan_mlx.blas` uses
:func:`load_library` before MLX is loaded.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path

from . import checksums
from .blas import prefix_libraries

DISABLE_ENV = "SRGAN_MLX_ONEDNN"
BF16_ENV = "SRGAN_MLX_ONEDNN_BF16"
LIBRARY = "libdnnl.so.3"
BUILD_STATUS = Path(__file__).with_name("_onednn_build.json")
SGEMM_LIBRARY = Path(__file__).with_name("libsrgan_sgemm.so")

_library: str | None = None
_library_error: str | None = None
_module = None
_reason: str | None = None
_checked = False


def load_library() -> str | None:
    """Load ``libdnnl`` globally (once); its path, or None with the reason kept for :func:`unavailable_reason`."""
    global _library, _library_error
    if _library or _library_error:
        return _library
    if not sys.platform.startswith("linux") or platform.machine() != "x86_64":
        _library_error = f"Linux x86_64 only (this is {sys.platform} {platform.machine()})"
        return None
    # libgomp reads this when libdnnl loads it: idle OpenMP workers sleep instead of spinning, so they do
    # not take a core from MLX's stream thread between convolutions (SRResNet step 2-2.5x faster on 2 cores)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    candidates = prefix_libraries(LIBRARY)
    if not candidates:
        _library_error = f"{LIBRARY} not found (pip install onednn-cpu-gomp==2023.2.0)"
        return None
    try:
        ctypes.CDLL(candidates[0], mode=ctypes.RTLD_GLOBAL)
    except OSError as exc:
        _library_error = f"{candidates[0]} cannot be loaded: {exc}"
        return None
    _library = candidates[0]
    return _library


def _libmlx_path() -> Path | None:
    spec = importlib.util.find_spec("mlx")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "lib" / "libmlx.so"
        if path.is_file():
            return path
    return None


def _same_library(path: Path, size: int, record_hash: str) -> bool:
    """Whether ``path`` has the size and RECORD-style SHA-256 the build recorded."""
    if path.stat().st_size != size:
        return False
    return "sha256=" + checksums.record_hash(path) == record_hash


def _why_not() -> str | None:
    """None when the extension may be imported, else the reason it may not."""
    if os.environ.get(DISABLE_ENV, "").strip() == "0":
        return f"disabled by {DISABLE_ENV}=0"
    try:
        status = json.loads(BUILD_STATUS.read_text())
    except FileNotFoundError:
        return "not built (no build record; reinstall with pip install on Linux x86_64)"
    except (OSError, ValueError) as exc:
        return f"unreadable build record {BUILD_STATUS}: {exc}"
    if not status.get("built"):
        return f"not built: {status.get('reason', 'unknown reason')}"
    from importlib import metadata

    try:
        mlx_version = metadata.version("mlx")
    except metadata.PackageNotFoundError:
        mlx_version = "unknown"
    if mlx_version != status["mlx_version"]:
        return f"built for mlx {status['mlx_version']}, but mlx {mlx_version} is installed (reinstall srgan-mlx)"
    libmlx = _libmlx_path()
    if libmlx is None or not _same_library(libmlx, status["libmlx_size"], status["libmlx_sha256"]):
        from .devices import library_owner

        owner = library_owner() or "unknown"
        return (f"the mlx/lib/libmlx.so in place (from {owner}) is not the mlx-cpu {status['mlx_version']} "
                "build it was compiled against")
    if load_library() is None:
        return _library_error
    return None


def extension():
    """The loaded ``srgan_mlx._onednn`` module, or None (see :func:`unavailable_reason`)."""
    global _module, _reason, _checked
    if not _checked:
        _checked = True
        _reason = _why_not()
        if _reason is None:
            try:
                import mlx.core  # noqa: F401  (loads libmlx.so, which the extension links without an RPATH)

                from . import _onednn

                _module = _onednn
            except ImportError as exc:
                _reason = f"cannot import srgan_mlx._onednn: {exc}"
    return _module


def unavailable_reason() -> str | None:
    """Why the extension is not in use, or None when it is."""
    extension()
    return _reason


def conv2d(x, weight, stride: int, padding: int, bias=None):
    """``mx.conv2d`` (plus ``bias``, fused) through oneDNN: square kernel, symmetric padding, float32, CPU;
    differentiable. Multiplies in bfloat16 with ``SRGAN_MLX_ONEDNN_BF16=1``."""
    return extension().conv2d(x, weight, stride, padding, bias, bf16=os.environ.get(BF16_ENV, "").strip() == "1")


def conv2d_few_outputs(x, weight, padding: int):
    """A stride-1 "same" convolution with very few output channels (the generator's 9x9 64->3 tail), computed
    on 2x2 pixel blocks: oneDNN's kernels vectorise over output channels and run 3 of them at 60-95 GFLOP/s.

    The input goes space-to-depth (C -> 4C channels at half resolution), the kernel becomes one of
    ``2 * ((padding + 1) // 2) + 1`` taps mapping the 4C block channels to the 4 x O channels of an
    output block, and the result goes depth-to-space: 1.23x the multiply-adds for a 9x9 kernel, but
    forward and weight gradient ~3x faster (input gradient the same). Built from MLX ops around
    :func:`conv2d`, so it is differentiable; odd sizes get one zero row/column, which is padding anyway.
    """
    import mlx.core as mx

    n, h, w, c = x.shape
    o, k, _, _ = weight.shape
    if k != 2 * padding + 1:
        raise ValueError("conv2d_few_outputs computes 'same' convolutions (kernel 2 * padding + 1)")
    x = mx.pad(x, [(0, 0), (0, h % 2), (0, w % 2), (0, 0)])
    hb, wb = x.shape[1] // 2, x.shape[2] // 2
    blocks = x.reshape(n, hb, 2, wb, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, hb, wb, 4 * c)
    reach = (padding + 1) // 2  # taps on either side, in blocks
    taps = 2 * reach + 1
    edge = 2 * reach + 1 - padding
    padded = mx.pad(weight, [(0, 0), (edge, edge), (edge, edge), (0, 0)])
    # kernel tap u (block offset u - reach) from block row p to output row a is weight row 2(u - reach) + p - a + padding
    rows = [mx.concatenate([
        mx.concatenate([padded[:, p - a + 1 :: 2][:, :taps, q - b + 1 :: 2][:, :, :taps] for q in (0, 1)], axis=-1)
        for p in (0, 1)], axis=-1) for a in (0, 1) for b in (0, 1)]
    blocked = mx.stack(rows).reshape(4 * o, taps, taps, 4 * c)  # output channels (a, b, o), input (p, q, c)
    out = conv2d(blocks, blocked, 1, reach)
    out = out.reshape(n, hb, wb, 2, 2, o).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * hb, 2 * wb, o)
    return out[:, :h, :w]
