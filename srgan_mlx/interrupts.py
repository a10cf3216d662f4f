"""Ctrl-C in a training run: the first press asks the loop to stop after the current step with a checkpoint,
a second stops at once (a checkpoint being written is abandoned; the previous one stays, checkpoints being atomic)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Callable, Iterator


class Interrupted(Exception):
    """Training stopped by Ctrl-C; the message says at which step and how to resume."""


@contextlib.contextmanager
def first_ctrl_c_asks(speak: bool) -> Iterator[Callable[[], bool]]:
    """Inside: a first Ctrl-C only asks to stop (the callable yielded says whether it was pressed), saying so on
    stderr if ``speak``; a second raises ``KeyboardInterrupt`` at once. Outside the main thread Ctrl-C is left alone.

    The handler writes with one ``os.write``: it may run while the main thread is inside a buffered write to the
    same stream (a progress bar), where another buffered write would raise "reentrant call"."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    pressed = []

    def handler(signum, frame):
        if pressed:
            raise KeyboardInterrupt
        pressed.append(True)
        if speak:
            os.write(2, b"\nCtrl-C: stopping after this step with a checkpoint (press again to stop at once)\n")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(pressed)
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
