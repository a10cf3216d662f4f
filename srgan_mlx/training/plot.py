"""``metrics.png``: training losses and validation PSNR (and NIQE) against step, drawn with Pillow (no matplotlib).

Panels over the same step axis: the losses on a log scale, validation PSNR in
dB on a linear one, and validation NIQE where the run measures it (``--best-by
niqe``). The axes carry tick labels and grid lines; each panel's legend sits in
a row above its plot box, never over a curve, and gives the last value (a
validation measure: its best and where). :class:`Chart` takes the metrics rows one at a
time and keeps each curve in bounded memory (:class:`Downsampled`), and a curve
with more points than the plot is wide is averaged per pixel column, so drawing
costs the same at any length of the run and noise does not hide the trend.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..atomic import atomic_path
from ..quality.evaluate import HIGHER_IS_BETTER, improves
from .loss_terms import TERMS

LOSS_KEYS = ("loss", *(term.name for term in TERMS), "d_loss")
"""The curves of the loss panel: the generator's total, its terms (:data:`srgan_mlx.training.loss_terms.TERMS`), D's loss."""
COLORS = ("#1f77b4", *(term.color for term in TERMS), "#9467bd")
"""The colour of each of :data:`LOSS_KEYS`."""
PSNR_COLOR, NIQE_COLOR = "#ff7f0e", "#17becf"
VALIDATION = {
    "psnr": ("validation PSNR (dB)", " dB", PSNR_COLOR),
    "niqe": ("validation NIQE (lower: more natural)", "", NIQE_COLOR),
}
"""The validation panels: per measure (``val_<measure>`` in metrics.jsonl), its title, unit and colour."""
WIDTH = 900
PLOT_H = 250
LEFT, RIGHT = 72, 24
"""Margins left and right of the plot boxes, in pixels."""
TEXT, GRID, FRAME = "#202020", "#e4e4e4", "#808080"
FONT_SIZE = 13
SERIES_LIMIT = 1024
"""A curve keeps between this many and twice this many points (:class:`Downsampled`)."""

Series = list[tuple[float, float]]


def _nice_step(span: float, count: int) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving about ``count`` intervals over ``span``."""
    raw = span / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def linear_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values within [lo, hi]."""
    step = _nice_step(hi - lo, count)
    first = math.ceil(lo / step - 1e-9)
    return [k * step for k in range(first, math.floor(hi / step + 1e-9) + 1)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """Tick values within [10**lo, 10**hi]: powers of ten, with 2 and 5 times them over up to two decades and
    1.5, 2, 3, 5 and 7 times them within one."""
    decades = range(math.floor(lo), math.ceil(hi) + 1)
    mantissas = (1, 1.5, 2, 3, 5, 7) if hi - lo <= 1 else (1, 2, 5) if hi - lo <= 2 else (1,)
    ticks = [m * 10.0**d for d in decades for m in mantissas if lo - 1e-9 <= math.log10(m) + d <= hi + 1e-9]
    if len(ticks) < 2:  # less than a factor 2 of range: round linear values, still placed on the log axis
        ticks = [t for t in linear_ticks(10**lo, 10**hi, 4) if t > 0]
    return ticks


def step_label(step: float) -> str:
    """1500 -> '1.5k', 2000000 -> '2M'."""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(step) >= size:
            return f"{step / size:g}{suffix}"
    return f"{step:g}"


def value_label(value: float) -> str:
    return f"{value:.4g}"


def bucket_means(points: Series, x0: float, x1: float, columns: int) -> Series:
    """``points`` averaged per pixel column when there are more points than columns."""
    if len(points) <= columns:
        return points
    sums: dict[int, list[float]] = {}
    for x, y in points:
        column = min(int((x - x0) / (x1 - x0) * columns), columns - 1)
        total = sums.setdefault(column, [0.0, 0.0, 0])
        total[0] += x
        total[1] += y
        total[2] += 1
    return [(sx / n, sy / n) for sx, sy, n in (sums[c] for c in sorted(sums))]


def _padded(lo: float, hi: float, fraction: float = 0.05) -> tuple[float, float]:
    if hi <= lo:
        return lo - 1, hi + 1
    pad = (hi - lo) * fraction
    return lo - pad, hi + pad


LINE = FONT_SIZE + 6
"""The height of a title or legend row."""


def panel_height(legend_rows: int) -> int:
    """A panel's title, legend rows and plot box, in pixels."""
    return (1 + legend_rows) * LINE + 4 + PLOT_H


