"""Training hyperparameters: the paper's values as defaults, plus named presets.

The resolved :class:`TrainConfig` is saved (as JSON) with every checkpoint and
restored by ``--resume``, which changes only the :data:`OPERATIONAL` fields
(:func:`resumed_config`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from .errors import UserError

STAGES = ("srresnet", "srgan")
D_BATCHES = ("separate", "joint")


@dataclass
class TrainConfig:
    """Everything that defines a training run (Ledig et al. 2017, section 3.2)."""

    stage: str = "srresnet"
    data: list[str] = field(default_factory=list)
    val: str | None = None
    out: str = "runs/srgan-mlx"
    scale: int = 4
    crop: int = 96  # HR crop side; LR side is crop / scale
    batch_size: int = 16
    num_blocks: int = 16
    channels: int = 64
    steps: int | None = None  # None: the paper's 10^6 (SRResNet) or 2x10^5 (SRGAN)
    lr: float = 1e-4
    lr_final: float = 1e-5  # SRGAN: learning rate for the second half of the updates
    beta1: float = 0.9
    beta2: float = 0.999
    adam_bias_correction: bool = False  # Kingma & Ba's bias-corrected moments (PyTorch, TensorFlow); MLX's default: off
    adversarial_weight: float = 1e-3
    pixel_weight: float = 0.0  # SRGAN: weight of an L1 pixel loss beside the paper's (ESRGAN: 1e-2); 0 = the paper
    anchor_weight: float = 0.0  # SRGAN: weight of L1(imresize(SR, 1/scale), LR), the low-frequency anchor; 0 = the paper
    d_batch: str = "separate"  # SRGAN: D sees real and fake in separate batches (the paper's code) or one joint batch
    d_warmup: int = 0  # SRGAN: the first d_warmup steps train D alone against the initial generator; 0 = the paper
    ema_decay: float = 0.0  # moving average of the generator for validation and export (BasicSR: 0.999); 0 = none
    vgg_layer: str = "relu5_4"
    vgg_rescale: float = 1 / 12.75
    vgg: str | None = None
    init: str | None = None  # SRGAN: generator weights from an SRResNet run
    seed: int = 0
    workers: int = 2
    log_every: int = 10
    val_every: int = 1000
    checkpoint_every: int = 1000
    keep: int = 3  # last checkpoints kept, besides the best one

    def total_steps(self) -> int:
        if self.steps is not None:
            return self.steps
        return 1_000_000 if self.stage == "srresnet" else 200_000

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


OPERATIONAL = ("steps", "workers", "log_every", "val_every", "checkpoint_every", "keep")
"""The fields a resumed run takes from the command line (``--device`` too, which is not a field): how long and
how it runs, not what it learns. Every other field is the run's model or recipe."""
PATH_FIELDS = ("data", "val", "vgg", "init", "out")


def option(name: str) -> str:
    """The command-line option of a field: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def _comparable(name: str, value):
    """``value`` as compared on resume: paths made absolute, so ``runs/x`` and ``./runs/x`` agree."""
    if name not in PATH_FIELDS or value is None:
        return value
    return [os.path.abspath(v) for v in value] if isinstance(value, list) else os.path.abspath(value)


def anchored(config: TrainConfig) -> TrainConfig:
    """``config`` with its data, validation and VGG paths (and ``init`` when it is a path, not a shipped model's
    name) made absolute, so that ``--resume`` from any working folder finds them."""
    changes = {"data": [os.path.abspath(path) for path in config.data]}
    for name in ("val", "vgg", "init"):
        value = getattr(config, name)
        if value and (name != "init" or os.path.exists(value)):
            changes[name] = os.path.abspath(value)
    return dataclasses.replace(config, **changes)


def _shown(value) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def resumed_config(saved: dict, changes: dict) -> TrainConfig:
    """A saved run's config with the :data:`OPERATIONAL` ``changes`` applied.

    Any other change (an option whose value differs from the run's) is a :class:`UserError`
    naming each such option, its value and the run's.
    """
    config = TrainConfig.from_dict(saved)
    refused = [
        name for name, value in changes.items()
        if name not in OPERATIONAL and _comparable(name, value) != _comparable(name, getattr(config, name))
    ]  # fmt: skip
    if refused:
        given = ", ".join(f"{option(name)} {_shown(changes[name])}" for name in refused)
        kept = ", ".join(f"{option(name)} {_shown(getattr(config, name))}" for name in refused)
        allowed = ", ".join(option(name) for name in (*OPERATIONAL, "device"))
        raise UserError(
            f"--resume continues a run with its own model and recipe: drop {given} (the run has {kept}); "
            f"a resumed run takes only {allowed}"
        )
    return dataclasses.replace(config, **{name: changes[name] for name in OPERATIONAL if name in changes})


PRESETS: dict[str, dict] = {
    # the paper's networks and schedule (the defaults above)
    "paper": {},
    # a one-minute smoke run on a laptop CPU: small networks, small crops, few steps
    "tiny": {
        "num_blocks": 2,
        "channels": 16,
        "crop": 48,
        "batch_size": 4,
        "steps": 60,
        "log_every": 5,
        "val_every": 30,
        "checkpoint_every": 30,
    },
}
