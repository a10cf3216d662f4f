"""Training checkpoints: one folder per saved step, written atomically, pruned to the last K plus the best.

Layout of ``<run>/checkpoints/step_00001000/``: ``generator.safetensors`` (and
``discriminator.safetensors`` for SRGAN) as :mod:`srgan_mlx.model_io` writes them,
``optimizer_<name>.safetensors`` and ``state.json`` (config, step, data-sampler
state, metrics history; MLX's random key is derived from the step, see train.py). The folder is complete before it
gets its final name, and ``checkpoints/latest`` / ``checkpoints/best`` (one line:
the folder name) are replaced atomically after it, so a run killed at any moment
leaves the previous checkpoint readable.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten, tree_unflatten

from .atomic import write_text
from .errors import UserError
from .model_io import load_into, read_weights, save_module

STATE_FILE = "state.json"


def checkpoint_dir(run: Path) -> Path:
    return run / "checkpoints"


def save_checkpoint(
    run: Path,
    step: int,
    modules: dict[str, nn.Module],
    optimizers: dict[str, optim.Optimizer],
    state: dict,
    best: bool = False,
) -> Path:
    """Write the checkpoint of ``step`` and point ``latest`` (and ``best`` if asked) at it."""
    root = checkpoint_dir(run)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        for key, module in modules.items():
            save_module(tmp / f"{key}.safetensors", module, key, module.config())
        for key, optimizer in optimizers.items():
            arrays = dict(tree_flatten(optimizer.state))
            mx.save_safetensors(str(tmp / f"optimizer_{key}.safetensors"), arrays)
        write_text(tmp / STATE_FILE, json.dumps({**state, "step": step}, indent=1))
        final = root / name
        if final.exists():  # the same step saved again (after a resume): swap the old one out
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_text(root / "latest", name + "\n")
    if best:
        write_text(root / "best", name + "\n")
    return final


def resolve(path: str | os.PathLike) -> Path:
    """A checkpoint folder, or a run folder (its latest checkpoint)."""
    path = Path(path)
    if (path / STATE_FILE).is_file():
        return path
    pointer = checkpoint_dir(path) / "latest"
    if pointer.is_file():
        return checkpoint_dir(path) / pointer.read_text().strip()
    raise UserError(f"{path}: not a checkpoint or a run folder with checkpoints")


def read_state(path: Path) -> dict:
    try:
        return json.loads((path / STATE_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path / STATE_FILE}: unreadable checkpoint state ({exc})") from None


def load_modules(path: Path, modules: dict[str, nn.Module]) -> None:
    for key, module in modules.items():
        arrays, _ = read_weights(path / f"{key}.safetensors", key)
        load_into(module, arrays, path / f"{key}.safetensors")


def load_optimizer(path: Path, key: str, optimizer: optim.Optimizer, parameters: dict) -> None:
    """Restore an optimizer's state (moments, step, learning rate) saved by :func:`save_checkpoint`."""
    file = path / f"optimizer_{key}.safetensors"
    try:
        arrays = mx.load(str(file))
    except Exception as exc:
        raise UserError(f"{file}: unreadable optimizer state ({exc})") from None
    optimizer.state = tree_unflatten(list(arrays.items()))
    optimizer.init(parameters)


def prune(run: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints and the one ``best`` points at."""
    root = checkpoint_dir(run)
    protected = {(root / p).read_text().strip() for p in ("latest", "best") if (root / p).is_file()}
    saved = sorted(p.name for p in root.glob("step_*") if p.is_dir())
    for name in saved[: max(len(saved) - keep, 0)]:
        if name not in protected:
            shutil.rmtree(root / name, ignore_errors=True)
