"""Super-resolve one image with a generator, in overlapping tiles that fit a memory budget.

Tiles are exact, not blended: every tile is cut with a margin of
:func:`receptive_field_radius` low-resolution (LR) pixels on each side that
touches the image's interior, the generator runs on the tile, and only the
output of the tile's core is kept. An output pixel depends on LR pixels at most
that radius away, and with BatchNorm in eval mode (running statistics) every
layer is a function of its neighbourhood alone, so the core equals the
whole-image result up to float rounding. At the image border the tile's zero
padding is the whole image's zero padding, so no margin is needed there.

An :class:`RRDBNet` (ESRGAN, Real-ESRGAN) reaches far: 15 LR pixels per block, 349 for the usual
23, so its tiles carry wide margins. Its trunk (:meth:`RRDBNet.features_of`, at LR, about 2.3 KB per
pixel) runs on the whole tile; its upsampling (:meth:`RRDBNet.reconstruct`, 5% of the work but
about 12 KB per LR pixel at x4) only on the tile's core, in chunks with their own 2-pixel margin.
A pixel-unshuffled input (Real-ESRGAN x2) is first padded to even sides by reflection, as
Real-ESRGAN's inference does, and tiles are cut on the unshuffled grid.
"""

from __future__ import annotations

import math
from typing import Callable

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten

from .devices import conv_path
from .generator import Generator
from .rrdbnet import RRDBNet

DEFAULT_MAX_MEMORY = 2 * 1024**3
"""Default working-memory budget of one forward pass, in bytes (2 GiB: fits a laptop)."""

MIN_TILE = 16
"""Smallest tile core (LR pixels per side); a budget too small for it is exceeded."""

HEADROOM = 1.25
"""Allowance for allocator rounding and buffers the estimate does not model."""


Network = Generator | RRDBNet


def receptive_field_radius(generator: Network) -> int:
    """How far, in LR pixels, an output pixel's inputs reach: ``2 * num_blocks + 8`` for every scale (SRResNet).

    Walking back from the output: the 9x9 tail reaches 4 pixels at the output
    resolution. A reach of r pixels at one x2 level is ceil(r / 2) pixels at the
    level below (a pixel-shuffle output pixel comes from one pixel below, which
    spans 2), plus 1 for that stage's 3x3 conv: 4 -> 3 at every stage. Then at LR
    come the body 3x3 conv (1), two 3x3 convs per residual block (2 each) and
    the 9x9 head (4). For the paper's 16 blocks: 40 LR pixels.

    RRDBNet: ``unshuffle * (15 * num_blocks + 4)``, in whole unshuffled pixels (the tiles' grid):
    :func:`_tail_reach` (2) for the upsampling, then ``conv_body`` (1), five 3x3 convs in
    a row in each of an RRDB's three dense blocks (15 per block) and ``conv_first`` (1). 349 for 23 blocks.
    """
    if isinstance(generator, RRDBNet):
        return generator.unshuffle * (_tail_reach(generator) + 1 + 15 * generator.num_blocks + 1)
    reach = 4
    for _ in generator.upsample:
        reach = math.ceil(reach / 2) + 1
    return reach + 1 + 2 * len(generator.blocks) + 4


def _tail_reach(network: RRDBNet) -> int:
    """How far, in trunk pixels, an RRDBNet's upsampling reaches: ``conv_last`` and ``conv_hr`` (2 output pixels),
    then per stage down its 3x3 conv (1) and the nearest-neighbour x2 (a reach of r pixels is ceil(r / 2) below):
    2 for any number of stages."""
    reach = 2
    for _ in network.upsample:
        reach = math.ceil((reach + 1) / 2)
    return reach


