"""srgan-mlx against TensorFlow/Keras (and PyTorch, when installed) on the CPU, or against PyTorch CUDA on a GPU.

    python benchmarks/run.py                    # full CPU run
    python benchmarks/run.py --quick            # small batches, 2 repetitions: a smoke test
    python benchmarks/run.py --workloads a,c --frameworks mlx,tf --reps 7
    python benchmarks/run.py --device gpu       # MLX on the GPU vs PyTorch CUDA (fp32 and bf16 autocast)

Workloads (see ``common.WORKLOADS``): ``a`` the seed's SRGAN step (25->100, batch 10,
VGG relu3_4), ``b_srresnet`` / ``b_srgan`` the paper's steps (24->96, batch 16, VGG
relu5_4), ``c`` inference of one 256x256 image to 1024x1024, ``d_rrdbnet`` inference of ESRGAN's
RRDBNet (Real-ESRGAN's x4 shape) on one 64x64 image against PyTorch on the same weights.

Method: every (framework, workload) runs in a worker process of its own, which builds
the networks once, runs the warm-up steps (not timed in the results), then runs one
step per command from this process and reports its wall time. The workers of one
workload are started one after the other and then driven in alternation
(MLX, TF, torch, MLX, TF, torch, ...), so a slow phase of a shared machine hits every
framework alike; only one worker computes at any moment. Each worker reports its
peak RSS (``ru_maxrss``, which includes the framework import and the build) when it
exits. All workers get the same thread settings (``--threads``, default: the CPUs
this process may use): ``OMP_NUM_THREADS`` = ``MKL_NUM_THREADS`` = ``OPENBLAS_NUM_THREADS``
= N; TensorFlow intra-op N, inter-op 1; torch ``set_num_threads(N)``, interop 1; MLX
runs its other ops one at a time on its CPU stream; its convolutions and sgemm are oneDNN's, with N
OpenMP threads.

On a GPU (``--device gpu``) the frameworks are ``mlx`` (MLX's GPU backend), ``mlx-half``
(inference in float16), ``torch`` (CUDA fp32, ``cudnn.benchmark``) and ``torch-bf16`` (bfloat16
autocast and channels_last, what a PyTorch user would try); every step ends when the device
is done (``mx.eval``; ``torch.cuda.synchronize()``). The reference is the faster PyTorch
variant, and the ratio compares it with the faster MLX variant. Defaults there: 5 warm-up
steps, 20 repetitions. TensorFlow stays the CPU reference. ``mlx-bf16`` and ``tf-bf16`` (CPU, b_srgan, on
request with ``--frameworks``) run the paper's SRGAN step with the frozen VGG19 and the discriminator multiplying
in bfloat16 (``--bf16 vgg,discriminator``; Keras' ``mixed_bfloat16`` policy on those two networks, the generator
in float32 on both sides): worth it where the processor has AVX512-BF16 or AMX.

Output: a markdown table on stdout, ``<out>/latest.json`` and ``<out>/latest.png`` (CPU) or
``<out>/gpu.json`` and ``<out>/gpu.png`` (GPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from common import WORKLOADS, Spec  # noqa: E402

@dataclasses.dataclass(frozen=True)
class Framework:
    """One column: the module that builds its workloads, with build options; where and what it runs."""

    module: str
    label: str
    requires: str  # the Python package it needs
    options: tuple = ()  # keyword arguments for build()
    devices: tuple = ("cpu", "gpu")
    kinds: tuple = ("srgan", "srresnet", "inference")  # the workloads it runs, by kind or by name


ALL_KINDS = ("srgan", "srresnet", "inference", "rrdbnet")
"""What workloads do; the TensorFlow baseline (the seed's Keras model) has no RRDBNet."""
FRAMEWORKS = {
    "mlx": Framework("mlx_workloads", "srgan-mlx (MLX)", "mlx", kinds=ALL_KINDS),
    "mlx-half": Framework("mlx_workloads", "srgan-mlx (MLX, float16)", "mlx", (("half", True),), ("gpu",),
                          ("inference", "rrdbnet")),
    "tf": Framework("tf_baseline", "TensorFlow/Keras", "tensorflow", devices=("cpu",)),
    "torch": Framework("torch_baseline", "PyTorch", "torch", kinds=ALL_KINDS),
    "torch-bf16": Framework("torch_baseline", "PyTorch bf16 autocast, channels_last", "torch", (("bf16", True),),
                            ("gpu",), ALL_KINDS),
    # the SRGAN steps with VGG19 and D multiplying in bfloat16 on both sides (CPUs with AVX512-BF16 or AMX)
    "mlx-bf16": Framework("mlx_workloads", "srgan-mlx (MLX), VGG19 and D in bfloat16", "mlx", (("bf16", True),), ("cpu",),
                          ("b_srgan",)),
    "tf-bf16": Framework("tf_baseline", "TensorFlow/Keras, VGG19 and D mixed_bfloat16", "tensorflow", (("bf16", True),),
                         ("cpu",), ("b_srgan",)),
}
LABELS = {name: framework.label for name, framework in FRAMEWORKS.items()}


# ------------------------------------------------------------------ worker


def worker(framework: str, spec: Spec, batch: int, warmup: int, threads: int, device: str) -> None:
    """Build, warm up, then time one step per 'step' line on stdin; JSON lines on the real stdout."""
    import resource

    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the frameworks print goes to the log, not into the protocol

    def send(**message):
        proto.write(json.dumps(message) + "\n")

    def rss() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

    sys.path.insert(0, str(ROOT))  # benchmark this checkout's srgan_mlx
    chosen = FRAMEWORKS[framework]
    module = __import__(chosen.module)
    module.configure_threads(threads)
    if device != "cpu":
        module.use_device(device)
    rss_import = rss()
    start = time.perf_counter()
    workload = module.build(spec, batch, **dict(chosen.options))
    build_s = time.perf_counter() - start
    warm = []
    for _ in range(warmup):
        start = time.perf_counter()
        workload.step()
        warm.append(time.perf_counter() - start)
    send(event="ready", params=workload.params, build_s=build_s, warmup_s=warm, notes=workload.notes,
         versions=module.versions(), images=workload.images)
    for line in sys.stdin:
        if line.strip() != "step":
            break
        start = time.perf_counter()
        workload.step()
        send(event="time", seconds=time.perf_counter() - start)
    extra = workload.extra() if workload.extra else {}
    send(event="done", peak_rss_bytes=rss(), rss_after_import_bytes=rss_import, extra=extra)


class Worker:
    """The parent's handle on one worker process."""

    def __init__(self, framework: str, spec: Spec, batch: int, args, log_dir: Path):
        self.framework = framework
        self.log_path = log_dir / f"{spec.name}_{framework}.log"
        env = dict(os.environ)
        n = str(args.threads)
        env.update(OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n,
                   TF_NUM_INTRAOP_THREADS=n, TF_NUM_INTEROP_THREADS="1",
                   TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow", PYTHONUNBUFFERED="1")
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", framework,
                   "--spec", json.dumps(dataclasses.asdict(spec)), "--batch", str(batch),
                   "--warmup", str(args.warmup), "--threads", n, "--device", args.device]
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     text=True, bufsize=1, env=env, cwd=ROOT)

    def receive(self, event: str) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-15:]
            raise RuntimeError(f"{self.framework} worker exited ({self.proc.returncode}):\n  " + "\n  ".join(tail))
        message = json.loads(line)
        if message.get("event") != event:
            raise RuntimeError(f"{self.framework} worker: expected {event}, got {message}")
        return message

    def step(self) -> float:
        self.proc.stdin.write("step\n")
        self.proc.stdin.flush()
        return self.receive("time")["seconds"]

    def finish(self) -> dict:
        self.proc.stdin.write("done\n")
        self.proc.stdin.flush()
        message = self.receive("done")
        self.proc.wait()
        self.log.close()
        return message

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# ------------------------------------------------------------------ parent