class Panel:
    """One plot box at ``top`` with a title, ``legend_rows`` rows of legend, y ticks and the shared step axis."""

    def __init__(self, draw: ImageDraw.ImageDraw, font, top: int, title: str, xrange: tuple[float, float],
                 legend_rows: int = 1):  # fmt: skip
        self.draw, self.font = draw, font
        draw.text((LEFT, top), title, fill=TEXT, font=font)
        self.legend_y = top + LINE
        self.box = (LEFT, top + panel_height(legend_rows) - PLOT_H, WIDTH - RIGHT, top + panel_height(legend_rows))
        self.x0, self.x1 = xrange
        self.legend_x = LEFT

    def x(self, value: float) -> float:
        return self.box[0] + (value - self.x0) / (self.x1 - self.x0) * (self.box[2] - self.box[0])

    def y(self, value: float) -> float:
        return self.box[3] - (value - self.y0) / (self.y1 - self.y0) * (self.box[3] - self.box[1])

    def axes(self, y0: float, y1: float, ticks: list[tuple[float, str]], x_ticks: list[float]) -> None:
        """Grid, frame and tick labels; ``ticks`` are (position on the y scale, label)."""
        self.y0, self.y1 = y0, y1
        left, top, right, bottom = self.box
        for value, label in ticks:
            py = self.y(value)
            self.draw.line([(left, py), (right, py)], fill=GRID)
            width = self.draw.textlength(label, font=self.font)
            self.draw.text((left - 6 - width, py - FONT_SIZE / 2 - 1), label, fill=TEXT, font=self.font)
        for step in x_ticks:
            px = self.x(step)
            self.draw.line([(px, top), (px, bottom)], fill=GRID)
            label = step_label(step)
            width = self.draw.textlength(label, font=self.font)
            self.draw.text((px - width / 2, bottom + 4), label, fill=TEXT, font=self.font)
        self.draw.rectangle(self.box, outline=FRAME)

    def curve(self, points: Series, color: str, dots: bool) -> None:
        pixels = [(self.x(x), self.y(y)) for x, y in points]
        if len(pixels) > 1:
            self.draw.line(pixels, fill=color, width=2, joint="curve")
        if dots or len(pixels) == 1:
            for px, py in pixels:
                self.draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=color)

    def legend(self, name: str, color: str) -> None:
        """One legend entry after the previous ones, on the next row when this one would pass the right edge."""
        if self.legend_x > LEFT and self.legend_x + 24 + self.draw.textlength(name, font=self.font) > WIDTH - RIGHT:
            self.legend_x, self.legend_y = LEFT, self.legend_y + LINE
        y = self.legend_y + FONT_SIZE / 2 + 1
        self.draw.line([(self.legend_x, y), (self.legend_x + 18, y)], fill=color, width=3)
        self.draw.text((self.legend_x + 24, self.legend_y), name, fill=TEXT, font=self.font)
        self.legend_x += 24 + self.draw.textlength(name, font=self.font) + 18

    def empty(self, message: str) -> None:
        self.draw.rectangle(self.box, outline=FRAME)
        centre = ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)
        width = self.draw.textlength(message, font=self.font)
        self.draw.text((centre[0] - width / 2, centre[1] - FONT_SIZE / 2), message, fill=FRAME, font=self.font)


class Downsampled:
    """A curve of (x, y) points in bounded memory: fewer than ``2 * limit`` points, each the mean of the same
    number (a power of two) of consecutive points added, the newest of up to that many.

    When ``2 * limit`` full points are held, neighbours merge in pairs, so adding costs O(1) on average
    and the curve never holds more than ``2 * limit`` points, however many are added.
    """

    def __init__(self, limit: int = SERIES_LIMIT):
        self.limit = limit
        self.size = 1  # points added per kept point
        self.sums: list[list[float]] = []  # per kept point: sum of x, sum of y, points added

    def add(self, x: float, y: float) -> None:
        if self.sums and self.sums[-1][2] < self.size:
            last = self.sums[-1]
            last[0], last[1], last[2] = last[0] + x, last[1] + y, last[2] + 1
        else:
            self.sums.append([x, y, 1])
        if len(self.sums) == 2 * self.limit and self.sums[-1][2] == self.size:
            pairs = zip(self.sums[0::2], self.sums[1::2])
            self.sums = [[a[0] + b[0], a[1] + b[1], a[2] + b[2]] for a, b in pairs]
            self.size *= 2

    def points(self) -> Series:
        return [(sx / n, sy / n) for sx, sy, n in self.sums]


