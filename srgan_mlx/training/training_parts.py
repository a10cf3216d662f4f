"""What a training run is made of, built from its :class:`~srgan_mlx.training.config.TrainConfig`: the networks (and the
generator's moving average), the optimizers and the compiled steps; the checks that refuse a config before any of
it is built. Restoring a checkpoint into these parts and running them is :mod:`srgan_mlx.training.train`'s business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import mlx.nn as nn
import mlx.optimizers as optim
import mlx.core as mx

from ..errors import UserError
from ..files.model_io import load_vgg
from ..files.run_folder import AVERAGE
from ..networks import kernels
from ..networks.discriminator import make_discriminator
from ..networks.generator import Generator
from ..networks.layers import multiply_in_bfloat16
from ..quality.evaluate import list_images, pair_inputs
from .config import TrainConfig, bf16_networks, check_ranges
from .loss_terms import TERMS, blind_terms, generator_terms, needs_reference
from .losses import layer_weights
from .steps import DiscriminatorStep, SRGANStep, SRResNetStep

OPTIMIZES = {"g": "generator", "d": "discriminator"}
"""The network each optimizer updates, by the optimizer's key in a checkpoint."""


def learning_rate(config: TrainConfig, network: str = "g", start: int = 0):
    """Constant ``lr`` (SRResNet), or ``lr`` then ``lr_final`` from the run's middle step on (SRGAN), times
    ``d_lr_scale`` for the discriminator. G and D switch at the same step of the run: the schedule reads an
    optimizer's own count of updates, which began at run step ``start`` (0, or where a run carried on from a
    record), and the generator's lags by the ``d_warmup`` steps that train D alone."""
    if config.stage == "srresnet":
        return config.lr
    scale = config.d_lr_scale if network == "d" else 1.0
    offset = start + (config.d_warmup if network == "g" else 0)  # the run's step at the optimizer's first update
    half = config.total_steps() // 2
    # (the count is unsigned: add to it rather than compare it with a switch that may be negative)
    return lambda step: mx.where(step + offset < half, config.lr * scale, config.lr_final * scale)


def adam(config: TrainConfig, network: str = "g", start: int = 0) -> optim.Adam:
    """Adam with the run's rate schedule and betas (one multi-threaded update of all arrays on the CPU,
    :class:`srgan_mlx.networks.kernels.Adam`). ``adam_bias_correction``: the first updates use the bias-corrected moments
    of Kingma & Ba (as PyTorch and TensorFlow do, and the paper's Adam); MLX's default leaves them out, which
    makes the first hundreds of updates of a fine-tuned network up to ~6x ``lr``."""
    return kernels.Adam(
        learning_rate(config, network, start), [config.beta1, config.beta2], bias_correction=config.adam_bias_correction
    )


def check(config: TrainConfig) -> None:
    """Refuse configurations that cannot train, in one line, before any work (the validation images too)."""
    check_ranges(config)
    bf16_networks(config)
    try:
        layer_weights(config.vgg_layers)
    except ValueError as exc:
        raise UserError(f"--vgg-layers {config.vgg_layers}: {exc}") from None
    if config.phase_window and (config.crop // config.scale) % config.phase_window:
        raise UserError(f"--phase-window {config.phase_window} must divide the LR crop, {config.crop // config.scale} "
                        "pixels (--crop / --scale)")
    blindable = [term.name for term in TERMS if term.name != "phase"]
    unknown = [name for name in blind_terms(config) if name not in blindable]
    if unknown:
        raise UserError(f"--grid-blind {config.grid_blind}: unknown term {unknown[0]!r}; known: {', '.join(blindable)}")
    if config.grid_blind_mode != "pattern" and not blind_terms(config):
        raise UserError(f"--grid-blind-mode {config.grid_blind_mode} needs --grid-blind TERMS: it says what those terms' "
                        "gradient loses")
    if config.artifact_weight and not config.ema_decay:
        raise UserError("--artifact-weight needs --ema-decay: LDL's artifact map compares with the generator's moving average")
    if config.crop % config.scale:
        raise UserError(f"--crop {config.crop} must be a multiple of --scale {config.scale}")
    if config.d_warmup >= config.total_steps():
        raise UserError(f"--d-warmup {config.d_warmup} leaves no generator update in --steps {config.total_steps()}")
    if config.val:
        files = list_images(Path(config.val))
        pair_inputs(files, config.scale, None)  # headers only: sizes checked now
        if config.best_measure() == "niqe":
            try:
                pair_inputs(files, config.scale, None, with_niqe=True)
            except UserError as exc:
                raise UserError(
                    f"{exc}; validation measures NIQE to name the best checkpoint (--best-by niqe, the srgan stage's "
                    "default): choose larger --val images or --best-by psnr"
                ) from None


@dataclass
class Parts:
    """A run's networks, optimizers and compiled steps; ``modules`` and ``optimizers`` are what a checkpoint holds."""

    generator: Generator
    train_step: object
    average: Generator | None = None  # the generator's moving average, which validation and export use
    discriminator: nn.Module | None = None  # networks.discriminator's paper or U-Net discriminator
    vgg: nn.Module | None = None  # the frozen VGG19 of the SRGAN stage's perceptual loss
    warmup_step: DiscriminatorStep | None = None
    modules: dict[str, nn.Module] = field(default_factory=dict)
    optimizers: dict[str, optim.Optimizer] = field(default_factory=dict)


def build(config: TrainConfig, start: int = 0) -> Parts:
    """The networks with fresh weights (from MLX's current random state), the optimizers initialised for them (their
    schedules counting from run step ``start``), and the compiled steps of the run's stage and recipe."""
    generator = Generator(config.scale, config.num_blocks, config.channels)
    opt_g = adam(config, "g", start)
    modules, optimizers = {"generator": generator}, {"g": opt_g}
    average = None
    if config.ema_decay:
        average = Generator(config.scale, config.num_blocks, config.channels)
        modules[AVERAGE] = average
    discriminator = warmup_step = vgg = None
    if config.stage == "srgan":
        vgg = load_vgg(config.vgg)
        if config.frozen_g_norm:
            generator.freeze_norm()
        reference = None
        if needs_reference(config):
            reference = average.eval()  # read in eval mode, as BasicSR's net_g_ema
        discriminator = make_discriminator(config.discriminator, config.crop)
        opt_d = adam(config, "d", start)
        modules["discriminator"], optimizers["d"] = discriminator, opt_d
        d_options = dict(gan=config.gan_loss, joint=config.d_batch == "joint", d_shift=config.d_shift)
        train_step = SRGANStep(
            generator, discriminator, generator_terms(config, vgg), opt_g, opt_d, **d_options, average=average,
            average_decay=config.ema_decay, reference=reference, blind=blind_terms(config),
            blind_window=config.phase_window, blind_mode=config.grid_blind_mode,
        )  # fmt: skip
        if config.d_warmup:
            warmup_step = DiscriminatorStep(generator, discriminator, opt_d, **d_options)
        networks = {"vgg": vgg, "discriminator": discriminator, "generator": generator}
        for name in bf16_networks(config):  # (set before the steps are first traced)
            multiply_in_bfloat16(networks[name])
    else:
        train_step = SRResNetStep(generator, opt_g, average, config.ema_decay)
    for key, optimizer in optimizers.items():
        optimizer.init(modules[OPTIMIZES[key]].trainable_parameters())
    return Parts(generator, train_step, average, discriminator, vgg, warmup_step, modules, optimizers)
