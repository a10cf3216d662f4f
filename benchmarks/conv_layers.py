"""Per-layer convolution speed on the CPU: mx.conv2d, the CPU-tuned forms and oneDNN, forward and both gradients.

    python benchmarks/conv_layers.py                 # 2 threads, best of 5 after 1 warm-up
    python benchmarks/conv_layers.py --threads 1 --reps 5 --json benchmarks/results/conv_layers.json

Each row is one layer kind of the three networks at the batch the benchmark workloads use
(``benchmarks/common.py``: SRResNet/SRGAN steps at batch 16, the discriminator on 32 images,
inference of one 256x256 image). Each path is ``srgan_mlx.networks.layers.Conv2d`` under
``SRGAN_MLX_CONV=mlx|tuned|onednn``, i.e. exactly what the networks run. Passes:
``fwd`` the output, ``bwd-data`` the input gradient alone, ``bwd-weights`` the weight
gradient alone (MLX evaluates only what is asked for). Numbers are GFLOP/s of the
convolution's 2*N*Ho*Wo*Cout*k*k*Cin multiply-adds, from the fastest of ``--reps`` runs (on a
shared machine the fastest run is the one least disturbed by other processes; trust the ratios
within one run); ``-`` where mx.conv2d's im2col matrix would exceed 1 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (network, what, batch, size, in channels, out channels, kernel, stride)
LAYERS = [
    ("G", "9x9 head", 16, 24, 3, 64, 9, 1),
    ("G", "3x3 residual body", 16, 24, 64, 64, 3, 1),
    ("G", "3x3 upsampling 1", 16, 24, 64, 256, 3, 1),
    ("G", "3x3 upsampling 2", 16, 48, 64, 256, 3, 1),
    ("G", "9x9 tail", 16, 96, 64, 3, 9, 1),
    ("D", "3x3 first layer", 32, 96, 3, 64, 3, 1),
    ("D", "3x3 stride 2", 32, 96, 64, 64, 3, 2),
    ("D", "3x3 stride 1", 32, 48, 64, 128, 3, 1),
    ("D", "3x3 stride 2", 32, 12, 512, 512, 3, 2),
    ("VGG", "conv1_2", 16, 96, 64, 64, 3, 1),
    ("VGG", "conv2_2", 16, 48, 128, 128, 3, 1),
    ("VGG", "conv3_x", 16, 24, 256, 256, 3, 1),
    ("VGG", "conv4_x", 16, 12, 512, 512, 3, 1),
    ("VGG", "conv5_x", 16, 6, 512, 512, 3, 1),
    ("G inference", "3x3 residual body", 1, 256, 64, 64, 3, 1),
    ("G inference", "3x3 upsampling 2", 1, 512, 64, 256, 3, 1),
    ("G inference", "9x9 tail", 1, 512, 64, 3, 9, 1),
]
PATHS = ("mlx", "tuned", "onednn")
PASSES = ("fwd", "bwd-data", "bwd-weights")
IM2COL_LIMIT = 1 << 30


def measure(layer, path: str, reps: int) -> dict[str, float | None]:
    import mlx.core as mx

    from srgan_mlx.networks import layers

    _, _, n, size, cin, cout, k, stride = layer
    if path == "mlx" and n * size * size * k * k * cin * 4 > IM2COL_LIMIT:
        return dict.fromkeys(PASSES)
    os.environ["SRGAN_MLX_CONV"] = path
    conv = layers.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)
    x = mx.random.normal((n, size, size, cin))
    y = conv(x)
    g = mx.random.normal(y.shape)
    mx.eval(conv.parameters(), x, g)
    flops = 2 * y.size * k * k * cin

    def bwd_data():
        return mx.vjp(lambda x: conv(x), [x], [g])[1][0]

    def bwd_weights():
        def of_weight(w):
            conv.weight = w
            return conv(x)

        weight = conv.weight
        dw = mx.vjp(of_weight, [weight], [g])[1][0]
        conv.weight = weight
        return dw

    results = {}
    for name, fn in zip(PASSES, (lambda: conv(x), bwd_data, bwd_weights)):
        mx.eval(fn())
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            mx.eval(fn())
            times.append(time.perf_counter() - start)
        results[name] = flops / min(times) / 1e9
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    sys.path.insert(0, str(ROOT))
    import srgan_mlx  # noqa: F401  (before mlx: libdnnl, the BLAS)
    import mlx.core as mx

    from srgan_mlx import native as onednn

    mx.set_default_device(mx.cpu)
    paths = PATHS if onednn.extension() else PATHS[:2]
    if not onednn.extension():
        print(f"oneDNN extension unavailable ({onednn.unavailable_reason()}): mlx and tuned only", file=sys.stderr)
    print(f"GFLOP/s, {args.threads} threads, best of {args.reps}; CPU: {cpu_name()}\n")
    print("| network | layer | N x H x W, Cin->Cout | pass | " + " | ".join(
        {"mlx": "mx.conv2d", "tuned": "tuned", "onednn": "oneDNN"}[p] for p in paths) + " | oneDNN / mx.conv2d |")
    print("|---|---|---|---|" + "---|" * (len(paths) + 1))
    rows = []
    for layer in LAYERS:
        by_path = {path: measure(layer, path, args.reps) for path in paths}
        net, what, n, size, cin, cout, k, stride = layer
        stride_note = f", stride {stride}" if stride > 1 else ""
        for name in PASSES:
            values = [by_path[p][name] for p in paths]
            cells = ["-" if v is None else f"{v:.0f}" for v in values]
            ratio = (by_path.get("onednn", {}).get(name) or 0) / by_path["mlx"][name] if by_path["mlx"][name] else None
            print(f"| {net} | {what} | {n}x{size}x{size}, {cin}->{cout}{stride_note} | {name} | "
                  + " | ".join(cells) + f" | {'-' if ratio is None else f'{ratio:.1f}x'} |", flush=True)
            rows.append({"network": net, "layer": what, "batch": n, "size": size, "in": cin, "out": cout,
                         "kernel": k, "stride": stride, "pass": name, **{p: by_path[p][name] for p in paths}})
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"threads": args.threads, "cpu": cpu_name(), "gflops": rows}, indent=1))


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line for line in info if line.startswith("flags")), "")
        with open("/proc/cpuinfo") as info:
            model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
    except OSError:
        return "unknown"
    vector = "AVX-512" if " avx512f" in flags else "AVX2" if " avx2" in flags else "no AVX2"
    return f"{model} ({vector})"


if __name__ == "__main__":
    main()
