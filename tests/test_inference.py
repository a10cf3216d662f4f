"""Tiled super-resolution equals whole-image super-resolution exactly, within a memory estimate."""

import mlx.core as mx
import numpy as np
import pytest

from srgan_mlx.networks.generator import Generator
from srgan_mlx.upscaling import inference
from srgan_mlx.upscaling.inference import auto_tile, bytes_per_pixel, receptive_field_radius, super_resolve

WHOLE = 10_000  # a tile larger than any test image: one tile, no margins


def _image(height, width, seed=0):
    return np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)


@pytest.mark.parametrize("scale", [2, 4])
def test_tiles_equal_whole_image(tiny_generator, scale):
    generator = tiny_generator(scale)
    image = _image(37, 29)  # odd sizes; tiles 7 and 16 do not divide them
    whole = super_resolve(generator, image, tile=WHOLE)
    assert whole.shape == (37 * scale, 29 * scale, 3) and whole.dtype == np.float32
    assert 0 <= whole.min() and whole.max() <= 1 and whole.std() > 0
    for tile in (7, 16, 30):
        # exact: with the full margin every output pixel sees the same inputs through the same ops
        assert np.array_equal(super_resolve(generator, image, tile=tile), whole), tile


def _short_margins(monkeypatch, sides: str, short: int) -> None:
    """Make :func:`super_resolve` cut tiles with margins ``short`` LR pixels too small on ``sides``."""
    if sides == "all":
        radius = inference.receptive_field_radius
        monkeypatch.setattr(inference, "receptive_field_radius", lambda generator: radius(generator) - short)
        return
    spans = inference._spans

    def shortened(length, tile, margin):
        out = []
        for lo, hi, in_lo, in_hi in spans(length, tile, margin):
            if sides == "top_left" and in_lo > 0:
                in_lo += short
            if sides == "bottom_right" and in_hi < length:
                in_hi -= short
            out.append((lo, hi, in_lo, in_hi))
        return out

    monkeypatch.setattr(inference, "_spans", shortened)


@pytest.mark.parametrize("short", [1, 2])
@pytest.mark.parametrize("sides", ["all", "top_left", "bottom_right"])
def test_a_margin_too_small_is_seen(tiny_generator, monkeypatch, sides, short):
    """The equality above is sensitive: tiles one LR pixel short of the radius change the output."""
    generator = tiny_generator(4)
    image = _image(37, 29)
    whole = super_resolve(generator, image, tile=WHOLE)
    _short_margins(monkeypatch, sides, short)
    error = np.abs(super_resolve(generator, image, tile=7) - whole).max()
    assert error > 1e-4, error  # far above float rounding (~1e-7)


def test_receptive_field_radius_is_the_measured_reach(tiny_generator):
    generator = tiny_generator(4)
    radius = receptive_field_radius(generator)
    assert radius == 2 * 2 + 8
    image = _image(33, 33)
    poked = image.copy()
    poked[16, 16] += 0.5
    changed = np.abs(super_resolve(generator, poked, tile=WHOLE) - super_resolve(generator, image, tile=WHOLE)).max(2)
    rows, cols = np.nonzero(changed)
    assert (rows.min() // 4, rows.max() // 4) == (16 - radius, 16 + radius)
    assert (cols.min() // 4, cols.max() // 4) == (16 - radius, 16 + radius)


def test_auto_tile_from_budget(tiny_generator):
    generator = tiny_generator(2)
    image = _image(40, 50)
    per_pixel = bytes_per_pixel(generator)
    assert auto_tile(generator, 40, 50, 40 * 50 * per_pixel) == 50  # fits: one tile
    budget = 44**2 * per_pixel  # a 44-pixel tile, margins included
    tile = auto_tile(generator, 40, 50, budget)
    assert tile == 44 - 2 * receptive_field_radius(generator) < 40
    whole = super_resolve(generator, image, tile=WHOLE)
    assert np.array_equal(super_resolve(generator, image, max_memory=budget), whole)


def test_peak_memory_within_estimate(tiny_generator):
    generator = tiny_generator(4)
    image = _image(48, 48)
    mx.clear_cache()
    mx.reset_peak_memory()
    base = mx.get_active_memory()
    super_resolve(generator, image, tile=WHOLE)
    assert mx.get_peak_memory() - base <= 48 * 48 * bytes_per_pixel(generator)


def test_needs_eval_mode(tiny_generator):
    generator = tiny_generator(2)
    generator.train()
    with pytest.raises(ValueError, match="eval mode"):
        super_resolve(generator, _image(8, 8))


@pytest.mark.parametrize("scale,blocks,channels", [(4, 16, 64), (2, 4, 32)])
def test_peak_memory_within_estimate_at_full_width(scale, blocks, channels):
    """The paper's generator (and a x2 one) on the active convolution path: the tile model holds."""
    mx.random.seed(0)
    generator = Generator(scale, num_blocks=blocks, channels=channels)
    generator.eval()
    mx.eval(generator.parameters())
    image = _image(64, 64)
    super_resolve(generator, image, tile=WHOLE)  # first call: compilation, plans
    mx.clear_cache()
    mx.reset_peak_memory()
    base = mx.get_active_memory()
    super_resolve(generator, image, tile=WHOLE)
    assert mx.get_peak_memory() - base <= 64 * 64 * bytes_per_pixel(generator)
