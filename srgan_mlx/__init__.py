"""srgan-mlx: SRGAN single-image super-resolution (Ledig et al., CVPR 2017) in Apple's MLX.

Importing the package loads an optimized BLAS for MLX's Linux CPU backend
before MLX itself (see :mod:`srgan_mlx.blas`), so import ``srgan_mlx`` before
``mlx``.
"""

from .blas import load_optimized_blas

load_optimized_blas()

__version__ = "0.1.0"
