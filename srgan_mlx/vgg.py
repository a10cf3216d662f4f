"""VGG19 feature extractor for the perceptual loss: torchvision's ``vgg19().features``, by name.

Every layer has a name (``conv1_1``, ``relu1_1``, ... ``pool1``, ... ``relu5_4``, ``pool5``),
so a loss asks for ``relu5_4`` (the paper's phi_5,4, torchvision index 35) rather than a
slice index. Input is RGB in [0, 1], NHWC; the ImageNet mean/std normalisation
torchvision's weights expect happens inside. Parameters are frozen.
Weights come from ``convert/vgg19.py`` (torchvision ``features.N`` -> ``convK_M``).
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from .layers import Conv2d

# (block, convs in block, channels) for VGG19 ("E" configuration)
BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def layer_names() -> list[str]:
    """All layer names in torchvision's order (index i here is ``features[i]`` there)."""
    names = []
    for block, convs, _ in BLOCKS:
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


LAYER_NAMES = tuple(layer_names())
CONV_NAMES = tuple(n for n in LAYER_NAMES if n.startswith("conv"))


class VGG19Features(nn.Module):
    """Returns ``{name: activation}`` for the requested layers, computing no deeper than needed."""

    def __init__(self):
        super().__init__()
        in_ch = 3
        for block, convs, ch in BLOCKS:
            for i in range(1, convs + 1):
                setattr(self, f"conv{block}_{i}", Conv2d(in_ch, ch, 3, padding=1))
                in_ch = ch
        self._mean = mx.array(IMAGENET_MEAN)
        self._std = mx.array(IMAGENET_STD)
        self.freeze()

    def __call__(self, x: mx.array, layers: tuple[str, ...] = ("relu5_4",)) -> dict[str, mx.array]:
        unknown = [name for name in layers if name not in LAYER_NAMES]
        if unknown:
            raise ValueError(f"unknown VGG19 layer(s) {unknown}; known: {', '.join(LAYER_NAMES)}")
        last = max(LAYER_NAMES.index(name) for name in layers)
        y = (x - self._mean) / self._std
        out = {}
        for name in LAYER_NAMES[: last + 1]:
            if name.startswith("conv"):
                y = getattr(self, name)(y)
            elif name.startswith("relu"):
                y = nn.relu(y)
            else:
                y = nn.MaxPool2d(2, 2)(y)
            if name in layers:
                out[name] = y
        return out
