"""How long a run's SRGAN step takes in this process's environment (threads, OpenMP wait settings).

    GOMP_SPINCOUNT=0 python experiments/step_time.py runs/RUN --vgg vgg19.safetensors --data DATA/train
    python experiments/step_time.py runs/RUN --vgg vgg19.safetensors --data DATA/train

The run's latest full checkpoint is loaded into its step (as :mod:`bf16_step` does) with ``--bf16`` (default: the
run's own), which trains ``--rounds`` steps on 4 batches in turn after 2 warm-up steps; prints the median and every
time, with the OpenMP settings libgomp was given. Run the settings to compare in alternating processes: an
environment variable that libgomp reads is read once, when importing ``srgan_mlx`` loads it.
"""

from __future__ import annotations

import argparse
import os
import statistics

import this_checkout  # noqa: F401  (first: this checkout's srgan_mlx, its BLAS before mlx)
from bf16_step import load_run, parts_for, step_seconds
from srgan_mlx.heap import keep_freed_memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run folder or checkpoint (a full checkpoint: the discriminator is needed)")
    parser.add_argument("--vgg", required=True, help="VGG19 weights (the run's recipe reads them)")
    parser.add_argument("--data", required=True, help="training images")
    parser.add_argument("--bf16", default=None, help="the --bf16 networks (default: the run's)")
    parser.add_argument("--rounds", type=int, default=6, help="timed steps")
    args = parser.parse_args()
    keep_freed_memory()  # as `srgan-mlx train` runs

    found, state, config, batches = load_run(args.run, args.vgg, args.data, 4)
    bf16 = config.bf16 if args.bf16 is None else args.bf16
    step = parts_for(config, bf16, found).train_step
    times = [step_seconds(step, *batches[round_ % len(batches)]) for round_ in range(args.rounds + 2)][2:]
    settings = " ".join(f"{name}={os.environ.get(name, '(unset)')}" for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"))
    print(f"{found} (step {state['step']}), --bf16 {bf16 or '(float32)'}, {settings}: "
          f"median {statistics.median(times):.3f} s ({' '.join(f'{t:.2f}' for t in times)})")


if __name__ == "__main__":
    main()
