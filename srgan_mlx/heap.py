"""Keep freed memory in the process heap on Linux, so MLX's CPU buffers are reused, not re-faulted.

MLX's CPU backend allocates every array with ``malloc``. glibc serves blocks above its
mmap threshold (at most 32 MB) with a fresh ``mmap`` and unmaps them on ``free``, so each
large activation of a training step (16x96x96x64 float32 is 38 MB) is page-faulted and
zeroed by the kernel again on every step: 15% of the MLX stream thread's time in an
SRResNet step on 2 cores (perf). ``mallopt(M_MMAP_MAX, 0)`` makes glibc serve them from
the heap and ``M_TRIM_THRESHOLD`` keeps freed memory there for the next step. Peak memory
is unchanged (the same arrays are alive at the peak); memory freed after the peak stays
with the process until it exits.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Apply the two glibc settings; False where there is no glibc (macOS, musl)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
