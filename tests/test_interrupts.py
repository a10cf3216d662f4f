"""Signals, in real processes: the first Ctrl-C asks (said at once, even inside ``mx.eval``), the second ends the
process at once, even inside a long ``mx.eval``; SIGTERM and SIGHUP interrupt like Ctrl-C where asked to."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from srgan_mlx.interrupts import StopSignal, first_ctrl_c_asks, stop_signals_interrupt
from srgan_mlx.networks import weights_io
from srgan_mlx.training import checkpoint
from srgan_mlx.training.train import Interrupted, Trainer, resume, train
from training_runs import CLI_TINY, TINY, assert_same_arrays, checkpoint_arrays, cli_train, config, metrics_rows

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


# --- in training runs ------------------------------------------------------------------------------------------

def ctrl_c(trainer, at_steps, again_while_saving=None, monkeypatch=None):
    """Press Ctrl-C (a real SIGINT) during each step of ``at_steps``; and while the checkpoint of step
    ``again_while_saving`` is being written, if given."""
    real_step = trainer.parts.train_step._step

    def step(lr, hr):
        if trainer.step + 1 in at_steps:
            signal.raise_signal(signal.SIGINT)
        return real_step(lr, hr)

    trainer.parts.train_step._step = step
    if again_while_saving:
        real_save = weights_io.save_module

        def pressed_again(path, *args, **kw):
            real_save(path, *args, **kw)
            if Path(path).parent.name.startswith(f".step_{again_while_saving:08d}."):
                signal.raise_signal(signal.SIGINT)

        monkeypatch.setattr(checkpoint, "save_module", pressed_again)


def test_ctrl_c_saves_the_current_step_and_resume_continues_exactly(images, tmp_path):
    """Ctrl-C in step 5 (between checkpoints every 4 and metrics lines every 2): the run ends at step 5 with a
    checkpoint there; resumed, it ends with the weights and the metrics lines of a run never stopped."""
    settings = dict(steps=8, checkpoint_every=4, log_every=2)
    straight = train(config(images, tmp_path / "straight", **settings))
    trainer = Trainer(config(images, tmp_path / "run", **settings))
    trainer.start()
    ctrl_c(trainer, {5})
    with pytest.raises(Interrupted) as stopped:
        trainer.run()
    run = tmp_path / "run"
    assert str(stopped.value) == f"stopped by Ctrl-C at step 5, checkpoint saved; continue with: srgan-mlx train --resume {run}"
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_00000005"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C is the user's again
    resume(str(run))
    assert_same_arrays(checkpoint_arrays(run, 8), checkpoint_arrays(straight, 8))
    rows, expected = metrics_rows(run), metrics_rows(straight)
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    # bit for bit, the line at step 6 too: it averages step 5 (before Ctrl-C) and step 6 (after the resume)
    assert [r["loss"] for r in rows] == [r["loss"] for r in expected]


SECOND_PRESS_WHILE_SAVING = """
import signal, sys
from pathlib import Path
import srgan_mlx
from srgan_mlx.training import checkpoint
from srgan_mlx.training.config import TrainConfig
from srgan_mlx.training.train import Trainer

images, out = sys.argv[1:]
trainer = Trainer(TrainConfig(data=[images], out=out, steps=8, checkpoint_every=2, **{tiny}))
trainer.start()
real_step, real_save = trainer.parts.train_step._step, checkpoint.save_module

def step(lr, hr):
    if trainer.step + 1 == 3:
        signal.raise_signal(signal.SIGINT)  # the first press: stop after step 3 with a checkpoint
    return real_step(lr, hr)

def save(path, *args, **kw):
    real_save(path, *args, **kw)
    if Path(path).parent.name.startswith(".step_00000003."):
        signal.raise_signal(signal.SIGINT)  # the second, while that checkpoint is being written

trainer.parts.train_step._step = step
checkpoint.save_module = save
trainer.run()
print("not stopped")
"""


def test_second_ctrl_c_stops_at_once_and_keeps_the_last_checkpoint(images, tmp_path):
    """In a real process: the second press ends it at once (killed by SIGINT, here in the middle of writing the
    checkpoint the first press asked for); the previous checkpoint stays the latest and the run resumes from it."""
    run = tmp_path / "run"
    script = SECOND_PRESS_WHILE_SAVING.replace("{tiny}", repr(TINY))
    process = subprocess.run([sys.executable, "-c", script, str(images), str(run)], capture_output=True, text=True,
                             timeout=600)  # fmt: skip
    assert process.returncode == -signal.SIGINT, process.stderr
    assert "not stopped" not in process.stdout
    assert f"press again to stop at once (this step is lost; continue from the last checkpoint with: srgan-mlx " \
           f"train --resume {run})" in process.stderr
    folder = run / "checkpoints"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["latest", "step_00000002"]
    assert (folder / "latest").read_text().strip() == "step_00000002"
    resume(str(run))
    assert (folder / "latest").read_text().strip() == "step_00000008"
    assert not list(folder.glob(".*"))  # the abandoned checkpoint's hidden folder is pruned at the next save


def test_ctrl_c_on_the_command_line_is_one_line_and_status_130(images, tmp_path, monkeypatch):
    real = Trainer._train_one

    def train_one(self, bar, total):
        real(self, bar, total)
        if self.step == 2:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(Trainer, "_train_one", train_one)
    run = tmp_path / "run"
    result = cli_train("--data", images, "--out", run, *CLI_TINY, "--steps", 6)
    assert result.exit_code == 130
    assert result.stderr.splitlines()[-1] == (
        f"stopped by Ctrl-C at step 2, checkpoint saved; continue with: srgan-mlx train --resume {run}"
    )
    assert "done" not in result.stdout
