"""``srgan-mlx convert-vgg``: the VGG19 weights converter (``convert/vgg19.py``) under the main command line."""

from ..convert.vgg19 import command

__all__ = ["command"]
