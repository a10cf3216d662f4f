"""Weights files: strict loading, one-line errors, export, and the weights shipped in the package."""

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import mlx.core as mx
from mlx.utils import tree_flatten

from srgan_mlx.cli import main
from srgan_mlx.errors import UserError
from srgan_mlx.files.model_io import load_generator
from srgan_mlx.networks.generator import Generator
from srgan_mlx.networks.weights_io import save_module


def tiny(tmp_path, **kw):
    generator = Generator(num_blocks=2, channels=16, **kw)
    path = tmp_path / "g.safetensors"
    save_module(path, generator, "generator", generator.config())
    return generator, path


def test_round_trip_is_exact(tmp_path):
    generator, path = tiny(tmp_path, scale=2)
    loaded = load_generator(path)
    assert loaded.config() == {"scale": 2, "num_blocks": 2, "channels": 16} and not loaded.training
    for (k, a), (_, b) in zip(tree_flatten(generator.parameters()), tree_flatten(loaded.parameters())):
        assert np.array_equal(np.array(a), np.array(b)), k


def test_export_float16_keeps_config_and_values(tmp_path):
    generator, path = tiny(tmp_path)
    out = tmp_path / "half.safetensors"
    result = CliRunner().invoke(main, ["export", str(path), "-o", str(out), "--float16", "--note", "test"])
    assert result.exit_code == 0, result.output
    arrays, metadata = mx.load(str(out), return_metadata=True)
    assert all(v.dtype == mx.float16 for v in arrays.values()) and metadata["note"] == "test"
    loaded = load_generator(out)
    for (k, a), (_, b) in zip(tree_flatten(generator.parameters()), tree_flatten(loaded.parameters())):
        assert b.dtype == mx.float32
        assert np.allclose(np.array(a), np.array(b), rtol=1e-3, atol=1e-4), k


def test_export_with_realism_writes_the_blend_the_dial_runs(tmp_path):
    """``export --realism R --fidelity-model F`` writes the network ``upscale --realism R`` runs: each array
    ``(1 - R) F + R SOURCE``; the dial's options are refused where they mean nothing, in one line."""
    fidelity = Generator(num_blocks=2, channels=16)  # the same shape as tiny's, other random weights
    save_module(tmp_path / "f.safetensors", fidelity, "generator", fidelity.config())
    realistic, path = tiny(tmp_path)
    out = tmp_path / "blend.safetensors"
    run = CliRunner().invoke
    result = run(main, ["export", str(path), "-o", str(out), "--realism", "0.75", "--fidelity-model",
                        str(tmp_path / "f.safetensors")])  # fmt: skip
    assert result.exit_code == 0 and "(realism 0.75)" in result.output, result.output
    ours, theirs = dict(tree_flatten(fidelity.parameters())), dict(tree_flatten(realistic.parameters()))
    for name, value in tree_flatten(load_generator(out).parameters()):
        assert np.allclose(np.array(value), 0.25 * np.array(ours[name]) + 0.75 * np.array(theirs[name]), atol=1e-6)
    lone = run(main, ["export", str(path), "-o", str(out), "--fidelity-model", str(tmp_path / "f.safetensors")])
    assert lone.exit_code == 2 and "give --realism too" in lone.output
    record = run(main, ["export", str(path), "--record", str(tmp_path / "rec"), "--realism", "0.5"])
    assert record.exit_code == 2 and "a record keeps the run's own networks" in record.output


def test_errors_are_one_line(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="not a readable safetensors file"):
        load_generator(tmp_path / "junk.safetensors")
    d = Generator(num_blocks=1, channels=8)
    save_module(tmp_path / "other.safetensors", d, "discriminator", {})
    with pytest.raises(UserError, match="not an srgan-mlx generator weights file"):
        load_generator(tmp_path / "other.safetensors")
    with pytest.raises(UserError, match="no generator weights found"):
        load_generator(tmp_path)
    arrays, _ = mx.load(str(tiny(tmp_path)[1]), return_metadata=True)
    arrays.pop("tail.bias")
    mx.save_safetensors(str(tmp_path / "cut.safetensors"), arrays,
                        metadata={"format": "srgan-mlx/generator", "config": '{"num_blocks": 2, "channels": 16}'})
    with pytest.raises(UserError, match="do not fit the network"):
        load_generator(tmp_path / "cut.safetensors")


def test_shipped_srresnet_loads_and_upscales():
    generator = load_generator("srresnet")
    assert generator.config() == {"scale": 4, "num_blocks": 16, "channels": 64}
    x = mx.full((1, 8, 8, 3), 0.5)
    y = np.array(generator(x))
    assert y.shape == (1, 32, 32, 3)
    # a flat grey input stays a flat grey output, near the same level (in [-1, 1]: 0.0)
    assert abs(float(y[:, 8:24, 8:24].mean())) < 0.05


