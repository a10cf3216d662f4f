"""Tiled super-resolution equals whole-image super-resolution, within a memory estimate."""

import srgan_mlx  # noqa: F401  (before mlx)
import mlx.core as mx
import numpy as np
import pytest

from srgan_mlx.generator import Generator
from srgan_mlx.inference import auto_tile, bytes_per_pixel, receptive_field_radius, super_resolve

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
        tiled = super_resolve(generator, image, tile=tile)
        assert np.abs(tiled - whole).max() <= 1e-4, tile


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
    assert np.abs(super_resolve(generator, image, max_memory=budget) - whole).max() <= 1e-4


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
