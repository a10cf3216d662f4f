"""Load a fast BLAS for MLX's CPU backend on Linux, before MLX itself.

The ``mlx[cpu]`` wheel for Linux links the reference (netlib) BLAS that it
bundles, which runs sgemm at ~6 GFLOP/s. ``libmlx.so`` imports ``cblas_sgemm``
as an undefined dynamic symbol, so a library exporting the standard CBLAS
names that is loaded with ``RTLD_GLOBAL`` *before* ``import mlx.core`` takes
its place. In order of preference:

* ``srgan_mlx/libsrgan_sgemm.so``, built with the oneDNN extension
  (:mod:`srgan_mlx.onednn`): ``cblas_sgemm`` computed by oneDNN's sgemm, as fast
  as MKL here at no install cost beyond oneDNN itself;
* Intel MKL's ``libmkl_rt`` when the user installed it (``pip install mkl``),
  with its OpenMP layer set to GNU (``MKL_THREADING_LAYER``) so that it shares
  one OpenMP runtime, libgomp, with oneDNN;
* a system OpenBLAS (Debian ``libopenblas0-pthread``).

``SRGAN_MLX_BLAS`` may name a library file to load instead, or ``none`` to keep
the bundled BLAS. Nothing happens on macOS, where MLX uses Accelerate (and Metal).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import re
import sys
import sysconfig

from .errors import warn

_loaded: str | None = None


def prefix_libraries(pattern: str) -> list[str]:
    """Files matching ``pattern`` in the ``lib`` folder of this environment, its base and the user base
    (where pip puts the shared libraries of packages like ``mkl`` and ``onednn-cpu-gomp``)."""
    prefixes = dict.fromkeys([sys.prefix, sys.base_prefix, sysconfig.get_config_var("prefix") or sys.prefix])
    user_base = sysconfig.get_config_var("userbase")
    if user_base:
        prefixes[user_base] = None
    return [path for prefix in prefixes for path in sorted(glob.glob(os.path.join(prefix, "lib", pattern)))]


def _candidates() -> list[str]:
    """Library files to try, best first."""
    from .onednn import SGEMM_LIBRARY, load_library

    load_library()  # the oneDNN sgemm library, and an explicit SRGAN_MLX_BLAS=.../libsrgan_sgemm.so, need it
    override = os.environ.get("SRGAN_MLX_BLAS", "").strip()
    if override:
        return [] if override.lower() == "none" else [override]
    found: list[str] = [str(SGEMM_LIBRARY)] if SGEMM_LIBRARY.is_file() else []
    found += prefix_libraries("libmkl_rt.so*")
    for name in ("openblas", "openblasp"):
        path = ctypes.util.find_library(name)
        if path:
            found.append(path)
    return found


def load_optimized_blas() -> str | None:
    """Load the first working optimized BLAS globally; return its path or None.

    Must run before ``mlx.core`` is imported; ``srgan_mlx/__init__.py`` does it.
    Silent on success, one warning on Linux when nothing could be loaded.
    """
    global _loaded
    if _loaded is not None or not sys.platform.startswith("linux"):
        return _loaded
    if "mlx.core" in sys.modules:
        warn("mlx was imported before srgan_mlx, so the optimized BLAS cannot take effect")
        return None
    errors = []
    os.environ.setdefault("MKL_THREADING_LAYER", "GNU")  # MKL and oneDNN on one OpenMP runtime
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            lib.cblas_sgemm  # noqa: B018 -- must export the standard CBLAS names
        except (OSError, AttributeError) as exc:
            errors.append(f"{path}: {exc}")
            continue
        _loaded = path
        return path
    if os.environ.get("SRGAN_MLX_BLAS", "").lower() != "none":
        detail = f" ({'; '.join(errors)})" if errors else ""
        warn(
            "no optimized BLAS found, MLX's CPU backend stays on its slow reference BLAS; reinstalling "
            "srgan-mlx with a C++ compiler present (Linux x86_64), `pip install mkl` (x86_64) or "
            f"`apt-get install libopenblas0-pthread` fixes this{detail}"
        )
    return None


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def active_blas() -> str:
    """Name the library that resolves ``cblas_sgemm`` for MLX in this process."""
    if sys.platform == "darwin":
        return "Accelerate (macOS)"
    try:
        process = ctypes.CDLL(None)
        address = ctypes.cast(process.cblas_sgemm, ctypes.c_void_p)
    except AttributeError:
        # not in the global scope: MLX resolves it from the BLAS bundled in its wheel
        return _bundled_blas() or "unknown"
    info = _DlInfo()
    libdl = ctypes.CDLL(ctypes.util.find_library("dl") or None)
    if not libdl.dladdr(address, ctypes.byref(info)) or not info.dli_fname:
        return "unknown"
    return os.fsdecode(info.dli_fname)


def _bundled_blas() -> str | None:
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if is_reference_blas(path) and "blas" in os.path.basename(path):
                return path
    return None


def is_reference_blas(path: str) -> bool:
    """True for the slow reference BLAS that MLX's Linux wheels bundle (``mlx_cpu.libs``, ``mlx_cuda_13.libs``)."""
    return re.search(r"mlx_(cpu|cuda_\d+)\.libs", path) is not None
