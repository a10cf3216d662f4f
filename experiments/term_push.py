"""Which of a run's loss terms push the generator's period-4 grid, and which pull it back? At one checkpoint.

The measures of ``grid_push.py`` (the fixed sub-pixel pattern of each term's descent direction with respect to the
SR output: its norm averaged over ``--batches`` batches, its consistency, its cosine with the grid the generator
prints), for every weighted term of the run's recipe, read as the step reads them: the generator in training
mode, the discriminator of the checkpoint judging the joint batch where the recipe says so, the moving average in
eval mode for LDL's artifact map. The gradients are the terms' own, before any ``--grid-blind``: what a blind
would remove. It reads a run folder's checkpoint (a record has no discriminator).

    python experiments/term_push.py runs/I-blind-gan005-anchor --step 400 --data DATA/train
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import this_checkout  # noqa: F401  (first: this checkout's srgan_mlx, its BLAS before mlx)
import mlx.core as mx
import numpy as np
from grid_push import pattern, summary, training_batches

from srgan_mlx.files.model_io import load_vgg
from srgan_mlx.networks import kernels
from srgan_mlx.training import checkpoint
from srgan_mlx.training.config import TrainConfig
from srgan_mlx.training.loss_terms import Outputs, generator_terms
from srgan_mlx.training.steps import _discriminate
from srgan_mlx.training.training_parts import build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="an SRGAN run folder")
    parser.add_argument("--step", type=int, required=True, help="the checkpoint's step")
    parser.add_argument("--data", required=True, help="training images")
    parser.add_argument("--vgg", help="VGG19 weights, if not at the run's path")
    parser.add_argument("--batches", type=int, default=4)
    args = parser.parse_args()

    fields = json.loads((args.run / "config.json").read_text())
    config = TrainConfig.from_dict({**fields, **({"vgg": args.vgg} if args.vgg else {})})
    parts = build(config)
    checkpoint.load_modules(args.run / "checkpoints" / f"step_{args.step:08d}", parts.modules)
    generator, discriminator, average = parts.generator, parts.discriminator, parts.average
    terms = [term for term in generator_terms(config, load_vgg(config.vgg)) if term.weight]
    joint, scale = config.d_batch == "joint", config.scale
    batches = training_batches(args.data, config.batch_size, config.crop, scale, args.batches)

    grids, pushes = [], {term.name: [] for term in terms}
    for lr, hr in batches:
        with kernels.unfused():
            sr = generator(lr)
            reference = None if average is None else average.eval()(lr)
            real = mx.stop_gradient(_discriminate(discriminator, hr, sr, joint)[0])
        grids.append(pattern(sr - hr, scale))
        for name, weight, loss in terms:
            def weighted(s, name=name, weight=weight, loss=loss):
                fake = _discriminate(discriminator, hr, s, joint)[1] if name == "adversarial" else None
                return weight * loss(Outputs(lr, hr, s, fake, real, reference))

            with kernels.unfused():
                pushes[name].append(-pattern(mx.grad(weighted)(sr), scale))
    grid = np.mean(grids, axis=0)
    print(f"{args.run} step {args.step}: the grid it prints in training mode, {np.abs(grid).mean() * 127.5:.3f} levels")
    for name, found in pushes.items():
        print(f"{name:12s} {summary(found, grid)}")


if __name__ == "__main__":
    main()
