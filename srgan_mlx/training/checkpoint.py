"""Training checkpoints: one folder per saved step, written atomically, pruned to the last K plus the best.

A checkpoint holds each network's weights and each optimizer's state (written by
:func:`srgan_mlx.networks.weights_io.write_weights`) and ``state.json``: the config, the step, the
data sampler's state, the best validation PSNR (and NIQE) and the steps not yet averaged into a
``metrics.jsonl`` line. The metrics history itself stays in ``metrics.jsonl``, so a
checkpoint's size does not grow with the run. MLX's random key is derived from the step
(see train.py). Where each file goes is :mod:`srgan_mlx.files.run_folder`'s business.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten, tree_unflatten

from ..atomic import atomic_folder, write_text
from ..errors import UserError
from ..networks.weights_io import load_into, read_weights, save_module, write_weights
from ..files.run_folder import (
    AVERAGE, CONFIG_FILE, GENERATOR, METRICS_FILE, RECORD_BEST, RunFolder, checkpoint_generator, is_checkpoint,
    network_kind, optimizer_file, run_of, state_file, weights_file,
)  # fmt: skip


def save_checkpoint(
    run: RunFolder,
    step: int,
    modules: dict[str, nn.Module],
    optimizers: dict[str, optim.Optimizer],
    state: dict,
    best: bool = False,
) -> Path:
    """Write the checkpoint of ``step`` and point ``latest`` (and ``best`` if asked) at it."""
    final = run.checkpoint(step)
    # the same step may be saved again (after resuming from an older checkpoint): atomic_folder keeps the old one
    # until the new one is in place, so a pointer at this step always finds a complete checkpoint
    with atomic_folder(final) as tmp:
        for key, module in modules.items():
            save_module(weights_file(tmp, key), module, network_kind(key), module.config())
        for key, optimizer in optimizers.items():
            write_weights(optimizer_file(tmp, key), dict(tree_flatten(optimizer.state)), "optimizer", {})
        write_text(state_file(tmp), json.dumps({**state, "step": step}, indent=1))
    run.point("latest", final)
    if best:
        run.point("best", final)
    return final


def read_state(checkpoint: Path) -> dict:
    try:
        return json.loads(state_file(checkpoint).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{state_file(checkpoint)}: unreadable checkpoint state ({exc})") from None


def load_modules(checkpoint: Path, modules: dict[str, nn.Module]) -> None:
    for key, module in modules.items():
        file = weights_file(checkpoint, key)
        arrays, _ = read_weights(file, network_kind(key))
        load_into(module, arrays, file)


def load_optimizer(checkpoint: Path, key: str, optimizer: optim.Optimizer, parameters: dict) -> None:
    """Restore an optimizer's state (moments, step, learning rate) saved by :func:`save_checkpoint`.

    The state dictionary is refilled in place: a compiled training step built before holds on to it.
    """
    file = optimizer_file(checkpoint, key)
    try:
        arrays = mx.load(str(file))
    except Exception as exc:
        raise UserError(f"{file}: unreadable optimizer state ({exc})") from None
    optimizer.state.clear()
    optimizer.state.update(tree_unflatten(list(arrays.items())))
    optimizer.init(parameters)


def _write_half(source: Path, target: Path) -> None:
    """A generator's weights file rewritten in float16."""
    arrays, config = read_weights(source, GENERATOR)
    write_weights(target, {k: v.astype(mx.float16) for k, v in arrays.items()}, GENERATOR, config)


def write_record(checkpoint: Path, folder: Path) -> Path:
    """Write the record of a run at ``checkpoint`` into ``folder`` (replaced as a whole, atomically): what carries the
    run to a machine that has nothing of it, small enough to commit. Its generator and moving average in float16,
    ``config.json``, the run's ``metrics.jsonl`` up to the checkpoint's step, ``state.json`` (step, data position,
    best validation values) marked ``"record": true``, and, where the run's best checkpoint is at or before this
    step, the generator it was validated with in float16 (:data:`RECORD_BEST`; its step is ``best_step``); no
    discriminator and no optimizer states (about 30x smaller). ``srgan-mlx train --resume FOLDER`` continues from
    it (:meth:`srgan_mlx.training.train.Trainer.carry_on`)."""
    state = read_state(checkpoint)
    run = run_of(checkpoint)
    best = run.pointed("best") if run else None
    best_step = read_state(best)["step"] if best is not None and is_checkpoint(best) else None
    if best_step is not None and best_step > state["step"]:
        best_step = None  # a record of an older checkpoint holds nothing from after it
    with atomic_folder(folder) as tmp:
        for key in (GENERATOR, AVERAGE):
            if weights_file(checkpoint, key).is_file():
                _write_half(weights_file(checkpoint, key), weights_file(tmp, key))
        if best_step is not None:
            _write_half(checkpoint_generator(best), tmp / RECORD_BEST)
        history = run.metrics.read_text().splitlines(keepends=True) if run and run.metrics.is_file() else []
        kept = [line for line in history if json.loads(line).get("step", 0) <= state["step"]]
        write_text(tmp / METRICS_FILE, "".join(kept))
        write_text(tmp / CONFIG_FILE, json.dumps(state["config"], indent=1))
        write_text(state_file(tmp), json.dumps({**state, "record": True, "best_step": best_step}, indent=1))
    return folder


def carry_best(record: Path, state: dict, run: RunFolder, has_average: bool) -> Path | None:
    """Put a record's best generator (:data:`RECORD_BEST`) into ``run`` as a generator-only checkpoint at its step,
    named by ``best`` (so pruning keeps it, ``--init RUN`` and ``upscale --model RUN`` load it, and the run's next
    record carries it again); None where the record has none. Its ``state.json`` says ``"best_only": true``: there is
    no run to continue from it (:func:`is_best_only`)."""
    source, step = record / RECORD_BEST, state.get("best_step")
    if step is None or not source.is_file():
        return None
    final = run.checkpoint(step)
    with atomic_folder(final) as tmp:
        shutil.copyfile(source, weights_file(tmp, AVERAGE if has_average else GENERATOR))
        write_text(state_file(tmp), json.dumps({"config": state["config"], "step": step, "best_only": True}, indent=1))
    run.point("best", final)
    return final


def is_best_only(state: dict) -> bool:
    """Whether a ``state.json`` is that of a best generator carried from a record (:func:`carry_best`)."""
    return bool(state.get("best_only"))


def is_record(state: dict) -> bool:
    """Whether a ``state.json`` is a record's (:func:`write_record`), not a full checkpoint's."""
    return bool(state.get("record"))


def prune(run: RunFolder, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints and the ones ``latest`` and ``best`` name, and the hidden
    half-written folders a killed save leaves behind (only the rank that saves calls this, after its save)."""
    protected = {run.pointed(pointer) for pointer in ("latest", "best")}
    saved = run.saved()
    for folder in saved[: max(len(saved) - keep, 0)]:
        if folder not in protected:
            shutil.rmtree(folder, ignore_errors=True)
    for leftover in run.checkpoints.glob(".step_*"):
        shutil.rmtree(leftover, ignore_errors=True)