def machine_info(threads: int) -> dict:
    model, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        model = platform.processor() or "unknown"
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    packages = {}
    for dist in ("mlx", "mlx-cpu", "tensorflow-cpu", "tensorflow", "keras", "torch", "numpy", "mkl", "onednn-cpu-gomp"):
        try:
            packages[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return {
        "cpu": model, "avx512": "avx512f" in flags, "avx2": "avx2" in flags, "cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_bytes": mem, "platform": platform.platform(), "python": platform.python_version(),
        "packages": packages, "threads": threads,
        "thread_settings": f"OMP/MKL/OPENBLAS_NUM_THREADS={threads}; TF intra-op {threads}, inter-op 1; "
                           f"torch set_num_threads({threads}), interop 1; MLX: ops in sequence, {threads}-thread BLAS",
    }


def summarize(times: list[float], images: int) -> dict:
    median = statistics.median(times)
    return {"median_s": median, "min_s": min(times), "max_s": max(times), "images_per_s": images / median}


def run_workload(spec: Spec, batch: int, frameworks: list[str], args, log_dir: Path) -> dict:
    result = {"title": spec.title, "spec": dataclasses.asdict(spec), "batch": batch, "frameworks": {}}
    workers: dict[str, Worker] = {}
    for fw in frameworks:  # build and warm up one at a time
        print(f"[{spec.name}] {fw}: building and warming up ({args.warmup} step(s)) ...", file=sys.stderr, flush=True)
        w = Worker(fw, spec, batch, args, log_dir)
        try:
            ready = w.receive("ready")
        except RuntimeError as exc:
            w.kill()
            print(f"[{spec.name}] {fw} failed: {exc}", file=sys.stderr)
            result["frameworks"][fw] = {"error": str(exc)}
            continue
        workers[fw] = w
        result["frameworks"][fw] = {key: ready[key] for key in ("params", "build_s", "warmup_s", "notes", "versions")}
        result["frameworks"][fw]["times_s"] = []
        print(f"[{spec.name}] {fw}: build {ready['build_s']:.1f} s, warm-up "
              + ", ".join(f"{t:.2f}" for t in ready["warmup_s"]) + " s", file=sys.stderr, flush=True)
    start = time.perf_counter()
    for rep in range(args.reps):
        if rep >= args.min_reps and args.budget_s and time.perf_counter() - start > args.budget_s:
            print(f"[{spec.name}] time budget reached after {rep} repetitions", file=sys.stderr)
            break
        for fw, w in list(workers.items()):  # A B A B ...
            try:
                seconds = w.step()
            except (RuntimeError, BrokenPipeError) as exc:
                w.kill()
                del workers[fw]
                result["frameworks"][fw]["error"] = str(exc)
                print(f"[{spec.name}] {fw} failed: {exc}", file=sys.stderr)
                continue
            result["frameworks"][fw]["times_s"].append(seconds)
            print(f"[{spec.name}] rep {rep + 1} {fw}: {seconds:.3f} s", file=sys.stderr, flush=True)
    for fw, w in workers.items():
        try:
            done = w.finish()
        except (RuntimeError, BrokenPipeError) as exc:
            w.kill()
            result["frameworks"][fw]["error"] = str(exc)
            continue
        entry = result["frameworks"][fw]
        entry.update(peak_rss_bytes=done["peak_rss_bytes"], rss_after_import_bytes=done["rss_after_import_bytes"],
                     extra=done["extra"])
        if entry["times_s"]:
            entry.update(summarize(entry["times_s"], batch))
    result.update(ratios(result["frameworks"]))
    return result


def ratios(frameworks: dict) -> dict:
    """Throughput ratios of the fastest MLX variant over TF and over the fastest PyTorch variant (above 1: MLX wins)."""

    def fastest(family: str) -> str | None:
        timed = [n for n, e in frameworks.items() if n.split("-")[0] == family and "median_s" in e]
        return min(timed, key=lambda n: frameworks[n]["median_s"], default=None)

    ours = fastest("mlx")
    found = {}
    for family in ("tf", "torch"):
        theirs = fastest(family)
        if ours and theirs:
            found[f"ratio_mlx_over_{family}"] = frameworks[theirs]["median_s"] / frameworks[ours]["median_s"]
            found[f"ratio_mlx_over_{family}_between"] = [ours, theirs]
    return found


# ------------------------------------------------------------------ report


def _gib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**30:.2f}"


