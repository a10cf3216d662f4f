"""A run's metrics: ``metrics.jsonl``, the history, and ``metrics.png``, its chart.

Logging a row appends one line to ``metrics.jsonl`` and adds it to a
:class:`~srgan_mlx.training.plot.Chart` held in bounded memory; nothing else. The chart is
drawn only when :meth:`MetricsLog.redraw` is called (the trainer does at each
validation and checkpoint), and drawing it costs the same at any length of the
run. So a logged step costs the same whether the history holds 10^2 rows or 10^6.

Rows are written before the checkpoint of their step, so after a resume the rows
that belong to the run are those up to the checkpoint's step: :meth:`MetricsLog.resume`
drops the later ones (written before an interruption, their steps are about to be
trained again), so every step appears once.
"""

from __future__ import annotations

import json

from ..atomic import write_text
from ..files.run_folder import RunFolder
from .plot import Chart


def _step(line: str) -> float | None:
    """The ``step`` of one metrics line; None for a line that is not a complete JSON row (a torn last write)."""
    try:
        return json.loads(line).get("step")
    except (json.JSONDecodeError, AttributeError):
        return None


class MetricsLog:
    """Appends rows to ``<run>/metrics.jsonl`` and draws ``<run>/metrics.png`` on request."""

    def __init__(self, run: RunFolder):
        self.file = run.metrics
        self.chart_file = run.chart
        self.chart = Chart()

    def append(self, row: dict) -> None:
        """One line at the end of ``metrics.jsonl``; the chart takes the row too (drawn at :meth:`redraw`)."""
        self.file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.file, "a") as f:
            f.write(json.dumps(row) + "\n")
        self.chart.add(row)

    def redraw(self) -> None:
        self.chart.draw(self.chart_file)

    def resume(self, step: int) -> int:
        """Continue the history of a run resumed at ``step``: keep the rows up to it and return how many
        later rows were dropped. The file is rewritten atomically, and only when a row goes."""
        if not self.file.is_file():
            return 0
        lines = self.file.read_text().splitlines(keepends=True)
        kept = [line.rstrip("\n") + "\n" for line in lines if (s := _step(line)) is not None and s <= step]
        if kept != lines:
            write_text(self.file, "".join(kept))
        for line in kept:
            self.chart.add(json.loads(line))
        return len(lines) - len(kept)
