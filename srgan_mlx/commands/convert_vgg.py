"""``srgan-mlx convert-vgg``: the ``python -m convert.vgg19`` tool under the main command line."""

from convert.vgg19 import command

__all__ = ["command"]
