"""Progress: plain lines in a log (no carriage returns or escape codes), bars on a terminal, for upscale (tiles and
the bytes of a large output being written), evaluate and train."""

import fcntl
import io
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srgan_mlx.files.image_io import write_image
from srgan_mlx.progress import LogProgress

ROOT = Path(__file__).resolve().parents[1]


def test_a_log_gets_plain_lines_at_most_every_interval_and_a_last_one():
    out = io.StringIO()
    bar = LogProgress(total=10, initial=2, unit="step", desc="srgan", file=out, interval=0)
    for _ in range(3):
        bar.update(1)
    bar.set_postfix({"loss": "0.25"})
    bar.close()
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("srgan: 3/10 step, 0 s, ") and lines[0].endswith(" step/s")
    assert lines[-1].startswith("srgan: 5/10 step, 0 s, ") and lines[-1].endswith(", loss=0.25")
    assert len(lines) == 5  # three updates, the postfix, one last line at close; none after
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_a_short_job_leaves_no_line_in_a_log():
    out = io.StringIO()
    with LogProgress(range(5), unit="file", file=out, interval=60) as bar:
        assert list(bar) == list(range(5))
    assert out.getvalue() == ""


def test_bytes_scale_in_a_log():
    out = io.StringIO()
    bar = LogProgress(unit="B", unit_scale=True, desc="writing a.png", file=out, interval=0)
    bar.update(2_500_000)
    assert out.getvalue().startswith("writing a.png: 2.5M B, 0 s, ")


def test_writing_an_image_reports_every_byte(tmp_path):
    """The progress of writing a large output: PIL encodes through a counting file in blocks, and the counts add up
    to the file (PNG and JPEG, whose encoder would otherwise write to the descriptor directly)."""
    pixels = np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    for name in ("big.png", "big.jpg"):
        counts = []
        write_image(tmp_path / name, Image.fromarray(pixels), on_bytes=counts.append)
        assert len(counts) > 3 and sum(counts) == (tmp_path / name).stat().st_size, name
        with Image.open(tmp_path / name) as written:
            assert written.size == (800, 600)


def run_on_a_terminal(args, cwd, timeout=300):
    """Run the command line with stderr on a pseudo-terminal (stdout a pipe); (exit status, stdout, terminal)."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a 120-column terminal
    process = subprocess.Popen([sys.executable, "-m", "srgan_mlx", *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                               stderr=secondary, stdin=subprocess.DEVNULL, text=True)  # fmt: skip
    os.close(secondary)
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 1)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the command closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        elif process.poll() is not None:
            break
    os.close(primary)
    stdout, _ = process.communicate(timeout=60)
    return process.returncode, stdout, seen.decode(errors="replace")


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((100, 100), Image.BICUBIC).save(folder / f"{name}.png")
    return folder


def test_bars_on_a_terminal(photos, model, tmp_path):
    status, stdout, terminal = run_on_a_terminal(["upscale", photos, "--model", model, "-o", tmp_path / "out"],
                                                 tmp_path)  # fmt: skip
    assert status == 0 and stdout == "2 written, 0 failed\n", terminal
    assert "\r" in terminal and "2/2" in terminal and "file/s" in terminal and "tile" in terminal, terminal
    assert "writing a_x4.png" in terminal, terminal  # the bytes of each output on their own bar
    status, stdout, terminal = run_on_a_terminal(["evaluate", "--hr", photos, "--bicubic"], tmp_path)
    assert status == 0 and stdout.splitlines()[-1].startswith("mean"), terminal
    assert "bicubic: " in terminal and "1/2 [" in terminal and "image/s" in terminal, terminal


def test_no_escape_codes_where_stderr_is_not_a_terminal(photos, model, tmp_path):
    for args in (["upscale", photos, "--model", model, "-o", tmp_path / "out"],
                 ["evaluate", "--hr", photos, "--bicubic"],
                 ["train", "--data", photos, "--out", tmp_path / "run", "--steps", 3, "--crop", 48, "--batch-size", 2,
                  "--num-blocks", 1, "--channels", 8]):  # fmt: skip
        run = subprocess.run([sys.executable, "-m", "srgan_mlx", *map(str, args)], cwd=tmp_path, capture_output=True,
                             text=True, timeout=300)  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert "\r" not in run.stderr and "\x1b" not in run.stderr, (args[0], run.stderr)