def test_shipped_srgan_is_the_fine_tuned_srresnet_with_more_detail():
    """The shipped SRGAN is SRResNet's network fine-tuned (same shape, so the realism dial blends them; weights moved
    but not far), keeps a flat grey grey, and puts more fine detail than SRResNet into a photo: the mean absolute
    Laplacian of its output on a crop of a sample photo is higher."""
    from PIL import Image

    from srgan_mlx.upscaling.inference import super_resolve

    srgan, srresnet = load_generator("srgan"), load_generator("srresnet")
    assert srgan.config() == srresnet.config()
    ours, theirs = (dict(tree_flatten(g.parameters())) for g in (srgan, srresnet))
    moved = sum(float(mx.sum((ours[k] - theirs[k]).astype(mx.float32) ** 2)) for k in ours) ** 0.5
    size = sum(float(mx.sum(theirs[k].astype(mx.float32) ** 2)) for k in theirs) ** 0.5
    assert 0.001 < moved / size < 0.2, moved / size
    assert abs(float(np.array(srgan(mx.full((1, 8, 8, 3), 0.5)))[:, 8:24, 8:24].mean())) < 0.05
    photo = Image.open(Path(__file__).parents[1] / "samples" / "chelsea.png").convert("RGB")
    lr = np.asarray(photo.resize((photo.width // 4, photo.height // 4), Image.BICUBIC)).astype(np.float32) / 255

    def detail(generator):
        sr = np.asarray(super_resolve(generator, lr)).astype(np.float64)
        return np.abs(4 * sr[1:-1, 1:-1] - sr[:-2, 1:-1] - sr[2:, 1:-1] - sr[1:-1, :-2] - sr[1:-1, 2:]).mean()

    assert detail(srgan) > 1.1 * detail(srresnet), (detail(srgan), detail(srresnet))


def test_unshipped_model_name_is_a_clear_error(monkeypatch):
    from srgan_mlx import defaults

    monkeypatch.setitem(defaults.MODEL_NAMES, "srgan-x8", "srgan_x8.safetensors")  # a name with no file in this install
    with pytest.raises(UserError, match="'srgan-x8' is not shipped with this version"):
        load_generator("srgan-x8")


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update({"head.weight": mx.zeros((16, 5, 5, 3))}),
     "1 array of another shape (head.weight (16, 5, 5, 3), not (16, 9, 9, 3))"),
    (lambda a: (a.pop("tail.bias"), a.update({"extra.w": mx.zeros((2,))})),
     "1 array missing (tail.bias); 1 array the network does not have (extra.w)"),
    (lambda a: a.update({f"blocks.2.x{i}": mx.zeros((1,)) for i in range(5)}),
     "5 arrays the network does not have (blocks.2.x0, blocks.2.x1, blocks.2.x2 and 2 more)"),
])  # fmt: skip
def test_weights_of_another_network_are_one_line_naming_the_arrays(tmp_path, change, message):
    from srgan_mlx.networks.weights_io import write_weights

    generator, _ = tiny(tmp_path)
    arrays = dict(tree_flatten(generator.parameters()))
    change(arrays)
    write_weights(tmp_path / "odd.safetensors", arrays, "generator", generator.config())
    with pytest.raises(UserError) as error:
        load_generator(tmp_path / "odd.safetensors")
    assert str(error.value) == f"{tmp_path / 'odd.safetensors'}: weights do not fit the network: {message}"
    assert "\n" not in str(error.value)


def test_a_run_whose_latest_checkpoint_is_gone_uses_its_newest_complete_one(tmp_path, capsys):
    """``latest`` (and ``best``) name a checkpoint that was deleted: the newest checkpoint left is used, with a
    warning that says so, instead of "no generator weights found"."""
    from srgan_mlx.files.run_folder import RunFolder

    run = RunFolder(tmp_path / "run")
    for step, seed in ((1, 0), (2, 1)):
        mx.random.seed(seed)
        generator = Generator(num_blocks=1, channels=8)
        save_module(run.checkpoint(step) / "generator.safetensors", generator, "generator", generator.config())
    run.point("latest", run.checkpoints / "step_00000003")
    run.point("best", run.checkpoints / "step_00000003")
    loaded = load_generator(run.path)
    expected = load_generator(run.checkpoint(2) / "generator.safetensors")
    for (k, a), (_, b) in zip(tree_flatten(loaded.parameters()), tree_flatten(expected.parameters())):
        assert np.array_equal(np.array(a), np.array(b)), k
    assert capsys.readouterr().err == (
        f"srgan-mlx: warning: {run.checkpoints / 'latest'} names step_00000003, which is not a complete checkpoint; "
        "using step_00000002, the newest that is\n")
