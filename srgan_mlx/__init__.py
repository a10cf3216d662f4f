"""srgan-mlx: SRGAN single-image super-resolution (Ledig et al., CVPR 2017) in Apple's MLX.

Importing the package loads oneDNN and a fast BLAS for MLX's Linux CPU backend
before MLX itself (see :mod:`srgan_mlx.native.libraries`), so import ``srgan_mlx`` before
``mlx``; it also sets ``OMP_WAIT_POLICY=PASSIVE`` and
``GOMP_SPINCOUNT=10000`` unless set (see docs/install.md, "Threads and memory"). It
imports no MLX: ``srgan_mlx.Upscaler`` (the Python API, see :mod:`srgan_mlx.upscaling.upscaler`) loads it on first use.
"""

from .native.libraries import load_optimized_blas

load_optimized_blas()


def _convert_from_a_clone() -> None:
    """``srgan_mlx.convert`` is the repository's top-level ``convert/`` folder: an install places it inside the
    package (pyproject.toml's ``package-dir``); from a clone, with only the repository on the path, it is found here."""
    import importlib.util
    import sys
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "convert"
    name = f"{__name__}.convert"
    if name in sys.modules or importlib.util.find_spec(name) is not None or not (folder / "__init__.py").is_file():
        return
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py", submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    globals()["convert"] = module


_convert_from_a_clone()
del _convert_from_a_clone

__version__ = "0.1.0"
__all__ = ["Upscaler"]


def __getattr__(name: str):
    if name == "Upscaler":
        from .upscaling.upscaler import Upscaler

        return Upscaler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
