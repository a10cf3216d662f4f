"""The README and docs/ show commands that work: each ``srgan-mlx`` line parses with the command line's own options,
and every line of a shell block (and every Python block) runs as written, in a folder of stand-ins for the files the
pages name, unless it needs what a test run does not have (the internet, a registry, several processes, hours):
then it carries a reason below. The README keeps to its length, and the pages' links resolve."""

import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np
import pytest
from PIL import Image

from conftest import ORIGINAL_VGG19
from srgan_mlx.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shell_lines(page: Path) -> list[tuple[str, str]]:
    """(command line, its comment) for each line of the page's shell code blocks, continuation lines joined."""
    found = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", page.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            command, _, comment = line.partition(" #")
            if command.strip() and not command.strip().startswith("#"):
                found.append((command.strip(), comment.strip()))
    return found


def shown_commands():
    """(page, command line) for each ``srgan-mlx ...`` line or ``&&`` part, synopses included."""
    found = []
    for page in PAGES:
        blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", page.read_text(), re.S)
        for block in blocks:
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].strip()
                if line.startswith("srgan-mlx ") and not any(mark in line for mark in ("...", "[", "|")):  # not a synopsis
                    found.append((page.name, line))
                for part in line.split("&&"):
                    part = part.strip()
                    if part.startswith("srgan-mlx ") and part != line:
                        found.append((page.name, part))
    return found


COMMANDS = shown_commands()


def test_the_pages_show_commands():
    assert len(COMMANDS) >= 20
    assert {"README.md", "training.md", "upscaling.md", "evaluation.md", "vgg19.md"} <= {page for page, _ in COMMANDS}


@pytest.mark.parametrize("page, line", COMMANDS, ids=[f"{p}:{line[:60]}" for p, line in COMMANDS])
def test_shown_command_parses(page, line):
    args = shlex.split(line)[1:]
    name, rest = args[0], args[1:]
    command = main.get_command(None, name)
    assert command is not None, f"{page}: unknown command {name!r} in {line!r}"
    try:
        command.make_context(name, rest, resilient_parsing=False).close()
    except click.UsageError as exc:
        if "Missing" in str(exc) or "does not exist" in str(exc):
            return  # a required argument left out, or a path only the user has: the command itself is right
        raise AssertionError(f"{page}: {line!r}: {exc}") from None


# --- running them ---------------------------------------------------------------------------------------------

NOT_RUN = {
    r"^python3 -m venv |^\. \.venv/bin/activate$|^pip |^pytest( |$)": "installs from a package registry (this "
    "test runs inside such an install)",
    r"--download ": "downloads weights from the internet",
    r"^srgan-mlx convert-vgg \S+\.(h5|pth) ": "converts a file downloaded from Keras or torchvision",
    r"^unzip ": "unpacks a wheel pip downloaded",
    r"^mlx\.launch ": "starts several processes (test_train.py runs two ranks under mlx.launch)",
    r"^python benchmarks/": "a benchmark: minutes to hours",
    r"^python experiments/": "an experiment on benchmark sets or training runs: minutes to hours (each starts: "
    "test_shown_scripts_start)",
    r"^curl ": "talks to a running server (test_server.py sends the same request)",
}
"""A shell line matching a pattern is shown, not run, for the reason given; every other line must run."""

TRAINING_SHORTENED = "--batch-size 2"
"""A training line runs as written plus ``--steps`` (one step, or the warm-up step and one more; a resumed run one
step more) and this: the recipes run for hours, and only their set-up is checked here."""


def sample_images() -> dict[str, Image.Image]:
    return {path.stem: Image.open(path).convert("RGB") for path in sorted((ROOT / "samples").glob("*.png"))}


def make_workspace(folder: Path) -> Path:
    """A folder holding stand-ins for the files the pages name: the samples as photos, data sets and scans."""
    from srgan_mlx.quality.imresize import imresize, modcrop

    folder.mkdir()
    shutil.copytree(ROOT / "samples", folder / "samples")
    images = sample_images()
    images["astronaut"].save(folder / "photo.jpg", quality=95)
    images["chelsea"].save(folder / "logo.png")
    images["chelsea"].save(folder / "huge.png")
    (folder / "scans" / "2024").mkdir(parents=True)
    images["astronaut"].save(folder / "scans" / "2024" / "a.tif")
    for name in ("photos", "Set5/HR", "Set14/HR", "DATA/train", "DATA/Set5/HR"):
        (folder / name).mkdir(parents=True)
        for stem, image in images.items():
            image.save(folder / name / f"{stem}.png")
    (folder / "Set14" / "LR_bicubic" / "X4").mkdir(parents=True)
    for stem, image in images.items():
        lr = imresize(modcrop(np.asarray(image), 4), 0.25)
        Image.fromarray(lr).save(folder / "Set14" / "LR_bicubic" / "X4" / f"{stem}x4.png")
    return folder


