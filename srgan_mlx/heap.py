"""Keep freed memory in the process heap on Linux, so MLX's CPU buffers are reused, not re-faulted.

MLX's CPU backend allocates every array with ``malloc``. glibc serves blocks above its
mmap threshold with a fresh ``mmap`` and unmaps them on ``free``, so each large activation
of a training step is page-faulted and zeroed by the kernel again on every step.
``mallopt(M_MMAP_MAX, 0)`` makes glibc serve them from the heap and ``M_TRIM_THRESHOLD``
keeps freed memory there for the next step: faster, for a higher peak RSS (blocks freed
where a later, larger one does not fit stay mapped; measured in docs/performance.md).
``SRGAN_MLX_KEEP_FREED_MEMORY=0`` keeps glibc's defaults.

It changes the whole process's allocator, so the ``srgan-mlx`` command line applies it, not
``import srgan_mlx``: a program that embeds the package keeps its own malloc policy unless it
calls :func:`keep_freed_memory` itself.
"""

from __future__ import annotations

import ctypes
import os
import sys

from . import environment

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Apply the two glibc settings; False where there is no glibc (macOS, musl) or with the opt-out."""
    if not sys.platform.startswith("linux") or os.environ.get(environment.KEEP_FREED_MEMORY, "").strip() == "0":
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
