"""Independent torch.nn references of the peers' generators whose weights srgan-mlx runs (NCHW), for parity tests.

Written from the papers and the peers' published weight layouts, sharing nothing with srgan_mlx:

* :class:`RRDBNet`: ESRGAN (Wang et al. 2018, section 3.1 and figure 4) as BasicSR and Real-ESRGAN (Wang et al.
  2021, section 3.3: x2 by pixel-unshuffle of the input) name it; ``state_dict()`` keys are BasicSR's.
* :class:`SRGANPyTorch`: the paper's SRResNet as Lornatang/SRGAN-PyTorch builds it (one PReLU slope per layer,
  no bias in the residual and trunk convolutions, output clamped to [0, 1]); keys are its 2023 names.

"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class DenseBlock(nn.Module):
    """Five 3x3 convolutions, each fed every earlier output concatenated to the input; x5 * 0.2 + x."""

    def __init__(self, nf, gc):
        super().__init__()
        for k in range(1, 6):
            setattr(self, f"conv{k}", nn.Conv2d(nf + (k - 1) * gc, nf if k == 5 else gc, 3, padding=1))

    def forward(self, x):
        outs = [x]
        for k in range(1, 5):
            outs.append(F.leaky_relu(getattr(self, f"conv{k}")(torch.cat(outs, 1)), 0.2))
        return x + 0.2 * self.conv5(torch.cat(outs, 1))


class RRDBlock(nn.Module):
    def __init__(self, nf, gc):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = DenseBlock(nf, gc), DenseBlock(nf, gc), DenseBlock(nf, gc)

    def forward(self, x):
        return x + 0.2 * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(nn.Module):
    """x4: conv, RRDBs, conv + skip, two (nearest x2, conv, lrelu), conv, lrelu, conv; x2: pixel-unshuffle 2 first."""

    def __init__(self, scale=4, nb=23, nf=64, gc=32):
        super().__init__()
        self.scale = scale
        self.conv_first = nn.Conv2d(3 * (16 // scale**2 if scale < 4 else 1), nf, 3, padding=1)
        self.body = nn.Sequential(*[RRDBlock(nf, gc) for _ in range(nb)])
        self.conv_body = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_up1 = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_up2 = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_hr = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_last = nn.Conv2d(nf, 3, 3, padding=1)

    def forward(self, x):
        if self.scale < 4:
            x = F.pixel_unshuffle(x, 4 // self.scale)
        fea = self.conv_first(x)
        fea = fea + self.conv_body(self.body(fea))
        for conv in (self.conv_up1, self.conv_up2):
            fea = F.leaky_relu(conv(F.interpolate(fea, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(fea), 0.2))


class ResidualConv(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.rcb = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch), nn.PReLU(),
                                 nn.Conv2d(ch, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch))  # fmt: skip

    def forward(self, x):
        return x + self.rcb(x)


class Upsample(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.upsample_block = nn.Sequential(nn.Conv2d(ch, 4 * ch, 3, padding=1), nn.PixelShuffle(2), nn.PReLU())

    def forward(self, x):
        return self.upsample_block(x)


class SRGANPyTorch(nn.Module):
    def __init__(self, scale=4, blocks=16, ch=64):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(3, ch, 9, padding=4), nn.PReLU())
        self.trunk = nn.Sequential(*[ResidualConv(ch) for _ in range(blocks)])
        self.conv2 = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch))
        self.upsampling = nn.Sequential(*[Upsample(ch) for _ in range(int(math.log2(scale)))])
        self.conv3 = nn.Conv2d(ch, 3, 9, padding=4)

    def forward(self, x):
        head = self.conv1(x)
        return torch.clamp(self.conv3(self.upsampling(head + self.conv2(self.trunk(head)))), 0.0, 1.0)


def numpy_state(module: nn.Module) -> dict[str, np.ndarray]:
    return {name: t.detach().numpy().copy() for name, t in module.state_dict().items()}
