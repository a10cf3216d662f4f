"""RRDBNet (ESRGAN / Real-ESRGAN) in the tiler: tiled == whole image == one forward pass, exactly; its receptive field
is the measured reach; its memory stays within the estimate. (Parity with PyTorch: test_parity_peers.py.)"""

import math

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from srgan_mlx.networks.rrdbnet import RRDBNet, pixel_unshuffle, upsample_nearest
from srgan_mlx.upscaling import inference
from srgan_mlx.upscaling.inference import bytes_per_pixel, receptive_field_radius, super_resolve

WHOLE = 10_000


def tiny_rrdbnet(scale=4, unshuffle=1, blocks=2, seed=0) -> RRDBNet:
    """A 2-block, 8-feature, growth-4 RRDBNet with weights N(0, 9 / fan_in) (every layer amplifies, so distant
    pixels still count) and a last layer scaled to give outputs around 0.5, mostly inside [0, 1]."""
    mx.random.seed(seed)
    net = RRDBNet(scale, blocks, 8, 4, unshuffle)
    for conv in (m for m in net.modules() if isinstance(m, nn.Conv2d)):
        conv.weight = 3 * mx.random.normal(conv.weight.shape) / math.sqrt(conv.weight[0].size)
        conv.bias = 0.1 * mx.random.normal(conv.bias.shape)
    spread = float(mx.std(net(mx.random.uniform(shape=(1, 24, 24, 3)))))
    net.conv_last.weight = net.conv_last.weight * (0.15 / spread)
    net.conv_last.bias = mx.full((3,), 0.5)
    net.eval()
    mx.eval(net.parameters())
    return net


def _image(height, width, seed=0):
    return np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)


def _forward(net: RRDBNet, image: np.ndarray) -> np.ndarray:
    """One plain forward pass over the whole image (odd sides mirrored to the unshuffle grid), clipped."""
    u = net.unshuffle
    padded = np.pad(image, ((0, -image.shape[0] % u), (0, -image.shape[1] % u), (0, 0)), mode="reflect")
    out = np.array(net(mx.array(padded)[None]))[0, : image.shape[0] * net.scale, : image.shape[1] * net.scale]
    return np.clip(out, 0, 1)


def test_pixel_unshuffle_and_nearest_upsampling_are_the_torch_orders():
    x = mx.arange(1 * 4 * 6 * 3, dtype=mx.float32).reshape(1, 4, 6, 3)
    y = np.array(pixel_unshuffle(x, 2))
    # channel c*4 + i*2 + j of output pixel (a, b) is channel c of input pixel (2a + i, 2b + j)
    for c, i, j, a, b in [(0, 0, 0, 0, 0), (1, 0, 1, 1, 2), (2, 1, 0, 1, 1), (2, 1, 1, 0, 2)]:
        assert y[0, a, b, c * 4 + i * 2 + j] == np.array(x)[0, 2 * a + i, 2 * b + j, c]
    z = np.array(upsample_nearest(x))
    assert z.shape == (1, 8, 12, 3) and np.array_equal(z[0, 5, 7], np.array(x)[0, 2, 3])


@pytest.mark.parametrize("scale, unshuffle", [(4, 1), (2, 2), (2, 1), (8, 1)])
def test_tiles_equal_whole_image_equal_one_forward_pass(scale, unshuffle):
    net = tiny_rrdbnet(scale, unshuffle)
    image = _image(37, 29)  # odd sides: the x2 model's input is mirrored to even sides first
    whole = super_resolve(net, image, tile=WHOLE)
    assert whole.shape == (37 * scale, 29 * scale, 3) and whole.dtype == np.float32
    assert whole.std() > 0.05 and ((whole > 0) & (whole < 1)).mean() > 0.9
    assert np.array_equal(whole, _forward(net, image))
    for tile in (7, 16, 30):
        assert np.array_equal(super_resolve(net, image, tile=tile), whole), tile


