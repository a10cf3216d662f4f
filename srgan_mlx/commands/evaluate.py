"""Placeholder until the evaluate command lands."""

import click


@click.command("evaluate")
def command():
    """Not implemented yet."""
    raise click.UsageError("not implemented yet")
