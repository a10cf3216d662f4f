"""Progress on stderr: a tqdm bar on a terminal, plain lines in a log.

tqdm redraws its bar with carriage returns and escape codes, which a log file (``srgan-mlx train > run.log``, a CI
job, systemd's journal) keeps as one unreadable line. :func:`progress` gives a tqdm bar when stderr is a terminal
and otherwise a :class:`LogProgress` with the same methods that writes one plain line at most every
:data:`LOG_INTERVAL` seconds, and a last one when it closes if it wrote any (short jobs stay silent).
"""

from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TextIO

from tqdm import tqdm

LOG_INTERVAL = 15.0
"""Seconds between two progress lines in a log."""


def _terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def progress(iterable: Iterable | None = None, *, unit: str, total: float | None = None, initial: float = 0,
             desc: str | None = None, leave: bool = True, disable: bool = False, unit_scale: bool = False):  # fmt: skip
    """A progress reporter on stderr over ``iterable`` (or updated by hand, from ``initial``): tqdm on a terminal,
    plain lines elsewhere, nothing when ``disable``."""
    if disable:
        return tqdm(iterable, total=total, disable=True)
    if _terminal(sys.stderr):
        return tqdm(iterable, total=total, initial=initial, unit=unit, desc=desc, leave=leave, unit_scale=unit_scale,
                    dynamic_ncols=True)  # fmt: skip
    return LogProgress(iterable, total=total, initial=initial, unit=unit, desc=desc, unit_scale=unit_scale)


class LogProgress:
    """tqdm's interface (``update``, ``n``/``total``/``refresh``, ``set_postfix``, ``set_postfix_str``, iteration,
    ``close``, ``with``) as plain lines: ``desc: 120/5000 step, 6 min, 3.0 s/step, loss=0.26``."""

    def __init__(self, iterable: Iterable | None = None, *, total: float | None = None, initial: float = 0,
                 unit: str = "it", desc: str | None = None, unit_scale: bool = False, file: TextIO | None = None,
                 interval: float = LOG_INTERVAL):  # fmt: skip
        self.iterable = iterable
        self.total = len(iterable) if total is None and hasattr(iterable, "__len__") else total
        self.unit, self.desc, self.unit_scale = unit, desc, unit_scale
        self.file = file
        self.interval = interval
        self.n = self.initial = initial
        self.postfix = ""
        self.started = self.shown = time.monotonic()
        self.lines = 0
        self.closed = False

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __len__(self) -> int:
        return len(self.iterable)

    def __enter__(self) -> "LogProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        self.refresh()

    def set_postfix(self, values: dict | None = None, **more) -> None:
        items = {**(values or {}), **more}
        self.postfix = ", ".join(f"{key}={value}" for key, value in items.items())
        self.refresh()

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text
        self.refresh()

    def refresh(self) -> None:
        if not self.closed and time.monotonic() - self.shown >= self.interval:
            self._write()

    def close(self) -> None:
        if not self.closed and self.lines:
            self._write()
        self.closed = True

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        count = self._amount(self.n) + (f"/{self._amount(self.total)}" if self.total else "")
        rate, done = "", self.n - self.initial
        if done and elapsed > 0:
            per = elapsed / done
            rate = f", {per:.3g} s/{self.unit}" if per >= 1 else f", {self._amount(done / elapsed)} {self.unit}/s"
        text = f"{count} {self.unit}, {_duration(elapsed)}{rate}"
        text = f"{self.desc}: {text}" if self.desc else text
        return f"{text}, {self.postfix}" if self.postfix else text

    def _amount(self, value: float) -> str:
        if not self.unit_scale:
            return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
        for size, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if value >= size:
                return f"{value / size:.1f}{prefix}"
        return f"{value:.0f}"

    def _write(self) -> None:
        stream = self.file or sys.stderr
        stream.write(self.line() + "\n")
        stream.flush()
        self.shown = time.monotonic()
        self.lines += 1


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:02.0f} min"