def reference(meta: dict) -> tuple[str, str]:
    """The ratio a table and chart show: (result key, column title); TF on the CPU, PyTorch on a GPU."""
    return ("ratio_mlx_over_torch", "MLX/PyTorch") if meta["device"] == "gpu" else ("ratio_mlx_over_tf", "MLX/TF")


def markdown(results: dict, meta: dict) -> str:
    key, title = reference(meta)
    # on the CPU, PyTorch's ratio gets a column of its own beside TensorFlow's
    extra = key != "ratio_mlx_over_torch" and any("ratio_mlx_over_torch" in r for r in results.values())
    gpu = f"GPU: {meta['gpu']}; " if meta.get("gpu") else ""
    unit, factor = ("ms", 1000) if meta["device"] == "gpu" else ("s", 1)
    lines = [
        gpu + f"Machine: {meta['machine']['cpu']}{' (AVX-512)' if meta['machine'].get('avx512') else ''}, "
        f"{meta['machine']['cpus_usable']} CPUs, "
        f"{_gib(meta['machine']['memory_bytes'])} GiB; {meta['machine']['platform']}; "
        + ", ".join(f"{k} {v}" for k, v in meta["machine"]["packages"].items()),
        f"Threads: {meta['machine']['thread_settings']}. MLX BLAS: {meta.get('mlx_blas', '?')}.",
        f"{'QUICK run (small batches, not comparable with full runs). ' if meta['quick'] else ''}"
        f"Warm-up {meta['warmup']} step(s) excluded; repetitions alternate between frameworks; "
        f"load average at start {meta['loadavg_start']}, end {meta['loadavg_end']}.",
        "",
        f"| Workload | Batch | Framework | {unit}/step median | min-max | images/s | peak RSS GiB | {title} |"
        + (" MLX/PyTorch |" if extra else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if extra else ""),
    ]
    for name, r in results.items():
        first = True
        for fw, e in r["frameworks"].items():
            label = LABELS[fw]
            wl = f"{name}: {r['title']}" if first else ""
            batch = str(r["batch"]) if first else ""
            if "median_s" not in e:
                lines.append(f"| {wl} | {batch} | {label} | failed | | | {_gib(e.get('peak_rss_bytes'))} | |"
                             + (" |" if extra else ""))
            else:
                ratio = f"{r[key]:.2f}" if first and key in r else ""
                if extra:
                    torch = r.get("ratio_mlx_over_torch")
                    ratio += " | " + (f"{torch:.2f}" if first and torch else "")
                lines.append(
                    f"| {wl} | {batch} | {label} | {e['median_s'] * factor:.3f} "
                    f"| {e['min_s'] * factor:.3f}-{e['max_s'] * factor:.3f} "
                    f"| {e['images_per_s']:.2f} | {_gib(e.get('peak_rss_bytes'))} | {ratio} |"
                )
            first = False
    other = "the faster PyTorch variant" if meta["device"] == "gpu" else "the faster TF variant"
    lines += ["", f"{title} = median time of {other} / that of the faster MLX variant "
              "(images/s ratio; above 1: srgan-mlx is faster).", ""]
    lines += ["Parameters (total incl. BatchNorm statistics / trainable):", "",
              "| Workload | Network | " + " | ".join(LABELS[fw] for fw in meta["frameworks"]) + " |",
              "|---|---|" + "---|" * len(meta["frameworks"])]
    for name, r in results.items():
        nets = []
        for e in r["frameworks"].values():
            nets += [n for n in e.get("params", {}) if n not in nets]
        for net in nets:
            cells = []
            for fw in meta["frameworks"]:
                p = r["frameworks"].get(fw, {}).get("params", {}).get(net)
                cells.append(f"{p['total']:,} / {p['trainable']:,}" if p else "-")
            lines.append(f"| {name} | {net} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


COLORS = {"mlx": (230, 120, 30), "mlx-half": (245, 175, 90), "mlx-bf16": (245, 175, 90), "tf": (40, 110, 200),
          "tf-bf16": (120, 170, 230), "torch": (200, 50, 60), "torch-bf16": (230, 120, 130)}
"""A bar colour for every framework of :data:`FRAMEWORKS` (a variant in a lighter shade of its framework's)."""


def chart(results: dict, meta: dict, path: Path) -> None:
    """Images/s per framework, one panel per workload (bars: median; whiskers: min-max)."""
    from PIL import Image, ImageDraw, ImageFont

    def font(size):
        try:
            return ImageFont.load_default(size=size)
        except TypeError:  # Pillow < 10.1
            return ImageFont.load_default()

    f_title, f_text = font(18), font(13)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = 40 + max(measure.textlength(LABELS[fw], font=f_text) for fw in meta["frameworks"])
    width, right, bar_h, gap = 1000, 200, 22, 6
    unit, factor = ("ms", 1000) if meta["device"] == "gpu" else ("s", 1)
    panels = [(name, r, [fw for fw in r["frameworks"] if "median_s" in r["frameworks"][fw]])
              for name, r in results.items()]
    height = 70 + sum(24 + len(fws) * (bar_h + gap) + 16 for _, _, fws in panels) + 34
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    key, ratio_title = reference(meta)
    families = {f.split("-")[0] for f in meta["frameworks"]}
    others = [name for family, name in (("tf", "TensorFlow"), ("torch", "PyTorch")) if family in families]
    title = " vs ".join(["srgan-mlx", *others]) + (" on the GPU" if meta["device"] == "gpu" else "")
    if meta["device"] == "gpu":
        where = meta.get("gpu") or "GPU"
    else:
        flags = " (AVX-512)" if meta["machine"].get("avx512") else " (AVX2)" if meta["machine"].get("avx2") else ""
        where = f"{meta['machine']['cpu']}{flags}, {meta['machine']['threads']} threads"
    draw.text((20, 12), title + ": images/s (higher is better)" + ("  [QUICK run]" if meta["quick"] else ""),
              fill="black", font=f_title)
    draw.text((20, 40), f"{where}; bars: median, whiskers: min-max", fill=(90, 90, 90), font=f_text)
    y = 70
    for name, r, fws in panels:
        subtitle = f"{name}: {r['title']} (batch {r['batch']})"
        if key in r:
            subtitle += f"   {ratio_title} = {r[key]:.2f}"
        elif "ratio_mlx_over_torch" in r:  # a workload TensorFlow does not run
            subtitle += f"   MLX/PyTorch = {r['ratio_mlx_over_torch']:.2f}"
        draw.text((20, y), subtitle, fill="black", font=f_text)
        y += 24
        best = max((r["batch"] / r["frameworks"][fw]["min_s"] for fw in fws), default=1.0)
        scale = (width - left - right) / best
        for fw in fws:
            e = r["frameworks"][fw]
            draw.text((30, y + 4), LABELS[fw], fill="black", font=f_text)
            x1 = left + e["images_per_s"] * scale
            draw.rectangle([left, y, x1, y + bar_h], fill=COLORS[fw])
            lo, hi = left + r["batch"] / e["max_s"] * scale, left + r["batch"] / e["min_s"] * scale
            mid = y + bar_h / 2
            draw.line([lo, mid, hi, mid], fill="black", width=2)
            draw.line([lo, y + 5, lo, y + bar_h - 5], fill="black", width=2)
            draw.line([hi, y + 5, hi, y + bar_h - 5], fill="black", width=2)
            draw.text((max(x1, hi) + 8, y + 4), f"{e['images_per_s']:.2f} img/s ({e['median_s'] * factor:.2f} {unit})",
                      fill="black", font=f_text)
            y += bar_h + gap
        draw.line([left, y - gap + 2, left, y - len(fws) * (bar_h + gap) - 2], fill=(120, 120, 120))
        y += 16
    draw.text((20, height - 24), f"{meta['finished']}  load average start/end {meta['loadavg_start']} / {meta['loadavg_end']}",
              fill=(90, 90, 90), font=f_text)
    img.save(path)


# ------------------------------------------------------------------ main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small batches (and a 128x128 input for c), 2 repetitions")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma list of {', '.join(WORKLOADS)}")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="cpu: against TensorFlow (and PyTorch); gpu: MLX's GPU backend against PyTorch CUDA")
    p.add_argument("--frameworks", default=None,
                   help=f"comma list of {','.join(FRAMEWORKS)} (default: those installed that run on --device)")
    p.add_argument("--reps", type=int, default=None, help="timed repetitions per framework (default 5; gpu 20; quick 2)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps per worker, not timed (default 1; gpu 5)")
    p.add_argument("--min-reps", type=int, default=3, help="repetitions run even past --budget-s (default 3)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="stop a workload's repetitions after this many seconds once --min-reps are done "
                        "(default 180; quick: none; 0: never)")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="threads for every framework")
    p.add_argument("--out", type=Path, default=HERE / "results",
                   help="folder for latest.json and latest.png (gpu: gpu.json and gpu.png)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    gpu = args.device == "gpu"
    if args.reps is None:
        args.reps = 2 if args.quick else 20 if gpu else 5
    if args.warmup is None:
        args.warmup = 5 if gpu else 1
    if args.budget_s is None:
        args.budget_s = 0 if args.quick or gpu else 180
    if args.quick:
        args.min_reps = min(args.min_reps, args.reps)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args.worker, Spec(**json.loads(args.spec)), args.batch, args.warmup, args.threads, args.device)
        return 0
    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown:
        sys.exit(f"unknown workload(s) {unknown}; choose from {', '.join(WORKLOADS)}")
    def installed(name: str) -> bool:
        return importlib.util.find_spec(FRAMEWORKS[name].requires) is not None

    if args.frameworks:
        frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
        bad = [f for f in frameworks if f not in FRAMEWORKS or not installed(f)]
        if bad:
            sys.exit(f"framework(s) {bad} unknown or not installed (pip install 'srgan-mlx[bench]' brings tensorflow-cpu)")
        elsewhere = [f for f in frameworks if args.device not in FRAMEWORKS[f].devices]
        if elsewhere:
            sys.exit(f"framework(s) {elsewhere} do not run on --device {args.device}")
    else:
        frameworks = [f for f in FRAMEWORKS if args.device in FRAMEWORKS[f].devices and installed(f)]
        if "tf" not in frameworks and args.device == "cpu":
            print("tensorflow is not installed: pip install 'srgan-mlx[bench]' for the baseline", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    log_dir = args.out / "logs"
    log_dir.mkdir(exist_ok=True)
    meta = {
        "started": dt.datetime.now().isoformat(timespec="seconds"), "device": args.device, "quick": args.quick,
        "warmup": args.warmup,
        "reps": args.reps, "budget_s": args.budget_s, "frameworks": frameworks,
        "machine": machine_info(args.threads), "loadavg_start": [round(v, 2) for v in os.getloadavg()],
        "command": " ".join([Path(sys.executable).name, "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    results = {}
    for name in names:
        spec = WORKLOADS[name]
        batch = spec.batch
        if args.quick:
            batch = spec.quick_batch or batch
            if spec.quick_lr_size:
                full, quick = (f"{n}x{n} -> {n * spec.scale}x{n * spec.scale}" for n in (spec.lr_size, spec.quick_lr_size))
                spec = dataclasses.replace(spec, lr_size=spec.quick_lr_size, title=spec.title.replace(full, quick))
        columns = [f for f in frameworks if {spec.kind, spec.name} & set(FRAMEWORKS[f].kinds)]
        results[name] = run_workload(spec, batch, columns, args, log_dir)
        for entry in results[name]["frameworks"].values():
            found = entry.get("versions", {})
            meta.update({key: found[field] for key, field in (("mlx_blas", "blas"), ("gpu", "device")) if field in found})
    meta["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    meta["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    if not any("median_s" in e for r in results.values() for e in r["frameworks"].values()):
        sys.exit(f"nothing was measured (every worker failed; logs in {log_dir}); no results written")
    table = markdown(results, meta)
    print(table)
    stem = "gpu" if args.device == "gpu" else "latest"
    (args.out / f"{stem}.json").write_text(json.dumps({"meta": meta, "workloads": results, "table": table}, indent=2))
    chart(results, meta, args.out / f"{stem}.png")
    print(f"\nwrote {args.out / f'{stem}.json'} and {args.out / f'{stem}.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
