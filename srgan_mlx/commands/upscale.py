"""Placeholder until the upscale command lands."""

import click


@click.command("upscale")
def command():
    """Not implemented yet."""
    raise click.UsageError("not implemented yet")
