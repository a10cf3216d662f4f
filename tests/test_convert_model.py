"""Peers' weights files without PyTorch: the layout is recognised from the keys and said in one line, every weight
mapped with its shape checked, bad files are one-line errors naming the problem, a pickle that would run code runs
nothing; convert-model, upscale/evaluate/serve --model FILE.pth, the Upscaler and the realism dial take them.

The files are written by tests/pth_writer.py (torch.save's formats, no torch); test_parity_peers.py checks them
against torch.load and the networks against torch.nn references."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from click.testing import CliRunner
from mlx.utils import tree_flatten
from PIL import Image

import peer_layouts as layouts
import pth_writer
import srgan_mlx
from srgan_mlx.cli import main
from srgan_mlx.convert.models import map_state_dict
from srgan_mlx.errors import UserError
from srgan_mlx.files.model_io import load_generator
from srgan_mlx.networks.generator import Generator
from srgan_mlx.networks.rrdbnet import RRDBNet
from srgan_mlx.networks.weights_io import read_weights


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, *fragments: str) -> None:
    """Exit status 1, one ``error:`` line naming the problem (after any line saying what a file was recognised as),
    no traceback."""
    assert result.exit_code == 1, result.output
    *before, error = result.stderr.splitlines()
    assert error.startswith("error: ") and all(line.startswith("srgan-mlx: ") for line in before), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in error, result.stderr


def _arrays(network) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in tree_flatten(network.parameters())}


BASICSR = layouts.basicsr_rrdbnet(4, blocks=2, nf=16, gc=8)
RRDB_LINE = "RRDBNet x4, 2 blocks, 16 features, growth 8"

CASES = {
    # name: (checkpoint as saved, what the line says)
    "Real-ESRGAN params_ema": ({"params_ema": BASICSR, "params": layouts.basicsr_rrdbnet(4, 2, 16, 8, seed=1)},
                               f"{RRDB_LINE} (BasicSR / Real-ESRGAN layout, params_ema)"),
    "BasicSR params": ({"params": BASICSR}, f"{RRDB_LINE} (BasicSR / Real-ESRGAN layout, params)"),
    "Real-ESRGAN x2": ({"params_ema": layouts.basicsr_rrdbnet(2, 1, 16, 8)},
                       "RRDBNet x2, 1 blocks, 16 features, growth 8, pixel-unshuffle 2 input (BasicSR / Real-ESRGAN "
                       "layout, params_ema)"),
    "ESRGAN 2019": (layouts.renamed(BASICSR, layouts.esrgan_2019_key), f"{RRDB_LINE} (ESRGAN 2019 layout)"),
    "ESRGAN 2018": (layouts.renamed(BASICSR, lambda k: layouts.esrgan_2018_key(k, 2)), f"{RRDB_LINE} (ESRGAN 2018 layout)"),
    "ESRGAN 2018 x2 (one stage)": ({layouts.esrgan_2018_key(k, 2, stages=1): v for k, v in BASICSR.items()
                                    if not k.startswith("conv_up2")},
                                   "RRDBNet x2, 2 blocks, 16 features, growth 8 (ESRGAN 2018 layout)"),
    "SRGAN-PyTorch": ({"epoch": 9, "psnr": 27.0, "ssim": 0.79, "state_dict": layouts.srgan_pytorch(4),
                       "ema_state_dict": None, "optimizer": {"state": {0: {"step": np.array(1.0, np.float32)}},
                                                             "param_groups": [{"lr": 1e-4, "params": [0]}]}},
                      "SRResNet x4, 2 blocks, 16 channels (SRGAN-PyTorch layout, state_dict)"),
    "SRGAN-PyTorch 2022, module.": ({"state_dict": {f"module.{k}": v for k, v in layouts.srgan_pytorch(
                                         2, names=("conv_block1", "conv_block2", "conv_block3")).items()}},
                                    "SRResNet x2, 2 blocks, 16 channels (SRGAN-PyTorch layout, state_dict)"),
}  # fmt: skip


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("case", CASES)
def test_layouts_are_recognised_and_said_in_one_line(tmp_path, case, legacy):
    checkpoint, line = CASES[case]
    source = pth_writer.save(checkpoint, tmp_path / "weights.pth", legacy=legacy)
    result = cli("convert-model", source, "-o", tmp_path / "out.safetensors")
    assert result.exit_code == 0, result.output
    assert result.stderr == f"srgan-mlx: {source}: {line}\n"
    assert result.stdout == f"wrote {tmp_path / 'out.safetensors'}\n"
    converted, direct = load_generator(tmp_path / "out.safetensors"), load_generator(source)
    assert type(converted) is type(direct) and converted.config() == direct.config()
    for key, value in _arrays(direct).items():
        assert np.array_equal(_arrays(converted)[key], value), key


def test_mapping_is_weight_for_weight():
    """Each MLX parameter is its source weight: convolutions (O, I, kh, kw) -> (O, kh, kw, I); ESRGAN's names."""
    net, layout = map_state_dict(layouts.renamed(BASICSR, layouts.esrgan_2019_key))
    arrays = _arrays(net)
    assert isinstance(net, RRDBNet) and layout == "ESRGAN 2019 layout"
    assert np.array_equal(arrays["body.1.rdb3.conv5.weight"], BASICSR["body.1.rdb3.conv5.weight"].transpose(0, 2, 3, 1))
    assert np.array_equal(arrays["upsample.1.weight"], BASICSR["conv_up2.weight"].transpose(0, 2, 3, 1))
    assert np.array_equal(arrays["conv_hr.bias"], BASICSR["conv_hr.bias"])
    assert len(arrays) == len(BASICSR)


