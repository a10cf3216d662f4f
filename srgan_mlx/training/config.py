"""Training settings: one :class:`TrainConfig` field per setting, with its help text and valid range.

The fields are the one source of ``srgan-mlx train``'s options (:func:`srgan_mlx.commands.train`
generates them), of their checks (:func:`check_ranges`) and of the recipe files: ``--config FILE``
(JSON, any subset of the fields; a run's own ``config.json`` works) and ``--preset NAME`` (the files
in ``srgan_mlx/training/configs/``). The defaults are the paper's values (Ledig et al. 2017, section 3.2).
The resolved config is saved with every checkpoint and restored by ``--resume``, which changes only
the operational fields (:func:`resumed_config`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

STAGES = ("srresnet", "srgan")
D_BATCHES = ("separate", "joint")
GAN_LOSSES = ("vanilla", "relativistic")
DISCRIMINATORS = ("paper", "paper-sn", "unet")
VGG_DISTANCES = ("mse", "l1")
BLIND_MODES = ("pattern", "growth")
BEST_MEASURES = ("psnr", "niqe")
BF16_NETWORKS = ("vgg", "discriminator", "generator")
"""The networks ``--bf16`` may name."""
CONFIG_DIR = Path(__file__).parent / "configs"


def setting(default, help: str, *, minimum=None, below=None, choices=None, srgan: bool = False,
            operational: bool = False, path: bool = False):  # fmt: skip
    """A :class:`TrainConfig` field: ``help`` for the option, the range ``minimum <= value < below`` (either may be
    None), ``choices``, whether it belongs to the SRGAN stage alone, whether a resumed run may change it
    (``operational``), whether it is a path (kept absolute)."""
    meta = {"help": help, "minimum": minimum, "below": below, "choices": choices, "srgan": srgan,
            "operational": operational, "path": path}  # fmt: skip
    if isinstance(default, list):
        return field(default_factory=list, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything that defines a training run."""

    stage: str = setting("srresnet", "srresnet (pixel MSE) or srgan (VGG19 + adversarial).", choices=STAGES)
    data: list[str] = setting([], "Folder of training images (recursive; repeatable).", path=True)
    val: str | None = setting(
        None, "Folder of HR validation images, e.g. Set5/HR (a resumed run may change it).", path=True,
        operational=True,
    )  # fmt: skip
    out: str = setting("runs/srgan-mlx", "Run folder for checkpoints, metrics and images.", path=True)
    init: str | None = setting(
        None, "Start the generator from these weights: a shipped model (srresnet), a weights file, a checkpoint or a "
        "run (SRGAN: from SRResNet).", path=True,
    )  # fmt: skip
    vgg: str | None = setting(None, "SRGAN: VGG19 weights made by convert-vgg.", path=True, srgan=True)
    scale: int = setting(4, "Upscaling factor.", choices=(2, 4, 8))
    crop: int = setting(96, "HR crop side in pixels (a multiple of --scale).", minimum=1)
    batch_size: int = setting(16, "Images per step per process.", minimum=1)
    num_blocks: int = setting(16, "Generator residual blocks.", minimum=1)
    channels: int = setting(64, "Generator channels.", minimum=1)
    steps: int | None = setting(
        None, "Total updates [10^6 srresnet, 2x10^5 srgan].", minimum=1, operational=True
    )
    lr: float = setting(1e-4, "Adam learning rate.", minimum=0.0)
    lr_final: float = setting(
        1e-5, "SRGAN: learning rate for the second half of the steps (G and D switch at the same step).", minimum=0.0,
        srgan=True,
    )  # fmt: skip
    d_lr_scale: float = setting(
        1.0, "SRGAN: the discriminator's learning rate is this times the generator's (a milder D below 1).",
        minimum=0.0, srgan=True,
    )  # fmt: skip
    beta1: float = setting(0.9, "Adam beta1.", minimum=0.0, below=1.0)
    beta2: float = setting(0.999, "Adam beta2.", minimum=0.0, below=1.0)
    adam_bias_correction: bool = setting(
        False, "Adam with bias-corrected moments (Kingma & Ba; PyTorch's and TensorFlow's Adam). Without (MLX's Adam) "
        "the first updates are several times --lr: a fine-tune from SRResNet drifts.",
    )  # fmt: skip
    adversarial_weight: float = setting(
        1e-3, "SRGAN: weight of the generator's adversarial term (-log D(G(x)), or RaGAN's with --gan-loss "
        "relativistic).", minimum=0.0, srgan=True,
    )  # fmt: skip
    gan_loss: str = setting(
        "vanilla", "SRGAN: vanilla (the paper's binary cross-entropy) or relativistic (ESRGAN's relativistic average "
        "GAN: D judges whether real images look more real than the fakes on average, and G the reverse).",
        choices=GAN_LOSSES, srgan=True,
    )  # fmt: skip
    discriminator: str = setting(
        "paper", "SRGAN: paper (the paper's discriminator, one judgement per image), paper-sn (the same with its two "
        "dense layers spectrally normalised, which bounds its logits' scale) or unet (Real-ESRGAN's U-Net with "
        "spectral normalisation, one judgement per pixel).", choices=DISCRIMINATORS, srgan=True,
    )  # fmt: skip
    pixel_weight: float = setting(
        0.0, "SRGAN: add this times an L1 pixel loss (ESRGAN: 1e-2). 0: the paper's loss.", minimum=0.0, srgan=True
    )
    anchor_weight: float = setting(
        0.0, "SRGAN: add this times the L1 between the SR output downscaled by MATLAB bicubic and the LR input (pins "
        "colour and brightness, leaves texture free). 0: the paper's loss.", minimum=0.0, srgan=True,
    )  # fmt: skip
    phase_weight: float = setting(
        0.0, "SRGAN: add this times the L1 of the fixed sub-pixel pattern of SR - HR (the mean difference at each "
        "position inside an LR pixel's block), against the grid of period --scale that VGG and D reward. 0: the paper's.",
        minimum=0.0, srgan=True,
    )  # fmt: skip
    phase_window: int = setting(
        0, "SRGAN: --phase-weight's pattern per window of N x N LR pixels (N divides --crop / --scale) instead of "
        "per crop, so a grid on part of the crop counts too. 0: the whole crop.", minimum=0, srgan=True,
    )  # fmt: skip
    grid_blind: str = setting(
        "", "SRGAN: generator terms (comma-separated, e.g. content,adversarial) whose gradient loses its fixed sub-pixel "
        "pattern (per --phase-window window) before it reaches the generator, so they do not push a grid of period "
        "--scale (large updates can still print one); their values are unchanged. Empty: the paper's.", srgan=True,
    )  # fmt: skip
    grid_blind_mode: str = setting(
        "pattern", "SRGAN: what --grid-blind removes: pattern (the whole sub-pixel pattern of the terms' gradient) or "
        "growth (only its part along the grid the batch prints, the mean pattern of SR - HR, where it would "
        "lengthen it: the terms can still pull the grid down).", choices=BLIND_MODES, srgan=True,
    )  # fmt: skip
    artifact_weight: float = setting(
        0.0, "SRGAN: add this times LDL's artifact loss (Liang et al. 2022: L1 weighted by the local variance of the "
        "residual where it is worse than the moving average's; LDL: 1). Needs --ema-decay. 0: the paper's.",
        minimum=0.0, srgan=True,
    )  # fmt: skip
    frozen_g_norm: bool = setting(
        False, "SRGAN: the generator's BatchNorm layers normalise with their running statistics, which stay as "
        "--init left them (scale and shift still learn). Off: the paper's (batch statistics).", srgan=True,
    )  # fmt: skip
    d_batch: str = setting(
        "separate", "SRGAN: the discriminator sees real and fake as separate batches (the paper's code) or as one joint "
        "batch, sharing BatchNorm statistics, in its update and in the generator's loss.", choices=D_BATCHES,
        srgan=True,
    )  # fmt: skip
    d_shift: int = setting(
        0, "SRGAN: the discriminator sees real and fake circularly shifted by one random offset of 0..N-1 pixels "
        "per axis at each use (a differentiable translation, as DiffAugment), so its strided convolutions' gradients "
        "do not print a fixed-phase grid on the generator. 0: the paper's.", minimum=0, srgan=True,
    )  # fmt: skip
    d_warmup: int = setting(
        0, "SRGAN: the first N steps train the discriminator alone against the initial generator.", minimum=0,
        srgan=True,
    )  # fmt: skip
    ema_decay: float = setting(
        0.0, "Keep a moving average of the generator with this decay (e.g. 0.999); validation and the checkpoints' "
        "generator for upscale, export and --init use it. 0: none.", minimum=0.0, below=1.0,
    )  # fmt: skip
    vgg_layers: str = setting(
        "relu5_4", "SRGAN: the content loss's VGG19 layers and weights, e.g. relu5_4 (the paper's) or "
        "conv1_2:0.1,conv2_2:0.1,conv3_4:1,conv4_4:1,conv5_4:1 (LDL's; convN_M: before the ReLU).", srgan=True,
    )  # fmt: skip
    vgg_distance: str = setting(
        "mse", "SRGAN: distance between VGG feature maps: mse (the paper's) or l1 (ESRGAN's).", choices=VGG_DISTANCES,
        srgan=True,
    )  # fmt: skip
    vgg_rescale: float = setting(
        1 / 12.75, "SRGAN: factor on the VGG feature maps (the paper's 1/12.75; ~1/57.6 puts the original VGG19's "
        "on torchvision's scale, for ESRGAN's and LDL's weights).", minimum=0.0, srgan=True,
    )  # fmt: skip
    bf16: str = setting(
        "", "SRGAN: networks whose convolutions multiply in bfloat16, comma-separated: vgg, discriminator, generator "
        "(sums in float32; where oneDNN has bfloat16 kernels, AVX512-BF16 or AMX, and float32 elsewhere). A resumed "
        "run may change it. Empty: all in float32.", srgan=True, operational=True,
    )  # fmt: skip
    seed: int = setting(0, "Random seed (weights, crops).")
    workers: int = setting(2, "Data-loading threads.", minimum=1, operational=True)
    log_every: int = setting(10, "Steps per metrics.jsonl line.", minimum=1, operational=True)
    val_every: int = setting(1000, "Steps between validations.", minimum=1, operational=True)
    checkpoint_every: int = setting(1000, "Steps between checkpoints.", minimum=1, operational=True)
    keep: int = setting(3, "Checkpoints kept besides the best.", minimum=0, operational=True)
    best_by: str | None = setting(
        None, "The validation measure that names the best checkpoint (kept through pruning): psnr (highest) or niqe "
        "(lowest, of the SR outputs; a perceptual run's PSNR only falls as texture grows) [psnr srresnet, niqe srgan].",
        choices=BEST_MEASURES, operational=True,
    )  # fmt: skip

    def total_steps(self) -> int:
        if self.steps is not None:
            return self.steps
        return 1_000_000 if self.stage == "srresnet" else 200_000

    def best_measure(self) -> str:
        """``best_by``, or the stage's default: PSNR for SRResNet, NIQE for SRGAN."""
        if self.best_by is not None:
            return self.best_by
        return "psnr" if self.stage == "srresnet" else "niqe"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        if values.get("vgg_bf16") and "bf16" not in values:  # configs saved before --bf16 had --vgg-bf16
            values = {**values, "bf16": "vgg"}
        return cls(**{k: v for k, v in values.items() if k in known})


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
OPERATIONAL = tuple(name for name, f in FIELDS.items() if f.metadata["operational"])
"""The fields a resumed run takes from the command line (``--device`` too, which is not a field): how long and
how it runs, not what it learns. Every other field is the run's model or recipe."""
PATH_FIELDS = tuple(name for name, f in FIELDS.items() if f.metadata["path"])


