"""``srgan-mlx evaluate``: PSNR/SSIM (and NIQE) of a generator (or bicubic) on a benchmark folder, or NIQE alone.

Protocol (the standard one behind the SRGAN paper's Table 2): HR modcropped
to a multiple of the scale; LR from ``--lr`` or MATLAB-exact bicubic
``imresize(hr, 1/scale)``; SR quantised to uint8; PSNR and SSIM on Y of MATLAB
``rgb2ycbcr`` (float, unrounded; the gray levels themselves for grayscale HR
files, as MATLAB benchmark scripts do) with ``scale`` border pixels removed;
SSIM is MATLAB ``ssim_index`` (11x11 Gaussian window, sigma 1.5, K1 0.01,
K2 0.03, L 255, valid filtering, no downsampling); the colour bias is the mean SR - HR
of each RGB channel in 8-bit levels, same border. ``--niqe`` adds the SR
outputs' NIQE (:mod:`srgan_mlx.quality.niqe`) with the same border. ``--images DIR``
needs no HR: NIQE of the images as they are, or of their super-resolution.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from tqdm import tqdm

from ..atomic import write_text
from ..defaults import DEFAULT_MODEL
from ..errors import UserError
from ..networks.devices import select_device
from ..progress import progress
from ..quality.evaluate import BIAS_KEYS, evaluate, evaluate_images, list_images
from .options import MODEL_HELP, device_option, generator_options, load_generator_from

COLUMNS = {
    "psnr": ("PSNR (dB)", 9, ".2f"),
    "ssim": ("SSIM", 7, ".4f"),
    "bias_r": ("bias R", 6, "+.2f"),
    "bias_g": ("bias G", 6, "+.2f"),
    "bias_b": ("bias B", 6, "+.2f"),
    "niqe": ("NIQE", 7, ".4f"),
}
"""Table columns per metric: header, width, number format."""
REFERENCE_METRICS = ("psnr", "ssim", *BIAS_KEYS)
"""The columns of ``--hr``: against the HR images."""


def table_printer(metrics: tuple[str, ...]):
    """A callback printing one table line (name, then each of ``metrics``) per result, header first.

    The header waits for the first result, so an input error prints nothing else.
    """
    started = False

    def line(name: str, cells: list[str]) -> str:
        return f"{name:<20}" + "".join(f" {cell:>{COLUMNS[m][1]}}" for m, cell in zip(metrics, cells))

    def print_row(row: dict) -> None:
        nonlocal started
        if not started:
            click.echo(line("image", [COLUMNS[m][0] for m in metrics]))
            started = True
        click.echo(line(row["name"], [format(row[m], COLUMNS[m][2]) for m in metrics]))

    return print_row


def model_upscaler(generator, label: str, scale: int, tile: int | None):
    """An upscaler for :func:`evaluate` running ``generator`` (named ``label`` in messages)."""
    from ..upscaling.inference import super_resolve

    if generator.scale != scale:
        raise UserError(f"{label}: generator upscales x{generator.scale}, but --scale is {scale}")
    return lambda lr: super_resolve(generator, lr, tile=tile)


@click.command("evaluate")
@click.option("--hr", "hr_dir", metavar="DIR", help="Folder of ground-truth HR images (PSNR/SSIM of the SR outputs).")
@click.option(
    "--images",
    "image_dir",
    metavar="DIR",
    help="Folder of images to score with NIQE alone, no HR needed: as they are, or upscaled by --model/--bicubic.",
)
@click.option(
    "--lr",
    "lr_dir",
    metavar="DIR",
    help="Folder of LR inputs (<name>x<scale>.png or same name); default: MATLAB bicubic from HR.",
)
@click.option("--model", metavar="NAME|PATH", help=f"{MODEL_HELP[0].upper()}{MODEL_HELP[1:]} [with --hr: {DEFAULT_MODEL}].")
@generator_options
@click.option("--bicubic", is_flag=True, help="Evaluate MATLAB bicubic upscaling instead of a model.")
@click.option(
    "--niqe", is_flag=True, help="Add NIQE (no-reference naturalness, lower is more natural); implied by --images."
)
@click.option(
    "--border",
    type=click.IntRange(min=0),
    metavar="N",
    help="With --images: pixels removed per side before NIQE [default: --scale if upscaled, else 0].",
)
@click.option(
    "--scale",
    type=click.IntRange(min=2),
    default=4,
    show_default=True,
    help="Upscaling factor (also the border removed).",
)
@click.option("--tile", type=click.IntRange(min=1), help="With --model: LR tile size (default: fit a memory budget).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the results as JSON (atomically).")
@device_option
def command(
    hr_dir, image_dir, lr_dir, model, realism, fidelity_model, half, bicubic, niqe, border, scale, tile, json_path,
    device,
):
    """PSNR/SSIM, colour bias (and --niqe) of --model (default: the shipped srresnet) or --bicubic on the images in
    --hr; or NIQE of --images.

    \b
    Standard protocol (the one behind the SRGAN paper's Table 2):
      - HR cropped to a multiple of --scale (modcrop);
      - LR from --lr, else MATLAB-exact bicubic imresize(HR, 1/scale)
        (antialiased, MATLAB rounding);
      - SR quantised to uint8 (--bicubic: MATLAB bicubic imresize(LR, scale));
      - PSNR/SSIM on Y of MATLAB rgb2ycbcr, 16 + (65.481 R + 128.553 G
        + 24.966 B)/255, unrounded (grayscale HR files: their gray
        levels, as MATLAB benchmark scripts do);
      - border of --scale pixels removed on every side;
      - SSIM: MATLAB ssim_index (11x11 Gaussian window, sigma 1.5,
        K1 0.01, K2 0.03, L 255, valid filtering, no downsampling);
      - bias R/G/B: mean SR - HR of each RGB channel in 8-bit levels,
        same border (a colour cast: channels far from 0).
    Bicubic x4 gives 28.43 dB on Set5 and 25.99 dB on Set14.

    \b
    --niqe adds NIQE of the SR outputs (same border): the MATLAB release
    of Mittal et al. 2013 with its pristine model, on Y rounded to
    integers (gray levels for grayscale files), 96x96 blocks.
    --images DIR scores NIQE without HR: the images as they are, or with
    --model/--bicubic their x--scale super-resolution; --border N pixels
    are removed per side (default --scale if upscaled, else 0).
    """
    if bool(hr_dir) == bool(image_dir):
        raise click.UsageError("give exactly one of --hr DIR and --images DIR")
    if hr_dir and not (model or realism is not None or bicubic):
        model = DEFAULT_MODEL  # something must upscale: the shipped default, as for upscale
    uses_model = bool(model) or realism is not None
    if uses_model and bicubic:
        raise click.UsageError("give only one of --model PATH (or --realism) and --bicubic")
    if (tile is not None or half) and not uses_model:
        raise click.UsageError("--tile and --half only apply to --model")
    if hr_dir and border is not None:
        raise click.UsageError("--border only applies to --images (with --hr the border is --scale)")
    if image_dir and lr_dir:
        raise click.UsageError("--lr only applies to --hr")
    select_device(device)
    upscaler, label = None, "bicubic" if bicubic else None
    if uses_model:
        generator, label = load_generator_from(model, realism, fidelity_model, half, default=model)
        upscaler = model_upscaler(generator, label, scale, tile)
    upscaled = uses_model or bicubic
    print_row = table_printer(REFERENCE_METRICS + (("niqe",) if niqe else ()) if hr_dir else ("niqe",))
    with progress(total=len(list_images(Path(hr_dir or image_dir))), unit="image", desc=label or "images",
                  leave=False) as bar:  # fmt: skip

        def on_image(row: dict, *_) -> None:
            with tqdm.external_write_mode(file=sys.stderr):  # the table on stdout, the bar on stderr
                print_row(row)
            bar.update(1)

        if hr_dir:
            results = evaluate(hr_dir, scale, lr_dir=lr_dir, upscaler=upscaler, on_image=on_image, with_niqe=niqe)
        else:
            border = (scale if upscaled else 0) if border is None else border
            results = evaluate_images(
                image_dir, border, scale=scale if upscaled else None, upscaler=upscaler, on_image=on_image
            )
    print_row({"name": "mean", **results["mean"]})
    if json_path:
        results.update(method=label, model=model, realism=realism, half=half)
        write_text(json_path, json.dumps(results, indent=2) + "\n")
