"""``srgan-mlx train``: --resume takes the operational options and refuses changes to the model or recipe in one
line; bad options are refused before any step, with nothing written; relative paths are kept absolute; SRGAN
without VGG19 weights names the converter."""

import json

import pytest
from click.testing import CliRunner

from srgan_mlx.cli import main
from srgan_mlx.training import checkpoint
from training_runs import CLI_TINY, assert_one_line, cli_train, metrics_rows


def test_resume_applies_operational_options(images, tmp_path):
    run = tmp_path / "run"
    assert cli_train("--data", images, "--out", run, *CLI_TINY, "--steps", 2, "--checkpoint-every", 2).exit_code == 0
    result = cli_train("--resume", run, "--steps", 8, "--log-every", 3, "--checkpoint-every", 2, "--keep", 1,
                       "--workers", 2, "--val-every", 5, "--device", "cpu",
                       "--num-blocks", 2, "--data", images)  # fmt: skip  (same as the run's: accepted)
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert (config["steps"], config["log_every"], config["checkpoint_every"], config["keep"], config["workers"],
            config["val_every"]) == (8, 3, 2, 1, 2, 5)  # fmt: skip
    assert [r["step"] for r in metrics_rows(run)] == [1, 2, 3, 6, 8]  # now every 3 steps, and the last
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*")) == ["step_00000008"]  # --keep 1
    assert checkpoint.read_state(run / "checkpoints" / "step_00000008")["config"]["log_every"] == 3


def test_resume_refuses_changes_to_the_model_or_recipe(images, tmp_path):
    run = tmp_path / "run"
    assert cli_train("--data", images, "--out", run, *CLI_TINY, "--steps", 2, "--checkpoint-every", 2).exit_code == 0
    before = (run / "checkpoints" / "latest").read_text()
    result = cli_train("--resume", run, "--steps", 4, "--lr", 0.01, "--num-blocks", 4, "--pixel-weight", 0.01,
                       "--out", tmp_path / "elsewhere")  # fmt: skip
    assert result.exit_code == 1
    assert_one_line(result.stderr, "drop --lr 0.01, ", "--num-blocks 4", "--pixel-weight 0.01", f"--out {tmp_path}",
                    "the run has --lr 0.0001, ", "--num-blocks 2", "--pixel-weight 0.0", f"--out {run})",
                    "--steps, --bf16, --workers, --log-every, --val-every, --checkpoint-every, --keep, --best-by, --device")  # fmt: skip
    assert (run / "checkpoints" / "latest").read_text() == before and not (tmp_path / "elsewhere").exists()
    assert cli_train("--resume", run, "--preset", "tiny").exit_code == 2
    assert cli_train("--resume", run, "--overwrite").exit_code == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--checkpoint-every", "0"], "--checkpoint-every must be at least 1, got 0"),
        (["--log-every", "0"], "--log-every must be at least 1, got 0"),
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["--steps", "0"], "--steps must be at least 1"),
        (["--stage", "srgan", "--vgg-layers", "relu9_9"], "--vgg-layers relu9_9: unknown VGG19 layer 'relu9_9'"),
        (["--stage", "srgan", "--vgg-layers", "conv1_2:x"], "the weight of conv1_2 must be a number, got 'x'"),
        (["--stage", "srgan", "--vgg-layers", "conv1_2,conv1_2:2"], "VGG19 layer conv1_2 given twice"),
        (["--stage", "srgan", "--artifact-weight", "1"], "--artifact-weight needs --ema-decay"),
        (["--stage", "srgan", "--phase-window", "5"], "--phase-window 5 must divide the LR crop, 12 pixels"),
        (["--stage", "srgan", "--grid-blind", "content,phase"],
         "--grid-blind content,phase: unknown term 'phase'; known: content, adversarial, pixel, anchor, artifact"),
        (["--stage", "srgan", "--grid-blind-mode", "growth"],
         "--grid-blind-mode growth needs --grid-blind TERMS: it says what those terms' gradient loses"),
        (["--adversarial-weight", "5"], "--adversarial-weight: options of --stage srgan"),
        (["--frozen-g-norm"], "--frozen-g-norm: options of --stage srgan"),
        (["--val", "nowhere"], "nowhere: no such folder"),
        (["--anchor-weight", "-1"], "--anchor-weight must be >= 0, got -1.0"),
        (["--phase-weight", "-2"], "--phase-weight must be >= 0, got -2.0"),
        (["--stage", "srgan", "--d-warmup", "60"], "--d-warmup 60 leaves no generator update in --steps 60"),
        (["--ema-decay", "1"], "--ema-decay must be in [0, 1)"),
        (["--d-batch", "joint"], "--d-batch: options of --stage srgan"),
        (["--anchor-weight", "1", "--pixel-weight", "1"], "--pixel-weight, --anchor-weight: options of --stage srgan"),
    ],
)
def test_bad_options_are_refused_before_any_step(images, tmp_path, args, message):
    """One line, exit 1, and nothing written: the run folder does not exist afterwards."""
    out = tmp_path / "run"
    result = cli_train("--preset", "tiny", "--data", images, "--out", out, *args)
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_relative_paths_are_kept_absolute_so_resume_works_from_anywhere(images, tmp_path, monkeypatch):
    monkeypatch.chdir(images.parent)
    first = cli_train("--preset", "tiny", "--data", images.name, "--out", "run", "--steps", "2", "--checkpoint-every", "2")
    assert first.exit_code == 0, first.output
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["data"] == [str(images)]
    monkeypatch.chdir(tmp_path.parent)
    resumed = cli_train("--resume", tmp_path / "run", "--steps", "4")
    assert resumed.exit_code == 0, resumed.output
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == "step_00000004"


def test_srgan_without_vgg_names_the_converter(images, tmp_path):
    result = CliRunner().invoke(
        main, ["train", "--stage", "srgan", "--preset", "tiny", "--data", str(images), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 1
    assert "srgan-mlx convert-vgg" in result.output and "Traceback" not in result.output
