"""The native extension (``srgan_mlx.native._ext``, built from ``csrc/``: oneDNN convolutions and the multi-threaded
kernels between them): load it safely or say why not.

The extension is an MLX C++ primitive compiled against the headers of the pinned ``mlx-cpu``
wheel; MLX's C++ API has no stable ABI, so it is loaded only when the ``libmlx.so`` in place is
the very file it was built against (a CUDA build of MLX replaces it; another mlx version
changes it). Its oneDNN library is loaded first (:mod:`srgan_mlx.native.libraries`). Anything
missing or different makes :func:`unavailable_reason` say so, and srgan-mlx runs on MLX's own
operations; loading never raises.

``SRGAN_MLX_ONEDNN=0`` disables the extension (for comparisons and the fallback tests). This module
imports no MLX at import time.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from .. import checksums, environment
from .backends import library_owner
from .libraries import load_onednn, onednn_error

BUILD_STATUS = Path(__file__).with_name("_build.json")

_module = None
_reason: str | None = None
_checked = False


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
    if os.environ.get(environment.ONEDNN, "").strip() == "0":
        return f"disabled by {environment.ONEDNN}=0"
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
        owner = library_owner() or "unknown"
        return (f"the mlx/lib/libmlx.so in place (from {owner}) is not the mlx-cpu {status['mlx_version']} "
                "build it was compiled against")
    if load_onednn() is None:
        return onednn_error()
    return None


def extension():
    """The loaded ``srgan_mlx.native._ext`` module, or None (see :func:`unavailable_reason`)."""
    global _module, _reason, _checked
    if not _checked:
        _checked = True
        _reason = _why_not()
        if _reason is None:
            try:
                import mlx.core  # noqa: F401  (loads libmlx.so, which the extension links without an RPATH)

                from . import _ext

                _module = _ext
            except ImportError as exc:
                _reason = f"cannot import srgan_mlx.native._ext: {exc}"
    return _module


def unavailable_reason() -> str | None:
    """Why the extension is not in use, or None when it is."""
    extension()
    return _reason


SLOWDOWN = "upscaling and training on the CPU run about 50x slower without it"
"""What a missing extension costs (128x128 upscale on a 2-core AMD EPYC: 3.1 s with it, 151 s without it and its
sgemm)."""


def reinstall_command() -> str:
    """The pip command that builds the extension again for this installation: an editable install from its
    source tree (``pip install -e``), else a reinstall."""
    source = Path(__file__).resolve().parents[2]
    if (source / "setup.py").is_file() and (source / "csrc").is_dir():
        return f"pip install -e {source}"
    return "pip install --force-reinstall --no-deps srgan-mlx"


def missing_extension_fix() -> str | None:
    """The command that makes the extension load, for a Linux x86_64 CPU that runs without the extension it should
    have (a failed or stale build); None where it is loaded, was turned off on purpose (``SRGAN_MLX_ONEDNN=0``,
    ``SRGAN_MLX_BUILD_ONEDNN=0``), cannot load beside MLX's CUDA library, or is not built for this platform."""
    import platform
    import sys

    reason = unavailable_reason()
    if reason is None or not sys.platform.startswith("linux") or platform.machine() != "x86_64":
        return None
    if reason.startswith(("disabled by", "the mlx/lib/libmlx.so in place")) or f"{environment.BUILD_ONEDNN}=0" in reason:
        return None  # turned off by the user, or the CUDA build of MLX in place (`srgan-mlx info` says that)
    try:
        fix = json.loads(BUILD_STATUS.read_text()).get("fix")
    except (OSError, ValueError):
        fix = None
    return fix or reinstall_command()


def missing_extension_warning() -> str | None:
    """One line where :func:`missing_extension_fix` has a fix: the reason, the cost and the command."""
    fix = missing_extension_fix()
    if fix is None:
        return None
    return f"the native extension is not in use ({unavailable_reason()}); {SLOWDOWN}; fix: {fix}"
