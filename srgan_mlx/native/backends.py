"""Which MLX backend package's native library is in place: ``mlx-cpu`` and the CUDA builds all install
``mlx/lib/libmlx.so``, and the extension is loaded only against the one it was built for. Install
diagnostics for ``srgan-mlx info``; no MLX import.
"""

from __future__ import annotations

import os
from importlib import metadata

from ..checksums import record_hash

BACKEND_PACKAGES = ("mlx-metal", "mlx-cpu", "mlx-cuda-12", "mlx-cuda-13")
"""The distributions that provide MLX's native library; on Linux they all install ``mlx/lib/libmlx.so``."""


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
