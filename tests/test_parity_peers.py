"""Peers' weights files give what PyTorch gives: ESRGAN / Real-ESRGAN RRDBNets and SRGAN-PyTorch's SRResNet, saved
with ``torch.save``, read without torch, run by srgan-mlx, against independent torch.nn references (tests/torch_peers.py)
on the same weights."""

import numpy as np
import pytest

import mlx.core as mx

torch = pytest.importorskip("torch", reason="PyTorch is not installed (CPU build for these reference tests: see README)")

import peer_layouts as layouts  # noqa: E402
import pth_writer  # noqa: E402
import torch_peers as ref  # noqa: E402
from torch_reference import randomize  # noqa: E402
from srgan_mlx.files.model_io import load_generator  # noqa: E402
from srgan_mlx.networks.rrdbnet import RRDBNet  # noqa: E402
from srgan_mlx.upscaling.inference import super_resolve  # noqa: E402

TOL = 1e-4


def assert_close(actual, expected, tol=TOL):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    err = float(np.abs(actual - expected).max())
    assert err <= tol * scale, f"max abs error {err} > {tol} x {scale}"


def torch_out(model, image: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(image).permute(2, 0, 1)[None]).permute(0, 2, 3, 1)[0].numpy()


def _image(height, width, seed=0):
    return np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)


@pytest.mark.parametrize("scale", [4, 2])
@pytest.mark.parametrize("wrapper", ["params_ema", "params", None])
def test_basicsr_rrdbnet_matches_torch(tmp_path, scale, wrapper):
    model = randomize(ref.RRDBNet(scale, nb=2, nf=16, gc=8), seed=scale).eval()
    state = model.state_dict()
    torch.save({wrapper: state} if wrapper else state, tmp_path / "net_g.pth")
    net = load_generator(tmp_path / "net_g.pth")
    assert isinstance(net, RRDBNet) and net.config() == {
        "scale": scale, "num_blocks": 2, "features": 16, "growth": 8, "unshuffle": 4 // scale}  # fmt: skip
    image = _image(14, 10)
    assert_close(np.array(net(mx.array(image)[None]))[0], torch_out(model, image))


def test_real_esrgan_x2_on_odd_sides_is_real_esrgans_reflection_padding(tmp_path):
    """Real-ESRGAN's inference mirrors an odd-sided input to even sides for its x2 model and crops the result."""
    model = randomize(ref.RRDBNet(2, nb=1, nf=16, gc=8), seed=5).eval()
    torch.save({"params_ema": model.state_dict()}, tmp_path / "RealESRGAN_x2plus.pth")
    image = _image(15, 11)
    padded = torch.nn.functional.pad(torch.from_numpy(image).permute(2, 0, 1)[None], (0, 1, 0, 1), mode="reflect")
    with torch.no_grad():
        want = model(padded)[0, :, :30, :22].permute(1, 2, 0).clamp(0, 1).numpy()
    got = super_resolve(load_generator(tmp_path / "RealESRGAN_x2plus.pth"), image, tile=4)
    assert_close(got, want)


@pytest.mark.parametrize("names", ["2019", "2018"])
def test_esrgan_release_names_match_torch(tmp_path, names):
    """ESRGAN's own files: the 2019 names (RRDB_trunk, trunk_conv, upconv1, HRconv) and the 2018 sequential ones."""
    model = randomize(ref.RRDBNet(4, nb=2, nf=16, gc=8), seed=9).eval()
    rename = layouts.esrgan_2019_key if names == "2019" else lambda key: layouts.esrgan_2018_key(key, 2)
    state = {rename(key): value for key, value in model.state_dict().items()}
    torch.save(state, tmp_path / "RRDB_ESRGAN_x4.pth")
    image = _image(9, 12)
    net = load_generator(tmp_path / "RRDB_ESRGAN_x4.pth")
    assert_close(np.array(net(mx.array(image)[None]))[0], torch_out(model, image))


def test_full_size_rrdbnet_matches_torch(tmp_path):
    """RealESRGAN_x4plus's shape: 23 blocks, 64 features, growth 32 (random weights, scaled like trained ones)."""
    model = randomize(ref.RRDBNet(4), seed=11, gain=0.5).eval()
    torch.save({"params_ema": model.state_dict()}, tmp_path / "RealESRGAN_x4plus.pth")
    image = _image(12, 16)
    net = load_generator(tmp_path / "RealESRGAN_x4plus.pth")
    assert net.config() == {"scale": 4, "num_blocks": 23, "features": 64, "growth": 32, "unshuffle": 1}
    assert_close(np.array(net(mx.array(image)[None]))[0], torch_out(model, image))


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("wrap", ["plain", "module", "compiled"])
def test_srgan_pytorch_generator_matches_torch(tmp_path, scale, wrap):
    """Lornatang's SRResNet in srgan-mlx's Generator: one PReLU slope per layer, no residual biases, output in [0, 1]
    (clamped there); from a training checkpoint with optimizer state, as its .pth.tar files are."""
    model = randomize(ref.SRGANPyTorch(scale, blocks=2, ch=16), seed=scale)
    with torch.no_grad():
        model.conv3.bias.fill_(0.5)  # outputs around the middle of the clamp
    model.eval()
    prefix = {"plain": "", "module": "module.", "compiled": "_orig_mod."}[wrap]
    state = {prefix + key: value for key, value in model.state_dict().items()}
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)
    model(torch.rand(1, 3, 8, 8)).mean().backward()
    optimizer.step()
    with torch.no_grad():  # the checkpoint's weights are the ones saved, before the step
        model.load_state_dict({key[len(prefix) :]: value for key, value in state.items()})
    torch.save({"epoch": 3, "psnr": 27.1, "ssim": 0.8, "state_dict": state, "ema_state_dict": None,
                "optimizer": optimizer.state_dict()}, tmp_path / "g_best.pth.tar")  # fmt: skip
    image = _image(13, 9)
    want = torch_out(model, image)
    assert 0.05 < (want == 0).mean() + (want == 1).mean() < 0.5  # the clamp matters, but not everywhere
    net = load_generator(tmp_path / "g_best.pth.tar")
    assert net.config() == {"scale": scale, "num_blocks": 2, "channels": 16}
    assert_close(super_resolve(net, image), want)


