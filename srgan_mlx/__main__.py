"""``python -m srgan_mlx`` runs the command line."""

from .cli import main

main()
