"""Recognise the super-resolution generator a PyTorch weights file holds and map it onto srgan-mlx's networks.

The file is read by :mod:`srgan_mlx.convert.pth` (no torch, nothing in it run). The state dict is taken from
BasicSR's wrapper (``params_ema``, else ``params``: what Real-ESRGAN's inference loads), a training checkpoint's
``state_dict`` (SRGAN-PyTorch's ``.pth.tar``: what its inference loads), or the file itself; a ``module.``
(DataParallel) or ``_orig_mod.`` (``torch.compile``) prefix on every key is removed, and BatchNorm's
``num_batches_tracked`` counters are dropped. The layout is then recognised from the key names:

============================  ======================================================  ==========================
layout                        keys                                                    network
============================  ======================================================  ==========================
BasicSR / Real-ESRGAN         ``conv_first``, ``body.<i>.rdb<j>.conv<k>``,            :class:`RRDBNet` x4; x2
                              ``conv_body``, ``conv_up1``, ``conv_up2``,              with a pixel-unshuffled
                              ``conv_hr``, ``conv_last``                              input (12 channels)
ESRGAN (2019)                 ``conv_first``, ``RRDB_trunk.<i>.RDB<j>.conv<k>``,      :class:`RRDBNet` x4
                              ``trunk_conv``, ``upconv1``, ``upconv2``, ``HRconv``,
                              ``conv_last``
ESRGAN (2018)                 ``model.0``, ``model.1.sub.<i>.RDB<j>.conv<k>.0``,      :class:`RRDBNet` x2, x4, x8
                              ``model.1.sub.<blocks>``, then per stage
                              ``model.<3 + 3s>``, ``model.<3n + 2>``, ``model.<3n + 4>``
SRGAN-PyTorch (Lornatang)     ``conv1`` (2022: ``conv_block1``), ``trunk.<i>.rcb.<j>``,  :class:`Generator`
                              ``conv2`` / ``conv_block2``,                            (SRResNet) x2, x4, x8
                              ``upsampling.<i>.upsample_block.<j>``,
                              ``conv3`` / ``conv_block3``
srgan-mlx                     this project's own names (``head``, ``blocks.<i>...``,   :class:`Generator`
                              ``tail``) in torch's layout
============================  ======================================================  ==========================

Every parameter of the network the shapes describe (blocks, features, growth, scale) is taken from exactly one
key, with its shape checked; a missing key, a key left over and a shape that does not fit are one-line
errors naming the key. SRGAN-PyTorch's generator is the paper's, as srgan-mlx's :class:`Generator` is, with
three differences that carry over exactly: its PReLUs have one slope per layer (``nn.PReLU()``), spread here over
the channels; its residual-block and trunk convolutions have no bias (a zero bias here); its output is RGB in
[0, 1] (clamped) where srgan-mlx's is in [-1, 1], so the last layer's weight is doubled and its bias becomes
``2 b - 1``. Convolution weights go from torch's (out, in, kh, kw) to MLX's (out, kh, kw, in).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

import srgan_mlx  # noqa: F401  (first: it loads the BLAS that MLX must find before mlx is imported)
import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from srgan_mlx.errors import UserError
from srgan_mlx.networks.generator import SCALES, Generator
from srgan_mlx.networks.rrdbnet import RRDBNet

from .pth import LegacyTensor, TensorRef, load_state_dict

WRAPPERS = ("params_ema", "params", "state_dict")
"""Keys under which a checkpoint holds its state dict, in order of preference."""
PREFIXES = ("module.", "_orig_mod.")
"""Key prefixes of wrapped models (``nn.DataParallel``, ``torch.compile``) that every key carries."""
DROPPED = ".num_batches_tracked"
"""BatchNorm's step counter: not a weight, not used in inference."""


class Take(NamedTuple):
    """Where one parameter of the MLX network comes from: ``key`` of the state dict, converted by ``how``.

    ``conv``: a torch (out, in, kh, kw) kernel; ``copy``: the same shape; ``slopes``: a PReLU, one slope for the
    layer or one per channel; ``bias``: a bias, absent for a convolution without one (then zeros). The result is
    multiplied by ``scale`` and ``offset`` is added.
    """

    key: str
    how: str = "copy"
    scale: float = 1.0
    offset: float = 0.0


@dataclass
class Recognised:
    """A weights file mapped onto an srgan-mlx network: the network (loaded, eval mode) and what was recognised."""

    network: nn.Module
    layout: str
    wrapper: str | None

    def describe(self) -> str:
        """One line: architecture, scale, blocks, features, and the layout and wrapper it came from."""
        where = self.layout + (f", {self.wrapper}" if self.wrapper else "")
        return f"{describe_network(self.network)} ({where})"


