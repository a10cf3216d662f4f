"""Placeholder until the convert_vgg command lands."""

import click


@click.command("convert-vgg")
def command():
    """Not implemented yet."""
    raise click.UsageError("not implemented yet")
