"""Peak memory and time of ``srgan-mlx upscale`` on a large image, in a fresh process.

Writes a full-size x4 generator with random weights and a SIZE x SIZE RGB PNG
to a temporary folder, runs ``srgan-mlx upscale`` on it in a subprocess, and
reports the subprocess's peak resident set size (``resource.getrusage``,
RUSAGE_CHILDREN), MLX's own peak (``mx.get_peak_memory``, the memory the budget
bounds), its wall time and the tile size the memory budget gives.

    python benchmarks/upscale_memory.py                  # 2000x2000 -> 8000x8000, 2GB budget
    python benchmarks/upscale_memory.py --size 500 --max-memory 512MB
    python benchmarks/upscale_memory.py --arch rrdbnet --blocks 1   # Real-ESRGAN's widths, 1 of its 23 blocks

``--arch rrdbnet`` (64 features, growth 32, as RealESRGAN_x4plus) runs layer by layer: its memory does not depend
on the number of blocks (each block is one pass over the image), its time grows with it.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import srgan_mlx  # noqa: F401  (before mlx)
import numpy as np
from PIL import Image

from srgan_mlx.commands.options import Size
from srgan_mlx.defaults import MAX_MEMORY
from srgan_mlx.files.model_io import save_network
from srgan_mlx.networks.generator import Generator
from srgan_mlx.networks.rrdbnet import RRDBNet
from srgan_mlx.upscaling.inference import BLOCK_REACH, auto_tile, bytes_per_pixel, receptive_field_radius

CHILD = """
import sys, json
from srgan_mlx.cli import main
import mlx.core as mx
try:
    main(sys.argv[1:])
except SystemExit as exit:
    if exit.code:
        raise
print(json.dumps({"mlx_peak_memory_bytes": mx.get_peak_memory()}), file=sys.stderr)
"""


def test_image(size: int, seed: int = 0) -> Image.Image:
    """A smooth random RGB image (noise bicubically enlarged 8x), like a photo more than white noise."""
    noise = np.random.default_rng(seed).integers(0, 256, (size // 8 + 1, size // 8 + 1, 3), dtype=np.uint8)
    return Image.fromarray(noise).resize((size, size), Image.Resampling.BICUBIC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2000, help="input side in pixels (default 2000)")
    parser.add_argument("--max-memory", default=None, help="budget passed to --max-memory (default: the CLI's, 2GB)")
    parser.add_argument("--arch", choices=("srresnet", "rrdbnet"), default="srresnet")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--blocks", type=int, default=None, help="residual blocks (default 16) or RRDBs (23)")
    parser.add_argument("--channels", type=int, default=64)
    args = parser.parse_args()

    if args.arch == "rrdbnet":
        generator = RRDBNet(args.scale, 23 if args.blocks is None else args.blocks, args.channels, 32,
                            1 if args.scale == 4 else 4 // args.scale)  # fmt: skip
    else:
        generator = Generator(args.scale, 16 if args.blocks is None else args.blocks, args.channels)
    generator.eval()
    budget = MAX_MEMORY if args.max_memory is None else Size().convert(args.max_memory, None, None)
    rrdbnet = isinstance(generator, RRDBNet)  # passes block by block: a block's margin
    margin = BLOCK_REACH * generator.unshuffle if rrdbnet else receptive_field_radius(generator)
    tile = auto_tile(generator, args.size, args.size, budget)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        save_network(folder / "g.safetensors", generator)
        test_image(args.size).save(folder / "in.png")
        command = [sys.executable, "-c", CHILD, "upscale", str(folder / "in.png"),
                   "-o", str(folder / "out.png"), "--model", str(folder / "g.safetensors"), "--quiet"]
        if args.max_memory is not None:
            command += ["--max-memory", args.max_memory]
        start = time.perf_counter()
        child = subprocess.run(command, check=True, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - start
        mlx_peak = json.loads(child.stderr.strip().splitlines()[-1])["mlx_peak_memory_bytes"]
        peak_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux: KiB
        with Image.open(folder / "out.png") as out:
            out_size = out.size
    result = {
        "input": f"{args.size}x{args.size}",
        "output": f"{out_size[0]}x{out_size[1]}",
        "arch": args.arch,
        "generator": generator.config(),
        "max_memory_bytes": budget,
        "bytes_per_lr_pixel": bytes_per_pixel(generator),
        "tile": tile,
        "tile_with_margins": tile + 2 * margin,
        "mlx_peak_gib": round(mlx_peak / 1024**3, 3),
        "peak_rss_gib": round(peak_rss / 1024**3, 3),
        "wall_s": round(wall, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