def stand_in_vgg(path: Path) -> None:
    """A VGG19 weights file of the converted format, random weights in float16 (the tests' --vgg)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    from srgan_mlx.networks.weights_io import write_weights
    from srgan_mlx.networks.vgg import VGG19Features

    vgg = VGG19Features("caffe")
    arrays = {k: v.astype(mx.float16) for k, v in tree_flatten(vgg.parameters())}
    write_weights(path, arrays, "vgg19", vgg.config())


def stand_in_run(path: Path) -> None:
    """A run folder (or a named checkpoint of one) for a line that uses a run the page never trained: the shipped
    SRResNet's weights as its generator, so that it blends with ``srresnet``."""
    from srgan_mlx.defaults import MODEL_NAMES
    from srgan_mlx.files.model_io import WEIGHTS_DIR
    from srgan_mlx.files.run_folder import RunFolder, checkpoint_name

    if path.parent.name == "checkpoints":  # a checkpoint of a run this page trained: its latest, at that name
        latest = RunFolder(path.parent.parent).pointed("latest")
        assert latest is not None, f"no run at {path.parent.parent} to stand in for {path.name}"
        shutil.copytree(latest, path)
        return
    run = RunFolder(path)
    checkpoint = run.checkpoint(1)
    checkpoint.mkdir(parents=True)
    shutil.copy(WEIGHTS_DIR / MODEL_NAMES["srresnet"], checkpoint / "generator.safetensors")
    run.point("latest", run.checkpoints / checkpoint_name(1))


def stand_in_peer_weights(path: Path) -> None:
    """A PyTorch weights file of the layout its published name has (tiny networks, random values, written without
    torch): Real-ESRGAN's BasicSR ``params_ema``, ESRGAN's 2019 names, SRGAN-PyTorch's checkpoint."""
    import peer_layouts as layouts
    import pth_writer

    if path.name.startswith("RealESRGAN"):
        state = {"params_ema": layouts.basicsr_rrdbnet(4, 2, 16, 8)}
    elif path.name.startswith("RRDB_"):
        state = layouts.renamed(layouts.basicsr_rrdbnet(4, 2, 16, 8, seed=len(path.name)), layouts.esrgan_2019_key)
    else:
        state = {"epoch": 1, "state_dict": layouts.srgan_pytorch(4)}
    pth_writer.save(state, path)


def prepare(args: list[str], folder: Path) -> list[str]:
    """Stand-ins for the inputs ``args`` name that the page did not make, and the training lines' shortening;
    the arguments to run."""
    from srgan_mlx.training.config import TrainConfig, read_recipe

    for option, value in zip(args, args[1:]):
        if option == "--vgg" and not (folder / value).exists():
            stand_in_vgg(folder / value)
    sources = [v for o, v in zip(args, args[1:]) if o in ("--model", "--fidelity-model", "--init", "--resume")]
    if args[0] in ("export", "convert-model"):
        sources.append(args[1])
    for source in sources:
        if re.search(r"\.pth(\.tar)?$", source) and not (folder / source).exists():
            stand_in_peer_weights(folder / source)
    for source in sources:
        if source.startswith("runs/") and not (folder / source).exists():
            stand_in_run(folder / source)
    if args[0] != "train":
        return args
    if "--resume" in args:
        saved = json.loads((folder / args[args.index("--resume") + 1] / "config.json").read_text())
        return [*args, "--steps", str(saved["steps"] + 1)]
    recipe = read_recipe(args[args.index("--preset") + 1]) if "--preset" in args else {}
    warmup = recipe.get("d_warmup", TrainConfig().d_warmup)
    steps = ["--steps", "2", "--d-warmup", "1"] if warmup else ["--steps", "1"]
    return [*args, *steps, *TRAINING_SHORTENED.split()]


def run_serve(args: list[str], folder: Path) -> str | None:
    """Start ``srgan-mlx serve ...`` until it prints its address, then stop it with SIGTERM; None, or why it could
    not be tried (its port taken here)."""
    process = subprocess.Popen([sys.executable, "-m", "srgan_mlx", *args], cwd=folder, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "BROWSER": "true"})  # fmt: skip
    try:
        ready, _, _ = select.select([process.stdout], [], [], 120)
        line = process.stdout.readline() if ready else ""
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    if "Address already in use" in stderr:
        return "its port is taken on this machine"
    assert line.startswith("srgan-mlx serve: http://"), (line, stderr)
    assert process.returncode == 0 and "Traceback" not in stderr, stderr
    return None


def promised_files(comment: str) -> list[str]:
    """The files a line's comment says it writes: ``-> NAME`` and ``also NAME.ext``."""
    names = re.findall(r"->\s*(\S+\.\w+)", comment) + re.findall(r"\balso (\S+\.\w+)", comment)
    return [name.rstrip(";:,") for name in names]


