"""Labelled crops of textured regions: bicubic | model | model ... | HR, one row per crop, for the docs.

    python experiments/crops.py --data DATA --models srresnet srgan --out docs/images/crops.png

Each crop is taken from a Set14 image (the standard benchmark LR from ``LR_bicubic/X4``, upscaled by MATLAB bicubic
and by each model), the same HR region for every column, enlarged ``--zoom`` times with nearest-neighbour pixels so
texture stays visible. The regions are fixed below: fur, a drawing's lines and skin, stripes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import this_checkout  # noqa: F401  (first: this checkout's srgan_mlx, its BLAS before mlx)
from srgan_mlx.files.image_io import load_image
from srgan_mlx.files.panels import labelled_row
from srgan_mlx.quality.imresize import imresize
from srgan_mlx.upscaling.upscaler import Upscaler

REGIONS = {  # Set14 image: (left, top, size) in HR pixels
    "baboon": (0, 300, 128),
    "comic": (60, 120, 128),
    "zebra": (240, 130, 128),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder holding Set14/HR and Set14/LR_bicubic/X4")
    parser.add_argument("--models", nargs="+", default=["srresnet", "srgan"])
    parser.add_argument("--labels", nargs="+", help="a label per model (default: each model's own name)")
    parser.add_argument("--zoom", type=int, default=2)
    parser.add_argument("--out", type=Path, default=this_checkout.ROOT / "docs" / "images" / "crops.png")
    args = parser.parse_args()
    upscalers = [Upscaler(model) for model in args.models]
    if args.labels and len(args.labels) != len(args.models):
        parser.error(f"--labels: {len(args.labels)} labels for {len(args.models)} models")
    labels = args.labels or [up.label for up in upscalers]
    rows = []
    for name, (left, top, size) in REGIONS.items():
        hr, _ = load_image(args.data / "Set14" / "HR" / f"{name}.png")
        lr, _ = load_image(args.data / "Set14" / "LR_bicubic" / "X4" / f"{name}x4.png")
        outputs = [imresize(lr, 4.0)] + [np.asarray(up(lr)) for up in upscalers] + [hr]
        crops = [Image.fromarray(o[top : top + size, left : left + size]) for o in outputs]
        crops = [c.resize((size * args.zoom, size * args.zoom), Image.NEAREST) for c in crops]
        rows.append(labelled_row(crops, ["bicubic", *labels, f"HR ({name})"]))
    width = max(row.width for row in rows)
    sheet = Image.new("RGB", (width, sum(row.height for row in rows)), "white")
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out} ({sheet.width}x{sheet.height})")


if __name__ == "__main__":
    main()
