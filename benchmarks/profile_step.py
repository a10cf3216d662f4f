"""Where the CPU time of a workload goes: convolutions, the native kernels, MLX's element-wise work, reductions, copies.

    python benchmarks/profile_step.py b_srresnet b_srgan c --steps 5

Each workload of ``benchmarks/common.py`` runs in a process of its own under Linux ``perf record`` (sampling
every thread at 999 Hz), once with the native kernels (``SRGAN_MLX_KERNELS=1``, the default) and once with MLX's
own operations for the work between the convolutions (``SRGAN_MLX_KERNELS=0``); the warm-up steps are not
sampled. Samples are sorted into categories by the library and function they fall in, and reported as CPU
milliseconds per step (all threads together: with N threads, work that runs on all of them costs N x its wall
time) beside the wall time per step. Needs ``perf`` (Debian: ``linux-perf``) and a kernel that lets it sample.
Writes ``<out>/profile.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
FREQUENCY = 999

CATEGORIES = [  # (name, pattern on "dso symbol"), first match wins
    ("convolutions, sgemm (oneDNN)", r"^\[JIT\]|libdnnl|libsrgan_sgemm"),
    ("native kernels (BN, activations, pooling, Adam)", r"^_ext"),
    ("MLX compiled element-wise", r"^lib[A-Z][A-Za-z0-9_]*\.so"),
    ("MLX reductions", r"^libmlx\.so .*[Rr]educ"),
    ("MLX element-wise", r"^libmlx\.so .*(binary|unary|ternary|Binary|Unary|Ternary)"),
    ("MLX copies (transpose, pad, concat)", r"^libmlx\.so .*(copy|Copy|slice|Slice|concat|pad)"),
    ("MLX graph and other", r"^libmlx\.so"),
    ("kernel (page faults, zeroing, scheduling)", r"^\[kernel"),
    ("OpenMP runtime", r"^libgomp"),
    ("Python, allocator, other", r""),
]

WORKER = """
import sys, time
sys.path.insert(0, {here!r})
import mlx_workloads as mw
from common import WORKLOADS
spec = WORKLOADS[{name!r}]
w = mw.build(spec, spec.batch)
for _ in range(2):
    w.step()
print("warm", flush=True)
sys.stdin.readline()
t = time.perf_counter()
for _ in range({steps}):
    w.step()
print((time.perf_counter() - t) / {steps}, flush=True)
"""


def profile(name: str, steps: int, kernels: str, threads: int) -> dict:
    """Run ``name`` under perf after its warm-up; CPU ms per step per category, and the wall time per step."""
    env = {**os.environ, "SRGAN_MLX_KERNELS": kernels, "OMP_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "perf.data"
        worker = subprocess.Popen([sys.executable, "-c", WORKER.format(here=str(HERE), name=name, steps=steps)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
        assert worker.stdout.readline().strip() == "warm"
        perf = subprocess.Popen(["perf", "record", "-F", str(FREQUENCY), "-p", str(worker.pid), "-o", str(data)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        worker.stdin.write("go\n")
        worker.stdin.flush()
        wall = float(worker.stdout.readline())
        worker.wait()
        perf.wait()
        report = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", "dso,sym", "-F",
                                 "sample,dso,sym", "--stdio", "-q"], capture_output=True, text=True).stdout  # fmt: skip
    totals: dict[str, float] = defaultdict(float)
    for line in report.splitlines():
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].isdigit():
            continue
        samples, rest = int(parts[0]), " ".join(parts[1:])
        rest = re.sub(r"\[\.\]\s*|\[k\]\s*", "", rest)
        category = next(c for c, pattern in CATEGORIES if re.search(pattern, rest))
        totals[category] += samples * 1000 / FREQUENCY / steps
    return {"wall_ms": wall * 1000, "cpu_ms": dict(totals)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workloads", nargs="+")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if not shutil.which("perf"):
        sys.exit("perf is not installed (Debian: apt-get install linux-perf)")
    results = {}
    for name in args.workloads:
        results[name] = {label: profile(name, args.steps, flag, args.threads)
                         for label, flag in (("mlx ops", "0"), ("native kernels", "1"))}  # fmt: skip
        print(json.dumps({name: results[name]}), file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "profile.json").write_text(json.dumps({"threads": args.threads, "results": results}, indent=1))
    for name, runs in results.items():
        print(f"\n{name}, {args.threads} threads: CPU ms per step (all threads), wall ms per step\n")
        print("| category | " + " | ".join(runs) + " |")
        print("|---|" + "---|" * len(runs))
        for category, _ in CATEGORIES:
            print(f"| {category} | " + " | ".join(f"{r['cpu_ms'].get(category, 0):.0f}" for r in runs.values()) + " |")
        print("| **wall time per step** | " + " | ".join(f"**{r['wall_ms']:.0f}**" for r in runs.values()) + " |")


if __name__ == "__main__":
    main()
