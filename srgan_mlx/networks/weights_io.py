"""A network's weights file: its arrays (parameters and BatchNorm statistics) and constructor config as safetensors.

A weights file holds the flattened arrays of one network and, in its metadata, ``format``
(``srgan-mlx/<kind>``), ``config`` (the constructor arguments as JSON) and any extra fields. Loading
is strict: every key and shape must match the network the config builds. This is the one writer of
weights and optimizer states (:func:`write_weights`) and the one strict loader (:func:`load_into`);
which file a name or path stands for is :mod:`srgan_mlx.files.model_io`'s business.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from ..atomic import atomic_path
from ..errors import UserError


def write_weights(path: str | os.PathLike, arrays: dict[str, mx.array], kind: str, config: dict, **extra: str) -> None:
    """Atomically write ``arrays`` as an srgan-mlx ``kind`` file: the one writer of weights and optimizer states."""
    metadata = {"format": f"srgan-mlx/{kind}", "config": json.dumps(config), **extra}
    with atomic_path(path, suffix=".safetensors") as tmp:
        mx.save_safetensors(str(tmp), arrays, metadata=metadata)


def save_module(path: str | os.PathLike, module: nn.Module, kind: str, config: dict, **extra: str) -> None:
    """Atomically write all arrays of ``module`` (parameters and BN statistics) to ``path``."""
    write_weights(path, dict(tree_flatten(module.parameters())), kind, config, **extra)


def read_weights(path: str | os.PathLike, kind: str | tuple[str, ...]) -> tuple[dict[str, mx.array], dict]:
    """Read a weights file written by :func:`write_weights` (of ``kind``, or one of several kinds); return (arrays,
    config)."""
    arrays, config, _ = read_weights_and_kind(path, (kind,) if isinstance(kind, str) else kind)
    return arrays, config


def read_weights_and_kind(
    path: str | os.PathLike, kinds: tuple[str, ...], what: str | None = None
) -> tuple[dict[str, mx.array], dict, str]:
    """(arrays, config, kind) of a weights file of one of ``kinds`` (``what`` names them in messages)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such weights file")
    try:
        arrays, metadata = mx.load(str(path), return_metadata=True)
    except Exception as exc:  # mlx raises RuntimeError/ValueError for bad files
        raise UserError(f"{path}: not a readable safetensors file ({exc})") from None
    kind = str(metadata.get("format", "")).removeprefix("srgan-mlx/")
    if kind not in kinds:
        what = what or " or ".join(kinds)
        raise UserError(f"{path}: not an srgan-mlx {what} weights file (format {metadata.get('format')!r})")
    # weights may be stored in float16 (the bundled ones are); networks compute in float32
    arrays = {k: v.astype(mx.float32) if mx.issubdtype(v.dtype, mx.floating) else v for k, v in arrays.items()}
    return arrays, json.loads(metadata.get("config", "{}")), kind


def _some(names: list[str]) -> str:
    names = sorted(names)
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def load_into(module: nn.Module, arrays: dict[str, mx.array], source: str | os.PathLike) -> None:
    """Strictly load ``arrays`` into ``module``: every key present, every shape equal; else one line that says
    which arrays are missing, extra or of another shape."""
    expected = dict(tree_flatten(module.parameters()))
    missing = [key for key in expected if key not in arrays]
    extra = [key for key in arrays if key not in expected]
    reshaped = [f"{key} {tuple(arrays[key].shape)}, not {tuple(expected[key].shape)}" for key in expected
                if key in arrays and arrays[key].shape != expected[key].shape]  # fmt: skip
    problems = [f"{len(found)} {'array' if len(found) == 1 else 'arrays'} {what} ({_some(found)})" for found, what in (
        (missing, "missing"), (extra, "the network does not have"), (reshaped, "of another shape")) if found]
    if problems:
        raise UserError(f"{source}: weights do not fit the network: {'; '.join(problems)}")
    try:
        module.load_weights(list(arrays.items()), strict=True)
    except ValueError as exc:
        raise UserError(f"{source}: weights do not fit the network ({' '.join(str(exc).split())})") from None
    mx.eval(module.parameters())
