"""Synthetic state dicts (numpy, torch's layout) in the key layouts of the peers' published weights files.

Written from the peers' files and papers, sharing nothing with srgan_mlx; random values, so only names, shapes and
the arithmetic the tests compare matter. No torch needed.

* BasicSR / Real-ESRGAN RRDBNet (``RealESRGAN_x4plus.pth``: ``{"params_ema": ...}``), x4 or x2 (12 input channels);
* ESRGAN 2019 (``RRDB_ESRGAN_x4.pth`` after ``transer_RRDB_models.py``) and 2018 (the sequential ``model.<i>``
  names) renamings of the BasicSR keys;
* Lornatang SRGAN-PyTorch's SRResNet (2023 names ``conv1``/``conv2``/``conv3``; 2022 ``conv_block1``/...);
* Real-ESRGAN's SRVGGNetCompact (``realesr-general-x4v3.pth``), which srgan-mlx does not run.
"""

from __future__ import annotations

import math
import re

import numpy as np


def _conv(rng, out_ch, in_ch, k, bias=True, gain=1.0):
    weight = (gain * rng.standard_normal((out_ch, in_ch, k, k)) / math.sqrt(in_ch * k * k)).astype(np.float32)
    return (weight, (0.1 * rng.standard_normal(out_ch)).astype(np.float32)) if bias else (weight, None)


def _put_conv(state, name, rng, out_ch, in_ch, k, bias=True, gain=1.0):
    weight, b = _conv(rng, out_ch, in_ch, k, bias, gain)
    state[f"{name}.weight"] = weight
    if b is not None:
        state[f"{name}.bias"] = b


def basicsr_rrdbnet(scale=4, blocks=2, nf=16, gc=8, seed=0, gain=1.0) -> dict[str, np.ndarray]:
    """BasicSR's RRDBNet key names and shapes: scale 4 (3 input channels) or 2 (12: pixel-unshuffled)."""
    rng = np.random.default_rng(seed)
    state = {}
    _put_conv(state, "conv_first", rng, nf, 3 * (4 if scale == 2 else 1), 3, gain=gain)
    for i in range(blocks):
        for j in (1, 2, 3):
            for k in range(1, 6):
                _put_conv(state, f"body.{i}.rdb{j}.conv{k}", rng, nf if k == 5 else gc, nf + (k - 1) * gc, 3, gain=gain)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        _put_conv(state, name, rng, nf, nf, 3, gain=gain)
    _put_conv(state, "conv_last", rng, 3, nf, 3, gain=gain)
    return state


def esrgan_2019_key(basicsr_key: str) -> str:
    """BasicSR's RRDBNet key -> the name xinntao/ESRGAN's 2019 ``RRDBNet_arch.py`` gives it."""
    key = re.sub(r"^body\.(\d+)\.rdb(\d)\.", r"RRDB_trunk.\1.RDB\2.", basicsr_key)
    for old, new in (("conv_body.", "trunk_conv."), ("conv_up1.", "upconv1."), ("conv_up2.", "upconv2."),
                     ("conv_hr.", "HRconv.")):  # fmt: skip
        if key.startswith(old):
            key = new + key[len(old) :]
    return key


def esrgan_2018_key(basicsr_key: str, blocks: int, stages: int = 2) -> str:
    """BasicSR's RRDBNet key -> the 2018 release's sequential name: model.0 (first conv), model.1.sub.<i> (the RRDBs,
    then the trunk conv at <blocks>), per upsampling stage s (from 1) an Upsample, conv, LeakyReLU at 3s - 1, 3s,
    3s + 1, then the HR conv at 3n + 2 and the last at 3n + 4 (x4: 3, 6, 8, 10; x2: 3, 5, 7)."""
    match = re.match(r"^body\.(\d+)\.rdb(\d)\.(conv\d)\.(weight|bias)$", basicsr_key)
    if match:
        return f"model.1.sub.{match[1]}.RDB{match[2]}.{match[3]}.0.{match[4]}"
    module, param = basicsr_key.rsplit(".", 1)
    index = {"conv_first": "0", "conv_body": f"1.sub.{blocks}", "conv_hr": str(3 * stages + 2),
             "conv_last": str(3 * stages + 4), **{f"conv_up{s}": str(3 * s) for s in range(1, stages + 1)}}[module]  # fmt: skip
    return f"model.{index}.{param}"


def renamed(state: dict, rename) -> dict:
    return {rename(key): value for key, value in state.items()}


def _put_bn(state, name, rng, ch):
    state[f"{name}.weight"] = (0.5 + 0.5 * rng.random(ch)).astype(np.float32)
    state[f"{name}.bias"] = (0.1 * rng.standard_normal(ch)).astype(np.float32)
    state[f"{name}.running_mean"] = (0.1 * rng.standard_normal(ch)).astype(np.float32)
    state[f"{name}.running_var"] = (0.5 + rng.random(ch)).astype(np.float32)
    state[f"{name}.num_batches_tracked"] = np.array(1000, np.int64)


def srgan_pytorch(scale=4, blocks=2, ch=16, seed=0, names=("conv1", "conv2", "conv3")) -> dict[str, np.ndarray]:
    """Lornatang SRGAN-PyTorch's SRResNet: one PReLU slope per layer, residual and trunk convs without bias."""
    rng = np.random.default_rng(seed)
    first, second, last = names
    state = {}

    def slope(name):
        state[name] = (0.1 + 0.2 * rng.random(1)).astype(np.float32)

    _put_conv(state, f"{first}.0", rng, ch, 3, 9)
    slope(f"{first}.1.weight")
    for i in range(blocks):
        _put_conv(state, f"trunk.{i}.rcb.0", rng, ch, ch, 3, bias=False)
        _put_bn(state, f"trunk.{i}.rcb.1", rng, ch)
        slope(f"trunk.{i}.rcb.2.weight")
        _put_conv(state, f"trunk.{i}.rcb.3", rng, ch, ch, 3, bias=False)
        _put_bn(state, f"trunk.{i}.rcb.4", rng, ch)
    _put_conv(state, f"{second}.0", rng, ch, ch, 3, bias=False)
    _put_bn(state, f"{second}.1", rng, ch)
    for j in range(int(math.log2(scale))):
        _put_conv(state, f"upsampling.{j}.upsample_block.0", rng, 4 * ch, ch, 3)
        slope(f"upsampling.{j}.upsample_block.2.weight")
    _put_conv(state, last, rng, 3, ch, 9, gain=0.3)
    state[f"{last}.bias"] = np.full(3, 0.5, np.float32)  # outputs mostly inside the clamp to [0, 1]
    return state


def srvgg_compact(convs=4, ch=16, seed=0) -> dict[str, np.ndarray]:
    """Real-ESRGAN's SRVGGNetCompact: body.<even> convs, body.<odd> PReLUs."""
    rng = np.random.default_rng(seed)
    state = {}
    _put_conv(state, "body.0", rng, ch, 3, 3)
    for i in range(convs):
        state[f"body.{2 * i + 1}.weight"] = np.full(ch, 0.2, np.float32)
        _put_conv(state, f"body.{2 * i + 2}", rng, ch if i < convs - 1 else 48, ch, 3)
    return state
