"""``srgan-mlx export``: a training run's generator as one standalone weights file."""

import click


@click.command("export")
@click.argument("source", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Weights file to write.")
@click.option("--float16", is_flag=True, help="Store float16 (half the size; computed in float32).")
@click.option("--note", default=None, help="Free text stored in the file's metadata (e.g. how it was trained).")
def command(source, output, float16, note):
    """Export the generator of SOURCE (run folder, checkpoint or weights file) for `upscale --model`."""
    from ..model_io import export_generator

    extra = {"note": note} if note else {}
    click.echo(f"wrote {export_generator(source, output, float16, **extra)}")
