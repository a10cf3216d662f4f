"""Tools that turn published VGG19 weights into srgan-mlx weights files: ``srgan-mlx convert-vgg --help``.

The folder sits at the top of the repository (``python -m convert.vgg19`` from a clone); an installed
srgan-mlx holds it as ``srgan_mlx.convert``, so it adds no generic top-level package to site-packages.
"""
