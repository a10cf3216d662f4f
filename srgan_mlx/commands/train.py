"""``srgan-mlx train``: the paper's two stages, resumable, data-parallel under ``mlx.launch``."""

from __future__ import annotations

import sys

import click

from ..config import D_BATCHES, PRESETS, STAGES, TrainConfig
from .options import device_option

DEFAULTS = TrainConfig()


@click.command("train")
@click.option("--data", multiple=True, type=click.Path(), help="Folder of training images (recursive; repeatable).")
@click.option("--val", type=click.Path(), default=None, help="Folder of HR validation images, e.g. Set5/HR.")
@click.option("--out", type=click.Path(), default=None, help="Run folder for checkpoints, metrics and images.")
@click.option("--stage", type=click.Choice(STAGES), default=None, help="srresnet (MSE) or srgan (VGG + adversarial).")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None,
              help="paper (the default): the paper's sizes; tiny: a one-minute smoke run.")
@click.option("--resume", type=click.Path(), default=None,
              help="Continue a run (run folder or checkpoint); takes only --steps, --workers, --log-every, "
              "--val-every, --checkpoint-every, --keep and --device.")
@click.option("--overwrite", is_flag=True,
              help="Start again in an --out folder that holds a run: deletes its config.json, checkpoints/, "
              "validation/ and metrics files (other files stay).")
@click.option("--init", type=click.Path(), default=None,
              help="Start the generator from these weights: a shipped model (srresnet), a weights file, a checkpoint "
              "or a run (SRGAN: from SRResNet).")
@click.option("--vgg", type=click.Path(), default=None, help="SRGAN: VGG19 weights made by convert/vgg19.py.")
@click.option("--scale", type=click.Choice(["2", "4", "8"]), default=None, help=f"Upscaling factor [{DEFAULTS.scale}].")
@click.option("--crop", type=int, default=None, help=f"HR crop side in pixels [{DEFAULTS.crop}].")
@click.option("--batch-size", type=int, default=None, help=f"Images per step per process [{DEFAULTS.batch_size}].")
@click.option("--steps", type=int, default=None, help="Total updates [10^6 srresnet, 2x10^5 srgan].")
@click.option("--lr", type=float, default=None, help=f"Adam learning rate [{DEFAULTS.lr}].")
@click.option("--lr-final", type=float, default=None, help=f"SRGAN: rate for the second half [{DEFAULTS.lr_final}].")
@click.option("--beta1", type=float, default=None, help=f"Adam beta1 [{DEFAULTS.beta1}].")
@click.option("--adam-bias-correction/--no-adam-bias-correction", default=None,
              help="Adam with bias-corrected moments (Kingma & Ba; PyTorch's and TensorFlow's Adam). Without it "
              "(MLX's Adam) the first updates are several times --lr: a fine-tune from SRResNet drifts "
              f"[{'on' if DEFAULTS.adam_bias_correction else 'off'}].")
@click.option("--adversarial-weight", type=float, default=None, help=f"[{DEFAULTS.adversarial_weight}]")
@click.option("--pixel-weight", type=float, default=None,
              help=f"SRGAN: add this times an L1 pixel loss (ESRGAN uses 1e-2; against colour casts) "
              f"[{DEFAULTS.pixel_weight:g}: the paper's loss].")
@click.option("--anchor-weight", type=float, default=None,
              help="SRGAN: add this times the L1 between the SR output downscaled by MATLAB bicubic and the LR input "
              f"(pins colour and brightness, leaves texture free) [{DEFAULTS.anchor_weight:g}: the paper's loss].")
@click.option("--d-batch", type=click.Choice(D_BATCHES), default=None,
              help="SRGAN: the discriminator sees real and fake as separate batches (the paper's code) or as one joint "
              f"batch, sharing BatchNorm statistics, in its update and in the generator's loss [{DEFAULTS.d_batch}].")
@click.option("--d-warmup", type=int, default=None,
              help="SRGAN: the first N steps train the discriminator alone against the initial generator "
              f"[{DEFAULTS.d_warmup}].")
@click.option("--ema-decay", type=float, default=None,
              help="Keep a moving average of the generator with this decay (e.g. 0.999); validation, checkpoints' "
              f"generator for upscale/export and --init use it [{DEFAULTS.ema_decay:g}: none].")
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
def command(preset, resume, overwrite, device, **options):
    """Train SRResNet (--stage srresnet) or SRGAN (--stage srgan --init SRRESNET_RUN --vgg VGG19.safetensors).

    Ctrl-C finishes the current step, saves a checkpoint and says how to resume; a second Ctrl-C stops at once.
    """
    from ..devices import select_device
    from ..train import Interrupted, resume as resume_run, train

    given = {}
    for key, value in options.items():
        if value not in (None, ()):
            given[key] = int(value) if key == "scale" else list(value) if key == "data" else value
    if resume and (preset or overwrite):
        raise click.UsageError("--resume continues a run as it was set up: --preset and --overwrite start new runs")
    if not resume and not given.get("data"):
        raise click.UsageError("--data is required (a folder of training images)")
    select_device(device)
    try:
        if resume:
            out = resume_run(resume, **given)
        else:
            out = train(TrainConfig.from_dict({**PRESETS[preset or "paper"], **given}), overwrite)
    except Interrupted as exc:
        click.echo(str(exc), err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("stopped by Ctrl-C before training began", err=True)
        sys.exit(130)
    click.echo(f"done: {out}")
