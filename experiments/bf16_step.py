"""What bfloat16 does to a run's SRGAN step: its gradients against float32's, and the step's time.

    python experiments/bf16_step.py runs/RUN --vgg vgg19.safetensors --data DATA/train --rounds 7

The run's latest checkpoint (generator, discriminator, optimizers, moving average) is loaded into the run's step
built with each ``--bf16`` setting below: float32, then the convolutions of VGG19, of VGG19 and the
discriminator, and of all three networks multiplying in bfloat16 (sums in float32; oneDNN's bfloat16 kernels
where the processor has AVX512-BF16 or AMX, float32 where it has not). On the same training batches, each
setting's gradients (what the step hands Adam, for the generator and for the discriminator) are compared with
float32's: the cosine over all parameters, the ratio of norms and the lowest per-array cosine. Then the steps run
in turn, ``--rounds`` times after one warm-up each (every one trains its own copy from the same checkpoint), and
the medians are printed with their ratios to float32. Writes ``<out>/bf16_step.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import statistics
import time
from pathlib import Path

import this_checkout  # noqa: F401  (first: this checkout's srgan_mlx, its BLAS before mlx)
import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten
from srgan_mlx.atomic import write_text
from srgan_mlx.files.run_folder import find_checkpoint
from srgan_mlx.heap import keep_freed_memory
from srgan_mlx.native import onednn
from srgan_mlx.native.loader import extension
from srgan_mlx.training import checkpoint
from srgan_mlx.training.config import TrainConfig
from srgan_mlx.training.data import BatchLoader, BatchSampler, DataSet
from srgan_mlx.training.training_parts import OPTIMIZES, build

SETTINGS = ("", "vgg", "vgg,discriminator", "vgg,discriminator,generator")
"""The ``--bf16`` settings measured; the first, float32, is the reference."""


def load_run(run: str, vgg: str, data: str, batches: int):
    """An SRGAN run's latest full checkpoint, its state, its config reading ``vgg`` and ``data``, and its first
    ``batches`` training batches (as ``mx.array`` pairs: LR, HR)."""
    found = find_checkpoint(run)
    state = checkpoint.read_state(found)
    config = TrainConfig.from_dict({**state["config"], "vgg": vgg, "data": [data], "val": None})
    if config.stage != "srgan":
        raise SystemExit(f"{found}: an SRResNet-stage run; these experiments measure the SRGAN step")
    images = DataSet.scan(config.data, config.crop)
    loader = BatchLoader(images, BatchSampler(len(images.files), config.batch_size, 1), config.crop, config.scale)
    pairs = [tuple(map(mx.array, loader.next())) for _ in range(batches)]
    loader.close()
    return found, state, config, pairs


def step_seconds(step, lr: mx.array, hr: mx.array) -> float:
    """Seconds one training ``step`` takes on a batch, its updates evaluated."""
    started = time.perf_counter()
    mx.eval(step(lr, hr), step.state)
    return time.perf_counter() - started


def parts_for(config: TrainConfig, bf16: str, found: Path):
    """The run's parts with ``--bf16 bf16``, holding the checkpoint's weights and optimizer states."""
    parts = build(dataclasses.replace(config, bf16=bf16))
    checkpoint.load_modules(found, parts.modules)
    for key, optimizer in parts.optimizers.items():
        checkpoint.load_optimizer(found, key, optimizer, parts.modules[OPTIMIZES[key]].trainable_parameters())
    return parts


def shown(bf16: str) -> str:
    return bf16 or "float32"


def flat(grads: dict) -> dict[str, np.ndarray]:
    return {name: np.asarray(value, dtype=np.float64).ravel() for name, value in tree_flatten(grads)}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def compare(reference: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> dict:
    """Cosine over all parameters, norm ratio, and the lowest per-array cosine (and its array) among the arrays
    whose float32 gradient is at least 1e-4 of the largest one's norm: the biases of convolutions followed by
    BatchNorm have a gradient of zero but for rounding, whose direction means nothing."""
    whole_ref = np.concatenate(list(reference.values()))
    whole = np.concatenate([other[name] for name in reference])
    norms = {name: np.linalg.norm(value) for name, value in reference.items()}
    floor = 1e-4 * max(norms.values())
    layers = {name: cosine(reference[name], other[name]) for name in reference if norms[name] >= floor}
    worst = min(layers, key=layers.get)
    return {
        "cosine": cosine(whole_ref, whole),
        "lowest_layer_cosine": layers[worst],
        "lowest_layer": worst,
        "norm_ratio": float(np.linalg.norm(whole) / np.linalg.norm(whole_ref)),
        "arrays_left_out": sorted(set(reference) - set(layers)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run folder or checkpoint (a full checkpoint: the discriminator is needed)")
    parser.add_argument("--vgg", required=True, help="VGG19 weights (the run's recipe reads them)")
    parser.add_argument("--data", required=True, help="training images")
    parser.add_argument("--batches", type=int, default=4, help="batches the gradients are compared on")
    parser.add_argument("--rounds", type=int, default=7, help="timed steps of each setting (0: gradients only)")
    parser.add_argument("--out", type=Path, default=this_checkout.RESULTS)
    args = parser.parse_args()
    keep_freed_memory()  # as `srgan-mlx train` runs (without it the kernel's page faults add ~1 s a step here)

    found, state, config, batches = load_run(args.run, args.vgg, args.data, args.batches)
    parts = {bf16: parts_for(config, bf16, found) for bf16 in SETTINGS}

    sums = {bf16: {} for bf16 in SETTINGS}
    for lr, hr in batches:
        for bf16 in SETTINGS:
            for network, grads in parts[bf16].train_step.gradients(lr, hr).items():
                total = sums[bf16].setdefault(network, {})
                for name, value in flat(grads).items():
                    total[name] = total.get(name, 0) + value
    agreement = {
        shown(bf16): {network: compare(sums[""][network], sums[bf16][network]) for network in sums[""]}
        for bf16 in SETTINGS[1:]
    }  # fmt: skip

    times = {shown(bf16): [] for bf16 in SETTINGS}
    for round_ in range(args.rounds + 1 if args.rounds else 0):
        for bf16 in SETTINGS:
            seconds = step_seconds(parts[bf16].train_step, *batches[round_ % len(batches)])
            if round_:
                times[shown(bf16)].append(seconds)
    medians = {name: statistics.median(values) if values else math.nan for name, values in times.items()}

    lines = [line for line in extension().implementations().splitlines() if " bf16:" in line]
    result = {
        "checkpoint": str(found),
        "step": state["step"],
        "processor": mx.device_info(mx.cpu).get("device_name") or platform.machine(),
        "batches": args.batches,
        "agreement": agreement,
        "seconds": times,
        "median_seconds": medians,
        "ratio_to_float32": {name: medians[name] / medians["float32"] for name in medians},
        "bf16_primitives": len(lines),
        "bf16_primitives_multiplying_in_bfloat16": sum(map(onednn.ran_in_bfloat16, lines)),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_text(args.out / "bf16_step.json", json.dumps(result, indent=1, default=str))
    print(f"oneDNN: {result['bf16_primitives_multiplying_in_bfloat16']} of {len(lines)} bfloat16-requested primitives "
          "multiply in bfloat16")
    print(f"{found} (step {state['step']}), gradients summed over {args.batches} batches of {config.batch_size}:")
    print("| --bf16 | generator: cosine with float32, norm ratio, lowest array | discriminator: the same | step s "
          "(median) | x float32 |")
    print("|---|---|---|---|---|")
    for name, median in medians.items():
        cells = [
            f"{a['cosine']:.5f}, {a['norm_ratio']:.4f}, {a['lowest_layer_cosine']:.4f} ({a['lowest_layer']})"
            for a in agreement.get(name, {}).values()
        ] or ["1", "1"]  # fmt: skip
        print(f"| {name} | {' | '.join(cells)} | {median:.3f} | {result['ratio_to_float32'][name]:.2f} |")


if __name__ == "__main__":
    main()
