"""Stopping on a signal.

**Training** (:func:`first_ctrl_c_asks`): the first Ctrl-C asks the loop to stop after the current step with a
checkpoint; a second stops the process at once (a checkpoint being written is abandoned; the previous one stays,
checkpoints being atomic).

A Python signal handler runs only when the main thread is back in the interpreter, and a training step is one
call of ``mx.eval`` in C++ that can last seconds: a handler alone would hear both presses only after the step. So
the first press is taken at the C level too: Python's C handler writes each signal's number to a pipe
(``signal.set_wakeup_fd``), and a watcher thread (``mx.eval`` releases the GIL) reads it at once, says what
happens and resets SIGINT to the operating system's default action, so the second press ends the process
wherever it is, ``mx.eval`` included.

**Servers** (:func:`stop_signals_interrupt`): SIGTERM (``kill``, ``docker stop``, systemd) and SIGHUP (a closed
terminal) raise :class:`StopSignal`, a ``KeyboardInterrupt``, so they clean up exactly as Ctrl-C does.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
from typing import Callable, Iterator


class Interrupted(Exception):
    """Training stopped by Ctrl-C; the message says at which step and how to resume."""


class StopSignal(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: stop as for Ctrl-C. ``name`` is the signal's (``SIGTERM``)."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def _default_action_now(signum: int) -> bool:
    """Reset ``signum`` to the operating system's default action from any thread (``signal.signal`` only works in
    the main thread, which may be inside ``mx.eval``); whether it worked. Python's own record of the handler is
    left as it is: :func:`signal.signal` later installs a handler again at the C level too."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.signal.argtypes = (ctypes.c_int, ctypes.c_void_p)
        libc.signal.restype = ctypes.c_void_p
        return libc.signal(signum, 0) != ctypes.c_void_p(-1).value  # 0 is SIG_DFL; SIG_ERR is -1
    except (OSError, AttributeError):
        return False


@contextlib.contextmanager
def first_ctrl_c_asks(speak: bool, again: str = "") -> Iterator[Callable[[], bool]]:
    """Inside: a first Ctrl-C only asks to stop (the callable yielded says whether it was pressed), saying so on
    stderr at once if ``speak`` (``again``: what a second press leaves, added to the message); a second ends the
    process at once, killed by SIGINT (exit status 130 where SIGINT's default action could not be restored).
    Outside the main thread Ctrl-C is left alone.

    Messages are written with one ``os.write``: they may come while the main thread is inside a buffered write to
    the same stream (a progress bar), where another buffered write would raise "reentrant call"."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    pressed = threading.Event()
    lock = threading.Lock()
    detail = f" ({again})" if again else ""
    message = f"\nCtrl-C: stopping after this step with a checkpoint; press again to stop at once{detail}\n"

    def first_press() -> None:
        with lock:
            if pressed.is_set():
                return
            pressed.set()
            _default_action_now(signal.SIGINT)  # first: a second press as soon as the message shows must kill
            if speak:
                os.write(2, message.encode())

    def handler(signum, frame):  # in the main thread, once it is back in Python: the watcher has seen it already
        first_press()

    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)

    def watch() -> None:
        presses = 0
        while True:
            data = os.read(read_end, 64)
            if not data or 0 in data:  # closed, or the stop byte below
                return
            presses += data.count(signal.SIGINT)
            if presses >= 2:  # SIGINT's default action could not be restored, or came back: stop here
                os.write(2, b"\nCtrl-C again: stopped at once\n")
                os._exit(128 + signal.SIGINT)
            if presses:
                first_press()

    previous = signal.signal(signal.SIGINT, handler)
    previous_fd = signal.set_wakeup_fd(write_end)
    watcher = threading.Thread(target=watch, name="srgan-mlx-ctrl-c", daemon=True)
    watcher.start()
    try:
        yield pressed.is_set
    finally:
        signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
        os.set_blocking(write_end, True)
        os.write(write_end, b"\0")
        watcher.join()
        os.close(read_end)
        os.close(write_end)


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Inside (main thread only): SIGTERM and SIGHUP raise :class:`StopSignal` in the main thread, so the cleanup
    that Ctrl-C's ``KeyboardInterrupt`` runs runs for them too; the previous handlers are restored after."""
    names = [name for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]

    def handler(signum, frame):
        raise StopSignal(signal.Signals(signum).name)

    previous = {name: signal.signal(getattr(signal, name), handler) for name in names}
    try:
        yield
    finally:
        for name, old in previous.items():
            signal.signal(getattr(signal, name), old if old is not None else signal.SIG_DFL)
