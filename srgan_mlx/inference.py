"""Super-resolve one image with a generator, in overlapping tiles that fit a memory budget.

Tiles are exact, not blended: every tile is cut with a margin of
:func:`receptive_field_radius` low-resolution (LR) pixels on each side that
touches the image's interior, the generator runs on the tile, and only the
output of the tile's core is kept. An output pixel depends on LR pixels at most
that radius away, and with BatchNorm in eval mode (running statistics) every
layer is a function of its neighbourhood alone, so the core equals the
whole-image result up to float rounding. At the image border the tile's zero
padding is the whole image's zero padding, so no margin is needed there.
"""

from __future__ import annotations

import math
from typing import Callable

import mlx.core as mx
import numpy as np

from .devices import conv_path
from .generator import Generator

DEFAULT_MAX_MEMORY = 2 * 1024**3
"""Default working-memory budget of one forward pass, in bytes (2 GiB: fits a laptop)."""

MIN_TILE = 16
"""Smallest tile core (LR pixels per side); a budget too small for it is exceeded."""

HEADROOM = 1.25
"""Allowance for allocator rounding and buffers the estimate does not model."""


def receptive_field_radius(generator: Generator) -> int:
    """How far, in LR pixels, an output pixel's inputs reach: ``2 * num_blocks + 8`` for every scale.

    Walking back from the output: the 9x9 tail reaches 4 pixels at the output
    resolution. A reach of r pixels at one x2 level is ceil(r / 2) pixels at the
    level below (a pixel-shuffle output pixel comes from one pixel below, which
    spans 2), plus 1 for that stage's 3x3 conv: 4 -> 3 at every stage. Then at LR
    come the body 3x3 conv (1), two 3x3 convs per residual block (2 each) and
    the 9x9 head (4). For the paper's 16 blocks: 40 LR pixels.
    """
    reach = 4
    for _ in generator.upsample:
        reach = math.ceil(reach / 2) + 1
    return reach + 1 + 2 * len(generator.blocks) + 4


def working_set_per_pixel(generator: Generator) -> int:
    """Estimated memory of the forward pass per LR pixel of a tile when run op by op, in bytes.

    The largest set of float32 buffers alive at once, per LR pixel, over the stages:

    * head: the 9x9 3->C conv's im2col rows (243) and two C-channel maps;
    * a residual block: skip, trunk, the 3x3 conv's im2col (9C) and two C maps;
    * upsample stage k (4**k pixels per LR pixel): input C, im2col 9C, conv
      output 4C and its pixel-shuffled copy 4C;
    * tail (s*s pixels): input C, then the 9x9 C->3 layer of
      :mod:`srgan_mlx.conv` computes each pixel's contributions to all 81
      offsets (81 * 3 = 243 columns) and a zero-padded copy of them: 2 x 243.

    For the paper's x4 generator the tail dominates: (64 + 486) * 16 floats,
    35 KB per LR pixel, times :data:`HEADROOM`.

    With oneDNN's convolutions (:func:`srgan_mlx.devices.conv_path` ``onednn``) there is no
    im2col: head 3 + 2C; a block's skip, trunk and three C maps; upsample stage k its input C,
    conv output 4C, PReLU output 4C and the shuffled copy 4C; the tail its input, a padded
    and a 2x2-block copy of it (3C) and its 3 outputs twice. The x4 generator's last upsample
    stage dominates: 13 * 64 * 4 floats, 13 KB per LR pixel, times :data:`HEADROOM`.
    """
    c = generator.channels
    s = generator.scale
    if conv_path() == "onednn":
        stages = [3 + 2 * c, 5 * c] + [13 * c * 4**k for k in range(len(generator.upsample))]
        stages.append((3 * c + 6) * s * s)
        return int(4 * max(stages) * HEADROOM)
    stages = [243 + 2 * c, 13 * c]
    stages += [18 * c * 4**k for k in range(len(generator.upsample))]
    stages.append((c + 2 * _tail_columns(c)) * s * s)
    return int(4 * max(stages) * HEADROOM)


def _tail_columns(channels: int) -> int:
    """Columns of the 9x9 tail's matrix product (:func:`srgan_mlx.conv.conv2d_same` picks the narrower side)."""
    return 81 * min(channels, 3)


