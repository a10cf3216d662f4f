"""The same networks and steps as srgan-mlx in PyTorch: a third column on the CPU, the reference on a GPU.

Written for this benchmark (no torchvision: VGG19's 16 convs are listed here). Every
workload mirrors the srgan-mlx side: paper generator with pixel shuffle, discriminator
returning logits, VGG19 features to relu3_4 (workload a) or relu5_4 (b) with ImageNet
normalisation, one Adam update of G then one of D per SRGAN step; ESRGAN's RRDBNet (d) with
the same weights as the srgan-mlx side (``common.rrdbnet_weights``).

On a GPU (``use_device("gpu")``): CUDA with ``cudnn.benchmark``, and every step ends with
``torch.cuda.synchronize()`` so its time covers the work. ``build(..., bf16=True)`` is what
a PyTorch user would try for speed: bfloat16 autocast and channels_last tensors.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.nn import functional as F

from common import (
    ADVERSARIAL_WEIGHT, IMAGENET_MEAN, IMAGENET_STD, VGG_RESCALE, Spec, Workload, random_batch, rrdbnet_weights,
)  # fmt: skip

VGG_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))


DEVICE = torch.device("cpu")


def configure_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)


def use_device(name: str) -> None:
    """``cpu`` or ``gpu`` (CUDA, with cuDNN's autotuner on)."""
    global DEVICE
    if name == "gpu":
        if not torch.cuda.is_available():
            raise RuntimeError("PyTorch sees no CUDA device")
        torch.backends.cudnn.benchmark = True
        DEVICE = torch.device("cuda")


def versions() -> dict:
    found = {"torch": torch.__version__}
    if DEVICE.type == "cuda":
        found.update(device=torch.cuda.get_device_name(), cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    return found


def _synchronize() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def _placed(models, tensors, bf16: bool):
    """Models and tensors on DEVICE (channels_last with ``bf16``), and the autocast context for a step."""
    layout = torch.channels_last if bf16 else torch.contiguous_format
    models = [m.to(DEVICE, memory_format=layout) for m in models]
    tensors = [t.to(DEVICE).contiguous(memory_format=layout) for t in tensors]
    if bf16:
        return models, tensors, lambda: torch.autocast(DEVICE.type, dtype=torch.bfloat16)
    return models, tensors, contextlib.nullcontext


class ResidualBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.PReLU(ch),
            nn.Conv2d(ch, ch, 3, padding=1), nn.BatchNorm2d(ch),
        )

    def forward(self, x):
        return x + self.body(x)


class Generator(nn.Module):
    def __init__(self, blocks: int = 16, ch: int = 64):
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(3, ch, 9, padding=4), nn.PReLU(ch))
        self.blocks = nn.Sequential(*[ResidualBlock(ch) for _ in range(blocks)])
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.BatchNorm2d(ch))
        self.upsample = nn.Sequential(*[
            layer for _ in range(2) for layer in (nn.Conv2d(ch, ch * 4, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(ch))
        ])
        self.tail = nn.Conv2d(ch, 3, 9, padding=4)

    def forward(self, x):
        skip = self.head(x)
        return self.tail(self.upsample(skip + self.body(self.blocks(skip))))


class Discriminator(nn.Module):
    def __init__(self, size: int):
        super().__init__()
        layers, in_ch = [], 3
        for index, width in enumerate((64, 64, 128, 128, 256, 256, 512, 512)):
            layers.append(nn.Conv2d(in_ch, width, 3, stride=1 + index % 2, padding=1))
            if index:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.LeakyReLU(0.2))
            in_ch = width
            if index % 2:
                size = (size + 1) // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(size * size * in_ch, 1024), nn.LeakyReLU(0.2), nn.Linear(1024, 1))

    def forward(self, x):
        return self.head(self.features(x)).squeeze(-1)


class VGG19Features(nn.Module):
    """VGG19 convs up to and including ``layer`` (``reluB_I``), frozen."""

    def __init__(self, layer: str):
        super().__init__()
        last_block, last_conv = (int(v) for v in layer.removeprefix("relu").split("_"))
        mods, in_ch = [], 3
        for block, convs, ch in VGG_BLOCKS:
            for i in range(1, convs + 1):
                mods += [nn.Conv2d(in_ch, ch, 3, padding=1), nn.ReLU()]
                in_ch = ch
                if (block, i) == (last_block, last_conv):
                    break
            if block == last_block:
                break
            mods.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*mods)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)

    def forward(self, x):
        return self.features((x - self.mean) / self.std)