@pytest.mark.parametrize("scale, unshuffle", [(4, 1), (2, 2)])
def test_passes_in_small_tiles_are_exact_and_need_their_margins(monkeypatch, scale, unshuffle):
    """Each pass (head, each RRDB, join and upsampling) is cut into its own tiles with its own margin; here every
    pass is forced to the smallest tiles (16 pixels), and a margin one pixel short shows (far above rounding,
    ~6e-8 here)."""
    net = tiny_rrdbnet(scale, unshuffle)
    image = _image(95, 79)
    reference = _forward(net, image)
    tiles = []
    monkeypatch.setattr(inference, "_rrdbnet_sets", lambda n: dict.fromkeys(("head", "block", "tail"), 10**12))
    assert np.array_equal(super_resolve(net, image, on_tile=lambda done, total: tiles.append(total)), reference)
    grid = [-(-side // unshuffle) for side in image.shape[:2]]
    per_pass = math.prod(-(-side // inference.MIN_TILE) for side in grid)
    assert tiles[-1] == (2 + len(net.body)) * per_pass  # head, 2 blocks, tail: every pass tiled
    monkeypatch.setattr(inference, "_tail_reach", lambda n: 1)
    assert np.abs(super_resolve(net, image) - reference).max() > 1e-3
    monkeypatch.undo()
    monkeypatch.setattr(inference, "_rrdbnet_sets", lambda n: dict.fromkeys(("head", "block", "tail"), 10**12))
    monkeypatch.setattr(inference, "BLOCK_REACH", inference.BLOCK_REACH - 1)
    assert np.abs(super_resolve(net, image) - reference).max() > 2e-6


@pytest.mark.parametrize("scale, unshuffle, radius", [(4, 1, 34), (2, 2, 68), (8, 1, 34)])
def test_receptive_field_radius_is_the_measured_reach(scale, unshuffle, radius):
    """15 pixels per block (five 3x3 convs in a row in each of three dense blocks) + 4, on the unshuffled grid."""
    net = tiny_rrdbnet(scale, unshuffle)
    assert receptive_field_radius(net) == radius
    side = 2 * radius + 10
    image = _image(side, side)
    poked = image.copy()
    poked[side // 2, side // 2] += 100.0  # large, so that the farthest influence is far above rounding
    changed = np.abs(np.array(net(mx.array(poked)[None])) - np.array(net(mx.array(image)[None])))[0].max(2)
    grid = scale * unshuffle  # output pixels per pixel of the (unshuffled) grid the tiles are cut on
    rows = np.nonzero(changed.max(1))[0] // grid
    cols = np.nonzero(changed.max(0))[0] // grid
    cell, reach = side // 2 // unshuffle, radius // unshuffle
    assert (rows.min(), rows.max()) == (cell - reach, cell + reach)
    assert (cols.min(), cols.max()) == (cell - reach, cell + reach)


@pytest.mark.parametrize("scale, unshuffle", [(4, 1), (2, 2)])
def test_peak_memory_within_the_budget_at_full_width(scale, unshuffle):
    """Real-ESRGAN's widths (64 features, growth 32), a budget that needs several tiles per pass: MLX's peak stays
    within it on the active convolution path."""
    mx.random.seed(0)
    net = RRDBNet(scale, 2, 64, 32, unshuffle)
    net.eval()
    mx.eval(net.parameters())
    image = _image(128, 128)
    budget = 12 * 2**20
    whole = super_resolve(net, image, tile=WHOLE)  # first call: plans, fused weights
    mx.clear_cache()
    mx.reset_peak_memory()
    base = mx.get_active_memory()
    tiles = []
    assert np.array_equal(super_resolve(net, image, max_memory=budget, on_tile=lambda d, t: tiles.append(t)), whole)
    assert mx.get_peak_memory() - base <= budget
    assert tiles[-1] > 3 * (2 + 2)  # several tiles in each pass


def test_auto_tile_keeps_a_budget_and_the_result():
    net = tiny_rrdbnet()
    image = _image(120, 100)
    budget = (20 + 2 * inference.BLOCK_REACH) ** 2 * bytes_per_pixel(net)
    assert inference.auto_tile(net, 120, 100, budget) == 20
    assert np.array_equal(super_resolve(net, image, max_memory=budget), super_resolve(net, image, tile=WHOLE))


def test_config_round_trip_and_refused_shapes():
    net = RRDBNet(2, 3, 16, 8, 2)
    assert RRDBNet(**net.config()).config() == net.config() == {
        "scale": 2, "num_blocks": 3, "features": 16, "growth": 8, "unshuffle": 2}  # fmt: skip
    assert net.conv_first.weight.shape == (16, 3, 3, 12) and len(net.upsample) == 2
    with pytest.raises(ValueError, match="not an RRDBNet this supports"):
        RRDBNet(1, 1, 8, 4, 4)  # x1: not an upscaler
    with pytest.raises(ValueError, match="not an RRDBNet this supports"):
        RRDBNet(16, 1, 8, 4, 1)


@pytest.mark.parametrize("path, kernels", [("mlx", "0"), ("tuned", "0"), ("onednn", "1")])
def test_every_convolution_path_gives_the_same_network(monkeypatch, path, kernels):
    """MLX's own convolutions and element-wise ops (what a GPU runs), the tuned forms, and oneDNN with the fused
    LeakyReLU / scaled residual compute the same RRDBNet. Tiles are bit-exact with oneDNN's convolutions; MLX's
    im2col + sgemm rounds a pixel by where it falls in the matrix (measured: 1 ulp), so there tiles agree to
    float rounding."""
    from srgan_mlx.environment import CONV, KERNELS

    net = tiny_rrdbnet(2, 2)
    image = _image(29, 23)
    reference = _forward(net, image)
    monkeypatch.setenv(CONV, path)
    monkeypatch.setenv(KERNELS, kernels)
    whole = super_resolve(net, image, tile=WHOLE)
    assert np.abs(whole - reference).max() < 1e-5
    tiled = super_resolve(net, image, tile=9)
    assert np.array_equal(tiled, whole) if path == "onednn" else np.abs(tiled - whole).max() < 1e-6


def test_half_precision_stays_close():
    from srgan_mlx.files.model_io import with_dtype

    net = tiny_rrdbnet()
    half = with_dtype(net, mx.float16)
    image = _image(20, 17)
    full, reduced = super_resolve(net, image), super_resolve(half, image)
    assert reduced.dtype == np.float32 and np.abs(full - reduced).max() < 4 / 255
    assert np.array_equal(super_resolve(half, image, tile=7), reduced)
