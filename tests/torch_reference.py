"""Independent torch.nn references of the paper's networks (NCHW), for parity tests.

Attribute names mirror the MLX modules so that state-dict keys correspond one to
one; :func:`copy_to_mlx` moves the weights across (OIHW -> OHWI, NCHW flatten ->
NHWC flatten for the discriminator's first dense layer).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

import mlx.core as mx


class ResidualBlock(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(ch)
        self.act = nn.PReLU(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(ch)

    def forward(self, x):
        return x + self.bn2(self.conv2(self.act(self.bn1(self.conv1(x)))))


class UpsampleBlock(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch * 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.act = nn.PReLU(ch)

    def forward(self, x):
        return self.act(self.shuffle(self.conv(x)))


class Generator(nn.Module):
    def __init__(self, scale=4, num_blocks=16, channels=64):
        super().__init__()
        self.head = nn.Conv2d(3, channels, 9, padding=4)
        self.head_act = nn.PReLU(channels)
        self.blocks = nn.ModuleList(ResidualBlock(channels) for _ in range(num_blocks))
        self.body_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.body_bn = nn.BatchNorm2d(channels)
        self.upsample = nn.ModuleList(UpsampleBlock(channels) for _ in range(int(math.log2(scale))))
        self.tail = nn.Conv2d(channels, 3, 9, padding=4)

    def forward(self, x):
        skip = self.head_act(self.head(x))
        y = skip
        for block in self.blocks:
            y = block(y)
        y = skip + self.body_bn(self.body_conv(y))
        for stage in self.upsample:
            y = stage(y)
        return self.tail(y)


class Discriminator(nn.Module):
    """The paper's; with ``spectral_norm``, its dense layers wrapped in ``torch.nn.utils.spectral_norm``."""

    def __init__(self, input_size=96, spectral_norm=False):
        super().__init__()
        widths = (64, 64, 128, 128, 256, 256, 512, 512)
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        in_ch = 3
        for i, out_ch in enumerate(widths):
            self.convs.append(nn.Conv2d(in_ch, out_ch, 3, stride=1 + i % 2, padding=1))
            if i:
                self.norms.append(nn.BatchNorm2d(out_ch))
            in_ch = out_ch
        side = input_size
        for _ in range(4):
            side = math.ceil(side / 2)
        self.side = side
        wrap = nn.utils.spectral_norm if spectral_norm else (lambda layer: layer)
        self.fc1 = wrap(nn.Linear(side * side * 512, 1024))
        self.fc2 = wrap(nn.Linear(1024, 1))

    def forward(self, x):
        act = nn.functional.leaky_relu
        y = act(self.convs[0](x), 0.2)
        for conv, norm in zip(self.convs[1:], self.norms):
            y = act(norm(conv(y)), 0.2)
        y = act(self.fc1(y.flatten(1)), 0.2)
        return self.fc2(y).squeeze(-1)


class UNetDiscriminator(nn.Module):
    """Real-ESRGAN's U-Net discriminator, written from its description (Wang et al. 2021, section 4.2), with
    ``torch.nn.utils.spectral_norm`` and ``F.interpolate``."""

    def __init__(self, c=64):
        super().__init__()
        sn = nn.utils.spectral_norm
        self.conv0 = nn.Conv2d(3, c, 3, padding=1)
        self.down = nn.ModuleList(sn(nn.Conv2d(c * 2**i, c * 2 ** (i + 1), 4, 2, 1, bias=False)) for i in range(3))
        self.up = nn.ModuleList(sn(nn.Conv2d(c * 2 ** (i + 1), c * 2**i, 3, 1, 1, bias=False)) for i in (2, 1, 0))
        self.extra = nn.ModuleList(sn(nn.Conv2d(c, c, 3, 1, 1, bias=False)) for _ in range(2))
        self.conv_out = nn.Conv2d(c, 1, 3, padding=1)

    def forward(self, x):
        act = nn.functional.leaky_relu
        skips = [act(self.conv0(x), 0.2)]
        for conv in self.down:
            skips.append(act(conv(skips[-1]), 0.2))
        y = skips.pop()
        for conv in self.up:
            y = nn.functional.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
            y = act(conv(y), 0.2) + skips.pop()
        for conv in self.extra:
            y = act(conv(y), 0.2)
        return self.conv_out(y).squeeze(1)


def randomize(module: nn.Module, seed: int = 0, gain: float = 1.0) -> nn.Module:
    """Random weights N(0, gain^2 / fan_in), BN affine and running statistics, PReLU slopes (so eval mode is
    non-trivial and every path matters)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=gen))
            elif name.endswith("running_mean") or name.endswith(".bias"):
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=gen))
            elif tensor.ndim == 1:  # BN gamma, PReLU slope
                tensor.copy_(0.5 + 0.5 * torch.rand(tensor.shape, generator=gen))
            else:
                fan_in = tensor[0].numel()
                tensor.copy_(gain * torch.randn(tensor.shape, generator=gen) / math.sqrt(fan_in))
    return module


def running_variances_near_eps(module: nn.Module, seed: int = 0) -> nn.Module:
    """BatchNorm running variances of the order of torch's eps, with gammas scaled to match.

    In eval mode a BatchNorm layer scales by gamma / sqrt(running_var + eps): with variances
    near eps, an implementation with another eps is off by percents, not by 1e-5.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.BatchNorm2d):
                layer.running_var.copy_(layer.eps * (0.5 + 1.5 * torch.rand(layer.running_var.shape, generator=gen)))
                layer.weight.copy_(layer.running_var.sqrt() * (0.5 + torch.rand(layer.weight.shape, generator=gen)))
    return module


def to_mlx_arrays(module: nn.Module) -> dict[str, mx.array]:
    """The module's state dict in the MLX models' layout; of a spectrally normalised layer, ``weight_orig`` is the
    weight and ``weight_u`` the kept vector ``u`` (``weight_v`` is recomputed from ``u`` at every call, by both)."""
    arrays = {}
    for name, tensor in module.state_dict().items():
        if name.endswith(("num_batches_tracked", "weight_v")):
            continue
        value = tensor.detach().numpy()
        if value.ndim == 4:
            value = value.transpose(0, 2, 3, 1)
        name = name.replace("weight_orig", "weight").replace("weight_u", "u")
        if name == "fc1.weight" and isinstance(module, Discriminator):
            side = module.side
            value = value.reshape(-1, 512, side, side).transpose(0, 2, 3, 1).reshape(value.shape[0], -1)
        arrays[name] = mx.array(np.ascontiguousarray(value))
    return arrays


def copy_to_mlx(module: nn.Module, target) -> None:
    """Load the torch module's weights into the MLX module, strictly."""
    target.load_weights(list(to_mlx_arrays(module).items()), strict=True)


def nchw(x: mx.array) -> torch.Tensor:
    return torch.from_numpy(np.array(x)).permute(0, 3, 1, 2).contiguous()


def nhwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().permute(0, 2, 3, 1).numpy() if t.ndim == 4 else t.detach().numpy()
