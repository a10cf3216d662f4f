"""Tools that turn PyTorch weights into srgan-mlx weights files; ``python -m convert.vgg19 --help``."""
