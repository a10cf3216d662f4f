"""The one set-up every experiment script imports first (``import this_checkout``): this checkout's ``srgan_mlx``
on the path, ahead of any installed copy, and imported before ``mlx`` (it loads the BLAS MLX must find first).

The experiments are scripts, run from anywhere as ``python experiments/<name>.py``; Python puts their folder on
the path, so they find this module, and this module finds the package beside it.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The repository's root: the checkout the experiments measure."""
RESULTS = ROOT / "experiments" / "results"
"""Where an experiment writes its tables and figures unless told otherwise."""

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import srgan_mlx  # noqa: E402,F401  (the BLAS before mlx)