def describe_network(network: nn.Module) -> str:
    """``RRDBNet x4, 23 blocks, 64 features, growth 32`` or ``SRResNet x4, 16 blocks, 64 channels``."""
    if isinstance(network, RRDBNet):
        unshuffled = f", pixel-unshuffle {network.unshuffle} input" if network.unshuffle > 1 else ""
        return (
            f"RRDBNet x{network.scale}, {network.num_blocks} blocks, {network.features} features, "
            f"growth {network.growth}{unshuffled}"
        )
    return f"SRResNet x{network.scale}, {network.num_blocks} blocks, {network.channels} channels"


# ------------------------------------------------------------------ the state dict


def _select(found: dict) -> Callable[[object], object]:
    """A ``select`` for :func:`load_state_dict` that notes in ``found["wrapper"]`` which wrapper held the weights."""

    def select(obj):
        if not isinstance(obj, dict):
            raise UserError(f"holds a {type(obj).__name__}, not a state dict")
        for key in WRAPPERS:
            if isinstance(obj.get(key), dict):
                found["wrapper"] = key
                return obj[key]
        other = [k for k, v in obj.items() if not isinstance(v, (TensorRef, LegacyTensor))]
        if other:
            keys = ", ".join(map(str, list(obj)[:6])) + (", ..." if len(obj) > 6 else "")
            raise UserError(
                f"holds no state dict: top-level keys {keys} (expected a dict of tensors, or one under "
                f"{', '.join(WRAPPERS)})"
            )
        return obj

    return select


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], str | None]:
    """The state dict in a ``torch.save`` file, without wrapper prefixes or BatchNorm counters, and its wrapper."""
    found = {"wrapper": None}
    state = load_state_dict(path, keep=lambda name: not name.endswith(DROPPED), select=_select(found))
    for prefix in PREFIXES:
        if state and all(key.startswith(prefix) for key in state):
            state = {key[len(prefix) :]: value for key, value in state.items()}
    return state, found["wrapper"]


# ------------------------------------------------------------------ the layouts


def _shape(state: dict, key: str) -> tuple:
    if key not in state:
        raise UserError(f"missing key {key}")
    return state[key].shape


def _count(state: dict, pattern: str) -> int:
    """One more than the largest index ``(\\d+)`` in ``pattern`` among the keys (0 if none): blocks, stages."""
    found = [int(m.group(1)) for key in state if (m := re.match(pattern, key))]
    return max(found) + 1 if found else 0


def _rrdbnet(state: dict, first: str, rdb_conv1: str, last: str, stages: int) -> RRDBNet:
    """The RRDBNet the shapes describe: features and input channels from ``first``, growth from the first dense
    block's ``rdb_conv1``, output channels from ``last``."""
    features, in_channels = _shape(state, first)[:2]
    unshuffle = {3: 1, 12: 2, 48: 4}.get(in_channels)
    if unshuffle is None:
        raise UserError(f"{first} takes {in_channels} input channels: only RGB models are supported (3 channels, "
                        "or 12 / 48 after pixel-unshuffle)")  # fmt: skip
    out_channels = _shape(state, last)[0]
    if out_channels != 3:
        raise UserError(f"{last} gives {out_channels} channels: only RGB models (3) are supported")
    scale = 2**stages / unshuffle
    if scale < 2 or scale != int(scale):
        raise UserError(f"a x{scale:g} RRDBNet (pixel-unshuffle {unshuffle}, {stages} upsampling stages): "
                        "srgan-mlx runs upscaling models, x2 to x8")  # fmt: skip
    growth = _shape(state, rdb_conv1)[0]
    blocks = _count(state, r"^(?:body|RRDB_trunk|model\.1\.sub)\.(\d+)\.(?:rdb|RDB)1\.")
    return RRDBNet(int(scale), blocks, features, growth, unshuffle)


def _basicsr(state: dict) -> tuple[nn.Module, Callable[[str], Take]]:
    network = _rrdbnet(state, "conv_first.weight", "body.0.rdb1.conv1.weight", "conv_last.weight", 2)

    def take(name: str) -> Take:
        if name.startswith("upsample."):
            _, stage, param = name.split(".")
            name = f"conv_up{int(stage) + 1}.{param}"
        return Take(name, "conv" if name.endswith("weight") else "copy")

    return network, take


ESRGAN_2019 = {"conv_body": "trunk_conv", "upsample.0": "upconv1", "upsample.1": "upconv2", "conv_hr": "HRconv"}


