"""srgan-mlx: SRGAN single-image super-resolution (Ledig et al., CVPR 2017) in Apple's MLX.

Importing the package loads oneDNN and a fast BLAS for MLX's Linux CPU backend
before MLX itself (see :mod:`srgan_mlx.blas`), so import ``srgan_mlx`` before
``mlx``, and keeps freed memory for reuse (:mod:`srgan_mlx.heap`).
"""

from .blas import load_optimized_blas
from .heap import keep_freed_memory

load_optimized_blas()
keep_freed_memory()

__version__ = "0.1.0"
