"""Atomic file and folder writes: write beside the target, flush, then rename over it.

A reader (or a run killed midway) sees either the old file or folder or the new one,
never a partial one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
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
    _usual_permissions(tmp_path, 0o666)  # mkstemp makes 0600
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _usual_permissions(path: Path, mode: int) -> None:
    """Give ``path`` the permissions ``open`` or ``mkdir`` would have: ``mode`` less the process's umask (the
    temporary files and folders of :mod:`tempfile` are private to their owner)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


def cannot_write_into(folder: str | os.PathLike) -> str | None:
    """Why files cannot be written into ``folder`` (made on demand, as :func:`atomic_path` does), or None: a file
    where a folder should be, or a folder that refuses a new file (checked by making and removing one, which is
    what counts on read-only file systems and with ACLs); a missing folder is judged by its nearest existing
    ancestor, and not made here."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if existing != folder:
        return None if os.access(existing, os.W_OK | os.X_OK) else f"{existing}: permission denied"
    try:
        fd, probe = tempfile.mkstemp(prefix=".srgan-mlx-probe.", dir=folder)
    except OSError as exc:
        return f"{folder}: {exc.strerror or exc}"
    os.close(fd)
    os.unlink(probe)
    return None


def write_text(target: str | os.PathLike, text: str) -> None:
    """Atomically replace ``target`` with ``text``."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)


@contextlib.contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """Yield a new hidden folder beside ``target`` (``.<name>.<random>``); when the block ends without an error it
    becomes ``target``, replacing a folder already there as a whole (the old one keeps a hidden name until the new
    one is in place, so ``target`` is complete at every moment). On an error the new folder is removed and
    ``target`` stays as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    _usual_permissions(tmp, 0o777)  # mkdtemp makes 0700
    old = tmp.with_name(tmp.name + ".old")
    try:
        yield tmp
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
