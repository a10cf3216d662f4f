"""The ``srgan-mlx`` command line: a click group whose commands live in ``srgan_mlx/commands/``, one module each.

A command's module is imported when that command runs (or ``--help`` lists the commands), not at start-up.
"""

from __future__ import annotations

import importlib
import sys

import click

from . import __version__
from .errors import UserError
from .heap import keep_freed_memory

COMMANDS = ("convert-model", "convert-vgg", "evaluate", "export", "info", "serve", "train", "upscale")
"""The commands, as ``srgan-mlx --help`` lists them; ``convert-vgg`` is ``commands/convert_vgg.py``."""


class Group(click.Group):
    """Imports a command's module on first use; turns :class:`UserError` into a one-line message and exit code 1."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        if name not in self.commands:
            module = importlib.import_module(f"{__package__}.commands.{name.replace('-', '_')}")
            self.add_command(module.command, name)
        return self.commands[name]

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