def test_srgan_mlx_names_saved_from_torch_match(tmp_path):
    """This project's own generator, trained with the torch.nn reference (tests/torch_reference.py) and saved."""
    import torch_reference

    model = torch_reference.randomize(torch_reference.Generator(4, num_blocks=2, channels=16), seed=4).eval()
    torch.save(model.state_dict(), tmp_path / "mine.pth")
    image = _image(10, 11)
    net = load_generator(tmp_path / "mine.pth")
    assert_close(np.array(net(mx.array(image)[None]))[0], torch_out(model, image))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_files_written_without_torch_are_what_torch_reads(tmp_path, legacy):
    """tests/pth_writer.py (used where torch is absent) writes what torch.load reads, nested checkpoints included."""
    state = layouts.basicsr_rrdbnet(4, blocks=1, nf=8, gc=4)
    checkpoint = {"params_ema": state, "iter": 5, "optimizer": {"state": {0: {"step": np.array(3.0, np.float32)}},
                  "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.99), "params": [0], "foreach": None}]}}  # fmt: skip
    pth_writer.save(checkpoint, tmp_path / "w.pth", legacy=legacy)
    loaded = torch.load(tmp_path / "w.pth", weights_only=True)
    assert loaded["iter"] == 5 and loaded["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.99)
    assert loaded["params_ema"].keys() == state.keys()
    for key, value in state.items():
        assert np.array_equal(loaded["params_ema"][key].numpy(), value), key
