"""The models a name or path stands for: the shipped models, weights files, checkpoints, run folders and PyTorch
weights files, loaded strictly (the file format itself: :mod:`srgan_mlx.networks.weights_io`).

A super-resolution network is a :class:`Generator` (SRResNet, kind ``generator``) or an
:class:`RRDBNet` (ESRGAN / Real-ESRGAN, kind ``rrdbnet``). :func:`load_generator` is the one
loader behind ``--model`` and :class:`srgan_mlx.Upscaler`: it also takes a PyTorch weights file
(``.pth``, ``.pth.tar``; read without torch by :mod:`srgan_mlx.convert.models`, nothing in it run).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from ..convert.models import recognise
from ..convert.pth import is_torch_file
from ..defaults import MODEL_NAMES
from ..errors import UserError
from ..networks.generator import Generator
from ..networks.kinds import NETWORKS, Network, kind_of, network_dtype
from ..networks.vgg import VGG19Features
from ..networks.weights_io import read_weights_and_kind, load_into, read_weights, write_weights
from .run_folder import find_generator

WEIGHTS_DIR = Path(__file__).parents[1] / "weights"
TORCH_SUFFIXES = (".pth", ".pt", ".tar", ".ckpt")
"""File names taken for ``torch.save`` files (others are recognised by their first bytes)."""


def shipped_models() -> dict[str, str]:
    """Each model name -> one line: its generator config and file, or that it is not shipped."""
    described = {}
    for name, file_name in MODEL_NAMES.items():
        file = WEIGHTS_DIR / file_name
        if file.is_file():
            config = json.loads(mx.load(str(file), return_metadata=True)[1].get("config", "{}"))
            described[name] = ", ".join(f"{k} {v}" for k, v in config.items()) + f" ({file})"
        else:
            described[name] = "not shipped with this version"
    return described


def shipped_names() -> list[str]:
    """The named models whose files this installation has."""
    return [name for name, file in MODEL_NAMES.items() if (WEIGHTS_DIR / file).is_file()]


def resolve_generator_file(path: str | os.PathLike) -> Path:
    """Accept a shipped model's name, a weights file (srgan-mlx's or PyTorch's), a checkpoint folder, or a run folder
    (best, else latest)."""
    shipped = ", ".join(shipped_names()) or "none"
    if str(path) in MODEL_NAMES:
        file = WEIGHTS_DIR / MODEL_NAMES[str(path)]
        if not file.is_file():
            raise UserError(f"model {path!r} is not shipped with this version (shipped: {shipped}); pass --model PATH")
        return file
    name, path = str(path), Path(path)
    if not path.exists():
        if path.suffix or "/" in name or os.sep in name:
            raise UserError(f"{name}: no such file or folder")
        raise UserError(
            f"unknown model {name!r}; shipped models: {shipped} (or give a generator .safetensors file, "
            "a checkpoint, a run folder or a PyTorch .pth file)"
        )
    if path.is_file():
        return path
    file = find_generator(path)
    if file is not None:
        return file
    raise UserError(f"{path}: no generator weights found (expected a .safetensors file, a checkpoint or a run folder)")


def _network(file: str | os.PathLike, kind: str, build: Callable[..., nn.Module], name: str) -> nn.Module:
    """The network (called ``name`` in messages) a ``kind`` weights file describes by its config, loaded strictly."""
    arrays, config = read_weights(file, kind)
    return _built(file, arrays, config, build, name)


def _built(file, arrays: dict[str, mx.array], config: dict, build: Callable[..., nn.Module], name: str) -> nn.Module:
    try:
        network = build(**config)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{file}: bad {name} config {config} ({exc})") from None
    load_into(network, arrays, file)
    return network


def is_torch_weights(file: Path) -> bool:
    """Whether ``file`` is read as a ``torch.save`` file: by its name, else by its first bytes."""
    return file.name.lower().endswith(TORCH_SUFFIXES) or is_torch_file(file)


def load_generator(
    path: str | os.PathLike, dtype: mx.Dtype = mx.float32, report: Callable[[str], None] | None = None
) -> Network:
    """Build the super-resolution network a shipped name, weights file, checkpoint, run folder or PyTorch weights
    file describes, load it strictly, set eval mode; compute in ``dtype``. ``report`` gets one line saying what a
    PyTorch file was recognised as."""
    file = resolve_generator_file(path)
    if is_torch_weights(file):
        recognised = recognise(file)
        if report is not None:
            report(f"{file}: {recognised.describe()}")
        network = recognised.network
    else:
        arrays, config, kind = read_weights_and_kind(file, tuple(NETWORKS), "generator")
        network = _built(file, arrays, config, NETWORKS[kind], "generator" if kind == "generator" else kind)
    network.eval()
    return with_dtype(network, dtype)


def save_network(path: str | os.PathLike, network: Network, float16: bool = False, **extra: str) -> Path:
    """Write a super-resolution network as a weights file :func:`load_generator` reads (optionally float16)."""
    arrays = dict(tree_flatten(network.parameters()))
    if float16:
        arrays = {k: v.astype(mx.float16) for k, v in arrays.items()}
    write_weights(path, arrays, kind_of(network), network.config(), **extra)
    return Path(path)


CONVERT_HINT = "srgan-mlx convert-vgg --download original -o vgg19.safetensors (the paper's VGG19; docs/vgg19.md)"


def load_vgg(path: str | None) -> VGG19Features:
    """The frozen VGG19 of a converted weights file, with the input convention it records (none: torchvision's)."""
    if not path:
        raise UserError(f"--stage srgan needs ImageNet VGG19 weights (--vgg PATH); make them with: {CONVERT_HINT}")
    vgg = _network(path, "vgg19", VGG19Features, "VGG19")
    vgg.freeze()
    return vgg


def load_init(generator: Generator, source: str) -> None:
    """Start a training run's generator from other weights: a shipped model's name, a weights file, a checkpoint
    or a run; they must have its shape."""
    file = resolve_generator_file(source)
    arrays, config = read_weights(file, "generator")
    if config != generator.config():
        raise UserError(f"{file}: generator {config} does not match this run's {generator.config()}")
    load_into(generator, arrays, file)


def with_dtype(generator: Network, dtype: mx.Dtype) -> Network:
    """``generator`` computing in ``dtype`` (every array cast): itself for its own dtype, else an eval-mode copy."""
    if network_dtype(generator) == dtype:
        return generator
    arrays = [(k, v.astype(dtype)) for k, v in tree_flatten(generator.parameters())]
    return generator_of(generator.config(), arrays, type(generator))


def generator_of(config: dict, arrays: list[tuple[str, mx.array]], cls: type[Network] = Generator) -> Network:
    """A new eval-mode network (a :class:`Generator` unless ``cls``) of ``config`` holding exactly ``arrays`` (every
    parameter and statistic)."""
    generator = cls(**config)
    generator.load_weights(arrays, strict=True)
    generator.eval()
    mx.eval(generator.parameters())
    return generator


def export_generator(source: str | os.PathLike, target: str | os.PathLike, float16: bool = False, **extra: str) -> Path:
    """Write the generator of a checkpoint or run as a standalone weights file (optionally float16)."""
    file = resolve_generator_file(source)
    arrays, config = read_weights(file, "generator")
    if float16:
        arrays = {k: v.astype(mx.float16) for k, v in arrays.items()}
    write_weights(target, arrays, "generator", config, **extra)
    return Path(target)
