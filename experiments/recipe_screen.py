"""Score the checkpoints of SRGAN training runs on Set5 and Set14: the table behind the choice of recipe.

    python experiments/recipe_screen.py runs/screen/* --data DATA --out experiments/results/recipes

For every checkpoint of every run (or the checkpoints named with ``--steps``), the generator is
scored, and its moving average too where the run keeps one: PSNR, SSIM and colour bias on Set5
and Set14, NIQE on Set14 (the standard protocol of ``srgan-mlx evaluate``, LR from the
benchmark's MATLAB-bicubic files), and ``grid``: the fixed sub-pixel pattern of SR - HR in 8-bit
levels (``srgan_mlx.training.losses.subpixel_bias`` on 0..255 values, times 2), the period-4 grid a
fine-tune can print. Writes ``<out>/recipes.json`` (one row per run, step and
generator, with the run's recipe options) and prints a markdown table. Rows already in the JSON
are not scored again, so it can be re-run as runs go on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import this_checkout  # noqa: F401  (first: this checkout's srgan_mlx, its BLAS before mlx)
import mlx.core as mx
import numpy as np
from srgan_mlx.atomic import write_text
from srgan_mlx.files.model_io import load_generator
from srgan_mlx.files.run_folder import AVERAGE, GENERATOR, RunFolder, weights_file
from srgan_mlx.quality.evaluate import BIAS_KEYS, evaluate
from srgan_mlx.training.config import FIELDS
from srgan_mlx.training.losses import subpixel_bias
from srgan_mlx.upscaling.inference import super_resolve

RECIPE = tuple(name for name, f in FIELDS.items() if not (f.metadata["operational"] or f.metadata["path"]))
"""The settings of a run kept with its rows: everything that defines what it learns."""


def score(generator_file: str, data: Path) -> dict:
    """Set5 and Set14 means of one generator (``srresnet``, a file...), or of bicubic for ``bicubic``."""
    generator = None if generator_file == "bicubic" else load_generator(generator_file)
    upscaler = None if generator is None else (lambda lr: super_resolve(generator, lr))
    row = {}
    for name, niqe in (("set5", False), ("set14", True)):
        folder = data / name.replace("set", "Set")
        grids = []

        def grid(_, images):
            sr, hr = (mx.array(a.astype(np.float32)[None]) for a in (images.sr, images.hr))
            grids.append(2 * subpixel_bias(sr, hr, 4).item())

        mean = evaluate(folder / "HR", 4, folder / "LR_bicubic" / "X4", upscaler, grid, with_niqe=niqe)["mean"]
        row.update({f"{name}_{key}": value for key, value in mean.items()}, **{f"{name}_grid": float(np.mean(grids))})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, required=True, help="folder with Set5/ and Set14/ (HR, LR_bicubic/X4)")
    parser.add_argument("--steps", help="comma-separated steps to score (default: every checkpoint)")
    parser.add_argument("--references", action="store_true", help="also score bicubic and the shipped SRResNet")
    parser.add_argument("--out", type=Path, default=this_checkout.RESULTS / "recipes")
    args = parser.parse_args()
    wanted = {int(s) for s in args.steps.split(",")} if args.steps else None
    path = args.out / "recipes.json"
    rows = json.loads(path.read_text()) if path.is_file() else []
    done = {(r["run"], r["step"], r["generator"]) for r in rows}
    todo = [("bicubic", 0, "bicubic", None), ("srresnet", 0, "srresnet", None)] if args.references else []
    for run in args.runs:
        folder = RunFolder(run)
        config = json.loads(folder.config.read_text())
        for checkpoint in folder.saved():
            step = int(checkpoint.name.split("_")[-1])
            if wanted is None or step in wanted:
                for network in (GENERATOR, AVERAGE):
                    file = weights_file(checkpoint, network)
                    if file.is_file():
                        todo.append((run.name, step, network, (str(file), config)))
    for run, step, network, source in todo:
        if (run, step, network) in done:
            continue
        file, config = source if source else (network, {})
        row = {"run": run, "step": step, "generator": network, **{k: config.get(k) for k in RECIPE if config},
               **score(file, args.data)}  # fmt: skip
        print(json.dumps(row), file=sys.stderr)
        rows.append(row)
        args.out.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(rows, indent=1))
    print("| run | step | generator | Set5 PSNR | Set14 PSNR | Set14 SSIM | Set14 NIQE | Set14 bias R/G/B | Set14 grid |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        bias = " / ".join(f"{r[f'set14_{k}']:+.1f}" for k in BIAS_KEYS)
        print(f"| {r['run']} | {r['step']} | {r['generator']} | {r['set5_psnr']:.2f} | {r['set14_psnr']:.2f} | "
              f"{r['set14_ssim']:.4f} | {r['set14_niqe']:.2f} | {bias} | {r.get('set14_grid', float('nan')):.2f} |")


if __name__ == "__main__":
    main()