def test_srgan_pytorch_differences_are_mapped_exactly():
    """One PReLU slope per layer -> every channel; no residual bias -> zeros; output [0, 1] -> [-1, 1]."""
    state = layouts.srgan_pytorch(4)
    net, _ = map_state_dict(state)
    arrays = _arrays(net)
    assert isinstance(net, Generator)
    assert np.array_equal(arrays["blocks.1.act.weight"], np.repeat(state["trunk.1.rcb.2.weight"], 16))
    assert np.array_equal(arrays["upsample.0.act.weight"], np.repeat(state["upsampling.0.upsample_block.2.weight"], 16))
    assert not arrays["blocks.0.conv1.bias"].any() and not arrays["body_conv.bias"].any()
    assert np.array_equal(arrays["blocks.0.bn2.running_var"], state["trunk.0.rcb.4.running_var"])
    np.testing.assert_array_equal(arrays["tail.weight"], 2 * state["conv3.weight"].transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(arrays["tail.bias"], 2 * state["conv3.bias"] - 1)


def _without(state, key):
    return {k: v for k, v in state.items() if k != key}


BROKEN = {
    # name: (checkpoint, fragments of the one-line error)
    "missing key": (_without(BASICSR, "body.1.rdb2.conv3.bias"),
                    ["missing key body.1.rdb2.conv3.bias for a RRDBNet x4", "BasicSR / Real-ESRGAN layout"]),
    "extra key": ({**BASICSR, "conv_up3.weight": BASICSR["conv_up2.weight"]},
                  ["unexpected key conv_up3.weight", "BasicSR / Real-ESRGAN layout"]),
    "wrong shape": ({**BASICSR, "conv_hr.weight": BASICSR["conv_hr.weight"][:, :, :1, :1]},
                    ["conv_hr.weight has shape (16, 16, 1, 1), the network needs (16, 16, 3, 3)"]),
    "wrong prelu": ({**layouts.srgan_pytorch(4), "trunk.0.rcb.2.weight": np.ones(3, np.float32)},
                    ["trunk.0.rcb.2.weight has shape (3,), the network needs (1,) or (16,)"]),
    "SRGAN-PyTorch with a 3x3 head": ({**layouts.srgan_pytorch(4), "conv1.0.weight": np.ones((16, 3, 3, 3), np.float32)},
                                      ["conv1.0.weight has shape (16, 3, 3, 3), the network needs (16, 3, 9, 9)"]),
    "gray model": ({**BASICSR, "conv_last.weight": BASICSR["conv_last.weight"][:1], "conv_last.bias": np.zeros(1)},
                   ["conv_last.weight gives 1 channels: only RGB models (3) are supported"]),
    "x1 model": ({**layouts.basicsr_rrdbnet(2, 1, 16, 8), "conv_first.weight": np.zeros((16, 48, 3, 3), np.float32)},
                 ["a x1 RRDBNet (pixel-unshuffle 4, 2 upsampling stages)"]),
    "unknown layout": ({"encoder.weight": np.zeros((2, 2), np.float32)},
                       ["unknown layout: not a generator srgan-mlx knows (keys encoder.weight)"]),
    "SRVGGNetCompact": (layouts.srvgg_compact(), ["holds SRVGGNetCompact", "which srgan-mlx does not run"]),
    "no state dict": ({"epoch": 3, "net": [1, 2]}, ["holds no state dict: top-level keys epoch, net"]),
    "integer weights": ({**BASICSR, "conv_hr.bias": np.zeros(16, np.int64)}, ["conv_hr.bias holds int64 values"]),
}  # fmt: skip


@pytest.mark.parametrize("case", BROKEN)
def test_bad_files_are_one_line_errors_naming_the_problem(tmp_path, case):
    checkpoint, fragments = BROKEN[case]
    source = pth_writer.save(checkpoint, tmp_path / "bad.pth")
    result = cli("convert-model", source, "-o", tmp_path / "out.safetensors")
    assert_one_line_error(result, f"error: {source}: ", *fragments)
    assert not (tmp_path / "out.safetensors").exists()
    result = cli("upscale", tmp_path / "in.png", "--model", source)  # the same from --model
    assert_one_line_error(result, *fragments)


def test_not_a_torch_file(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"\x00" * 64)
    assert_one_line_error(cli("convert-model", tmp_path / "junk.pth", "-o", tmp_path / "o.safetensors"),
                          "not a torch.save file")  # fmt: skip
    assert_one_line_error(cli("convert-model", tmp_path / "none.pth", "-o", tmp_path / "o.safetensors"),
                          "none.pth: no such file")  # fmt: skip
    (tmp_path / "cut.pth").write_bytes(pth_writer.save({"params": BASICSR}, tmp_path / "whole.pth").read_bytes()[:5000])
    assert_one_line_error(cli("upscale", tmp_path / "x.png", "--model", tmp_path / "cut.pth"), "cut.pth: ")


class Call:
    """Pickles as the call ``func(*args)``: what a malicious weights file runs when unpickled."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("where", ["top", "in params_ema", "in optimizer state"])
@pytest.mark.parametrize("command", ["convert-model", "upscale"])
def test_a_pickle_that_runs_code_is_refused_and_runs_nothing(tmp_path, where, command):
    marker = tmp_path / "pwned"
    payload = Call(os.system, f"touch {marker}")
    obj = {"top": payload, "in params_ema": {"params_ema": {"conv_first.weight": payload}},
           "in optimizer state": {"state_dict": {}, "optimizer": {"state": payload}}}[where]
    pickled = pickle.dumps(obj, protocol=2)
    with zipfile.ZipFile(tmp_path / "evil.pth", "w") as archive:
        archive.writestr("archive/data.pkl", pickled)
        archive.writestr("archive/byteorder", "little")
    Image.new("RGB", (8, 8)).save(tmp_path / "in.png")
    if command == "convert-model":
        result = cli("convert-model", tmp_path / "evil.pth", "-o", tmp_path / "out.safetensors")
    else:
        result = cli("upscale", tmp_path / "in.png", "--model", tmp_path / "evil.pth", "-o", tmp_path / "out.png")
    assert_one_line_error(result, "evil.pth: refusing to load global posix.system", "nothing in the file was run")
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists() and not (tmp_path / "out.png").exists()
    pickle.loads(pickled)  # the payload is real: plain pickle runs it
    assert marker.exists()


def test_converted_file_metadata_and_float16(tmp_path):
    source = pth_writer.save({"params_ema": BASICSR}, tmp_path / "RealESRGAN_x4plus.pth")
    assert cli("convert-model", source, "-o", tmp_path / "a.safetensors").exit_code == 0
    assert cli("convert-model", source, "-o", tmp_path / "h.safetensors", "--float16").exit_code == 0
    arrays, metadata = mx.load(str(tmp_path / "a.safetensors"), return_metadata=True)
    assert metadata["format"] == "srgan-mlx/rrdbnet" and metadata["source"] == "RealESRGAN_x4plus.pth"
    assert all(v.dtype == mx.float32 for v in arrays.values())
    half = mx.load(str(tmp_path / "h.safetensors"))
    assert all(v.dtype == mx.float16 for v in half.values())
    assert (tmp_path / "h.safetensors").stat().st_size < 0.6 * (tmp_path / "a.safetensors").stat().st_size
    _, config = read_weights(tmp_path / "a.safetensors", "rrdbnet")
    assert config == {"scale": 4, "num_blocks": 2, "features": 16, "growth": 8, "unshuffle": 1}
    with pytest.raises(UserError, match="not an srgan-mlx generator weights file .format 'srgan-mlx/rrdbnet'"):
        read_weights(tmp_path / "a.safetensors", "generator")  # so --init refuses it
    assert_one_line_error(cli("convert-model", tmp_path / "a.safetensors", "-o", tmp_path / "b.safetensors"),
                          "not a PyTorch weights file")  # fmt: skip
    assert_one_line_error(cli("convert-model", source, "-o", source), "would overwrite the input")


def _photo(path: Path, size=(23, 17)) -> Path:
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(path)
    return path


def test_upscale_with_a_pth_equals_the_converted_file_and_the_upscaler(tmp_path):
    source = pth_writer.save({"params_ema": BASICSR}, tmp_path / "esrgan.pth")
    photo = _photo(tmp_path / "photo.png")
    result = cli("upscale", photo, "--model", source, "-o", tmp_path / "a.png", "--quiet", "--tile", "9")
    assert result.exit_code == 0, result.output
    assert f"srgan-mlx: {source}: {RRDB_LINE} (BasicSR / Real-ESRGAN layout, params_ema)" in result.stderr
    assert cli("convert-model", source, "-o", tmp_path / "esrgan.safetensors").exit_code == 0
    assert cli("upscale", photo, "--model", tmp_path / "esrgan.safetensors", "-o", tmp_path / "b.png",
               "--quiet").exit_code == 0  # fmt: skip
    a, b = np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "b.png"))
    assert a.shape == (68, 92, 3) and np.array_equal(a, b)
    with Image.open(photo) as image:
        c = np.asarray(srgan_mlx.Upscaler(str(source))(image))
    assert np.array_equal(a, c)


def test_evaluate_with_a_pth_and_niqe(tmp_path):
    hr = tmp_path / "hr"
    hr.mkdir()
    _photo(hr / "a.png", (100, 100))
    source = pth_writer.save({"params": layouts.basicsr_rrdbnet(2, 1, 16, 8)}, tmp_path / "x2.pth")
    result = cli("evaluate", "--hr", hr, "--model", source, "--scale", "2", "--niqe")
    assert result.exit_code == 0, result.output
    assert "RRDBNet x2" in result.stderr and "NIQE" in result.stdout and "mean" in result.stdout
    result = cli("evaluate", "--hr", hr, "--model", source)  # --scale 4
    assert_one_line_error(result, "upscales x2, but --scale is 4")


def test_realism_dial_between_two_rrdbnets_and_refused_across_architectures(tmp_path):
    psnr = pth_writer.save({"params_ema": BASICSR}, tmp_path / "RRDB_PSNR_x4.pth")
    gan = pth_writer.save({"params_ema": layouts.basicsr_rrdbnet(4, 2, 16, 8, seed=7)}, tmp_path / "RRDB_ESRGAN_x4.pth")
    photo = _photo(tmp_path / "photo.png")
    outputs = {}
    for realism in ("0", "0.5", "1"):
        out = tmp_path / f"r{realism}.png"
        result = cli("upscale", photo, "--quiet", "-o", out, "--model", gan, "--fidelity-model", psnr,
                     "--realism", realism)  # fmt: skip
        assert result.exit_code == 0, result.output
        outputs[realism] = np.asarray(Image.open(out))
    with Image.open(photo) as image:
        assert np.array_equal(outputs["0"], np.asarray(srgan_mlx.Upscaler(str(psnr))(image)))
        assert np.array_equal(outputs["1"], np.asarray(srgan_mlx.Upscaler(str(gan))(image)))
    assert not np.array_equal(outputs["0.5"], outputs["0"]) and not np.array_equal(outputs["0.5"], outputs["1"])
    srresnet = pth_writer.save({"state_dict": layouts.srgan_pytorch(4)}, tmp_path / "srresnet.pth.tar")
    result = cli("upscale", photo, "--model", gan, "--fidelity-model", srresnet, "--realism", "0.5")
    assert_one_line_error(result, "cannot blend networks of different shapes: SRResNet x4, 2 blocks, 16 channels "
                          "(--fidelity-model) and RRDBNet x4, 2 blocks", "same architecture and shape")  # fmt: skip


def test_serve_offers_a_pth_model(tmp_path):
    """The page's model list comes from serve's --model: a .pth is offered under its file name, without the dial
    unless the fidelity model has its architecture and shape."""
    from srgan_mlx.serve.model_cache import Models

    gan = load_generator(pth_writer.save({"params_ema": BASICSR}, tmp_path / "RealESRGAN_x4plus.pth"))
    psnr = load_generator(pth_writer.save({"params_ema": layouts.basicsr_rrdbnet(4, 2, 16, 8, seed=3)},
                                          tmp_path / "RealESRNet_x4plus.pth"))  # fmt: skip
    srresnet = load_generator(pth_writer.save({"state_dict": layouts.srgan_pytorch(4)}, tmp_path / "g.pth.tar"))
    models = Models({"RealESRGAN_x4plus": gan, "g": srresnet}, ("RealESRNet_x4plus", psnr))
    assert models.describe() == [{"name": "RealESRGAN_x4plus", "scale": 4, "realism": True},
                                 {"name": "g", "scale": 4, "realism": False}]  # fmt: skip
    picture = np.random.default_rng(0).random((9, 7, 3), dtype=np.float32)
    half = models.upscaler("RealESRGAN_x4plus", 0.5)
    assert isinstance(half.generator, RRDBNet)
    assert half(picture).shape == (36, 28, 3)


def test_serve_command_with_pth_models_gives_the_upscalers_pixels(tmp_path):
    """``serve --model RealESRGAN_x4plus.pth``: offered on the page by file name, the dial with a fidelity model of
    its shape, and the pixels of the Upscaler."""
    import io
    import json
    import signal
    import subprocess
    import sys
    from http.client import HTTPConnection

    gan = pth_writer.save({"params_ema": BASICSR}, tmp_path / "RealESRGAN_x4plus.pth")
    psnr = pth_writer.save({"params_ema": layouts.basicsr_rrdbnet(4, 2, 16, 8, seed=3)}, tmp_path / "RealESRNet_x4plus.pth")
    srresnet = pth_writer.save({"state_dict": layouts.srgan_pytorch(4)}, tmp_path / "SRGAN_x4-ImageNet.pth.tar")
    photo = _photo(tmp_path / "photo.png")
    process = subprocess.Popen(
        [sys.executable, "-m", "srgan_mlx", "serve", "--port", "0", "--model", str(gan), "--model", str(srresnet),
         "--fidelity-model", str(psnr)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(tmp_path)},
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        assert "models: RealESRGAN_x4plus, SRGAN_x4-ImageNet;" in line, line
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        connection = HTTPConnection("127.0.0.1", port, timeout=120)
        connection.request("GET", "/api/models")
        listed = json.loads(connection.getresponse().read())["models"]
        assert [(m["name"], m["realism"]) for m in listed] == [("RealESRGAN_x4plus", True),
                                                              ("SRGAN_x4-ImageNet", False)]  # fmt: skip
        connection.request("POST", "/api/upscale?wait=1&name=photo.png&model=RealESRGAN_x4plus", photo.read_bytes())
        response = connection.getresponse()
        assert response.status == 200
        served = np.asarray(Image.open(io.BytesIO(response.read())))
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0 and "Traceback" not in stderr, stderr
    assert f"srgan-mlx: {gan}: {RRDB_LINE}" in stderr
    with Image.open(photo) as image:
        assert np.array_equal(served, np.asarray(srgan_mlx.Upscaler(str(gan))(image)))
