"""Options shared by several commands."""

import click

from ..devices import DEVICES

device_option = click.option(
    "--device", type=click.Choice(DEVICES), default="auto", show_default=True,
    help="Where to compute: auto is the GPU when this MLX build has one (Metal, CUDA), else the CPU.",
)
