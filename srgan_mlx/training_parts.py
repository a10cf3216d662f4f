"""What a training run is made of, built from its :class:`~srgan_mlx.config.TrainConfig`: the networks (and the
generator's moving average), the optimizers and the compiled steps; the checks that refuse a config before any of
it is built. Restoring a checkpoint into these parts and running them is :mod:`srgan_mlx.train`'s business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import mlx.nn as nn
import mlx.optimizers as optim
import mlx.core as mx

from . import kernels
from .config import TrainConfig, check_ranges
from .discriminator import Discriminator
from .errors import UserError
from .evaluate import list_images, pair_inputs
from .generator import Generator
from .losses import LowFrequencyAnchor, VGGLoss
from .model_io import load_vgg
from .run_folder import AVERAGE
from .steps import DiscriminatorStep, SRGANStep, SRResNetStep
from .vgg import LAYER_NAMES

OPTIMIZES = {"g": "generator", "d": "discriminator"}
"""The network each optimizer updates, by the optimizer's key in a checkpoint."""


def learning_rate(config: TrainConfig):
    """Constant ``lr`` (SRResNet), or ``lr`` then ``lr_final`` for the second half of the updates (SRGAN)."""
    if config.stage == "srresnet":
        return config.lr
    half = config.total_steps() // 2
    return lambda step: mx.where(step < half, config.lr, config.lr_final)


def adam(config: TrainConfig) -> optim.Adam:
    """Adam with the run's rate schedule and betas (one multi-threaded update of all arrays on the CPU,
    :class:`srgan_mlx.kernels.Adam`). ``adam_bias_correction``: the first updates use the bias-corrected moments
    of Kingma & Ba (as PyTorch and TensorFlow do, and the paper's Adam); MLX's default leaves them out, which
    makes the first hundreds of updates of a fine-tuned network up to ~6x ``lr``."""
    return kernels.Adam(learning_rate(config), [config.beta1, config.beta2], bias_correction=config.adam_bias_correction)


def check(config: TrainConfig) -> None:
    """Refuse configurations that cannot train, in one line, before any work (the validation images too)."""
    check_ranges(config)
    if config.vgg_layer not in LAYER_NAMES:
        raise UserError(f"unknown --vgg-layer {config.vgg_layer!r}; VGG19's layers: {', '.join(LAYER_NAMES)}")
    if config.crop % config.scale:
        raise UserError(f"--crop {config.crop} must be a multiple of --scale {config.scale}")
    if config.d_warmup >= config.total_steps():
        raise UserError(f"--d-warmup {config.d_warmup} leaves no generator update in --steps {config.total_steps()}")
    if config.val:
        pair_inputs(list_images(Path(config.val)), config.scale, None)  # headers only: sizes checked now


@dataclass
class Parts:
    """A run's networks, optimizers and compiled steps; ``modules`` and ``optimizers`` are what a checkpoint holds."""

    generator: Generator
    train_step: object
    average: Generator | None = None  # the generator's moving average, which validation and export use
    discriminator: Discriminator | None = None
    warmup_step: DiscriminatorStep | None = None
    modules: dict[str, nn.Module] = field(default_factory=dict)
    optimizers: dict[str, optim.Optimizer] = field(default_factory=dict)


def build(config: TrainConfig) -> Parts:
    """The networks with fresh weights (from MLX's current random state), the optimizers initialised for them, and
    the compiled steps of the run's stage and recipe."""
    generator = Generator(config.scale, config.num_blocks, config.channels)
    opt_g = adam(config)
    modules, optimizers = {"generator": generator}, {"g": opt_g}
    average = None
    if config.ema_decay:
        average = Generator(config.scale, config.num_blocks, config.channels)
        modules[AVERAGE] = average
    discriminator = warmup_step = None
    if config.stage == "srgan":
        content = VGGLoss(load_vgg(config.vgg), config.vgg_layer, config.vgg_rescale)
        discriminator = Discriminator(config.crop)
        opt_d = adam(config)
        modules["discriminator"], optimizers["d"] = discriminator, opt_d
        joint = config.d_batch == "joint"
        train_step = SRGANStep(
            generator, discriminator, content, opt_g, opt_d, config.adversarial_weight, config.pixel_weight,
            LowFrequencyAnchor(config.crop, config.scale), config.anchor_weight, joint, average, config.ema_decay,
            config.d_shift, config.phase_weight,
        )  # fmt: skip
        if config.d_warmup:
            warmup_step = DiscriminatorStep(generator, discriminator, opt_d, joint, config.d_shift)
    else:
        train_step = SRResNetStep(generator, opt_g, average, config.ema_decay)
    for key, optimizer in optimizers.items():
        optimizer.init(modules[OPTIMIZES[key]].trainable_parameters())
    return Parts(generator, train_step, average, discriminator, warmup_step, modules, optimizers)
