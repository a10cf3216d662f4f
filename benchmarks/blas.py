"""What the optimized BLAS buys MLX on Linux: sgemm GFLOP/s and one SRResNet training step, with and without it.

    python benchmarks/blas.py                  # 1 warm-up + 2 timed steps per side
    python benchmarks/blas.py --steps 3 --warmup 2

Runs two child processes of this script: one with ``SRGAN_MLX_BLAS=none`` (MLX keeps
the reference BLAS bundled in the ``mlx[cpu]`` wheel, see ``srgan_mlx/native/libraries.py``), one
with the default (``import srgan_mlx`` loads its oneDNN sgemm, or MKL, before MLX). Each
reports the BLAS that resolves ``cblas_sgemm``, the GFLOP/s of a 1024x1024x1024 float32
matmul, and the median time of an SRResNet training step (``Generator()``,
``SRResNetStep`` with Adam 1e-4, 24->96 px, batch 16). The reference-BLAS step takes
about a minute on a 2-core machine, hence the small default step count.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(args) -> None:
    sys.path.insert(0, str(ROOT))  # this checkout's srgan_mlx
    import srgan_mlx  # noqa: F401 -- before mlx: loads the optimized BLAS unless SRGAN_MLX_BLAS=none
    from srgan_mlx.native.libraries import active_blas

    import mlx.core as mx
    import mlx.optimizers as optim
    import numpy as np

    from srgan_mlx.networks.generator import Generator
    from srgan_mlx.training.steps import SRResNetStep

    n = 1024
    a, b = mx.random.normal((n, n)), mx.random.normal((n, n))
    mx.eval(a, b, a @ b)
    times = []
    deadline = time.perf_counter() + args.gemm_seconds
    while len(times) < 3 or (time.perf_counter() < deadline and len(times) < 50):
        start = time.perf_counter()
        mx.eval(a @ b)
        times.append(time.perf_counter() - start)
    gflops = 2 * n**3 / statistics.median(times) / 1e9

    rng = np.random.default_rng(0)
    lr = mx.array(rng.random((args.batch, 24, 24, 3), dtype=np.float32))
    hr = mx.array(rng.random((args.batch, 96, 96, 3), dtype=np.float32) * 2 - 1)
    step = SRResNetStep(Generator(), optim.Adam(1e-4))
    steps = []
    for i in range(args.warmup + args.steps):
        start = time.perf_counter()
        out = step(lr, hr)
        mx.eval(out, step.state)
        elapsed = time.perf_counter() - start
        print(f"  {'warm-up' if i < args.warmup else 'step'} {elapsed:.2f} s", file=sys.stderr, flush=True)
        if i >= args.warmup:
            steps.append(elapsed)
    print(json.dumps({"blas": active_blas(), "sgemm_gflops": gflops, "step_s": steps,
                      "step_median_s": statistics.median(steps)}))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=2, help="timed SRResNet steps per side (default 2)")
    p.add_argument("--warmup", type=int, default=1, help="untimed first steps (compilation), default 1")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--gemm-seconds", type=float, default=3.0, help="time spent on the sgemm measurement")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0
    if args.steps < 1:
        p.error("--steps must be at least 1")
    rows = []
    for label, blas in (("reference BLAS (mlx[cpu] wheel, SRGAN_MLX_BLAS=none)", "none"), ("optimized BLAS (default)", None)):
        env = dict(os.environ)
        env.pop("SRGAN_MLX_BLAS", None)
        if blas:
            env["SRGAN_MLX_BLAS"] = blas
        print(f"{label}:", file=sys.stderr, flush=True)
        command = [sys.executable, str(Path(__file__).resolve()), "--child", "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--batch", str(args.batch), "--gemm-seconds", str(args.gemm_seconds)]
        proc = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        if proc.returncode:
            print(f"  failed (exit {proc.returncode})", file=sys.stderr)
            rows.append((label, None))
            continue
        rows.append((label, json.loads(proc.stdout.strip().splitlines()[-1])))
    threads = os.environ.get("MKL_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or f"default ({os.cpu_count()} CPUs)"
    print(f"\nSRResNet training step: batch {args.batch}, 24->96 px, median of {args.steps} after {args.warmup} "
          f"warm-up; sgemm 1024x1024x1024 float32; BLAS threads: {threads}\n")
    print("| MLX BLAS | library | sgemm GFLOP/s | SRResNet step s |")
    print("|---|---|---|---|")
    for label, r in rows:
        if r is None:
            print(f"| {label} | failed | | |")
        else:
            print(f"| {label} | `{r['blas']}` | {r['sgemm_gflops']:.1f} | {r['step_median_s']:.2f} |")
    if all(r for _, r in rows):
        ref, opt = rows[0][1], rows[1][1]
        print(f"\nspeed-up: sgemm x{opt['sgemm_gflops'] / ref['sgemm_gflops']:.1f}, "
              f"step x{ref['step_median_s'] / opt['step_median_s']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
