"""Does a perceptual loss push the generator's period-4 grid? Per VGG19 layer, on training crops.

For each layer of ``--vgg-layers`` (and their weighted sum, ``all``) and each of ``--batches`` batches of random
crops: the descent direction of the layer's L1 term with respect to the SR output (minus its gradient) and its fixed
sub-pixel pattern (:func:`srgan_mlx.training.losses.subpixel_pattern` over the whole crop, averaged over the
batch). Printed: the norm of that pattern averaged over the batches, ``consistency`` (the norm of the average
over the norms' average: 1 when every batch pushes the same pattern, which Adam then grows step after step, ~0
when the pushes cancel), and ``cos`` between the average push and the grid the generator already prints
(the pattern of SR - HR): positive, the term grows it; negative, it shrinks it.

    python experiments/grid_push.py srresnet --vgg vgg19.safetensors --data DATA/train
"""

from __future__ import annotations

import argparse

import this_checkout  # noqa: F401  (first: this checkout's srgan_mlx, its BLAS before mlx)
import mlx.core as mx
import numpy as np

from srgan_mlx.files.model_io import load_generator, load_vgg
from srgan_mlx.networks import kernels
from srgan_mlx.training.data import BatchLoader, BatchSampler, DataSet
from srgan_mlx.training.losses import PerceptualLoss, layer_weights, subpixel_pattern

LDL_LAYERS = "conv1_2:0.1,conv2_2:0.1,conv3_4:1,conv4_4:1,conv5_4:1"


def pattern(images: mx.array, scale: int) -> np.ndarray:
    """The batch's mean sub-pixel pattern, ``(scale, scale, channels)``."""
    return np.array(subpixel_pattern(images, scale).mean(axis=(0, 1, 3)))


def training_batches(folder: str, batch_size: int, crop: int, scale: int, count: int) -> list[tuple[mx.array, ...]]:
    """``count`` (LR, HR) batches of training crops from ``folder``, the same ones on every call (sampler seed 7)."""
    data = DataSet.scan([folder], crop)
    loader = BatchLoader(data, BatchSampler(len(data.files), batch_size, 7), crop, scale, workers=1)
    batches = [tuple(mx.array(a) for a in loader.next()) for _ in range(count)]
    loader.close()
    return batches


def summary(pushes: list[np.ndarray], grid: np.ndarray) -> str:
    """The average push's norm, its consistency over the batches and its cosine with ``grid``, in one line."""
    mean = np.mean(pushes, axis=0)
    consistency = np.linalg.norm(mean) / np.mean([np.linalg.norm(p) for p in pushes])
    cos = (mean * grid).sum() / (np.linalg.norm(mean) * np.linalg.norm(grid))
    return f"push {np.linalg.norm(mean):.2e}  consistency {consistency:.2f}  cos with the grid {cos:+.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("generator", help="a shipped model's name, a weights file or a checkpoint's generator")
    parser.add_argument("--vgg", required=True, help="VGG19 weights made by convert-vgg")
    parser.add_argument("--data", required=True, help="training images")
    parser.add_argument("--vgg-layers", default=LDL_LAYERS)
    parser.add_argument("--vgg-rescale", type=float, default=1 / 57.6)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--crop", type=int, default=96)
    args = parser.parse_args()

    generator = load_generator(args.generator).eval()
    scale = generator.scale
    vgg = load_vgg(args.vgg)
    batches = training_batches(args.data, args.batch_size, args.crop, scale, args.batches)
    with kernels.unfused():
        outputs = [generator(lr) for lr, _ in batches]
    grid = np.mean([pattern(sr - hr, scale) for sr, (_, hr) in zip(outputs, batches)], axis=0)
    print(f"{args.generator}: the grid it prints, mean |pattern of SR - HR| {np.abs(grid).mean() * 127.5:.3f} levels")
    weights = layer_weights(args.vgg_layers)
    for name, layers in [*((n, {n: w}) for n, w in weights.items()), ("all", weights)]:
        loss = PerceptualLoss(vgg, layers, "l1", args.vgg_rescale)
        pushes = []
        for sr, (_, hr) in zip(outputs, batches):
            with kernels.unfused():
                gradient = mx.grad(lambda s: loss(s, hr))(sr)
            pushes.append(-pattern(gradient, scale))
        print(f"{name:8s} {summary(pushes, grid)}")


if __name__ == "__main__":
    main()
