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
23, so whole-network tiles would carry margins ten times their core at a 2 GB budget. It runs
layer by layer instead (:func:`_layer_by_layer`): ``conv_first`` over the image, then each RRDB
over the whole feature map in tiles with that block's own 15-pixel margin, then ``conv_body``,
the long skip and the upsampling; every pass is exact for the same reason, so the result is
the whole-image result. The feature map lives in host memory between passes (4 x features bytes
per pixel of the trunk: 256 per input pixel for x4, 64 for Real-ESRGAN's x2), beside the output.
A pixel-unshuffled input (Real-ESRGAN x2) is first padded to even sides by reflection, as
Real-ESRGAN's inference does, and tiles are cut on the unshuffled grid.
"""

from __future__ import annotations

import math
from typing import Callable

import mlx.core as mx
import numpy as np

from ..defaults import MAX_MEMORY
from ..networks.devices import conv_path
from ..networks.kinds import Network, network_dtype
from ..networks.rrdbnet import RRDBNet

MIN_TILE = 16
"""Smallest tile core (LR pixels per side); a budget too small for it is exceeded."""

HEADROOM = 1.25
"""Allowance for allocator rounding and buffers the estimate does not model."""



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
    a row in each of an RRDB's three dense blocks (:data:`BLOCK_REACH` per block) and ``conv_first`` (1):
    349 for 23 blocks. Its passes (:func:`_layer_by_layer`) each need only their own part of it.
    """
    if isinstance(generator, RRDBNet):
        return generator.unshuffle * (_tail_reach(generator) + 1 + BLOCK_REACH * generator.num_blocks + 1)
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


BLOCK_REACH = 15
"""How far an RRDB reaches, in trunk pixels: three dense blocks of five 3x3 convolutions in a row."""
BAND_MARGINS = 16
"""An RRDB pass goes over the feature map in bands of at most this many margins (240 rows): a band's output waits
in a buffer (rows x width x features floats) until the band is done, then replaces it in the map; each band
recomputes 2 x 15 margin rows (at most 1/8 of its work)."""


def _rrdbnet_sets(network: RRDBNet) -> dict[str, int]:
    """Bytes per trunk pixel of each RRDBNet pass when run op by op, times :data:`HEADROOM`.

    ``head`` (``conv_first``): the input and its unshuffled copy, 3 u^2 floats each, and C outputs.
    ``block`` (one RRDB), at its widest, a dense block concatenating its fourth growth: the RRDB's input, the
    dense block's input, the old and the new concatenation (C + 3G, C + 4G) and the growth: 4C + 8G floats
    (2048 bytes for C = 64, G = 32; measured). ``tail`` (``conv_body``, the skip, the upsampling), with
    4**n output pixels per trunk pixel after n stages: the last stage's nearest copy, its conv output and the
    stage below's, measured 2.25 C * 4**n, counted as 3C * 4**n, plus 4C at the trunk's resolution. With MLX's
    own convolutions (no oneDNN) each also holds an im2col matrix, 9 x its widest convolution's input.
    """
    c, g, u, top = network.features, network.growth, network.unshuffle, 4 ** len(network.upsample)
    im2col = 0 if conv_path() == "onednn" else 9
    sets = {
        "head": 6 * u * u + c + im2col * 3 * u * u,
        "block": 4 * c + 8 * g + im2col * (c + 4 * g),
        "tail": 4 * c + 3 * u * u + (3 + im2col) * c * top,
    }
    return {name: int(4 * floats * HEADROOM) for name, floats in sets.items()}


def _rrdbnet_widest(network: RRDBNet) -> dict[str, int]:
    """Bytes per trunk pixel of each pass's largest single output, which MLX may allocate ahead (see
    :func:`bytes_per_pixel`): C, a dense block's last concatenation (C + 4G), the last upsampling conv's."""
    c, g, top = network.features, network.growth, 4 ** len(network.upsample)
    floats = {"head": c, "block": c + 4 * g, "tail": c * top}
    return {name: int(4 * n * HEADROOM) for name, n in floats.items()}


def working_set_per_pixel(generator: Network) -> int:
    """Estimated memory of the forward pass per LR pixel of a tile when run op by op, in bytes.

    The largest set of float32 buffers alive at once, per LR pixel, over the stages:

    * head: the 9x9 3->C conv's im2col rows (243) and two C-channel maps;
    * a residual block: skip, trunk, the 3x3 conv's im2col (9C) and two C maps;
    * upsample stage k (4**k pixels per LR pixel): input C, im2col 9C, conv
      output 4C and its pixel-shuffled copy 4C;
    * tail (s*s pixels): input C, then the 9x9 C->3 layer of
      :mod:`srgan_mlx.networks.conv` computes each pixel's contributions to all 81
      offsets (81 * 3 = 243 columns) and a zero-padded copy of them: 2 x 243.

    For the paper's x4 generator the tail dominates: (64 + 486) * 16 floats,
    35 KB per LR pixel, times :data:`HEADROOM`.

    With oneDNN's convolutions (:func:`srgan_mlx.networks.devices.conv_path` ``onednn``) there is no
    im2col: head 3 + 2C; a block's skip, trunk and three C maps; upsample stage k its input C,
    conv output 4C, PReLU output 4C and the shuffled copy 4C; the tail its input, a padded
    and a 2x2-block copy of it (3C) and its 3 outputs twice. The x4 generator's last upsample
    stage dominates: 13 * 64 * 4 floats, 13 KB per LR pixel, times :data:`HEADROOM`.

    RRDBNet: an RRDB pass's (:func:`_rrdbnet_sets`), which sizes the tiles of the passes that matter.
    """
    if isinstance(generator, RRDBNet):
        return math.ceil(_rrdbnet_sets(generator)["block"] / generator.unshuffle**2)
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
    """Columns of the 9x9 tail's matrix product (:func:`srgan_mlx.networks.conv.conv2d_same` picks the narrower side)."""
    return 81 * min(channels, 3)


def bytes_per_pixel(generator: Network) -> int:
    """Estimated peak memory per LR pixel of a tile: the working set plus one look-ahead buffer.

    MLX evaluates a graph ahead of the computation, allocating outputs of later
    ops before earlier buffers are freed. :func:`super_resolve` sets MLX's
    memory limit to the tile's working set, which makes evaluation wait whenever
    it is above it, so at most one more op's output (the tail's largest, 243 s*s
    floats per LR pixel; with oneDNN the last upsample conv's, 4C * s*s / 4) comes on top.
    Measured peaks stay below this (tests check it). RRDBNet: an RRDB pass's working set plus a dense block's
    last concatenation (C + 4G).
    """
    if isinstance(generator, RRDBNet):
        widest = _rrdbnet_widest(generator)["block"]
        return working_set_per_pixel(generator) + math.ceil(widest / generator.unshuffle**2)
    s = generator.scale
    if conv_path() == "onednn":
        return working_set_per_pixel(generator) + 4 * generator.channels * s * s
    return working_set_per_pixel(generator) + 4 * _tail_columns(generator.channels) * s * s


def smallest_tile_side(generator: Network) -> int:
    """LR pixels per side of the smallest tile, :data:`MIN_TILE` plus margins (RRDBNet: an RRDB pass's)."""
    if isinstance(generator, RRDBNet):
        return generator.unshuffle * (MIN_TILE + 2 * BLOCK_REACH)
    return MIN_TILE + 2 * receptive_field_radius(generator)


def smallest_tile_memory(generator: Network) -> int:
    """Estimated peak memory of the smallest tile (:data:`MIN_TILE` plus margins); smaller budgets are exceeded."""
    if isinstance(generator, RRDBNet):
        margins = {"head": 1, "block": BLOCK_REACH, "tail": 1 + _tail_reach(generator)}
        sets, widest = _rrdbnet_sets(generator), _rrdbnet_widest(generator)
        return max((MIN_TILE + 2 * m) ** 2 * (sets[k] + widest[k]) for k, m in margins.items())
    side = smallest_tile_side(generator)
    return side * side * bytes_per_pixel(generator)


def auto_tile(generator: Network, height: int, width: int, max_memory: int) -> int:
    """The largest tile core (LR pixels per side) whose tile, margins included, fits ``max_memory``.

    Returns ``max(height, width)`` (one tile) when the whole image fits. RRDBNet: the core of an RRDB pass's square
    tile (its passes plan their own tiles, :func:`_layer_by_layer`).
    """
    if isinstance(generator, RRDBNet):
        u, per_pixel = generator.unshuffle, bytes_per_pixel(generator) * generator.unshuffle**2
        if math.ceil(height / u) * math.ceil(width / u) * per_pixel <= max_memory:
            return max(height, width)
        return u * max(math.isqrt(max_memory // per_pixel) - 2 * BLOCK_REACH, MIN_TILE)
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
    pixels (each tile adds the receptive-field margin around it; RRDBNet: of each pass); ``None`` picks it from
    ``max_memory`` bytes (default :data:`srgan_mlx.defaults.MAX_MEMORY`). ``on_tile(done, total)`` is called before the
    first tile and after each (RRDBNet: the tiles of all its passes).
    The generator must be in eval mode (BatchNorm running statistics).
    While tiles run, MLX's memory limit is the largest tile's working set (see
    :func:`bytes_per_pixel`); the previous limit is restored afterwards.
    """
    if generator.training:
        raise ValueError("super_resolve needs the generator in eval mode (generator.eval())")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    if tile is not None and tile < 1:
        raise ValueError(f"tile must be at least 1, got {tile}")
    budget = MAX_MEMORY if max_memory is None else max_memory
    if isinstance(generator, RRDBNet):
        height, width, _ = image.shape
        out = _layer_by_layer(generator, _pad_to_multiple(image, generator.unshuffle), tile, budget, on_tile)
        s = generator.scale
        return out if out.shape[:2] == (height * s, width * s) else np.ascontiguousarray(out[: height * s, : width * s])
    height, width, _ = image.shape
    if tile is None:
        tile = auto_tile(generator, height, width, budget)
    s = generator.scale
    margin = receptive_field_radius(generator)
    tiles = [(r, c) for r in _spans(height, tile, margin) for c in _spans(width, tile, margin)]
    largest = max((r[3] - r[2]) * (c[3] - c[2]) for r, c in tiles)
    out = np.empty((height * s, width * s, 3), np.float32)
    dtype = network_dtype(generator)  # float32, or float16 for half-precision inference
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


def _pad_to_multiple(image: np.ndarray, factor: int) -> np.ndarray:
    """``image`` with its bottom and right edges mirrored (reflection, as Real-ESRGAN's inference pads) to sides
    that are multiples of ``factor``; unchanged if they are."""
    pad_h, pad_w = -image.shape[0] % factor, -image.shape[1] % factor
    if not (pad_h or pad_w):
        return image
    mode = "reflect" if pad_h < image.shape[0] and pad_w < image.shape[1] else "edge"  # 1-pixel sides: repeat
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode=mode)


Spans = list[tuple[int, int, int, int]]


def _pass_tiles(rows: int, cols: int, margin: int, per_pixel: int, budget: int, tile: int | None,
                max_rows: int | None = None) -> tuple[Spans, Spans]:  # fmt: skip
    """Row and column spans of one pass over a rows x cols map: square cores of ``tile`` if given, else tiles of at
    most ``max_rows`` core rows, as wide as ``budget`` bytes at ``per_pixel`` allow (at least :data:`MIN_TILE`)."""
    if tile is not None:
        return _spans(rows, tile, margin), _spans(cols, tile, margin)
    pixels = budget // per_pixel
    if rows * cols <= pixels:
        return _spans(rows, rows, margin), _spans(cols, cols, margin)
    core_rows = max(min(math.isqrt(pixels) - 2 * margin, max_rows or rows, rows), MIN_TILE)
    core_cols = max(pixels // min(core_rows + 2 * margin, rows) - 2 * margin, MIN_TILE)
    return _spans(rows, core_rows, margin), _spans(cols, core_cols, margin)


def _layer_by_layer(
    network: RRDBNet, image: np.ndarray, tile: int | None, budget: int, on_tile: Callable[[int, int], None] | None
) -> np.ndarray:
    """An RRDBNet over ``image`` (sides multiples of its unshuffle factor) pass by pass, each in exact tiles.

    Passes, on the grid of trunk pixels (the input's, or the unshuffled input's): :meth:`RRDBNet.head` into the
    feature map (margin 1); each RRDB, in place (margin :data:`BLOCK_REACH`): band by band, each band's output
    held until the band is done, the rows the next band reads as margin kept aside before they are overwritten;
    then :meth:`RRDBNet.join` with :meth:`RRDBNet.head` computed again from the image (cheaper than keeping its
    map) and :meth:`RRDBNet.reconstruct`, into the output (margin 1 + :func:`_tail_reach`). ``tile`` (LR pixels)
    gives every pass square cores of that size; else each pass's tiles fill ``budget`` bytes at its own working
    set per pixel (:func:`_rrdbnet_sets`) plus its widest output (:func:`_rrdbnet_widest`), and MLX's memory limit is
    the largest working set, so the peak stays within ``budget``.
    """
    u, g = network.unshuffle, 2 ** len(network.upsample)  # LR and output pixels per trunk pixel
    rows, cols = image.shape[0] // u, image.shape[1] // u
    dtype = network_dtype(network)
    sets, widest = _rrdbnet_sets(network), _rrdbnet_widest(network)
    core = None if tile is None else math.ceil(tile / u)
    margins = {"head": 1, "block": BLOCK_REACH, "tail": 1 + _tail_reach(network)}
    plans = {  # planned with the look-ahead output on top, so that the peak stays within the budget
        name: _pass_tiles(rows, cols, margin, sets[name] + widest[name], budget, core,
                          BAND_MARGINS * margin if name == "block" else None)
        for name, margin in margins.items()
    }  # fmt: skip
    counts = {name: len(r) * len(c) for name, (r, c) in plans.items()}
    total = counts["head"] + len(network.body) * counts["block"] + counts["tail"]
    working_set = max(
        max(r[3] - r[2] for r in plans[name][0]) * max(c[3] - c[2] for c in plans[name][1]) * sets[name]
        for name in plans
    )

    def lr(r0: int, r1: int, c0: int, c1: int) -> mx.array:
        pixels = np.ascontiguousarray(image[r0 * u : r1 * u, c0 * u : c1 * u], dtype=np.float32)
        return mx.array(pixels)[None].astype(dtype)

    def tiles(name: str):
        for rs in plans[name][0]:
            for cs in plans[name][1]:
                yield rs, cs

    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if on_tile is not None:
            on_tile(done, total)

    features = np.empty((rows, cols, network.features), np.float32)
    out = np.empty((rows * g, cols * g, 3), np.float32)
    previous_limit = mx.set_memory_limit(mx.get_active_memory() + working_set)
    if on_tile is not None:
        on_tile(0, total)
    try:
        for (a, b, ia, ib), (c, d, ic, id_) in tiles("head"):
            y = network.head(lr(ia, ib, ic, id_))
            mx.eval(y)
            features[a:b, c:d] = np.asarray(y)[0, a - ia : b - ia, c - ic : d - ic]
            del y
            tick()
        for block in network.body:
            kept = None  # (first row, rows of the map as they were before the previous band replaced them)
            for a, b, ia, ib in plans["block"][0]:
                band = np.empty((b - a, cols, network.features), np.float32)
                for c, d, ic, id_ in plans["block"][1]:
                    x = features[ia:ib, ic:id_]
                    if kept is not None and ia < a:
                        x = np.concatenate([kept[1][ia - kept[0] :, ic:id_], features[a:ib, ic:id_]])
                    y = block(mx.array(np.ascontiguousarray(x))[None].astype(dtype))
                    mx.eval(y)
                    band[:, c:d] = np.asarray(y)[0, a - ia : b - ia, c - ic : d - ic]
                    del x, y
                    tick()
                first = max(b - BLOCK_REACH, a if kept is None else kept[0])  # the next band's top margin, as it was
                if first >= a:
                    kept = (first, features[first:b].copy())
                else:  # a band shorter than the margin: some of those rows were kept from before
                    kept = (first, np.concatenate([kept[1][first - kept[0] :], features[a:b]]))
                features[a:b] = band
                del band
        for (a, b, ia, ib), (c, d, ic, id_) in tiles("tail"):
            trunk = mx.array(np.ascontiguousarray(features[ia:ib, ic:id_]))[None].astype(dtype)
            y = network.reconstruct(network.join(trunk, network.head(lr(ia, ib, ic, id_))))
            mx.eval(y)
            target = out[a * g : b * g, c * g : d * g]
            np.clip(np.asarray(y)[0, (a - ia) * g : (b - ia) * g, (c - ic) * g : (d - ic) * g], 0.0, 1.0, out=target)
            del trunk, y
            tick()
    finally:
        mx.set_memory_limit(previous_limit)
        mx.clear_cache()
    return out