def _esrgan_2019(state: dict) -> tuple[nn.Module, Callable[[str], Take]]:
    network = _rrdbnet(state, "conv_first.weight", "RRDB_trunk.0.RDB1.conv1.weight", "conv_last.weight", 2)

    def take(name: str) -> Take:
        module, param = name.rsplit(".", 1)
        if module.startswith("body."):
            _, block, rdb, conv = module.split(".")
            module = f"RRDB_trunk.{block}.{rdb.upper()}.{conv}"
        key = f"{ESRGAN_2019.get(module, module)}.{param}"
        return Take(key, "conv" if param == "weight" else "copy")

    return network, take


def _esrgan_2018(state: dict) -> tuple[nn.Module, Callable[[str], Take]]:
    top = sorted({int(m.group(1)) for key in state if (m := re.match(r"^model\.(\d+)\.(?:weight|bias)$", key))})
    stages = (top[-1] - 4) // 3 if top else 0
    network = _rrdbnet(state, "model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight", f"model.{3 * stages + 4}.weight",
                       stages)  # fmt: skip
    modules = {"conv_first": "model.0", "conv_body": f"model.1.sub.{network.num_blocks}",
               "conv_hr": f"model.{3 * stages + 2}", "conv_last": f"model.{3 * stages + 4}",
               **{f"upsample.{s}": f"model.{3 + 3 * s}" for s in range(stages)}}  # fmt: skip

    def take(name: str) -> Take:
        module, param = name.rsplit(".", 1)
        if module.startswith("body."):
            _, block, rdb, conv = module.split(".")
            key = f"model.1.sub.{block}.{rdb.upper()}.{conv}.0.{param}"
        else:
            key = f"{modules[module]}.{param}"
        return Take(key, "conv" if param == "weight" else "copy")

    return network, take


def _srresnet(state: dict, head: str, trunk: str, upsampling: str) -> Generator:
    channels = _shape(state, f"{head}.weight")[0]
    stages = _count(state, rf"^{re.escape(upsampling)}\.(\d+)\.")
    if 2**stages not in SCALES:
        raise UserError(f"{stages} upsampling stages: srgan-mlx's SRResNet upscales x{', x'.join(map(str, SCALES))}")
    return Generator(2**stages, _count(state, rf"^{re.escape(trunk)}\.(\d+)\."), channels)


def _srgan_pytorch(state: dict) -> tuple[nn.Module, Callable[[str], Take]]:
    names = ("conv1", "conv2", "conv3") if "conv1.0.weight" in state else ("conv_block1", "conv_block2", "conv_block3")
    first, second, last = names
    network = _srresnet(state, f"{first}.0", "trunk", "upsampling")
    bn = ("weight", "bias", "running_mean", "running_var")
    table = {"head.weight": Take(f"{first}.0.weight", "conv"), "head.bias": Take(f"{first}.0.bias"),
             "head_act.weight": Take(f"{first}.1.weight", "slopes"),
             "body_conv.weight": Take(f"{second}.0.weight", "conv"), "body_conv.bias": Take(f"{second}.0.bias", "bias"),
             **{f"body_bn.{p}": Take(f"{second}.1.{p}") for p in bn},
             "tail.weight": Take(f"{last}.weight", "conv", scale=2.0),
             "tail.bias": Take(f"{last}.bias", scale=2.0, offset=-1.0)}  # fmt: skip
    for i in range(network.num_blocks):
        rcb = f"trunk.{i}.rcb"
        table.update({f"blocks.{i}.conv1.weight": Take(f"{rcb}.0.weight", "conv"),
                      f"blocks.{i}.conv1.bias": Take(f"{rcb}.0.bias", "bias"),
                      f"blocks.{i}.act.weight": Take(f"{rcb}.2.weight", "slopes"),
                      f"blocks.{i}.conv2.weight": Take(f"{rcb}.3.weight", "conv"),
                      f"blocks.{i}.conv2.bias": Take(f"{rcb}.3.bias", "bias"),
                      **{f"blocks.{i}.bn1.{p}": Take(f"{rcb}.1.{p}") for p in bn},
                      **{f"blocks.{i}.bn2.{p}": Take(f"{rcb}.4.{p}") for p in bn}})  # fmt: skip
    for i in range(len(network.upsample)):
        block = f"upsampling.{i}.upsample_block"
        table.update({f"upsample.{i}.conv.weight": Take(f"{block}.0.weight", "conv"),
                      f"upsample.{i}.conv.bias": Take(f"{block}.0.bias"),
                      f"upsample.{i}.act.weight": Take(f"{block}.2.weight", "slopes")})  # fmt: skip
    return network, table.__getitem__


