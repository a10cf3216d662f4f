"""``srgan-mlx train``: the paper's two stages, resumable, data-parallel under ``mlx.launch``."""

from __future__ import annotations

import click

from ..config import PRESETS, STAGES, TrainConfig
from .options import device_option

DEFAULTS = TrainConfig()


@click.command("train")
@click.option("--data", multiple=True, type=click.Path(), help="Folder of training images (recursive; repeatable).")
@click.option("--val", type=click.Path(), default=None, help="Folder of HR validation images, e.g. Set5/HR.")
@click.option("--out", type=click.Path(), default=None, help="Run folder for checkpoints, metrics and images.")
@click.option("--stage", type=click.Choice(STAGES), default=None, help="srresnet (MSE) or srgan (VGG + adversarial).")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="paper", show_default=True,
              help="paper: the paper's sizes; tiny: a one-minute smoke run.")
@click.option("--resume", type=click.Path(), default=None, help="Continue a run (run folder or checkpoint).")
@click.option("--init", type=click.Path(), default=None, help="SRGAN: start the generator from SRResNet weights.")
@click.option("--vgg", type=click.Path(), default=None, help="SRGAN: VGG19 weights made by convert/vgg19.py.")
@click.option("--scale", type=click.Choice(["2", "4", "8"]), default=None, help=f"Upscaling factor [{DEFAULTS.scale}].")
@click.option("--crop", type=int, default=None, help=f"HR crop side in pixels [{DEFAULTS.crop}].")
@click.option("--batch-size", type=int, default=None, help=f"Images per step per process [{DEFAULTS.batch_size}].")
@click.option("--steps", type=int, default=None, help="Total updates [10^6 srresnet, 2x10^5 srgan].")
@click.option("--lr", type=float, default=None, help=f"Adam learning rate [{DEFAULTS.lr}].")
@click.option("--lr-final", type=float, default=None, help=f"SRGAN: rate for the second half [{DEFAULTS.lr_final}].")
@click.option("--beta1", type=float, default=None, help=f"Adam beta1 [{DEFAULTS.beta1}].")
@click.option("--adversarial-weight", type=float, default=None, help=f"[{DEFAULTS.adversarial_weight}]")
@click.option("--vgg-layer", default=None, help=f"Content-loss VGG19 layer [{DEFAULTS.vgg_layer}].")
@click.option("--num-blocks", type=int, default=None, help=f"Generator residual blocks [{DEFAULTS.num_blocks}].")
@click.option("--channels", type=int, default=None, help=f"Generator channels [{DEFAULTS.channels}].")
@click.option("--seed", type=int, default=None, help=f"[{DEFAULTS.seed}]")
@click.option("--workers", type=int, default=None, help=f"Data-loading threads [{DEFAULTS.workers}].")
@click.option("--val-every", type=int, default=None, help=f"Steps between validations [{DEFAULTS.val_every}].")
@click.option("--checkpoint-every", type=int, default=None, help=f"Steps between checkpoints [{DEFAULTS.checkpoint_every}].")
@click.option("--keep", type=int, default=None, help=f"Checkpoints kept besides the best [{DEFAULTS.keep}].")
@click.option("--log-every", type=int, default=None, help=f"Steps per metrics.jsonl line [{DEFAULTS.log_every}].")
@device_option
def command(preset, resume, device, **options):
    """Train SRResNet (--stage srresnet) or SRGAN (--stage srgan --init SRRESNET_RUN --vgg VGG19.safetensors)."""
    from ..devices import select_device
    from ..train import train

    values = {**PRESETS[preset]}
    for key, value in options.items():
        if value not in (None, ()):
            values[key] = int(value) if key == "scale" else list(value) if key == "data" else value
    if not resume and not values.get("data"):
        raise click.UsageError("--data is required (a folder of training images)")
    config = TrainConfig.from_dict(values)
    select_device(device)
    out = train(config, resume)
    click.echo(f"done: {out}")
