"""``srgan-mlx evaluate``: PSNR/SSIM of a generator (or bicubic) on a benchmark folder.

Protocol (the standard one behind the SRGAN paper's Table 2): HR modcropped
to a multiple of the scale; LR from ``--lr`` or MATLAB-exact bicubic
``imresize(hr, 1/scale)``; SR quantised to uint8; PSNR and SSIM on Y of MATLAB
``rgb2ycbcr`` (float, unrounded; the gray levels themselves for grayscale HR
files, as MATLAB benchmark scripts do) with ``scale`` border pixels removed;
SSIM is MATLAB ``ssim_index`` (11x11 Gaussian window, sigma 1.5, K1 0.01,
K2 0.03, L 255, valid filtering, no downsampling).
"""

from __future__ import annotations

import json

import click

from ..atomic import write_text
from ..devices import select_device
from ..errors import UserError
from ..evaluate import evaluate
from .options import device_option

ROW = "{:<20} {:>9} {:>7}"


def table_printer():
    """A callback printing one table line (name, PSNR dB, SSIM) per result, header first.

    The header waits for the first result, so an input error prints nothing else.
    """
    started = False

    def print_row(row: dict) -> None:
        nonlocal started
        if not started:
            click.echo(ROW.format("image", "PSNR (dB)", "SSIM"))
            started = True
        click.echo(ROW.format(row["name"], f"{row['psnr']:.2f}", f"{row['ssim']:.4f}"))

    return print_row


def model_upscaler(model: str, scale: int, tile: int | None):
    """Load the generator at ``model`` and return an upscaler for :func:`evaluate`."""
    from ..inference import super_resolve
    from ..model_io import load_generator

    generator = load_generator(model)
    if generator.scale != scale:
        raise UserError(f"{model}: generator upscales x{generator.scale}, but --scale is {scale}")
    return lambda lr: super_resolve(generator, lr, tile=tile)


@click.command("evaluate")
@click.option("--hr", "hr_dir", required=True, metavar="DIR", help="Folder of ground-truth HR images.")
@click.option(
    "--lr",
    "lr_dir",
    metavar="DIR",
    help="Folder of LR inputs (<name>x<scale>.png or same name); default: MATLAB bicubic from HR.",
)
@click.option("--model", metavar="NAME|PATH", help="Shipped model (srresnet), generator weights file, checkpoint or run folder.")
@click.option("--bicubic", is_flag=True, help="Evaluate MATLAB bicubic upscaling instead of a model.")
@click.option(
    "--scale",
    type=click.IntRange(min=2),
    default=4,
    show_default=True,
    help="Upscaling factor (also the border removed).",
)
@click.option("--tile", type=click.IntRange(min=1), help="With --model: LR tile size (default: fit a memory budget).")
@click.option("--json", "json_path", metavar="FILE", help="Also write the results as JSON (atomically).")
@device_option
def command(hr_dir, lr_dir, model, bicubic, scale, tile, json_path, device):
    """PSNR/SSIM of --model (or --bicubic) on the images in --hr.

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
        K1 0.01, K2 0.03, L 255, valid filtering, no downsampling).
    Bicubic x4 gives 28.43 dB on Set5 and 25.99 dB on Set14.
    """
    if bool(model) == bicubic:
        raise click.UsageError("give exactly one of --model PATH and --bicubic")
    if tile is not None and bicubic:
        raise click.UsageError("--tile only applies to --model")
    select_device(device)
    upscaler = None if bicubic else model_upscaler(model, scale, tile)
    print_row = table_printer()
    results = evaluate(hr_dir, scale, lr_dir=lr_dir, upscaler=upscaler, on_image=print_row)
    print_row({"name": "mean", **results["mean"]})
    if json_path:
        results["method"] = "bicubic" if bicubic else str(model)
        write_text(json_path, json.dumps(results, indent=2) + "\n")