def _rrdbnet_sets(network: RRDBNet) -> tuple[int, int]:
    """Bytes per trunk pixel of an RRDBNet's two parts when run op by op: (trunk, upsampling).

    Trunk, at its widest (a dense block concatenating its fourth growth): the long skip, the RRDB's input, the
    dense block's input, the old and the new concatenation (C + 3G, C + 4G) and the growth: 5C + 8G floats
    (2304 bytes for C = 64, G = 32: measured); with MLX's own convolutions (no oneDNN) also an im2col matrix,
    9 (C + 4G). Upsampling, with 4**n pixels per trunk pixel after n stages: the last stage's nearest copy and
    conv output and the stage below's output, 2.25 C * 4**n (measured), counted as 3C * 4**n; with MLX's
    convolutions another 9C * 4**n. Both times :data:`HEADROOM`.
    """
    c, g, top = network.features, network.growth, 4 ** len(network.upsample)
    onednn = conv_path() == "onednn"
    trunk = 5 * c + 8 * g + (0 if onednn else 9 * (c + 4 * g))
    tail = (3 * c + (0 if onednn else 9 * c)) * top
    return int(4 * trunk * HEADROOM), int(4 * tail * HEADROOM)


def working_set_per_pixel(generator: Network) -> int:
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

    RRDBNet: its trunk's working set (:func:`_rrdbnet_sets`; the upsampling runs in chunks that fit beside it).
    """
    if isinstance(generator, RRDBNet):
        return math.ceil(_rrdbnet_sets(generator)[0] / generator.unshuffle**2)
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


def bytes_per_pixel(generator: Network) -> int:
    """Estimated peak memory per LR pixel of a tile: the working set plus one look-ahead buffer.

    MLX evaluates a graph ahead of the computation, allocating outputs of later
    ops before earlier buffers are freed. :func:`super_resolve` sets MLX's
    memory limit to the tile's working set, which makes evaluation wait whenever
    it is above it, so at most one more op's output (the tail's largest, 243 s*s
    floats per LR pixel; with oneDNN the last upsample conv's, 4C * s*s / 4) comes on top.
    Measured peaks stay below this (tests check it). RRDBNet: its trunk's working set plus its widest op output,
    a dense block's last concatenation (C + 4G).
    """
    if isinstance(generator, RRDBNet):
        widest = 4 * (generator.features + 4 * generator.growth) * HEADROOM
        return working_set_per_pixel(generator) + math.ceil(widest / generator.unshuffle**2)
    s = generator.scale
    if conv_path() == "onednn":
        return working_set_per_pixel(generator) + 4 * generator.channels * s * s
    return working_set_per_pixel(generator) + 4 * _tail_columns(generator.channels) * s * s


def smallest_tile_memory(generator: Network) -> int:
    """Estimated peak memory of the smallest tile (:data:`MIN_TILE` plus margins); smaller budgets are exceeded."""
    side = MIN_TILE + 2 * receptive_field_radius(generator)
    return side * side * bytes_per_pixel(generator)


def auto_tile(generator: Network, height: int, width: int, max_memory: int) -> int:
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
    generator: Network,
    image: np.ndarray,
    tile: int | None = None,
    max_memory: int | None = None,
    on_tile: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Upscale an (H, W, 3) float32 image in [0, 1]; return (H*s, W*s, 3) float32 in [0, 1].

    ``generator`` is an SRResNet :class:`Generator` or an :class:`RRDBNet`. ``tile`` is the core side in LR
    pixels (each tile adds the receptive-field margin around it); ``None`` picks it from ``max_memory``
    bytes (default :data:`DEFAULT_MAX_MEMORY`). ``on_tile(done, total)`` is called before the first
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
    grid = getattr(generator, "unshuffle", 1)  # LR pixels per pixel of the grid tiles are cut on
    image = _pad_to_multiple(image, grid)
    margin = receptive_field_radius(generator) // grid
    rows, cols = image.shape[0] // grid, image.shape[1] // grid
    core = math.ceil(tile / grid)
    tiles = [(r, c) for r in _spans(rows, core, margin) for c in _spans(cols, core, margin)]
    largest = max((r[3] - r[2]) * (c[3] - c[2]) for r, c in tiles) * grid * grid
    out = np.empty((image.shape[0] * s, image.shape[1] * s, 3), np.float32)
    low, high = getattr(generator, "output_range", (-1.0, 1.0))  # what the last layer's values mean
    dtype = network_dtype(generator)  # float32, or float16 for half-precision inference
    working_set = largest * working_set_per_pixel(generator)
    run = _staged(generator, working_set) if isinstance(generator, RRDBNet) else _whole(generator)
    previous_limit = mx.set_memory_limit(mx.get_active_memory() + working_set)
    if on_tile is not None:
        on_tile(0, len(tiles))
    try:
        for done, ((y0, y1, iy0, iy1), (x0, x1, ix0, ix1)) in enumerate(tiles, 1):
            x = image[iy0 * grid : iy1 * grid, ix0 * grid : ix1 * grid]
            x = mx.array(np.ascontiguousarray(x, dtype=np.float32))[None].astype(dtype)
            y = run(x, (y0 - iy0, y1 - iy0), (x0 - ix0, x1 - ix0))  # the core's output
            g = grid * s  # output pixels per grid pixel
            target = out[y0 * g : y1 * g, x0 * g : x1 * g]
            if (low, high) == (0.0, 1.0):
                np.copyto(target, y)
            else:
                np.add(y, -low, out=target)
                np.multiply(target, 1.0 / (high - low), out=target)
            np.clip(target, 0.0, 1.0, out=target)
            del x, y
            if on_tile is not None:
                on_tile(done, len(tiles))
    finally:
        mx.set_memory_limit(previous_limit)
        mx.clear_cache()  # hand the tiles' buffers back before the caller encodes the result
    if out.shape[:2] != (height * s, width * s):
        out = np.ascontiguousarray(out[: height * s, : width * s])
    return out


def network_dtype(network: Network) -> mx.Dtype:
    """The dtype a network computes in: its parameters'."""
    return tree_flatten(network.parameters())[0][1].dtype


