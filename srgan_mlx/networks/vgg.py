"""VGG19 feature extractor for the perceptual loss: the 16 convolutions of VGG19, by name.

Every layer has a name (``conv1_1``, ``relu1_1``, ... ``pool1``, ... ``relu5_4``, ``pool5``),
so a loss asks for ``relu5_4`` (the paper's phi_5,4, torchvision index 35) rather than a
slice index. Input is RGB in [0, 1], NHWC; the preparation the weights were trained with
(their *input convention*, :data:`INPUT_CONVENTIONS`) happens inside, exactly:

- ``caffe``, the original release (Simonyan & Zisserman's Caffe model, Keras' copy of it;
  what the SRGAN paper used): BGR channel order, pixel values 0..255, minus the BGR mean
  (103.939, 116.779, 123.68), no division.
- ``torchvision``, torchvision's retrained ``vgg19-dcbb9e9d.pth``: RGB in [0, 1], minus
  (0.485, 0.456, 0.406), divided by (0.229, 0.224, 0.225).

Parameters are frozen. Weights come from ``convert/vgg19.py``, which records the
convention in the file's config; files from its first version recorded none and were all
torchvision's, hence the default.
"""

from __future__ import annotations

from typing import NamedTuple

import mlx.core as mx
import mlx.nn as nn

from .kernels import apply_activation, max_pool2
from .layers import Conv2d

# (block, convs in block, channels) for VGG19 ("E" configuration)
BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))


class InputConvention(NamedTuple):
    """How RGB in [0, 1] becomes the network's input: ``(channels in order * scale - mean) / std``."""

    bgr: bool  # reverse the channels (RGB -> BGR) first
    scale: float  # 1: [0, 1]; 255: 0..255
    mean: tuple[float, float, float]  # in the network's channel order, on the scaled range
    std: tuple[float, float, float]


INPUT_CONVENTIONS = {
    "caffe": InputConvention(bgr=True, scale=255.0, mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0)),
    "torchvision": InputConvention(bgr=False, scale=1.0, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
}


def layer_names() -> list[str]:
    """All layer names in torchvision's order (index i here is ``features[i]`` there)."""
    names = []
    for block, convs, _ in BLOCKS:
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


LAYER_NAMES = tuple(layer_names())


class VGG19Features(nn.Module):
    """Returns ``{name: activation}`` for the requested layers, computing no deeper than needed."""

    def __init__(self, input_convention: str = "torchvision"):
        super().__init__()
        if input_convention not in INPUT_CONVENTIONS:
            raise ValueError(f"unknown input convention {input_convention!r}; known: {', '.join(INPUT_CONVENTIONS)}")
        in_ch = 3
        for block, convs, ch in BLOCKS:
            for i in range(1, convs + 1):
                setattr(self, f"conv{block}_{i}", Conv2d(in_ch, ch, 3, padding=1))
                in_ch = ch
        self.input_convention = input_convention
        convention = INPUT_CONVENTIONS[input_convention]
        self._bgr = convention.bgr
        self._scale = convention.scale
        self._mean = mx.array(convention.mean)
        self._std = mx.array(convention.std)
        self.freeze()

    def config(self) -> dict:
        """Constructor arguments, saved beside the weights."""
        return {"input_convention": self.input_convention}

    def prepare(self, x: mx.array) -> mx.array:
        """RGB in [0, 1] -> the input the weights expect (their input convention)."""
        if self._bgr:
            x = x[..., ::-1]
        return (x * self._scale - self._mean) / self._std

    def __call__(self, x: mx.array, layers: tuple[str, ...] = ("relu5_4",)) -> dict[str, mx.array]:
        unknown = [name for name in layers if name not in LAYER_NAMES]
        if unknown:
            raise ValueError(f"unknown VGG19 layer(s) {unknown}; known: {', '.join(LAYER_NAMES)}")
        last = max(LAYER_NAMES.index(name) for name in layers)
        y = self.prepare(x)
        out = {}
        for name in LAYER_NAMES[: last + 1]:
            if name.startswith("conv"):
                y = getattr(self, name)(y)
            elif name.startswith("relu"):
                y = apply_activation(y, "leaky", alpha=0.0)
            else:
                y = max_pool2(y)
            if name in layers:
                out[name] = y
        return out
