"""A torch.nn reference for torchvision's ``vgg19().features`` (torchvision itself is not needed).

Same layer order and ``features.N`` keys as torchvision, so its state dict has the
shapes and names of ``vgg19-dcbb9e9d.pth``. Nothing comes from ``srgan_mlx``: the layer
table is torchvision's configuration "E" and the normalisation the values torchvision
documents for its ImageNet weights, written here so a bug in the code under test cannot
move the reference with it.
"""

from __future__ import annotations

import torch
from torch import nn

# torchvision.models.vgg cfgs["E"]: output channels of each 3x3 convolution, "M" a 2x2 max-pool
CONFIG_E = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
# torchvision's documented preprocessing for ImageNet weights: RGB in [0, 1], then (x - mean) / std
TORCHVISION_MEAN = [0.485, 0.456, 0.406]
TORCHVISION_STD = [0.229, 0.224, 0.225]


def layer_names() -> list[str]:
    """``conv1_1``, ``relu1_1``, ..., ``pool5``: the names of ``features[0]``, ``features[1]``, ..."""
    names, block, conv = [], 1, 1
    for item in CONFIG_E:
        if item == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return names


class TorchVGG19(nn.Module):
    """``features`` as in torchvision (ReLUs not in place, so every activation can be kept)."""

    def __init__(self):
        super().__init__()
        layers, in_ch = [], 3
        for item in CONFIG_E:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_ch, item, 3, padding=1), nn.ReLU()]
                in_ch = item
        self.features = nn.Sequential(*layers)
        self.names = layer_names()

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
        mean = torch.tensor(TORCHVISION_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(TORCHVISION_STD).view(1, 3, 1, 1)
        y, out = (x_nchw - mean) / std, {}
        for name, layer in zip(self.names, self.features):
            y = layer(y)
            if name in layers:
                out[name] = y
                if len(out) == len(layers):
                    break
        return out
