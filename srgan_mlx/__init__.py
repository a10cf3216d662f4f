"""srgan-mlx: SRGAN single-image super-resolution (Ledig et al., CVPR 2017) in Apple's MLX.

Importing the package loads oneDNN and a fast BLAS for MLX's Linux CPU backend
before MLX itself (see :mod:`srgan_mlx.native.libraries`), so import ``srgan_mlx`` before
``mlx``; it also sets ``OMP_WAIT_POLICY=PASSIVE`` unless set (see README, "Threads and memory"). It
imports no MLX: ``srgan_mlx.Upscaler`` (the Python API, see :mod:`srgan_mlx.upscaling.upscaler`) loads it on first use.
"""

from .native.libraries import load_optimized_blas

load_optimized_blas()

__version__ = "0.1.0"
__all__ = ["Upscaler"]


def __getattr__(name: str):
    if name == "Upscaler":
        from .upscaling.upscaler import Upscaler

        return Upscaler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