def count(model: nn.Module) -> dict[str, int]:
    """Parameters plus BatchNorm running statistics (as Keras and MLX count them)."""
    stats = sum(b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var")))
    total = sum(p.numel() for p in model.parameters()) + stats
    return {"total": total, "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def _tensors(spec, batch):
    lr, hr = random_batch(spec, batch)
    return (torch.from_numpy(a).permute(0, 3, 1, 2).contiguous() for a in (lr, hr))


def _srgan(spec, batch: int, bf16: bool) -> Workload:
    learning_rate = 1e-3 if spec.name == "a" else 1e-4
    (G, D, vgg), (lr, hr), autocast = _placed(
        [Generator(), Discriminator(spec.hr_size), VGG19Features(spec.vgg_layer)], _tensors(spec, batch), bf16
    )
    opt_g = torch.optim.Adam(G.parameters(), learning_rate)
    opt_d = torch.optim.Adam(D.parameters(), learning_rate)

    def step():
        G.train(), D.train()
        D.requires_grad_(False)
        with autocast():  # forward passes only, as torch.autocast recommends
            sr = G(lr)
            features = vgg((torch.cat([sr, hr]) + 1) / 2) * VGG_RESCALE
            fake_f, real_f = features.chunk(2)
            content = F.mse_loss(fake_f, real_f.detach())
            g_loss = content + ADVERSARIAL_WEIGHT * F.softplus(-D(sr)).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        D.requires_grad_(True)
        with autocast():
            d_loss = F.softplus(-D(hr)).mean() + F.softplus(D(sr.detach())).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        _synchronize()

    return Workload(step, batch, {"generator": count(G), "discriminator": count(D), "vgg": count(vgg)})


def _srresnet(spec, batch: int, bf16: bool) -> Workload:
    (G,), (lr, hr), autocast = _placed([Generator()], _tensors(spec, batch), bf16)
    opt = torch.optim.Adam(G.parameters(), 1e-4)

    def step():
        with autocast():
            loss = F.mse_loss(G(lr), hr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _synchronize()

    return Workload(step, batch, {"generator": count(G)})


def _inference(spec, batch: int, bf16: bool) -> Workload:
    (G,), (x, _), autocast = _placed([Generator().eval()], _tensors(spec, batch), bf16)

    def step():
        with torch.inference_mode(), autocast():
            G(x)
        _synchronize()

    return Workload(step, batch, {"generator": count(G)})


class DenseBlock(nn.Module):
    """ESRGAN's residual dense block: five 3x3 convs on the growing concatenation, LeakyReLU 0.2, x5 * 0.2 + x."""

    def __init__(self, nf: int, gc: int):
        super().__init__()
        for k in range(1, 6):
            setattr(self, f"conv{k}", nn.Conv2d(nf + (k - 1) * gc, nf if k == 5 else gc, 3, padding=1))

    def forward(self, x):
        feats = [x]
        for k in range(1, 5):
            feats.append(F.leaky_relu(getattr(self, f"conv{k}")(torch.cat(feats, 1)), 0.2))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = DenseBlock(nf, gc), DenseBlock(nf, gc), DenseBlock(nf, gc)

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN / Real-ESRGAN x4 with BasicSR's parameter names, so ``common.rrdbnet_weights`` loads strictly."""

    def __init__(self, blocks: int = 23, nf: int = 64, gc: int = 32):
        super().__init__()
        self.conv_first = nn.Conv2d(3, nf, 3, padding=1)
        self.body = nn.Sequential(*[RRDB(nf, gc) for _ in range(blocks)])
        self.conv_body = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_up1 = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_up2 = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_hr = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_last = nn.Conv2d(nf, 3, 3, padding=1)

    def forward(self, x):
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for conv in (self.conv_up1, self.conv_up2):
            feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


def _rrdbnet(spec, batch: int, bf16: bool) -> Workload:
    model = RRDBNet()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in rrdbnet_weights().items()}, strict=True)
    (G,), (x, _), autocast = _placed([model.eval()], _tensors(spec, batch), bf16)

    def step():
        with torch.inference_mode(), autocast():
            G(x)
        _synchronize()

    return Workload(step, batch, {"rrdbnet": count(G)})


BUILDERS = {"a": _srgan, "b_srresnet": _srresnet, "b_srgan": _srgan, "c": _inference, "d_rrdbnet": _rrdbnet}


def build(spec: Spec, batch: int, bf16: bool = False) -> Workload:
    return BUILDERS[spec.name](spec, batch, bf16)
