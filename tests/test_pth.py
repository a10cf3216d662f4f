"""convert/pth.py: the torch-free ``.pth`` reader reads what torch writes (every layout, 2017's legacy files too)
and refuses, before anything runs, a pickle that would run code (through the converter and the installed command)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from srgan_mlx.convert.pth import load_state_dict

torch = pytest.importorskip("torch", reason="PyTorch is not installed (its CPU build for these reference tests: see docs/install.md#tests)")

from convert_files import (  # noqa: E402  (needs torch)
    Call, assert_one_line_error, cli, save_like_2017, write_legacy, write_zip,
)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_reader_matches_torch(tmp_path, zip_format):
    source = {
        "plain": torch.randn(2, 3),
        "transposed": torch.randn(3, 2).t(),
        "offset_slice": torch.randn(10)[2:5],
        "half": torch.randn(4).half(),
        "bfloat16_strided": torch.randn(3, 4).bfloat16()[:, 1:3],
        "int64": torch.arange(6).reshape(2, 3).t(),
        "uint16_v3": torch.arange(5).to(torch.uint16),  # saved with _rebuild_tensor_v3 + UntypedStorage
        "empty": torch.zeros(0, 3),
        "scalar": torch.tensor(3.5),
        "parameter": torch.nn.Parameter(torch.randn(3)),
    }
    source["shares_storage"] = source["plain"][1]
    torch.save(source, tmp_path / "layouts.pth", _use_new_zipfile_serialization=zip_format)
    loaded = load_state_dict(tmp_path / "layouts.pth")
    assert loaded.keys() == source.keys()
    for key, tensor in source.items():
        want = tensor.detach().float() if tensor.dtype == torch.bfloat16 else tensor.detach()
        assert loaded[key].dtype == want.numpy().dtype, key
        np.testing.assert_array_equal(loaded[key], want.numpy(), err_msg=key)


@pytest.mark.parametrize("style", ["reduce_build", "rebuild_tensor"])
def test_reader_reads_2017_files(tmp_path, style):
    state = {"features.0.weight": torch.randn(4, 3, 3, 3), "features.0.bias": torch.randn(4)}
    path = save_like_2017(state, tmp_path / "old.pth", style)
    by_torch = torch.load(path, weights_only=True)  # the stand-in file is one torch itself reads
    loaded = load_state_dict(path)
    for key, tensor in state.items():
        assert torch.equal(by_torch[key], tensor)
        np.testing.assert_array_equal(loaded[key], tensor.numpy())


PAYLOADS = {
    "os.system": lambda marker: Call(os.system, f"touch {marker}"),
    "builtins.eval": lambda marker: Call(eval, f"open({str(marker)!r}, 'w').close()"),
    "builtins.exec": lambda marker: Call(exec, f"open({str(marker)!r}, 'w').close()"),
    "subprocess.run": lambda marker: Call(subprocess.run, ["touch", str(marker)]),
    "inside_state_dict": lambda marker: {"features.0.bias": Call(os.system, f"touch {marker}")},
}


@pytest.mark.parametrize("write", [write_zip, write_legacy], ids=["zip", "legacy"])
@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("payload", PAYLOADS)
def test_refuses_code_in_pickle(tmp_path, payload, protocol, write):
    marker = tmp_path / "pwned"
    pickled = pickle.dumps(PAYLOADS[payload](marker), protocol=protocol)
    result = cli(write(tmp_path / "evil.pth", pickled), "-o", tmp_path / "out.safetensors")
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "refusing to load global")
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()
    pickle.loads(pickled)  # the payload is real: plain pickle runs it
    assert marker.exists()


def test_refuses_code_through_installed_cli(tmp_path):
    marker = tmp_path / "pwned"
    evil = write_zip(tmp_path / "evil.pth", pickle.dumps(Call(os.system, f"touch {marker}"), protocol=2))
    srgan_mlx_exe = Path(sys.executable).with_name("srgan-mlx")
    proc = subprocess.run(
        [str(srgan_mlx_exe), "convert-vgg", str(evil), "-o", str(tmp_path / "out.safetensors")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert_one_line_error(proc.stderr, "refusing to load global posix.system")
    assert not marker.exists()