def run_line(line: str, comment: str, folder: Path) -> str | None:
    """Run one shown line in ``folder``; None when it ran, else the reason it is only shown."""
    for pattern, reason in NOT_RUN.items():
        if re.search(pattern, line):
            return reason
    assert line.startswith("srgan-mlx "), f"a shown line that neither runs here nor has a reason not to: {line!r}"
    args = shlex.split(line)[1:]
    if args[0] == "convert-vgg":
        if not ORIGINAL_VGG19.is_file():
            return f"needs the original VGG19 file, not found at {ORIGINAL_VGG19}"
        shutil.copy(ORIGINAL_VGG19, folder / args[1])
    args = prepare(args, folder)
    if args[0] == "serve":
        return run_serve(args, folder)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "srgan_mlx", *args], cwd=folder, capture_output=True, text=True,
                            timeout=900)  # fmt: skip
    assert result.returncode == 0, f"{line!r} (ran as {args}) exit {result.returncode}: {result.stderr[-2000:]}"
    assert "Traceback" not in result.stderr, result.stderr
    assert "\r" not in result.stderr and "\x1b" not in result.stderr, f"{line!r}: progress-bar codes in a log"
    for name in promised_files(comment):
        assert (folder / name).is_file(), f"{line!r} did not write {name}"
    assert time.monotonic() - started < 900
    return None


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), re.S)


PAGES_WITH_CODE = [page for page in PAGES if shell_lines(page) or python_blocks(page)]


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=[page.name for page in PAGES_WITH_CODE])
def test_shown_commands_run(page, tmp_path):
    """Each page's lines in order, in one folder (a line may use what an earlier one made); its Python blocks
    too, where a block's last comment is the output it prints."""
    folder = make_workspace(tmp_path / "work")
    for line, comment in shell_lines(page):
        parts = [part.strip() for part in line.split("&&")]
        for part in parts:
            run_line(part, comment if part == parts[-1] else "", folder)
    for code in python_blocks(page):
        result = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{page.name}: a Python block failed: {result.stderr[-2000:]}"
        printed = re.findall(r"^# (.*)$", code.strip().splitlines()[-1])
        if "print(" in code and printed:
            assert result.stdout.strip() == printed[0], (result.stdout, printed)


def test_each_reason_not_to_run_is_used():
    """No stale excuse: every pattern above matches a line some page shows."""
    lines = [part.strip() for page in PAGES for line, _ in shell_lines(page) for part in line.split("&&")]
    for pattern in NOT_RUN:
        assert any(re.search(pattern, line) for line in lines), pattern


SCRIPTS = sorted({script for page in PAGES for script in re.findall(r"python ((?:benchmarks|experiments)/\w+\.py)",
                                                                       page.read_text())})
"""The benchmark and experiment scripts the pages show (their runs take too long for a test)."""


@pytest.mark.parametrize("script", SCRIPTS)
def test_shown_scripts_start(script, tmp_path):
    """Each shown script exists and starts from anywhere (its imports and path set-up work): ``--help``."""
    assert (ROOT / script).is_file(), script
    result = subprocess.run([sys.executable, str(ROOT / script), "--help"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0 and "usage:" in result.stdout, result.stderr[-2000:]


def test_readme_is_short_and_its_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target
    for page in PAGES[1:]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith("http"):
                assert (page.parent / target).exists(), f"{page.name}: {target}"


def test_help_names_no_unshipped_model_as_a_default():
    """``--realism``'s help once said "default srgan", a model this version does not ship."""
    from click.testing import CliRunner

    from srgan_mlx.defaults import MODEL_NAMES
    from srgan_mlx.files.model_io import shipped_names

    unshipped = [name for name in MODEL_NAMES if name not in shipped_names()]
    for command in ("upscale", "evaluate", "serve"):
        text = " ".join(CliRunner().invoke(main, [command, "--help"]).output.split())
        for name in unshipped:
            for claim in (f"default {name}", f"default: {name}", f"[{name}]", f"{name} first]"):
                assert claim not in text, (command, claim)


def test_skip_reasons_point_at_pages_and_sections_that_exist():
    """A test that skips says where to read how to run it (the PyTorch ones once said "see README", which no
    longer says it): each ``see docs/<page>.md#<section>`` names a page and a heading that exist."""
    pointers = {match for path in (ROOT / "tests").glob("*.py")
                for match in re.findall(r"see (docs/[\w.-]+\.md)(?:#([\w-]+))?", path.read_text())}  # fmt: skip
    assert pointers
    for page, section in pointers:
        text = (ROOT / page).read_text()
        headings = {re.sub(r"[^\w -]", "", line.lstrip("#").strip()).lower().replace(" ", "-")
                    for line in text.splitlines() if line.startswith("#")}  # fmt: skip
        assert not section or section in headings, (page, section)
