"""Placeholder until the train command lands."""

import click


@click.command("train")
def command():
    """Not implemented yet."""
    raise click.UsageError("not implemented yet")
