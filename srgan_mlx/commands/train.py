"""``srgan-mlx train``: the paper's two stages, resumable, data-parallel under ``mlx.launch``.

Every training setting is a field of :class:`srgan_mlx.training.config.TrainConfig`; its option (name, type, help, default
shown) is generated here from the field, so a new setting is one line there.
"""

from __future__ import annotations

import dataclasses
import sys

import click

from ..training.config import FIELDS, OPERATIONAL, PATH_FIELDS, TrainConfig, option, presets, read_recipe
from .options import device_option

DEFAULTS = TrainConfig()


def _shown_default(name: str) -> str:
    value = getattr(DEFAULTS, name)
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def field_option(f: dataclasses.Field):
    """The click option of a :class:`TrainConfig` field (None default: "not given", so a recipe's value stays)."""
    meta, name = f.metadata, f.name
    hint = str(f.type)  # the annotation's text: "int | None", "list[str]", "bool", ...
    help_text = meta["help"]
    if not meta["path"] and getattr(DEFAULTS, name) is not None:  # (paths and --steps say their defaults in words)
        help_text += f" [{_shown_default(name)}]"
    if "bool" in hint:
        return click.option(f"{option(name)}/--no-{option(name)[2:]}", name, default=None, help=help_text)
    if name == "data":
        return click.option(option(name), name, multiple=True, type=click.Path(), help=help_text)
    if meta["choices"]:
        choices = [str(c) for c in meta["choices"]]
        return click.option(option(name), name, type=click.Choice(choices), default=None, help=help_text)
    kind = int if "int" in hint else float if "float" in hint else click.Path() if meta["path"] else str
    return click.option(option(name), name, type=kind, default=None, help=help_text)


def given_settings(options: dict) -> dict:
    """The settings given on the command line, in their fields' types."""
    given = {}
    for name, value in options.items():
        if value in (None, ()):
            continue
        choices = FIELDS[name].metadata["choices"]
        if choices and not isinstance(value, type(choices[0])):
            value = type(choices[0])(value)  # --scale 4 -> 4
        given[name] = list(value) if name == "data" else value
    return given


def train_options(command):
    for f in reversed(dataclasses.fields(TrainConfig)):
        command = field_option(f)(command)
    return command


@click.command("train")
@click.option("--config", "config_file", metavar="FILE", default=None,
              help="Start from this JSON recipe (any subset of the settings; a run's config.json works); the options "
              "given here override it.")
@click.option("--preset", type=click.Choice(presets()), default=None,
              help="Start from a shipped recipe (srgan_mlx/training/configs/); the options given here override it.")
@click.option("--resume", type=click.Path(), default=None,
              help=f"Continue a run (run folder or checkpoint); takes only {', '.join(map(option, OPERATIONAL))} and "
              f"--device. A run's record (export --record) carries on into --out, and takes its paths too "
              f"({', '.join(map(option, PATH_FIELDS))}).")
@click.option("--overwrite", is_flag=True,
              help="Start again in an --out folder that holds a run: deletes its config.json, checkpoints/, "
              "validation/ and metrics files (other files stay).")
@train_options
@device_option
def command(config_file, preset, resume, overwrite, device, **options):
    """Train SRResNet (--stage srresnet) or SRGAN (--stage srgan --init SRRESNET_RUN --vgg VGG19.safetensors).

    Ctrl-C finishes the current step, saves a checkpoint and says how to resume; a second Ctrl-C stops at once.
    """
    from ..networks.devices import select_device
    from ..training.train import Interrupted, resume as resume_run, train

    given = given_settings(options)
    if resume and (preset or config_file or overwrite):
        raise click.UsageError("--resume continues a run as it was set up: --config, --preset and --overwrite start "
                               "new runs")  # fmt: skip
    if preset and config_file:
        raise click.UsageError("give --config or --preset, not both")
    recipe = read_recipe(preset or config_file) if (preset or config_file) else {}
    if not resume and not (given.get("data") or recipe.get("data")):
        raise click.UsageError("--data is required (a folder of training images)")
    select_device(device)
    try:
        if resume:
            out = resume_run(resume, **given)
        else:
            out = train(TrainConfig.from_dict({**recipe, **given}), overwrite)
    except Interrupted as exc:
        click.echo(str(exc), err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("stopped by Ctrl-C before training began", err=True)
        sys.exit(130)
    click.echo(f"done: {out}")
