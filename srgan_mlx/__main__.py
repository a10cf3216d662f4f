"""``python -m srgan_mlx ...``: the ``srgan-mlx`` command line, also where the package is only on the path."""

from .cli import main

main(prog_name="srgan-mlx")
