"""Atomic file writes: write beside the target, flush, then rename over it.

A reader (or a run killed midway) sees either the old file or the new one,
never a partial one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import UserError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``target`` on success.

    ``suffix`` keeps the extension that writers such as PIL or ``mx.save_safetensors``
    look at. On error the temporary file is removed and ``target`` is untouched; a target
    that cannot be written at all (a folder, no permission) is a one-line :class:`UserError`.
    """
    target = Path(target)
    if target.is_dir():
        raise UserError(f"{target}: is a folder, not a file to write")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or target.suffix, dir=target.parent)
    except OSError as exc:
        raise UserError(f"{target}: cannot write ({exc.strerror or exc})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text(target: str | os.PathLike, text: str) -> None:
    """Atomically replace ``target`` with ``text``."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)