class Chart:
    """What ``metrics.png`` shows, fed one metrics row at a time: each loss (as log10) and each validation measure
    of :data:`VALIDATION` as a :class:`Downsampled` curve, each loss's last value, each measure's best (step,
    value) and the step range. A ``val_changed`` row (other validation images from its step on) starts the
    validation curves anew, and their titles name the folder and the step."""

    def __init__(self, limit: int = SERIES_LIMIT):
        self.limit = limit
        self.losses: dict[str, Downsampled] = {}
        self.last: dict[str, float] = {}
        self.validation = {measure: Downsampled(limit) for measure in VALIDATION}
        self.best: dict[str, tuple[float, float]] = {}  # measure -> (step, value)
        self.val_changed: tuple[float, str] | None = None  # (step, folder) of the last change of validation images
        self.steps: tuple[float, float] | None = None  # first and last step seen

    def add(self, row: dict) -> None:
        step = row.get("step")
        if step is None:
            return
        self.steps = (step, step) if self.steps is None else (min(self.steps[0], step), max(self.steps[1], step))
        for key in LOSS_KEYS:
            value = row.get(key)
            if value is not None and value > 0 and math.isfinite(value):
                self.losses.setdefault(key, Downsampled(self.limit)).add(step, math.log10(value))
                self.last[key] = value
        if row.get("val_changed"):
            self.val_changed = (step, row["val_changed"])
            self.validation = {measure: Downsampled(self.limit) for measure in VALIDATION}
            self.best = {}
        for measure, curve in self.validation.items():
            value = row.get(f"val_{measure}")
            if value is not None and math.isfinite(value):
                curve.add(step, value)
                if improves(measure, value, self.best[measure][1] if measure in self.best else None):
                    self.best[measure] = (step, value)

    def draw(self, path: Path) -> None:
        """Training losses (log scale) and validation measures against step, written atomically as a PNG."""
        first, last = self.steps or (0, 0)
        first = min(first, 0)  # steps count from the run's start
        xrange = (first, last) if last > first else (first - 1, last + 1)
        x_ticks = [t for t in linear_ticks(*xrange, 8) if t == round(t)]  # steps are whole numbers
        font = ImageFont.load_default(FONT_SIZE)
        bottom = FONT_SIZE + 30  # step labels and the axis caption
        measures = ["psnr", *(m for m in VALIDATION if m != "psnr" and m in self.best)]
        height = 12 + panel_height(2) + len(measures) * panel_height(1) + (1 + len(measures)) * bottom
        image = Image.new("RGB", (WIDTH, height), "white")
        draw = ImageDraw.Draw(image)
        top = 12
        title = "training losses, log scale (legend: last logged value)"
        self._loss_panel(Panel(draw, font, top, title, xrange, legend_rows=2), x_ticks)  # up to 7 losses
        top += panel_height(2) + bottom
        since = ""
        if self.val_changed is not None:
            changed_at, folder = self.val_changed
            since = f", on {'/'.join(Path(folder).parts[-2:])} from step {int(changed_at):,}"
        for measure in measures:
            title = VALIDATION[measure][0] + since
            self._validation_panel(Panel(draw, font, top, title, xrange), measure, x_ticks)
            top += panel_height(1) + bottom
        caption = "step"
        width = draw.textlength(caption, font=font)
        draw.text(((LEFT + WIDTH - RIGHT - width) / 2, image.height - FONT_SIZE - 8), caption, fill=TEXT, font=font)
        with atomic_path(path) as tmp:
            image.save(tmp, format="PNG")

    def _loss_panel(self, panel: Panel, x_ticks: list[float]) -> None:
        columns = panel.box[2] - panel.box[0]
        names = [k for k in LOSS_KEYS if k in self.losses]
        curves = {k: bucket_means(self.losses[k].points(), panel.x0, panel.x1, columns) for k in names}
        if not curves:
            panel.empty("no losses logged yet")
            return
        values = [y for v in curves.values() for _, y in v]
        lo, hi = _padded(min(values), max(values))
        panel.axes(lo, hi, [(math.log10(t), value_label(t)) for t in log_ticks(lo, hi)], x_ticks)
        colors = dict(zip(LOSS_KEYS, COLORS))
        for name in reversed(names):  # the total loss last, on top
            panel.curve(curves[name], colors[name], dots=len(curves[name]) <= 50)
        for name in names:
            panel.legend(f"{name} {value_label(self.last[name])}", colors[name])

    def _validation_panel(self, panel: Panel, measure: str, x_ticks: list[float]) -> None:
        if measure not in self.best:
            panel.empty("no validation yet")
            return
        _, unit, color = VALIDATION[measure]
        columns = panel.box[2] - panel.box[0]
        curve = bucket_means(self.validation[measure].points(), panel.x0, panel.x1, columns)
        lo, hi = _padded(min(y for _, y in curve), max(y for _, y in curve), 0.1)
        panel.axes(lo, hi, [(t, f"{t:g}") for t in linear_ticks(lo, hi, 5)], x_ticks)
        panel.curve(curve, color, dots=len(curve) <= 50)
        best_step, best = self.best[measure]
        way = "highest" if HIGHER_IS_BETTER[measure] else "lowest"
        panel.legend(f"validation {measure.upper()}, {way} {best:.2f}{unit} at step {step_label(best_step)}", color)

