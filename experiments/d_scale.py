"""How large has a run's discriminator grown? Its logits' scale and its first dense layer's largest singular value.

At each named checkpoint of an SRGAN run folder, on ``--batches`` batches of training crops (the same ones at every
step) and the checkpoint's generator in training mode, as the step sees them: the mean and spread of D's logits on
real and on fake crops (the joint batch where the recipe says so), how often a real crop scores above the fakes'
mean and a fake below the reals' (what the relativistic loss asks), and the largest singular value of D's first
dense layer by power iteration (for ``paper-sn``, of the weight it stores: the layer divides by it). A relativistic
loss sees only differences of logits, so nothing in it bounds their scale; the generator's adversarial gradient
grows with it.

    python experiments/d_scale.py runs/M-blind-batchgrowth-gan005-anchor --steps 100,200,300,400 --data DATA/train
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import this_checkout  # noqa: F401  (first: this checkout's srgan_mlx, its BLAS before mlx)
import mlx.core as mx
import numpy as np
from grid_push import training_batches

from srgan_mlx.networks import kernels
from srgan_mlx.networks.discriminator import make_discriminator
from srgan_mlx.networks.generator import Generator
from srgan_mlx.training import checkpoint
from srgan_mlx.training.config import TrainConfig
from srgan_mlx.training.steps import _discriminate


def largest_singular_value(matrix: np.ndarray, iterations: int = 50) -> float:
    """The largest singular value of ``matrix`` by power iteration from a fixed random start."""
    v = np.random.default_rng(0).normal(size=matrix.shape[1])
    sigma = 0.0
    for _ in range(iterations):
        u = matrix @ v
        u /= np.linalg.norm(u)
        v = matrix.T @ u
        sigma = float(np.linalg.norm(v))
        v /= sigma
    return sigma


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="an SRGAN run folder with the paper's discriminator")
    parser.add_argument("--steps", required=True, help="comma-separated checkpoint steps")
    parser.add_argument("--data", required=True, help="training images")
    parser.add_argument("--batches", type=int, default=2)
    args = parser.parse_args()

    config = TrainConfig.from_dict(json.loads((args.run / "config.json").read_text()))
    generator = Generator(config.scale, config.num_blocks, config.channels)
    discriminator = make_discriminator(config.discriminator, config.crop)
    modules = {"generator": generator, "discriminator": discriminator}
    batches = training_batches(args.data, config.batch_size, config.crop, config.scale, args.batches)
    for step in (int(s) for s in args.steps.split(",")):
        checkpoint.load_modules(args.run / "checkpoints" / f"step_{step:08d}", modules)
        real, fake = [], []
        for lr, hr in batches:
            with kernels.unfused():
                judged = _discriminate(discriminator, hr, generator(lr), config.d_batch == "joint")
            real.append(np.array(judged[0]).ravel())
            fake.append(np.array(judged[1]).ravel())
        real, fake = np.concatenate(real), np.concatenate(fake)
        sigma = largest_singular_value(np.array(discriminator.fc1.weight))
        print(
            f"step {step}: logits real {real.mean():+.1f} (spread {real.std():.1f}), fake {fake.mean():+.1f} "
            f"(spread {fake.std():.1f}); real above the fakes' mean {np.mean(real > fake.mean()):.2f}, fake below "
            f"the reals' mean {np.mean(fake < real.mean()):.2f}; first dense layer's largest singular value {sigma:.2f}"
        )


if __name__ == "__main__":
    main()
