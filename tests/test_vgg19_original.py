"""The original VGG19 (the paper's): converted from its 8-bit copy and from a Keras .h5, run with the Caffe convention.

The reference here is independent of ``srgan_mlx`` and ``convert``: torch's own loader reads
the 8-bit files, and the Caffe pipeline (BGR, 0..255, minus the BGR mean) and the layer
table are written below from the release's documented values.
"""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import mlx.core as mx

from srgan_mlx.convert import vgg19 as converter
from srgan_mlx.files.model_io import load_vgg
from srgan_mlx.training.losses import PerceptualLoss

torch = pytest.importorskip("torch", reason="PyTorch is not installed (its CPU build for these reference tests: see docs/install.md#tests)")
F = torch.nn.functional

from original_vgg19_files import CAFFE_BLOCKS, quantised_state, write_keras_h5  # noqa: E402  (needs torch)

# the release's preprocessing: BGR pixels in 0..255 minus this per-channel (B, G, R) mean, no std
CAFFE_BGR_MEAN = [103.939, 116.779, 123.68]
CROP = 96  # the paper's HR crop size


def reference_weights(path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{blockB_convC: (OIHW weight, bias)}`` in float64, read by torch itself: weight = table[W_q]."""
    state = torch.load(path, weights_only=True)
    layers = {}
    for block, widths in enumerate(CAFFE_BLOCKS, 1):
        for conv in range(1, len(widths) + 1):
            name = f"block{block}_conv{conv}"
            weight = state[f"{name}_W_table"].double()[state[f"{name}_W_q"].long()]
            layers[name] = (weight, state[f"{name}_b"].double())
    return layers


def caffe_features(rgb: np.ndarray, layers, blocks: int = 5) -> np.ndarray:
    """Last ReLU of block ``blocks`` (5: relu5_4), NHWC, of RGB images in 0..255: the Caffe way, in float64."""
    bgr = torch.from_numpy(np.ascontiguousarray(rgb[..., ::-1], dtype=np.float64))
    x = (bgr - torch.tensor(CAFFE_BGR_MEAN, dtype=torch.float64)).permute(0, 3, 1, 2)
    for block, widths in enumerate(CAFFE_BLOCKS[:blocks], 1):
        for conv in range(1, len(widths) + 1):
            x = F.relu(F.conv2d(x, *layers[f"block{block}_conv{conv}"], padding=1))
        if block < blocks:
            x = F.max_pool2d(x, 2)
    return x.permute(0, 2, 3, 1).numpy()


def cli(src, dst):
    """Run the converter's click command in-process; exit code 0 asserted."""
    result = CliRunner().invoke(converter.command, [str(src), "-o", str(dst)])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def converted(original_vgg19, tmp_path_factory):
    """The shared file converted by the command line: (output path, click result)."""
    dst = tmp_path_factory.mktemp("original") / "vgg19.safetensors"
    return dst, cli(original_vgg19, dst)


@pytest.fixture(scope="module")
def references(original_vgg19):
    return reference_weights(original_vgg19)


@pytest.fixture
def photo(data_dir) -> np.ndarray:
    """A textured 96x96 crop of a real photo (Set14 baboon's fur), RGB uint8, batch of one."""
    with Image.open(data_dir / "Set14" / "HR" / "baboon.png") as image:
        return np.asarray(image.convert("RGB"))[200 : 200 + CROP, 100 : 100 + CROP][None]


def test_cli_reports_release_and_convention(converted):
    dst, result = converted
    out, err = result.stdout, result.stderr
    assert f"SHA-256 {converter.RELEASES['original-8bit'].digest[1]}" in out
    found = [line for line in out.splitlines() if line.startswith("found ")]
    assert len(found) == 1 and "original VGG19" in found[0] and "input convention caffe" in found[0]
    assert err == ""  # the published file: no warning
    _, metadata = mx.load(str(dst), return_metadata=True)
    assert metadata["release"] == "original-8bit"
    assert metadata["config"] == '{"input_convention": "caffe"}'
    assert load_vgg(str(dst)).input_convention == "caffe"


def test_caffe_convention_on_random_weights(tmp_path):
    """Runs without the shared file: a random file in the 8-bit layout, random colours, relu2_2 against the reference."""
    torch.save(quantised_state(seed=2), tmp_path / "q.bin", _use_new_zipfile_serialization=False)
    cli(tmp_path / "q.bin", tmp_path / "q.safetensors")
    rgb = np.random.default_rng(2).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    ours = np.array(
        load_vgg(str(tmp_path / "q.safetensors"))(mx.array(rgb / 255, dtype=mx.float32), ("relu2_2",))["relu2_2"]
    )
    want = caffe_features(rgb, reference_weights(tmp_path / "q.bin"), blocks=2)
    assert ours.shape == want.shape == (2, 16, 16, 128) and np.abs(want).max() > 1
    assert np.abs(ours - want).max() <= 1e-4 * np.abs(want).max()


def test_relu5_4_on_a_photo_equals_the_caffe_pipeline(converted, references, photo):
    vgg = load_vgg(str(converted[0]))
    ours = np.array(vgg(mx.array(photo.astype(np.float32) / 255))["relu5_4"])
    want = caffe_features(photo, references)
    assert ours.shape == want.shape == (1, CROP // 16, CROP // 16, 512)
    assert np.abs(want).max() > 10, "degenerate reference: the Caffe scale gives relu5_4 values in the tens"
    err = np.abs(ours - want).max()
    assert err <= 1e-4 * np.abs(want).max(), f"max abs error {err} of {np.abs(want).max()}"


def test_content_loss_on_a_photo_equals_the_papers(converted, references, photo):
    """VGG loss of a blurred photo against the photo: mean((phi(SR) - phi(HR))^2) / 12.75^2, in [-1, 1] images."""
    small = Image.fromarray(photo[0]).resize((CROP // 4, CROP // 4), Image.BICUBIC)
    blurred = np.asarray(small.resize((CROP, CROP), Image.BICUBIC))[None]
    fake, real = caffe_features(blurred, references), caffe_features(photo, references)
    expected = np.mean((fake / 12.75 - real / 12.75) ** 2)
    loss = PerceptualLoss(load_vgg(str(converted[0])), "relu5_4")
    got = loss(mx.array(blurred / 127.5 - 1, dtype=mx.float32), mx.array(photo / 127.5 - 1, dtype=mx.float32)).item()
    assert abs(got - expected) <= 1e-4 * expected, (got, expected)


@pytest.mark.parametrize("style", ["release", "keras2_model"])
def test_keras_h5_converts_to_the_same_network(tmp_path, style):
    """The same weights as a Keras .h5 and in the 8-bit layout give identical files (random weights: no shared file)."""
    pytest.importorskip("h5py")
    torch.save(quantised_state(seed=3), tmp_path / "q.bin", _use_new_zipfile_serialization=False)
    cli(tmp_path / "q.bin", tmp_path / "from_q.safetensors")
    layers = {name: tuple(t.numpy() for t in pair) for name, pair in reference_weights(tmp_path / "q.bin").items()}
    src = tmp_path / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    write_keras_h5(src, layers, style)
    result = cli(src, tmp_path / "from_h5.safetensors")
    assert "input convention caffe" in result.stdout
    assert result.stderr.startswith("warning: MD5 does not match 253f8cb5") and result.stderr.count("\n") == 1
    got, metadata = mx.load(str(tmp_path / "from_h5.safetensors"), return_metadata=True)
    want, want_metadata = mx.load(str(tmp_path / "from_q.safetensors"), return_metadata=True)
    assert metadata["release"] == "original" and metadata["config"] == want_metadata["config"]
    assert got.keys() == want.keys()
    for key in want:
        assert mx.array_equal(got[key], want[key]), key