def bytes_per_pixel(generator: Generator) -> int:
    """Estimated peak memory per LR pixel of a tile: the working set plus one look-ahead buffer.

    MLX evaluates a graph ahead of the computation, allocating outputs of later
    ops before earlier buffers are freed. :func:`super_resolve` sets MLX's
    memory limit to the tile's working set, which makes evaluation wait whenever
    it is above it, so at most one more op's output (the tail's largest, 243 s*s
    floats per LR pixel; with oneDNN the last upsample conv's, 4C * s*s / 4) comes on top.
    Measured peaks stay below this (tests check it).
    """
    s = generator.scale
    if conv_path() == "onednn":
        return working_set_per_pixel(generator) + 4 * generator.channels * s * s
    return working_set_per_pixel(generator) + 4 * _tail_columns(generator.channels) * s * s


def smallest_tile_memory(generator: Generator) -> int:
    """Estimated peak memory of the smallest tile (:data:`MIN_TILE` plus margins); smaller budgets are exceeded."""
    side = MIN_TILE + 2 * receptive_field_radius(generator)
    return side * side * bytes_per_pixel(generator)


def auto_tile(generator: Generator, height: int, width: int, max_memory: int) -> int:
    """The largest tile core (LR pixels per side) whose tile, margins included, fits ``max_memory``.

    Returns ``max(height, width)`` (one tile) when the whole image fits.
    """
    per_pixel = bytes_per_pixel(generator)
    if height * width * per_pixel <= max_memory:
        return max(height, width)
    side = math.isqrt(max_memory // per_pixel)
    return max(side - 2 * receptive_field_radius(generator), MIN_TILE)


def _spans(length: int, tile: int, margin: int) -> list[tuple[int, int, int, int]]:
    """Split ``[0, length)`` into near-equal cores of at most ``tile``; (core_lo, core_hi, in_lo, in_hi) each."""
    count = math.ceil(length / tile)
    step = math.ceil(length / count)
    spans = []
    for lo in range(0, length, step):
        hi = min(lo + step, length)
        spans.append((lo, hi, max(lo - margin, 0), min(hi + margin, length)))
    return spans


def super_resolve(
    generator: Generator,
    image: np.ndarray,
    tile: int | None = None,
    max_memory: int | None = None,
    on_tile: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Upscale an (H, W, 3) float32 image in [0, 1]; return (H*s, W*s, 3) float32 in [0, 1].

    ``tile`` is the core side in LR pixels (each tile adds the receptive-field
    margin around it); ``None`` picks it from ``max_memory`` bytes (default
    :data:`DEFAULT_MAX_MEMORY`). ``on_tile(done, total)`` is called before the first
    tile and after each.
    The generator must be in eval mode (BatchNorm running statistics).
    While tiles run, MLX's memory limit is the largest tile's working set (see
    :func:`bytes_per_pixel`); the previous limit is restored afterwards.
    """
    if generator.training:
        raise ValueError("super_resolve needs the generator in eval mode (generator.eval())")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    height, width, _ = image.shape
    if tile is None:
        tile = auto_tile(generator, height, width, DEFAULT_MAX_MEMORY if max_memory is None else max_memory)
    if tile < 1:
        raise ValueError(f"tile must be at least 1, got {tile}")
    s = generator.scale
    margin = receptive_field_radius(generator)
    tiles = [(r, c) for r in _spans(height, tile, margin) for c in _spans(width, tile, margin)]
    largest = max((r[3] - r[2]) * (c[3] - c[2]) for r, c in tiles)
    out = np.empty((height * s, width * s, 3), np.float32)
    dtype = generator.head.weight.dtype  # float32, or float16 for half-precision inference
    previous_limit = mx.set_memory_limit(mx.get_active_memory() + largest * working_set_per_pixel(generator))
    if on_tile is not None:
        on_tile(0, len(tiles))
    try:
        for done, ((y0, y1, iy0, iy1), (x0, x1, ix0, ix1)) in enumerate(tiles, 1):
            x = mx.array(np.ascontiguousarray(image[iy0:iy1, ix0:ix1], dtype=np.float32))[None].astype(dtype)
            y = generator(x)
            mx.eval(y)
            core = np.asarray(y)[0, (y0 - iy0) * s : (y1 - iy0) * s, (x0 - ix0) * s : (x1 - ix0) * s]
            target = out[y0 * s : y1 * s, x0 * s : x1 * s]
            np.add(core, 1.0, out=target)
            np.multiply(target, 0.5, out=target)
            np.clip(target, 0.0, 1.0, out=target)
            del x, y, core
            if on_tile is not None:
                on_tile(done, len(tiles))
    finally:
        mx.set_memory_limit(previous_limit)
        mx.clear_cache()  # hand the tiles' buffers back before the caller encodes the result
    return out
