"""``srgan-mlx export``: a training run's generator as one standalone weights file (or its blend with the fidelity
model, as ``--realism`` runs it), or the run's record."""

import click

from .options import load_generator_from, realism_options


@click.command("export")
@click.argument("source", type=click.Path())
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Weights file to write.")
@click.option("--float16", is_flag=True, help="Store float16 (half the size; computed in float32).")
@click.option("--note", default=None, help="Free text stored in the file's metadata (e.g. how it was trained).")
@click.option("--record", type=click.Path(file_okay=False), default=None,
              help="Instead, write the record of the run (or checkpoint) SOURCE into this folder: its generator and "
              "moving average in float16, config, metrics and the best checkpoint's generator, small enough to "
              "commit; `srgan-mlx train --resume FOLDER` carries the run on from it on any machine.")  # fmt: skip
@realism_options("SOURCE")
def command(source, output, float16, note, record, realism, fidelity_model):
    """Export the generator of SOURCE (run folder, checkpoint or weights file) for `upscale --model`."""
    if bool(output) == bool(record):
        raise click.UsageError("give one of -o FILE (the generator's weights) and --record FOLDER (the run's record)")
    if record and realism is not None:
        raise click.UsageError("--realism blends a generator for -o FILE; a record keeps the run's own networks")
    dial = realism is not None or fidelity_model  # load_generator_from refuses --fidelity-model alone, in one line
    if record and not dial:
        from pathlib import Path

        from ..training.checkpoint import write_record
        from ..files.run_folder import find_checkpoint

        click.echo(f"wrote the record of {source} to {write_record(find_checkpoint(source), Path(record))}")
        return
    from ..files.model_io import export_generator, save_network

    extra = {"note": note} if note else {}
    if not dial:
        click.echo(f"wrote {export_generator(source, output, float16, **extra)}")
        return
    blended, label = load_generator_from(source, realism, fidelity_model, False, source)
    click.echo(f"wrote {save_network(output, blended, float16, **extra)} ({label})")
