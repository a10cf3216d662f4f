"""metrics.jsonl and metrics.png: append-only logging whose cost does not grow with the run, resume without repeats."""

import json
import os

import pytest

from srgan_mlx.files.run_folder import RunFolder
from srgan_mlx.training.metrics_log import MetricsLog
from srgan_mlx.training.plot import SERIES_LIMIT, Chart
from srgan_mlx.training.train import resume, train
from training_runs import config, interrupted, metrics_rows


def row(step):
    return {"step": step, "loss": 1.0 / step, "content": 0.5 / step, "seconds": 0.04, "images_per_s": 400.0}


def write_rows(log, steps):
    with open(log.file, "w") as f:
        f.writelines(json.dumps(row(s)) + "\n" for s in steps)


def test_resume_keeps_each_step_once(tmp_path):
    log = MetricsLog(RunFolder(tmp_path))
    write_rows(log, range(1, 11))
    with open(log.file, "a") as f:
        f.write(json.dumps({"step": 5, "val_psnr": 30.0}) + "\n" + '{"step": 11, "lo')  # a torn last write
    assert log.resume(6) == 5  # steps 7-10 and the torn line
    lines = log.file.read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4, 5, 6, 5]
    assert log.chart.best == {"psnr": (5, 30.0)} and log.chart.steps == (1, 6)
    log.append(row(7))
    assert json.loads(log.file.read_text().splitlines()[-1])["step"] == 7


def test_resume_without_later_rows_leaves_the_file_alone(tmp_path):
    log = MetricsLog(RunFolder(tmp_path))
    write_rows(log, range(1, 4))
    inode = os.stat(log.file).st_ino
    assert log.resume(3) == 0
    assert os.stat(log.file).st_ino == inode  # not rewritten (an atomic rewrite is a new file)
    assert MetricsLog(RunFolder(tmp_path / "new")).resume(3) == 0  # no metrics.jsonl yet


def logging_work(tmp_path, history: int, monkeypatch) -> dict:
    """What logging 50 more rows costs after ``history`` rows: bytes written per row, chart draws, the points
    the chart holds (what drawing it costs), and whether the checkpoint would carry any of it."""
    tmp_path.mkdir()
    log = MetricsLog(RunFolder(tmp_path))
    write_rows(log, range(1, history + 1))
    log.resume(history)
    draws = []
    monkeypatch.setattr(Chart, "draw", lambda self, path: draws.append(path))
    sizes = []
    for step in range(history + 1, history + 51):
        before = log.file.stat().st_size
        log.append(row(step))
        sizes.append(log.file.stat().st_size - before - len(json.dumps(row(step))) - 1)
    points = {key: len(curve.points()) for key, curve in log.chart.losses.items()}
    return {"extra_bytes": set(sizes), "draws": len(draws), "points": points}


def test_a_logged_row_costs_the_same_after_10_to_the_5_rows(tmp_path, monkeypatch):
    """10^5 logged rows cost no more per logged step than 10^2: one appended line, no chart drawn, and a chart
    whose size (what a draw at the next checkpoint costs) is bounded by the same number."""
    short = logging_work(tmp_path / "short", 100, monkeypatch)
    long = logging_work(tmp_path / "long", 100_000, monkeypatch)
    for work in (short, long):
        assert work["extra_bytes"] == {0}  # exactly the row's line, nothing rewritten
        assert work["draws"] == 0
        assert set(work["points"]) == {"loss", "content"}
    assert short["points"] == {"loss": 150, "content": 150}
    assert all(SERIES_LIMIT <= n < 2 * SERIES_LIMIT for n in long["points"].values())


@pytest.mark.parametrize("history", [100, 20_000])
def test_the_chart_draws_from_a_long_history(tmp_path, history):
    log = MetricsLog(RunFolder(tmp_path))
    for step in range(1, history + 1):
        log.append(row(step))
    log.redraw()
    assert log.chart_file.is_file() and log.chart.last["loss"] == 1.0 / history


# --- in training runs ------------------------------------------------------------------------------------------

def test_rows_written_after_the_checkpoint_are_dropped_on_resume(images, tmp_path):
    """Killed at step 6 with a checkpoint at 3: metrics.jsonl holds steps 1-5; resumed, each step once."""
    run = interrupted(config(images, tmp_path / "run", steps=7, checkpoint_every=3, log_every=1), 6)
    assert [r["step"] for r in metrics_rows(run)] == [1, 2, 3, 4, 5]
    resume(str(run))
    assert [r["step"] for r in metrics_rows(run)] == [1, 2, 3, 4, 5, 6, 7]


def test_metrics_history_stays_out_of_checkpoints_and_the_chart_is_drawn_per_checkpoint(
    images, val_images, tmp_path, monkeypatch
):
    from srgan_mlx.training.metrics_log import MetricsLog

    draws = []
    real_redraw = MetricsLog.redraw
    monkeypatch.setattr(MetricsLog, "redraw", lambda self: [draws.append(len(metrics_rows(self.file.parent))),
                                                            real_redraw(self)][1])  # fmt: skip
    run = train(config(images, tmp_path / "run", steps=12, log_every=1, checkpoint_every=4, val_every=6,
                       val=str(val_images), keep=10))  # fmt: skip
    rows = metrics_rows(run)
    assert len(rows) == 12 + 2  # a line per step, and one per validation
    assert draws == [4, 7, 9, 14]  # at steps 4, 6 (validation), 8, 12; never per logged step
    assert (run / "metrics.png").is_file()
    states = [(run / "checkpoints" / f"step_{s:08d}" / "state.json").read_text() for s in (4, 12)]
    for text in states:
        assert set(json.loads(text)) == {"config", "began_at", "sampler", "best_psnr", "best_niqe", "val_images", "unlogged", "step"}
    assert abs(len(states[1]) - len(states[0])) < 100  # three times the history, the same size