def _pad_to_multiple(image: np.ndarray, factor: int) -> np.ndarray:
    """``image`` with its bottom and right edges mirrored (reflection, as Real-ESRGAN's inference pads) to sides
    that are multiples of ``factor``; unchanged if they are."""
    pad_h, pad_w = -image.shape[0] % factor, -image.shape[1] % factor
    if not (pad_h or pad_w):
        return image
    if pad_h >= image.shape[0] or pad_w >= image.shape[1]:  # reflection needs more pixels than the pad
        return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")


def _whole(generator: Generator) -> Callable:
    """Run the whole network on a tile; the core's output (grid units ``rows``, ``cols`` of the tile) as numpy."""
    s = generator.scale

    def run(x: mx.array, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        y = generator(x)
        mx.eval(y)
        return np.asarray(y)[0, rows[0] * s : rows[1] * s, cols[0] * s : cols[1] * s]

    return run


def _staged(network: RRDBNet, working_set: int) -> Callable:
    """Run an RRDBNet's trunk on a tile and its upsampling on the core only, in chunks (each with the upsampling's
    :func:`_tail_reach` as margin) that fit in ``working_set`` bytes beside the trunk's output."""
    _, per_pixel = _rrdbnet_sets(network)
    reach = _tail_reach(network)
    g = 2 ** len(network.upsample)  # output pixels per trunk pixel

    def run(x: mx.array, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        features = network.features_of(x)
        mx.eval(features)
        height, width = features.shape[1:3]
        room = max(working_set - features.nbytes, 0) // per_pixel
        chunk = max(math.isqrt(room) - 2 * reach, MIN_TILE)
        out = np.empty(((rows[1] - rows[0]) * g, (cols[1] - cols[0]) * g, 3), np.float32)
        for y0, y1, _, _ in _spans(rows[1] - rows[0], chunk, 0):
            for x0, x1, _, _ in _spans(cols[1] - cols[0], chunk, 0):
                (a0, a1), (b0, b1) = (rows[0] + y0, rows[0] + y1), (cols[0] + x0, cols[0] + x1)
                i0, i1 = max(a0 - reach, 0), min(a1 + reach, height)
                j0, j1 = max(b0 - reach, 0), min(b1 + reach, width)
                y = network.reconstruct(features[:, i0:i1, j0:j1])
                mx.eval(y)
                out[y0 * g : y1 * g, x0 * g : x1 * g] = np.asarray(y)[0, (a0 - i0) * g : (a1 - i0) * g,
                                                                      (b0 - j0) * g : (b1 - j0) * g]  # fmt: skip
                del y
        return out

    return run
