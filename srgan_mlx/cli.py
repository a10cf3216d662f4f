"""The ``srgan-mlx`` command line: a click group whose commands live in ``srgan_mlx/commands/``."""

from __future__ import annotations

import importlib
import sys

import click

from . import __version__
from .errors import UserError
from .heap import keep_freed_memory

COMMANDS = ("info", "train", "upscale", "evaluate", "serve", "export", "convert_vgg", "convert_model")


class Group(click.Group):
    """Turns :class:`UserError` into a one-line message and exit code 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="srgan-mlx")
def main():
    """SRGAN super-resolution (Ledig et al. 2017) in MLX: train, upscale, evaluate."""
    keep_freed_memory()  # a process-wide malloc policy: the command line's choice, not the library's


for _name in COMMANDS:
    main.add_command(importlib.import_module(f"srgan_mlx.commands.{_name}").command)
