"""``--resume`` continues a run with its own model and recipe: a change to any setting that is not operational
(how long and how it runs) is refused in one line naming it, for every such field of TrainConfig, however small
the change, and the run is left as it was; the operational ones are taken."""

import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from srgan_mlx.cli import main
from srgan_mlx.training.config import OPERATIONAL, TrainConfig, option

RECIPE_FIELDS = [f for f in dataclasses.fields(TrainConfig) if f.name not in OPERATIONAL]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished one-step run of a tiny generator."""
    folder = tmp_path_factory.mktemp("resume")
    images = folder / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(images / f"{i}.png")
    out = folder / "run"
    result = CliRunner().invoke(main, ["train", "--data", str(images), "--out", str(out), "--steps", "1", "--crop", "24",
                                       "--batch-size", "2", "--num-blocks", "1", "--channels", "8"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def changed(f: dataclasses.Field, value, tmp_path) -> list[str]:
    """The command-line words of a small change to the field ``f`` from ``value``."""
    meta, name = f.metadata, option(f.name)
    if meta["choices"]:
        return [name, str(next(c for c in meta["choices"] if c != value))]
    if isinstance(value, bool) or "bool" in str(f.type):
        return [name if not value else f"--no-{name[2:]}"]
    if meta["path"]:
        return [name, str(tmp_path / "elsewhere")]
    if isinstance(value, int) or "int" in str(f.type):
        return [name, str((value or 0) + 1)]
    if isinstance(value, float) or "float" in str(f.type):
        return [name, repr(value * (1 + 1e-6) if value else 1e-6)]  # a change in the sixth digit
    return [name, f"{value}x"]  # free text


@pytest.mark.parametrize("f", RECIPE_FIELDS, ids=[f.name for f in RECIPE_FIELDS])
def test_a_change_to_any_recipe_setting_is_refused(run, f, tmp_path):
    import json

    saved = json.loads((run / "config.json").read_text())
    before = (run / "checkpoints" / "latest").read_text()
    words = changed(f, saved[f.name], tmp_path)
    result = CliRunner().invoke(main, ["train", "--resume", str(run), *words, "--steps", "2"])
    assert result.exit_code == 1, (words, result.output)
    assert result.stderr.startswith("error: --resume continues a run with its own model and recipe: drop "
                                    f"{option(f.name)}"), (words, result.stderr)  # fmt: skip
    assert len(result.stderr.splitlines()) == 1
    assert (run / "checkpoints" / "latest").read_text() == before


def test_the_operational_settings_are_taken(run):
    result = CliRunner().invoke(main, ["train", "--resume", str(run), "--steps", "2", "--workers", "1",
                                       "--log-every", "1", "--val-every", "5", "--checkpoint-every", "1", "--keep", "2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_00000002"


def test_every_field_is_either_operational_or_refused():
    """The two lists above cover TrainConfig: a new setting lands in one of them by its ``operational`` flag."""
    assert {f.name for f in RECIPE_FIELDS} | set(OPERATIONAL) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(OPERATIONAL) == {"steps", "workers", "log_every", "val_every", "checkpoint_every", "keep", "bf16", "best_by", "val"}
