"""File checksums: hex digests for weights files, and the SHA-256 form wheels' RECORD files use."""

from __future__ import annotations

import base64
import hashlib
import os


def file_hash(path: str | os.PathLike, algorithm: str = "sha256"):
    """The ``hashlib`` object of a file's bytes, read in 1 MiB blocks (OSError if unreadable)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest


def record_hash(path: str | os.PathLike) -> str:
    """SHA-256 as a wheel's RECORD writes it: urlsafe base64 without padding (no ``sha256=`` prefix)."""
    return base64.urlsafe_b64encode(file_hash(path).digest()).rstrip(b"=").decode()
