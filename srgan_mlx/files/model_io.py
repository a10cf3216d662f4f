"""Saving and loading network weights as safetensors with their constructor config.

A weights file holds the flattened parameters and BatchNorm statistics of one
network and, in its metadata, ``format`` (``srgan-mlx/<kind>``), ``config``
(the constructor arguments as JSON) and any extra fields. Loading is strict:
every key and shape must match the network the config builds.

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

from ..atomic import atomic_path
from ..errors import UserError
from ..convert.models import recognise
from ..convert.pth import is_torch_file
from ..networks.generator import Generator
from ..upscaling.inference import network_dtype
from ..networks.rrdbnet import RRDBNet
from .run_folder import find_generator
from ..networks.vgg import VGG19Features

WEIGHTS_DIR = Path(__file__).parents[1] / "weights"
# the names --model knows, with the file each stands for in WEIGHTS_DIR; a release ships the files of those that are
# trained (docs/models.md: srgan_x4 is not yet), shipped_names() says which this installation has
MODEL_NAMES = {"srresnet": "srresnet_x4.safetensors", "srgan": "srgan_x4.safetensors"}
DEFAULT_MODEL = "srresnet"
NETWORKS: dict[str, type[nn.Module]] = {"generator": Generator, "rrdbnet": RRDBNet}
"""The super-resolution networks by weights-file kind."""
TORCH_SUFFIXES = (".pth", ".pt", ".tar", ".ckpt")
"""File names taken for ``torch.save`` files (others are recognised by their first bytes)."""
Network = Generator | RRDBNet


def write_weights(path: str | os.PathLike, arrays: dict[str, mx.array], kind: str, config: dict, **extra: str) -> None:
    """Atomically write ``arrays`` as an srgan-mlx ``kind`` file: the one writer of weights and optimizer states."""
    metadata = {"format": f"srgan-mlx/{kind}", "config": json.dumps(config), **extra}
    with atomic_path(path, suffix=".safetensors") as tmp:
        mx.save_safetensors(str(tmp), arrays, metadata=metadata)


def save_module(path: str | os.PathLike, module: nn.Module, kind: str, config: dict, **extra: str) -> None:
    """Atomically write all arrays of ``module`` (parameters and BN statistics) to ``path``."""
    write_weights(path, dict(tree_flatten(module.parameters())), kind, config, **extra)


def read_weights(path: str | os.PathLike, kind: str | tuple[str, ...]) -> tuple[dict[str, mx.array], dict]:
    """Read a weights file written by :func:`write_weights` (of ``kind``, or one of several kinds); return (arrays,
    config)."""
    arrays, config, _ = _read_weights(path, (kind,) if isinstance(kind, str) else kind)
    return arrays, config


def _read_weights(
    path: str | os.PathLike, kinds: tuple[str, ...], what: str | None = None
) -> tuple[dict[str, mx.array], dict, str]:
    """(arrays, config, kind) of a weights file of one of ``kinds`` (``what`` names them in messages)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such weights file")
    try:
        arrays, metadata = mx.load(str(path), return_metadata=True)
    except Exception as exc:  # mlx raises RuntimeError/ValueError for bad files
        raise UserError(f"{path}: not a readable safetensors file ({exc})") from None
    kind = str(metadata.get("format", "")).removeprefix("srgan-mlx/")
    if kind not in kinds:
        what = what or " or ".join(kinds)
        raise UserError(f"{path}: not an srgan-mlx {what} weights file (format {metadata.get('format')!r})")
    # weights may be stored in float16 (the bundled ones are); networks compute in float32
    arrays = {k: v.astype(mx.float32) if mx.issubdtype(v.dtype, mx.floating) else v for k, v in arrays.items()}
    return arrays, json.loads(metadata.get("config", "{}")), kind


def _some(names: list[str]) -> str:
    names = sorted(names)
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def load_into(module: nn.Module, arrays: dict[str, mx.array], source: str | os.PathLike) -> None:
    """Strictly load ``arrays`` into ``module``: every key present, every shape equal; else one line that says
    which arrays are missing, extra or of another shape."""
    expected = dict(tree_flatten(module.parameters()))
    missing = [key for key in expected if key not in arrays]
    extra = [key for key in arrays if key not in expected]
    reshaped = [f"{key} {tuple(arrays[key].shape)}, not {tuple(expected[key].shape)}" for key in expected
                if key in arrays and arrays[key].shape != expected[key].shape]  # fmt: skip
    problems = [f"{len(found)} {'array' if len(found) == 1 else 'arrays'} {what} ({_some(found)})" for found, what in (
        (missing, "missing"), (extra, "the network does not have"), (reshaped, "of another shape")) if found]
    if problems:
        raise UserError(f"{source}: weights do not fit the network: {'; '.join(problems)}")
    try:
        module.load_weights(list(arrays.items()), strict=True)
    except ValueError as exc:
        raise UserError(f"{source}: weights do not fit the network ({' '.join(str(exc).split())})") from None
    mx.eval(module.parameters())


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
        arrays, config, kind = _read_weights(file, tuple(NETWORKS), "generator")
        network = _built(file, arrays, config, NETWORKS[kind], "generator" if kind == "generator" else kind)
    network.eval()
    return with_dtype(network, dtype)


def kind_of(network: nn.Module) -> str:
    """The weights-file kind of a super-resolution network."""
    for kind, cls in NETWORKS.items():
        if type(network) is cls:
            return kind
    raise TypeError(f"not a super-resolution network: {type(network).__name__}")


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
