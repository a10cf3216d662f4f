"""Native code and what it needs, in one place; nothing here imports MLX at import time.

* :mod:`~srgan_mlx.native.libraries`: ``libdnnl`` and a fast BLAS for MLX's Linux CPU backend, loaded
  before MLX (``import srgan_mlx`` does it);
* :mod:`~srgan_mlx.native.loader`: the compiled extension ``_ext`` (built from ``csrc/`` by
  ``setup.py``; optional), loaded only where it matches the installed MLX, else the reason why not;
* :mod:`~srgan_mlx.native.onednn`: convolutions through it; its multi-threaded kernels between the
  convolutions are used through :mod:`srgan_mlx.networks.kernels`;
* :mod:`~srgan_mlx.native.backends`: which MLX backend package's ``libmlx.so`` is in place.
"""

from .loader import extension, unavailable_reason

__all__ = ["extension", "unavailable_reason"]
