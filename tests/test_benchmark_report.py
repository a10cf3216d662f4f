"""``benchmarks/run.py``'s report: the table and the chart take every framework it can run, and the ratio
compares the fastest variant of each side (the bfloat16 rows with each other where both ran)."""

import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import run  # noqa: E402


def timed(times: list[float]) -> dict:
    return {"times_s": times, **run.summarize(times, 16)}


@pytest.mark.parametrize("device", ["cpu", "gpu"])
def test_every_framework_is_reported_and_drawn(device, tmp_path):
    frameworks = [name for name, f in run.FRAMEWORKS.items() if device in f.devices]
    runs = {fw: timed([3.0 - 0.1 * i, 3.1 - 0.1 * i]) for i, fw in enumerate(frameworks)}
    results = {"b_srgan": {"title": "SRGAN step", "batch": 16, "frameworks": runs}}
    results["b_srgan"].update(run.ratios(results["b_srgan"]["frameworks"]))
    meta = {"device": device, "quick": False, "frameworks": frameworks, "finished": "now", "loadavg_start": [0],
            "loadavg_end": [0], "warmup": 1, "mlx_blas": "",
            "machine": {"cpu": "a CPU", "cpus_usable": 2, "memory_bytes": 2**30, "platform": "", "threads": 2,
                        "packages": {}, "thread_settings": ""}}  # fmt: skip
    table = run.markdown(results, meta)
    for fw in frameworks:
        assert run.LABELS[fw] in table
    run.chart(results, meta, tmp_path / "chart.png")
    assert Image.open(tmp_path / "chart.png").size[0] == 1000


def test_the_ratio_pairs_the_fastest_variants():
    frameworks = {"mlx": timed([3.1]), "mlx-bf16": timed([1.7]), "tf": timed([3.5]), "tf-bf16": timed([1.8])}
    found = run.ratios(frameworks)
    assert found["ratio_mlx_over_tf_between"] == ["mlx-bf16", "tf-bf16"]
    assert found["ratio_mlx_over_tf"] == pytest.approx(1.8 / 1.7)
