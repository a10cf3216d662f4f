"""The shared libraries native code needs, loaded before MLX: oneDNN's ``libdnnl`` and a fast BLAS for MLX's
Linux CPU backend.

**oneDNN.** ``libdnnl`` (PyPI ``onednn-cpu-gomp``) is loaded globally (``RTLD_GLOBAL``) before the
extension, which is built without an RPATH into pip's temporary build environment. Loading it sets
``OMP_WAIT_POLICY=PASSIVE`` and ``GOMP_SPINCOUNT=10000`` unless set: an idle OpenMP worker spins for
~10^4 pauses (a fraction of a millisecond), which bridges the gap to the next multi-threaded kernel, then
sleeps, so it does not hold a core that MLX's stream thread needs through longer single-threaded stretches.

**BLAS.**
The ``mlx[cpu]`` wheel for Linux links the reference (netlib) BLAS that it
bundles, which runs sgemm at ~6 GFLOP/s. ``libmlx.so`` imports ``cblas_sgemm``
as an undefined dynamic symbol, so a library exporting the standard CBLAS
names that is loaded with ``RTLD_GLOBAL`` *before* ``import mlx.core`` takes
its place. In order of preference:

* ``srgan_mlx/native/libsrgan_sgemm.so``, built with the extension
  (:mod:`srgan_mlx.native.loader`): ``cblas_sgemm`` computed by oneDNN's sgemm, as fast
  as MKL here at no install cost beyond oneDNN itself;
* Intel MKL's ``libmkl_rt`` when the user installed it (``pip install mkl``),
  with its OpenMP layer set to GNU (``MKL_THREADING_LAYER``) so that it shares
  one OpenMP runtime, libgomp, with oneDNN;
* a system OpenBLAS (Debian ``libopenblas0-pthread``).

``SRGAN_MLX_BLAS`` may name a library file to load instead, or ``none`` to keep
the bundled BLAS. Nothing happens on macOS, where MLX uses Accelerate (and Metal). This module imports no MLX.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import re
import platform
import sys
import sysconfig
from pathlib import Path

from .. import environment
from ..errors import warn

ONEDNN_LIBRARY = "libdnnl.so.3"
SGEMM_LIBRARY = Path(__file__).with_name("libsrgan_sgemm.so")

_loaded: str | None = None
_onednn: str | None = None
_onednn_error: str | None = None


def prefix_libraries(pattern: str) -> list[str]:
    """Files matching ``pattern`` in the ``lib`` folder of this environment, its base and the user base
    (where pip puts the shared libraries of packages like ``mkl`` and ``onednn-cpu-gomp``)."""
    prefixes = dict.fromkeys([sys.prefix, sys.base_prefix, sysconfig.get_config_var("prefix") or sys.prefix])
    user_base = sysconfig.get_config_var("userbase")
    if user_base:
        prefixes[user_base] = None
    return [path for prefix in prefixes for path in sorted(glob.glob(os.path.join(prefix, "lib", pattern)))]


def load_onednn() -> str | None:
    """Load ``libdnnl`` globally (once); its path, or None (:func:`onednn_error` says why)."""
    global _onednn, _onednn_error
    if _onednn or _onednn_error:
        return _onednn
    if not sys.platform.startswith("linux") or platform.machine() != "x86_64":
        _onednn_error = f"Linux x86_64 only (this is {sys.platform} {platform.machine()})"
        return None
    # libgomp reads these when libdnnl loads it. Idle OpenMP workers sleep instead of spinning without end, so
    # they do not take a core from MLX's stream thread between convolutions (SRResNet step 2-2.5x faster on 2
    # cores); but a worker put to sleep after every kernel is woken thousands of times a second, and the two
    # cores idle ~30% of a U-Net SRGAN step: a short spin first (GOMP_SPINCOUNT overrides PASSIVE's zero) took
    # that step from 3.97 / 3.93 to 2.89 / 2.82 s on the AMX Xeon (docs/performance.md, "OpenMP workers")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")
    candidates = prefix_libraries(ONEDNN_LIBRARY)
    if not candidates:
        _onednn_error = f"{ONEDNN_LIBRARY} not found (pip install onednn-cpu-gomp==2023.2.0)"
        return None
    try:
        ctypes.CDLL(candidates[0], mode=ctypes.RTLD_GLOBAL)
    except OSError as exc:
        _onednn_error = f"{candidates[0]} cannot be loaded: {exc}"
        return None
    _onednn = candidates[0]
    return _onednn


def onednn_error() -> str | None:
    """Why :func:`load_onednn` found no ``libdnnl``, or None."""
    return _onednn_error


def _candidates() -> list[str]:
    """Library files to try, best first."""
    load_onednn()  # the oneDNN sgemm library, and an explicit SRGAN_MLX_BLAS=.../libsrgan_sgemm.so, need it
    override = os.environ.get(environment.BLAS, "").strip()
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
    if os.environ.get(environment.BLAS, "").lower() != "none":
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
