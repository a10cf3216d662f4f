"""metrics.png: tick values, step labels, curves in their own panels, legends outside the plot boxes, bounded curves."""

import numpy as np
import pytest
from PIL import Image, ImageColor

from srgan_mlx.training.plot import (
    COLORS, FRAME, NIQE_COLOR, PSNR_COLOR, Chart, Downsampled, bucket_means, linear_ticks, log_ticks, step_label,
)  # fmt: skip


def plot_history(history, path):
    chart = Chart()
    for row in history:
        chart.add(row)
    chart.draw(path)


def test_ticks_and_labels():
    assert linear_ticks(0, 20000, 8) == [0, 2500, 5000, 7500, 10000, 12500, 15000, 17500, 20000]
    assert linear_ticks(26.3, 28.1, 5) == pytest.approx([26.5, 27.0, 27.5, 28.0])
    assert log_ticks(-3, 0) == pytest.approx([1e-3, 1e-2, 1e-1, 1])
    assert log_ticks(-2.5, -0.9) == pytest.approx([0.005, 0.01, 0.02, 0.05, 0.1])
    assert len(log_ticks(np.log10(0.042), np.log10(0.052))) >= 2  # within a factor 2: round linear values
    assert [step_label(s) for s in (0, 750, 1500, 20000, 2_000_000)] == ["0", "750", "1.5k", "20k", "2M"]


def test_long_histories_are_averaged_per_column():
    points = [(float(x), float(x % 2)) for x in range(20000)]  # alternating 0, 1
    means = bucket_means(points, 0, 20000, 800)
    assert len(means) == 800
    assert all(y == pytest.approx(0.5, abs=0.05) for _, y in means)
    assert bucket_means(points[:10], 0, 10, 800) == points[:10]


def _pixels_of(image: np.ndarray, color: str) -> np.ndarray:
    return np.argwhere(np.all(image == ImageColor.getrgb(color), axis=2))


@pytest.mark.parametrize("rows", [3, 20000])
def test_losses_and_psnr_in_their_own_panels(tmp_path, rows):
    rng = np.random.default_rng(0)
    history = []
    for step in range(1, rows + 1):
        history.append({"step": step, "loss": float(0.01 + 0.1 * np.exp(-step / 2000) * rng.random())})
        if step % max(rows // 4, 1) == 0:
            history.append({"step": step, "val_psnr": 28 + step / rows})
    plot_history(history, tmp_path / "metrics.png")
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.png"]
    image = np.asarray(Image.open(tmp_path / "metrics.png").convert("RGB"))
    loss, psnr = _pixels_of(image, COLORS[0]), _pixels_of(image, PSNR_COLOR)
    assert len(loss) and len(psnr)
    assert loss[:, 0].max() < psnr[:, 0].min()  # loss panel above, PSNR panel below: separate axes
    legend = loss[:, 0].min()
    curve = loss[loss[:, 0] > legend + 12]
    assert len(curve) > 10 and curve[:, 1].max() - curve[:, 1].min() > image.shape[1] / 2  # spans the step axis
    frame_rows = np.nonzero(np.sum(np.all(image == ImageColor.getrgb(FRAME), axis=2), axis=1) > image.shape[1] / 2)[0]
    assert np.any((frame_rows > legend) & (frame_rows < curve[:, 0].min()))  # the legend is above the plot box


def test_empty_and_single_row_histories_draw(tmp_path):
    plot_history([], tmp_path / "empty.png")
    plot_history([{"step": 1, "loss": 0.5}], tmp_path / "one.png")
    assert Image.open(tmp_path / "empty.png").size == Image.open(tmp_path / "one.png").size


@pytest.mark.parametrize("count", [5, 64, 100_000 + 3])
def test_downsampled_curve_is_bounded_and_averages_equal_runs(count):
    """Each kept point is the mean of 2^k consecutive points (the last of up to that many), fewer than
    2 * limit of them: what a chart costs to draw does not grow with the run."""
    curve = Downsampled(limit=4)
    x = np.arange(count, dtype=np.float64)
    y = (x * 7919) % 101  # integers: sums and means are exact
    for a, b in zip(x, y):
        curve.add(a, b)
    points = curve.points()
    assert min(count, 4) <= len(points) < 8  # between limit and 2 * limit once merging has begun
    size = curve.size
    groups = [slice(i, min(i + size, count)) for i in range(0, count, size)]
    assert points == [(x[g].mean(), y[g].mean()) for g in groups]


def test_validation_niqe_gets_a_panel_of_its_own_below_psnr_only_where_measured(tmp_path):
    history = [{"step": s, "loss": 1.0 / s} for s in range(1, 9)]
    plot_history([*history, {"step": 4, "val_psnr": 27.0}, {"step": 8, "val_psnr": 26.8}], tmp_path / "psnr.png")
    validations = [{"step": 4, "val_psnr": 27.0, "val_niqe": 5.6}, {"step": 8, "val_psnr": 26.8, "val_niqe": 5.4}]
    plot_history([*history, *validations], tmp_path / "niqe.png")
    psnr_only, both = (np.asarray(Image.open(tmp_path / f).convert("RGB")) for f in ("psnr.png", "niqe.png"))
    assert not len(_pixels_of(psnr_only, NIQE_COLOR)) and both.shape[0] > psnr_only.shape[0]
    psnr, niqe = _pixels_of(both, PSNR_COLOR), _pixels_of(both, NIQE_COLOR)
    assert psnr[:, 0].max() < niqe[:, 0].min()  # NIQE's panel below PSNR's
    chart = Chart()
    for row in [*history, *validations]:
        chart.add(row)
    assert chart.best == {"psnr": (4, 27.0), "niqe": (8, 5.4)}  # PSNR's highest, NIQE's lowest


def test_other_validation_images_start_the_validation_curves_anew(tmp_path):
    chart = Chart()
    for row in [{"step": 2, "val_psnr": 30.0}, {"step": 4, "val_psnr": 29.0}, {"step": 5, "val_changed": "/d/Set14/HR"},
                {"step": 6, "val_psnr": 27.0}, {"step": 8, "val_psnr": 27.5}]:  # fmt: skip
        chart.add(row)
    assert chart.best == {"psnr": (8, 27.5)} and chart.validation["psnr"].points() == [(6, 27.0), (8, 27.5)]
    assert chart.val_changed == (5, "/d/Set14/HR") and chart.steps == (2, 8)


def test_every_loss_of_an_srgan_run_is_drawn_and_its_legend_wraps(tmp_path):
    """All seven loss terms (phase included) get a curve and a legend entry; the legend runs onto a second row
    above the plot box instead of past the image's right edge."""
    from srgan_mlx.training.plot import LOSS_KEYS

    history = [{"step": s, **{key: 0.001 * (i + 1) * (1 + s / 100) for i, key in enumerate(LOSS_KEYS)}}
               for s in range(1, 200)]  # fmt: skip
    plot_history(history, tmp_path / "metrics.png")
    image = np.asarray(Image.open(tmp_path / "metrics.png").convert("RGB"))
    frame_rows = np.nonzero(np.sum(np.all(image == ImageColor.getrgb(FRAME), axis=2), axis=1) > image.shape[1] / 2)[0]
    box_top = frame_rows.min()
    first_rows = {}
    for color in COLORS:
        pixels = _pixels_of(image, color)
        assert len(pixels) and (pixels[:, 0] > box_top).any(), color  # a curve inside the box
        first_rows[color] = pixels[:, 0].min()  # its legend sample, above the box
        assert first_rows[color] < box_top, color
    assert first_rows[COLORS[-1]] > first_rows[COLORS[0]] + 10  # the last entry on the second row
