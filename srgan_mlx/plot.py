"""A dependency-free PNG chart of training curves (Pillow only; matplotlib is not a dependency)."""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

from .atomic import atomic_path

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
PANEL_W, PANEL_H, MARGIN = 640, 240, 48


def _panel(draw: ImageDraw.ImageDraw, top: int, title: str, series: dict[str, list[tuple[float, float]]], log: bool) -> None:
    """Draw named (x, y) series into one panel; y on a log10 axis if ``log``."""
    box = (MARGIN, top + 24, MARGIN + PANEL_W, top + 24 + PANEL_H)
    draw.rectangle(box, outline="black")
    draw.text((MARGIN, top + 6), title, fill="black")
    points = {k: [(x, math.log10(y) if log else y) for x, y in v if y > 0 or not log] for k, v in series.items()}
    points = {k: v for k, v in points.items() if v}
    if not points:
        return
    xs = [x for v in points.values() for x, _ in v]
    ys = [y for v in points.values() for _, y in v]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1

    def to_px(x, y):
        return (box[0] + (x - x0) / (x1 - x0) * PANEL_W, box[3] - (y - y0) / (y1 - y0) * PANEL_H)

    fmt = (lambda v: f"{10 ** v:.3g}") if log else (lambda v: f"{v:.4g}")
    draw.text((4, box[1]), fmt(y1), fill="black")
    draw.text((4, box[3] - 12), fmt(y0), fill="black")
    draw.text((box[0], box[3] + 4), f"step {x0:.0f}", fill="black")
    draw.text((box[2] - 80, box[3] + 4), f"step {x1:.0f}", fill="black")
    for i, (name, values) in enumerate(points.items()):
        color = COLORS[i % len(COLORS)]
        pixels = [to_px(x, y) for x, y in values]
        if len(pixels) > 1:
            draw.line(pixels, fill=color, width=2)
        else:
            draw.ellipse([pixels[0][0] - 2, pixels[0][1] - 2, pixels[0][0] + 2, pixels[0][1] + 2], fill=color)
        draw.text((box[0] + 8 + 110 * i, box[1] + 4), name, fill=color)


def plot_history(history: list[dict], path: Path) -> None:
    """Training losses (log scale) and validation PSNR against step, written atomically as a PNG."""
    loss_keys = [k for k in ("loss", "content", "adversarial", "d_loss") if any(k in row for row in history)]
    losses = {k: [(r["step"], r[k]) for r in history if k in r] for k in loss_keys}
    psnr = {"val PSNR (dB)": [(r["step"], r["val_psnr"]) for r in history if "val_psnr" in r]}
    image = Image.new("RGB", (PANEL_W + 2 * MARGIN, 2 * (PANEL_H + 48) + 16), "white")
    draw = ImageDraw.Draw(image)
    _panel(draw, 0, "training losses (log scale)", losses, log=True)
    _panel(draw, PANEL_H + 56, "validation PSNR", psnr, log=False)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
