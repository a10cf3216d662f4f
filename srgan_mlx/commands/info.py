"""``srgan-mlx info``: versions, device, and which BLAS MLX's CPU backend uses."""

import platform

import click


@click.command("info")
def command():
    """Print MLX version, default device and the active BLAS."""
    import mlx.core as mx

    from .. import __version__
    from ..blas import active_blas, is_reference_blas

    blas = active_blas()
    note = " (slow reference BLAS bundled with mlx[cpu])" if is_reference_blas(blas) else ""
    click.echo(f"srgan-mlx {__version__}")
    click.echo(f"python {platform.python_version()} on {platform.system()} {platform.machine()}")
    click.echo(f"mlx {mx.__version__}")
    click.echo(f"default device: {mx.default_device()}")
    click.echo(f"blas: {blas}{note}")