def _srgan_mlx(state: dict) -> tuple[nn.Module, Callable[[str], Take]]:
    network = _srresnet(state, "head", "blocks", "upsample")
    convs = re.compile(r"^(?:head|tail|body_conv|blocks\.\d+\.conv[12]|upsample\.\d+\.conv)\.weight$")
    return network, lambda name: Take(name, "conv" if convs.match(name) else "copy")


def _has(*keys: str) -> Callable[[dict], bool]:
    return lambda state: all(key in state for key in keys)


LAYOUTS: list[tuple[str, Callable[[dict], bool], Callable]] = [
    ("BasicSR / Real-ESRGAN layout", _has("conv_first.weight", "body.0.rdb1.conv1.weight"), _basicsr),
    ("ESRGAN 2019 layout", _has("conv_first.weight", "RRDB_trunk.0.RDB1.conv1.weight"), _esrgan_2019),
    ("ESRGAN 2018 layout", _has("model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight"), _esrgan_2018),
    ("SRGAN-PyTorch layout",
     lambda s: "trunk.0.rcb.0.weight" in s and ("conv1.0.weight" in s or "conv_block1.0.weight" in s), _srgan_pytorch),
    ("srgan-mlx layout", _has("head.weight", "blocks.0.conv1.weight", "tail.weight"), _srgan_mlx),
]  # fmt: skip
"""(name, test on the state dict, builder of (network, where each parameter comes from)), tried in order."""

KNOWN_UNSUPPORTED = [
    ("SRVGGNetCompact (Real-ESRGAN's realesr-general-x4v3 / realesr-animevideov3)",
     _has("body.0.weight", "body.1.weight", "body.2.weight")),
]  # fmt: skip


def _convert(array: np.ndarray, take: Take, shape: tuple) -> np.ndarray:
    """``array`` in the network's layout and ``shape``, or a :class:`UserError` naming the key."""
    if take.how == "conv":
        ok = array.ndim == 4 and (array.shape[0], *array.shape[2:], array.shape[1]) == shape
        want = (shape[0], shape[3], shape[1], shape[2]) if len(shape) == 4 else shape
        value = array.transpose(0, 2, 3, 1) if ok else None
    elif take.how == "slopes":
        ok = array.shape in ((1,), shape)
        want = f"(1,) or {shape}"
        value = np.broadcast_to(array, shape) if ok else None
    else:
        ok, want, value = array.shape == shape, shape, array
    if not ok:
        raise UserError(f"{take.key} has shape {tuple(array.shape)}, the network needs {want}")
    if not np.issubdtype(value.dtype, np.floating):
        raise UserError(f"{take.key} holds {value.dtype} values, not floating point")
    value = value.astype(np.float32)
    return value * np.float32(take.scale) + np.float32(take.offset) if (take.scale, take.offset) != (1, 0) else value


def map_state_dict(state: dict[str, np.ndarray]) -> tuple[nn.Module, str]:
    """The srgan-mlx network ``state`` describes, with every weight loaded strictly, and its layout's name."""
    state = {key: value for key, value in state.items() if not key.endswith(DROPPED)}
    for name, test, build in LAYOUTS:
        if test(state):
            break
    else:
        for name, test in KNOWN_UNSUPPORTED:
            if test(state):
                raise UserError(f"holds {name}, which srgan-mlx does not run")
        keys = ", ".join(list(state)[:4]) + (", ..." if len(state) > 4 else "")
        raise UserError(f"unknown layout: not a generator srgan-mlx knows (keys {keys or 'none'})")
    try:
        network, take = build(state)
    except ValueError as exc:  # a shape the constructor refuses
        raise UserError(f"{name}: {exc}") from None
    arrays, used, missing = [], set(), []
    for param, value in tree_flatten(network.parameters()):
        where = take(param)
        if where.key not in state:
            if where.how == "bias":
                arrays.append((param, mx.zeros(value.shape)))
                continue
            missing.append(where.key)
            continue
        used.add(where.key)
        arrays.append((param, mx.array(_convert(state[where.key], where, tuple(value.shape)))))
    described = describe_network(network)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UserError(f"missing key {missing[0]}{more} for a {described} in the {name}")
    extra = [key for key in state if key not in used]
    if extra:
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise UserError(f"unexpected key {extra[0]}{more} for a {described} in the {name}")
    network.load_weights(arrays, strict=True)
    network.eval()
    mx.eval(network.parameters())
    return network, name


def recognise(path: str | os.PathLike) -> Recognised:
    """Read a PyTorch weights file and map it onto srgan-mlx's network; errors name the file."""
    state, wrapper = read_state_dict(path)
    try:
        network, layout = map_state_dict(state)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    return Recognised(network, layout, wrapper)