def bf16_networks(config: "TrainConfig") -> tuple[str, ...]:
    """The networks named by ``--bf16``, checked against :data:`BF16_NETWORKS` (a :class:`UserError` otherwise)."""
    names = tuple(name.strip() for name in config.bf16.split(",") if name.strip())
    unknown = [name for name in names if name not in BF16_NETWORKS]
    if unknown:
        raise UserError(f"--bf16 {config.bf16}: unknown network {unknown[0]!r}; known: {', '.join(BF16_NETWORKS)}")
    return names


def option(name: str) -> str:
    """The command-line option of a field: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def check_ranges(config: TrainConfig) -> None:
    """Each field within its range and choices, and the SRGAN-only fields at their defaults for the SRResNet stage;
    a :class:`UserError` naming the option otherwise."""
    for name, f in FIELDS.items():
        value, meta = getattr(config, name), f.metadata
        if value is None:
            continue
        if meta["choices"] and value not in meta["choices"]:
            raise UserError(f"{option(name)} must be one of {', '.join(map(str, meta['choices']))}, got {value!r}")
        if meta["minimum"] is not None and value < meta["minimum"]:
            least = "at least 1" if meta["minimum"] == 1 else f">= {meta['minimum']:g}"
            raise UserError(f"{option(name)} must be {least}, got {value}")
        if meta["below"] is not None and value >= meta["below"]:
            raise UserError(f"{option(name)} must be in [{meta['minimum']:g}, {meta['below']:g}), got {value}")
    if config.stage != "srgan":
        changed = [n for n, f in FIELDS.items() if f.metadata["srgan"] and getattr(config, n) != f.default]
        if changed:
            raise UserError(f"{', '.join(map(option, changed))}: options of --stage srgan (SRResNet's loss is pixel MSE)")


def _comparable(name: str, value):
    """``value`` as compared on resume: paths made absolute, so ``runs/x`` and ``./runs/x`` agree."""
    if name not in PATH_FIELDS or value is None:
        return value
    return [os.path.abspath(v) for v in value] if isinstance(value, list) else os.path.abspath(value)


def anchored(config: TrainConfig) -> TrainConfig:
    """``config`` with its paths (:data:`PATH_FIELDS`; ``init`` when it is a path, not a shipped model's name) made
    absolute, so that ``--resume`` from any working folder finds them."""
    changes = {}
    for name in PATH_FIELDS:
        value = getattr(config, name)
        if isinstance(value, list):
            changes[name] = [os.path.abspath(path) for path in value]
        elif value and (name != "init" or os.path.exists(value)):
            changes[name] = os.path.abspath(value)
    return dataclasses.replace(config, **changes)


def _shown(value) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def resumed_config(saved: dict, changes: dict, movable: tuple[str, ...] = ()) -> TrainConfig:
    """A saved run's config with the :data:`OPERATIONAL` ``changes`` (and those of the ``movable`` fields) applied.

    Any other change (an option whose value differs from the run's) is a :class:`UserError`
    naming each such option, its value and the run's.
    """
    config = TrainConfig.from_dict(saved)
    allowed = (*OPERATIONAL, *movable)
    refused = [
        name for name, value in changes.items()
        if name not in allowed and _comparable(name, value) != _comparable(name, getattr(config, name))
    ]  # fmt: skip
    if refused:
        given = ", ".join(f"{option(name)} {_shown(changes[name])}" for name in refused)
        kept = ", ".join(f"{option(name)} {_shown(getattr(config, name))}" for name in refused)
        takes = ", ".join(option(name) for name in (*allowed, "device"))
        raise UserError(
            f"--resume continues a run with its own model and recipe: drop {given} (the run has {kept}); "
            f"a resumed run takes only {takes}"
        )
    return dataclasses.replace(config, **{name: changes[name] for name in allowed if name in changes})


def presets() -> list[str]:
    """The recipe files shipped in ``srgan_mlx/training/configs/``, by name."""
    return sorted(path.stem for path in CONFIG_DIR.glob("*.json"))


def read_recipe(source: str) -> dict:
    """The fields of a recipe: a preset's name or a JSON file (a run's ``config.json`` too); unknown keys refused."""
    path = CONFIG_DIR / f"{source}.json" if source in presets() else Path(source)
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{source}: no such config file (presets: {', '.join(presets())})") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{source}: not a readable JSON config ({exc})") from None
    if not isinstance(values, dict):
        raise UserError(f"{source}: a config is a JSON object of training settings")
    unknown = sorted(set(values) - set(FIELDS) - {"description"})
    if unknown:
        raise UserError(f"{source}: unknown settings {', '.join(unknown)} (known: {', '.join(FIELDS)})")
    values.pop("description", None)
    for name, value in values.items():
        if not _fits(FIELDS[name].type, value):
            wanted = " or ".join(JSON_KINDS[kind] for kind in FIELDS[name].type.split(" | "))
            raise UserError(f"{source}: {name} must be {wanted}, got {json.dumps(value)}")
    return {name: float(v) if FIELDS[name].type == "float" else v for name, v in values.items()}


JSON_KINDS = {"float": "a number", "int": "an integer", "bool": "true or false", "str": "a string",
              "list[str]": "a list of strings", "None": "null"}


def _fits(annotation: str, value) -> bool:
    """Whether a JSON value is of a field's type (``float`` takes integers too; ``bool`` is not an ``int`` here)."""
    for kind in annotation.split(" | "):
        if kind == "None" and value is None or kind == "bool" and isinstance(value, bool):
            return True
        if isinstance(value, bool):
            continue
        if kind == "int" and isinstance(value, int) or kind == "float" and isinstance(value, (int, float)):
            return True
        if kind == "str" and isinstance(value, str):
            return True
        if kind == "list[str]" and isinstance(value, list) and all(isinstance(v, str) for v in value):
            return True
    return False
