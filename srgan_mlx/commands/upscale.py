"""``srgan-mlx upscale``: super-resolve image files, folders and globs in bounded memory."""

from __future__ import annotations

from pathlib import Path

import click

from ..defaults import ALPHA_METHODS, DEFAULT_MODEL, MAX_MEMORY, OUTPUT_FORMATS, QUALITY, size_text
from .options import MODEL_HELP, Size, device_option, generator_options, load_generator_from

@click.command("upscale")
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path),
    help="Output file (one input) or folder. Default: next to each input as <name>_x<scale>.png.",
)
@click.option(
    "--model", metavar="NAME|PATH",
    help=f"{MODEL_HELP[0].upper()}{MODEL_HELP[1:]} [{DEFAULT_MODEL}].",
)
@generator_options
@click.option(
    "--tile", type=click.IntRange(min=1),
    help="Tile side in input pixels (plus the receptive-field margin). Default: the largest that fits --max-memory.",
)
@click.option(
    "--max-memory", type=Size(),
    help=f"Memory budget of one tile's forward pass, e.g. {size_text(MAX_MEMORY)} (the default; K, M, G are powers of "
    "1024).",
)
@click.option("--quality", type=click.IntRange(1, 100), default=QUALITY, show_default=True, help="JPEG/WebP quality.")
@click.option(
    "--format", "fmt", type=click.Choice(OUTPUT_FORMATS),
    help=f"Format of outputs named for you (default {OUTPUT_FORMATS[0]}); with -o FILE the extension decides.",
)
@click.option("--skip-existing", is_flag=True, help="Leave inputs whose output already exists.")
@click.option("--compare", is_flag=True, help="Also write <output>_compare.png: bicubic | super-resolved, labelled.")
@click.option(
    "--alpha", type=click.Choice(ALPHA_METHODS), default=ALPHA_METHODS[0], show_default=True,
    help="How to upscale an alpha channel.",
)
@click.option(
    "--max-pixels", type=click.IntRange(min=1), metavar="N",
    help="Largest input in pixels (width x height), read from the header. Default: what this machine's memory holds "
    "for the result (48 bytes per output pixel); tiles bound the network's memory at any size.",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@device_option
def command(
    inputs, output, model, realism, fidelity_model, half, tile, max_memory, quality, fmt, skip_existing, compare,
    alpha, max_pixels, quiet, device,
):
    """Upscale INPUTS (image files, folders of images, glob patterns) with the generator.

    A file that cannot be read or written is reported and the others go on; the
    exit status is 1 if any failed.
    """
    from ..networks.devices import select_device
    from ..upscaling.batch import Options, run
    from ..upscaling.upscaler import Upscaler

    select_device(device)
    generator, label = load_generator_from(model, realism, fidelity_model, half, DEFAULT_MODEL)
    upscaler = Upscaler(generator, tile=tile, max_memory=max_memory, alpha=alpha, label=label)
    options = Options(output=output, format=fmt, quality=quality, skip_existing=skip_existing, compare=compare,
                      max_pixels=max_pixels)
    summary = run(upscaler, list(inputs), options, progress=not quiet)
    counts = [f"{len(summary.written)} written", f"{len(summary.failed)} failed"]
    if summary.skipped:
        counts.append(f"{len(summary.skipped)} skipped (output exists)")
    click.echo(", ".join(counts))
    for reason in summary.failed:
        click.echo(f"  failed: {reason}", err=True)
    if summary.failed:
        raise SystemExit(1)
