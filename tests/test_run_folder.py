"""Run folders: a run is never overwritten silently (--overwrite removes only what a run wrote), a folder with
a run but no checkpoint says so, and a ``latest`` that names a checkpoint gone falls back to the newest."""



from srgan_mlx.files.run_folder import RunFolder
from srgan_mlx.training.train import resume, train
from training_runs import CLI_TINY, assert_one_line, cli_train, config, metrics_rows


def test_a_run_folder_is_never_overwritten_silently(images, tmp_path):
    run = tmp_path / "run"
    first = cli_train("--data", images, "--out", run, *CLI_TINY, "--steps", 4, "--checkpoint-every", 2)
    assert first.exit_code == 0, first.output
    (run / "notes.txt").write_text("mine")
    saved = {p: p.read_bytes() for p in (run / "checkpoints").rglob("*") if p.is_file()}

    again = cli_train("--data", images, "--out", run, *CLI_TINY, "--steps", 2)
    assert again.exit_code == 1
    assert_one_line(again.stderr, "already holds a training run (last checkpoint: step_00000004)",
                    f"--resume {run}", "--overwrite")  # fmt: skip
    assert {p: p.read_bytes() for p in (run / "checkpoints").rglob("*") if p.is_file()} == saved

    fresh = cli_train("--data", images, "--out", run, *CLI_TINY, "--steps", 2, "--checkpoint-every", 2, "--overwrite")
    assert fresh.exit_code == 0, fresh.output
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step_00000002"]
    assert [r["step"] for r in metrics_rows(run)] == [1, 2]  # the earlier run's rows are gone
    assert (run / "notes.txt").read_text() == "mine"  # files the run did not write stay


def test_a_folder_with_a_run_but_no_checkpoint_says_overwrite(images, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    result = cli_train("--data", images, "--out", run, *CLI_TINY, "--steps", 1)
    assert result.exit_code == 1
    assert_one_line(result.stderr, "with no checkpoint yet; start again with --overwrite")


def test_resume_with_latest_naming_a_checkpoint_that_is_gone_takes_the_newest(images, tmp_path, capsys):
    run = train(config(images, tmp_path / "run", steps=4, checkpoint_every=2))
    RunFolder(run).point("latest", run / "checkpoints" / "step_00000009")
    capsys.readouterr()
    resume(str(run), steps=6)
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_00000006"
    err = capsys.readouterr().err
    assert (f"srgan-mlx: warning: {run / 'checkpoints' / 'latest'} names step_00000009, which is not a complete "
            "checkpoint; using step_00000004, the newest that is") in err
