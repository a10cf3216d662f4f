"""Signals, in real processes: the first Ctrl-C asks (said at once, even inside ``mx.eval``), the second ends the
process at once, even inside a long ``mx.eval``; SIGTERM and SIGHUP interrupt like Ctrl-C where asked to."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from srgan_mlx.interrupts import StopSignal, first_ctrl_c_asks, stop_signals_interrupt

LONG_EVAL = textwrap.dedent("""
    import sys, time
    import srgan_mlx
    import mlx.core as mx
    from srgan_mlx.interrupts import first_ctrl_c_asks

    a = mx.random.normal((768, 768)) / 768**0.5
    y = a
    for _ in range(20000):  # one mx.eval of minutes
        y = mx.tanh(y @ a)
    with first_ctrl_c_asks(speak=True, again="nothing is lost here") as pressed:
        print("evaluating", flush=True)
        started = time.monotonic()
        mx.eval(y)
        print(f"evaluated in {time.monotonic() - started:.0f} s, pressed {pressed()}", flush=True)
""")


def test_second_ctrl_c_ends_a_long_mx_eval_at_once():
    """Both presses land inside one ``mx.eval`` of minutes: the first is answered within seconds, the second
    ends the process within seconds (killed by SIGINT), without waiting for the evaluation."""
    process = subprocess.Popen([sys.executable, "-c", LONG_EVAL], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)  # fmt: skip
    try:
        assert process.stdout.readline() == "evaluating\n"
        time.sleep(1)
        process.send_signal(signal.SIGINT)
        first = time.monotonic()
        assert process.stderr.readline() == "\n"
        line = process.stderr.readline()
        answered = time.monotonic() - first
        assert line == "Ctrl-C: stopping after this step with a checkpoint; press again to stop at once (nothing is " \
                       "lost here)\n", line
        process.send_signal(signal.SIGINT)
        second = time.monotonic()
        stdout, stderr = process.communicate(timeout=600)
        stopped = time.monotonic() - second
    finally:
        process.kill()
    assert process.returncode == -signal.SIGINT, (process.returncode, stdout, stderr)
    assert "evaluated" not in stdout, stdout  # it did not wait for the evaluation
    assert answered < 10 and stopped < 10, (answered, stopped)


def test_first_ctrl_c_only_asks_and_the_handler_comes_back(capfd):
    before = signal.getsignal(signal.SIGINT)
    with first_ctrl_c_asks(speak=True) as pressed:
        assert pressed() is False
        signal.raise_signal(signal.SIGINT)
        assert pressed() is True
        deadline = time.monotonic() + 10
        while "Ctrl-C" not in capfd.readouterr().err:  # one message, from whichever of the two hears it first
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert signal.getsignal(signal.SIGINT) is before
    assert capfd.readouterr().err == ""


def test_first_ctrl_c_outside_the_main_thread_is_left_alone():
    import threading

    seen = []

    def run():
        with first_ctrl_c_asks(speak=True) as pressed:
            seen.append(pressed())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [False] and signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGTERM/SIGHUP here")
@pytest.mark.parametrize("signum", [signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)])
def test_stop_signals_raise_a_keyboard_interrupt_and_are_restored(signum):
    before = signal.getsignal(signum)
    with pytest.raises(KeyboardInterrupt) as raised:
        with stop_signals_interrupt():
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler interrupts this
    assert isinstance(raised.value, StopSignal) and raised.value.name == signal.Signals(signum).name
    assert signal.getsignal(signum) is before
