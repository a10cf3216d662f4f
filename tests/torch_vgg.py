"""A torch.nn reference for torchvision's ``vgg19().features`` (torchvision itself is not needed).

Same layer order and ``features.N`` keys as torchvision, so its state dict has the
shapes and names of ``vgg19-dcbb9e9d.pth``.
"""

from __future__ import annotations

import torch
from torch import nn

from srgan_mlx.vgg import BLOCKS, IMAGENET_MEAN, IMAGENET_STD, LAYER_NAMES


class TorchVGG19(nn.Module):
    """``features`` as in torchvision (ReLUs not in place, so every activation can be kept)."""

    def __init__(self):
        super().__init__()
        layers, in_ch = [], 3
        for _, convs, ch in BLOCKS:
            for _ in range(convs):
                layers += [nn.Conv2d(in_ch, ch, 3, padding=1), nn.ReLU()]
                in_ch = ch
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)

    def init_random(self, seed: int) -> None:
        """He-normal weights and small random biases, so activations stay O(1) to relu5_4."""
        gen = torch.Generator().manual_seed(seed)
        for layer in self.features:
            if isinstance(layer, nn.Conv2d):
                fan_in = layer.weight[0].numel()
                layer.weight.data = torch.randn(layer.weight.shape, generator=gen) * (2 / fan_in) ** 0.5
                layer.bias.data = torch.randn(layer.bias.shape, generator=gen) * 0.01

    @torch.no_grad()
    def activations(self, x_nchw: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Activations by name for RGB input in [0, 1], normalised as torchvision's weights expect."""
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        y, out = (x_nchw - mean) / std, {}
        for name, layer in zip(LAYER_NAMES, self.features):
            y = layer(y)
            if name in layers:
                out[name] = y
        return out
