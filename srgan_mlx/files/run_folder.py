"""The layout of a training run's folder; every other module asks here for a path.

::

    <run>/
      config.json                the run's TrainConfig (rewritten when the run is resumed)
      metrics.jsonl              the history: one JSON line per logged step and per validation
      metrics.png                its chart, redrawn at each validation and checkpoint
      validation/step_00001000/  bicubic | SR | HR of each validation image
      checkpoints/
        step_00001000/           generator.safetensors, discriminator.safetensors (SRGAN),
                                 generator_ema.safetensors (with --ema-decay: the generator's moving average),
                                 optimizer_g.safetensors, optimizer_d.safetensors (SRGAN), state.json
        latest, best             one line each: the name of a checkpoint folder

A checkpoint folder is complete before it gets its ``step_*`` name (it is written
under a hidden temporary name), and the pointers are replaced atomically.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..atomic import write_text
from ..errors import UserError, warn

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHART_FILE = "metrics.png"
CHECKPOINTS = "checkpoints"
VALIDATION = "validation"
RUN_ENTRIES = (CONFIG_FILE, METRICS_FILE, CHART_FILE, CHECKPOINTS, VALIDATION)
"""What a run writes into its folder, and all that ``--overwrite`` removes."""

STATE_FILE = "state.json"
RECORD_BEST = "best_generator.safetensors"
"""In a run's record: the generator the run's best checkpoint was validated with (its moving average where kept)."""
GENERATOR = "generator"
AVERAGE = "generator_ema"
"""The moving average of the generator (``--ema-decay``): what a checkpoint's generator means when it has one."""
GENERATOR_FILES = (f"{AVERAGE}.safetensors", f"{GENERATOR}.safetensors")
"""A checkpoint's generator weights, in order of preference."""


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def weights_file(checkpoint: Path, network: str) -> Path:
    """A network's weights in a checkpoint (``generator``, ``discriminator``)."""
    return checkpoint / f"{network}.safetensors"


def optimizer_file(checkpoint: Path, key: str) -> Path:
    """An optimizer's state in a checkpoint (``g``, ``d``)."""
    return checkpoint / f"optimizer_{key}.safetensors"


def state_file(checkpoint: Path) -> Path:
    return checkpoint / STATE_FILE


def is_checkpoint(path: Path) -> bool:
    return state_file(path).is_file()


class RunFolder:
    """The paths of one run folder (see the module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.config = self.path / CONFIG_FILE
        self.metrics = self.path / METRICS_FILE
        self.chart = self.path / CHART_FILE
        self.checkpoints = self.path / CHECKPOINTS

    def __str__(self) -> str:
        return str(self.path)

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / checkpoint_name(step)

    def validation(self, step: int) -> Path:
        return self.path / VALIDATION / checkpoint_name(step)

    def pointed(self, pointer: str) -> Path | None:
        """The checkpoint folder ``latest`` or ``best`` names, None when the pointer is absent."""
        file = self.checkpoints / pointer
        return self.checkpoints / file.read_text().strip() if file.is_file() else None

    def point(self, pointer: str, checkpoint: Path) -> None:
        """Atomically make ``pointer`` name ``checkpoint``."""
        write_text(self.checkpoints / pointer, checkpoint.name + "\n")

    def saved(self) -> list[Path]:
        """The complete checkpoint folders, oldest step first."""
        return sorted(p for p in self.checkpoints.glob("step_*") if p.is_dir())

    def holds_run(self) -> bool:
        """Whether a run has written anything here."""
        return any((self.path / entry).exists() for entry in RUN_ENTRIES)

    def clear(self) -> None:
        """Remove what a run wrote (:data:`RUN_ENTRIES`); other files in the folder stay."""
        for entry in RUN_ENTRIES:
            path = self.path / entry
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)


def _stale(run: RunFolder, pointer: str, used: Path) -> None:
    warn(f"{run.checkpoints / pointer} names {run.pointed(pointer).name}, which is not a complete checkpoint; "
         f"using {used.name}, the newest that is")


def find_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder as given, or a run folder's latest checkpoint (where ``latest`` names one that is gone,
    the newest complete one, with a warning)."""
    path = Path(path)
    if is_checkpoint(path):
        return path
    run = RunFolder(path)
    latest = run.pointed("latest")
    if latest is not None and is_checkpoint(latest):
        return latest
    complete = [checkpoint for checkpoint in run.saved() if is_checkpoint(checkpoint)]
    if complete:
        if latest is not None:
            _stale(run, "latest", complete[-1])
        return complete[-1]
    if not path.exists():
        raise UserError(f"{path}: no such run or checkpoint folder")
    raise UserError(f"{path}: not a checkpoint or a run folder with checkpoints")


def run_of(checkpoint: Path) -> RunFolder | None:
    """The run folder a checkpoint folder sits in; None for a checkpoint folder outside any ``checkpoints/``."""
    folder = checkpoint if checkpoint.parent.name == CHECKPOINTS else checkpoint.absolute()
    return RunFolder(folder.parent.parent) if folder.parent.name == CHECKPOINTS else None


def network_kind(network: str) -> str:
    """The kind of weights file a checkpoint's network is saved as (the moving average is a generator)."""
    return GENERATOR if network == AVERAGE else network


def checkpoint_generator(checkpoint: Path) -> Path | None:
    """A checkpoint's generator weights: its moving average where it keeps one, else the trained generator."""
    return next((checkpoint / name for name in GENERATOR_FILES if (checkpoint / name).is_file()), None)


def find_generator(path: Path) -> Path | None:
    """The generator weights (:func:`checkpoint_generator`) of a checkpoint folder, or of a run folder's best
    checkpoint, else its latest, else (both pointers naming checkpoints that are gone) its newest checkpoint that has
    them, with a warning."""
    found = checkpoint_generator(path)
    if found is not None:
        return found
    run = RunFolder(path)
    for pointer in ("best", "latest"):
        checkpoint = run.pointed(pointer)
        if checkpoint is not None and checkpoint_generator(checkpoint) is not None:
            return checkpoint_generator(checkpoint)
    saved = [checkpoint for checkpoint in run.saved() if checkpoint_generator(checkpoint) is not None]
    if not saved:
        return None
    stale = next((pointer for pointer in ("latest", "best") if run.pointed(pointer) is not None), None)
    if stale:
        _stale(run, stale, saved[-1])
    return checkpoint_generator(saved[-1])
