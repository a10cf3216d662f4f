"""Options shared by several commands: the device, which generator to run (model, realism dial, precision), sizes
in bytes."""

from __future__ import annotations

import re

import click

from ..defaults import FIDELITY_MODEL, REALISM_RANGE, REALISTIC_MODEL
from ..errors import UserError
from ..networks.devices import DEVICES

device_option = click.option(
    "--device", type=click.Choice(DEVICES), default="auto", show_default=True,
    help="Where to compute: auto is the GPU when this MLX build has one (Metal, CUDA), else the CPU.",
)

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


class Size(click.ParamType):
    """A byte count such as ``2GB``, ``512M`` or ``1.5GiB`` (K, M, G, T are powers of 1024)."""

    name = "size"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", str(value), re.IGNORECASE)
        if not match:
            self.fail(f"{value!r} is not a size like 2GB or 512MB", param, ctx)
        size = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
        if size <= 0:
            self.fail(f"{value!r} must be more than 0 bytes", param, ctx)
        return size


class Realism(click.FloatRange):
    """The realism dial's value: a number in :data:`~srgan_mlx.defaults.REALISM_RANGE` (the help shows the range),
    checked by :func:`~srgan_mlx.upscaling.interpolation.check_realism`, as the server checks it."""

    def __init__(self):
        super().__init__(*REALISM_RANGE)

    def convert(self, value, param, ctx):
        from ..upscaling.interpolation import check_realism  # (mlx: when the option is given, not at start-up)

        try:
            return check_realism(click.FLOAT.convert(value, param, ctx))
        except UserError as exc:
            self.fail(str(exc), param, ctx)


MODEL_HELP = ("a shipped model (see srgan-mlx info), generator weights, a checkpoint, a run folder, or a PyTorch "
              "weights file (ESRGAN, Real-ESRGAN, BasicSR, SRGAN-PyTorch: docs/models.md)")  # fmt: skip


def report_model(line: str) -> None:
    """Say on stderr what a PyTorch weights file was recognised as (one line)."""
    click.echo(f"srgan-mlx: {line}", err=True)


def realism_options(realistic: str):
    """``--realism`` and ``--fidelity-model``: the dial's value and its 0 end (``realistic`` names its 1 end in the
    help)."""

    def add(command):
        command = click.option(
            "--fidelity-model", metavar="NAME|PATH",
            help=f"With --realism: the generator at realism 0 [{FIDELITY_MODEL}].",
        )(command)
        return click.option(
            "--realism", type=Realism(), metavar="R",
            help=f"Blend --fidelity-model (0, {FIDELITY_MODEL}) and {realistic} (1) weight by weight (network "
            "interpolation): a dial from fidelity (PSNR) to realistic texture.",
        )(command)

    return add


def generator_options(command):
    """``--realism``, ``--fidelity-model`` and ``--half``, which :func:`load_generator_from` reads with ``--model``."""
    command = click.option(
        "--half", is_flag=True,
        help="Compute in float16: for GPUs, slower on the CPU (srresnet Set5 PSNR +0.001 dB, measured on the CPU).",
    )(command)
    return realism_options(f"--model [{REALISTIC_MODEL}]")(command)


def load_generator_from(
    model: str | None, realism: float | None, fidelity_model: str | None, half: bool, default: str
):
    """The generator the options name, and its label for pictures and tables.

    ``model`` None means ``default``, or the realistic end (``srgan``) when ``realism`` is given;
    ``fidelity_model`` None means ``srresnet``, and is refused without ``realism``.
    """
    import mlx.core as mx

    from ..upscaling.interpolation import interpolate
    from ..files.model_io import load_generator, with_dtype
    from ..upscaling.upscaler import model_label

    from ..errors import warn

    dtype = mx.float16 if half else mx.float32
    if half and mx.default_device().type == mx.cpu:
        warn("--half on the CPU is slower than float32 (MLX's CPU float16 kernels); it pays off on a GPU")
    if realism is None:
        if fidelity_model:
            raise click.UsageError("--fidelity-model is one end of the --realism dial: give --realism too")
        model = model or default
        return load_generator(model, dtype, report_model), model_label(model)
    model = model or REALISTIC_MODEL
    fidelity = load_generator(fidelity_model or FIDELITY_MODEL, report=report_model)
    blended = interpolate(fidelity, load_generator(model, report=report_model), realism)
    return with_dtype(blended, dtype), f"realism {realism:g}"
