"""Checkpoints: a save interrupted half-way keeps the previous one, pruning keeps the latest, the best and the
newest, a step saved again is replaced whole; a run's record (export --record) carries the run on where nothing
else of it exists, and refuses an occupied folder or a changed recipe."""

import json
import shutil

import mlx.core as mx
import numpy as np
import pytest
from PIL import Image
from click.testing import CliRunner
from mlx.utils import tree_flatten

from srgan_mlx.cli import main
from srgan_mlx.errors import UserError
from srgan_mlx.files import model_io
from srgan_mlx.files.run_folder import RunFolder
from srgan_mlx.networks import weights_io
from srgan_mlx.training import checkpoint, train as train_module
from srgan_mlx.training.train import Interrupted, resume, train
from training_runs import RECIPE, assert_same_arrays, checkpoint_arrays, config


def test_interrupted_checkpoint_keeps_previous(images, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(config(images, run, steps=2, checkpoint_every=2))
    real_save = weights_io.save_module

    def crash_midway(path, *args, **kw):
        real_save(path, *args, **kw)
        raise KeyboardInterrupt  # killed right after the first file of the new checkpoint

    monkeypatch.setattr(checkpoint, "save_module", crash_midway)
    with pytest.raises(Interrupted, match="the last checkpoint is step_00000002"):
        resume(str(run), steps=4)
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_00000002"
    # no half-written checkpoint folder is left behind either
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step_00000002"]
    generator = model_io.load_generator(run)
    assert generator.config() == {"scale": 4, "num_blocks": 2, "channels": 16}


@pytest.mark.parametrize("keep", [0, 2])
def test_pruning_keeps_latest_best_and_the_newest(images, tmp_path, monkeypatch, keep):
    """A checkpoint every step, validation PSNR falling after step 1: the old best survives pruning."""
    psnr = iter([30.0, 29.0, 28.0, 27.0, 26.0, 25.0])
    bias = {"bias_r": 0.0, "bias_g": 0.0, "bias_b": 0.0}
    monkeypatch.setattr(
        train_module, "evaluate", lambda *args, **kw: {"mean": {"psnr": next(psnr), "ssim": 0.5, **bias}}
    )
    (tmp_path / "val").mkdir()
    shutil.copy(images / "img0.png", tmp_path / "val")
    run = train(config(images, tmp_path / "run", steps=6, checkpoint_every=1, val=str(tmp_path / "val"), val_every=1,
                       keep=keep))
    root = RunFolder(run).checkpoints
    assert (root / "best").read_text().strip() == "step_00000001"
    assert (root / "latest").read_text().strip() == "step_00000006"
    assert checkpoint.read_state(root / "step_00000006")["best_psnr"] == 30.0
    newest = {f"step_{step:08d}" for step in range(7 - keep, 7)}
    assert {p.name for p in root.glob("step_*")} == {"step_00000001", "step_00000006"} | newest
    assert model_io.load_generator(run).config() == {"scale": 4, "num_blocks": 2, "channels": 16}  # best loads


def test_a_perceptual_run_keeps_its_lowest_niqe_not_its_highest_psnr(images, vgg_file, tmp_path, monkeypatch):
    """The SRGAN stage names the best by validation NIQE (PSNR falling all along, NIQE lowest at step 3): step 3 is
    kept and loads; the state holds both bests; ``--best-by psnr`` on resume counts from the stored best PSNR."""
    psnr, niqe, asked = iter([30.0, 29.0, 28.0, 27.0, 26.0, 25.0, 31.0]), iter([7.0, 6.0, 5.0, 6.0, 7.0, 8.0]), []
    bias = {"bias_r": 0.0, "bias_g": 0.0, "bias_b": 0.0}

    def measured(*args, with_niqe=False, **kw):
        asked.append(with_niqe)
        return {"mean": {"psnr": next(psnr), "ssim": 0.5, **bias, **({"niqe": next(niqe)} if with_niqe else {})}}

    monkeypatch.setattr(train_module, "evaluate", measured)
    (tmp_path / "val").mkdir()
    Image.new("RGB", (104, 104), "gray").save(tmp_path / "val" / "big.png")  # 96 + 2 x 4 border: NIQE's least
    run = train(config(images, tmp_path / "run", stage="srgan", vgg=str(vgg_file), steps=6, checkpoint_every=1,
                       val=str(tmp_path / "val"), val_every=1, keep=1))  # fmt: skip
    root = RunFolder(run).checkpoints
    assert asked == [True] * 6
    assert (root / "best").read_text().strip() == "step_00000003"
    assert {p.name for p in root.glob("step_*")} == {"step_00000003", "step_00000006"}
    state = checkpoint.read_state(root / "step_00000006")
    assert (state["best_psnr"], state["best_niqe"]) == (30.0, 5.0)
    assert [json.loads(line).get("val_niqe") for line in (run / "metrics.jsonl").read_text().splitlines()
            if "val_psnr" in line] == [7.0, 6.0, 5.0, 6.0, 7.0, 8.0]  # fmt: skip
    resume(str(run), steps=7, best_by="psnr")  # 31 dB beats the stored 30: the best moves to step 7
    assert asked[-1] is False and (root / "best").read_text().strip() == "step_00000007"


def test_other_validation_images_count_the_best_anew_the_same_ones_moved_do_not(images, tmp_path, monkeypatch, capsys):
    psnr = iter([30.0, 20.0, 25.0])
    bias = {"bias_r": 0.0, "bias_g": 0.0, "bias_b": 0.0}
    monkeypatch.setattr(train_module, "evaluate", lambda *a, **kw: {"mean": {"psnr": next(psnr), "ssim": 0.5, **bias}})
    first, moved, other = (tmp_path / name for name in ("val", "moved", "other"))
    first.mkdir()
    shutil.copy(images / "img0.png", first / "a.png")
    run = train(config(images, tmp_path / "run", steps=1, checkpoint_every=1, val=str(first), val_every=1))
    root = RunFolder(run).checkpoints
    shutil.copytree(first, moved)
    resume(str(run), steps=2, val=str(moved))  # 20 dB on the same images: not a best
    assert (root / "best").read_text().strip() == "step_00000001"
    other.mkdir()
    shutil.copy(images / "img0.png", other / "b.png")
    resume(str(run), steps=3, val=str(other))  # 25 dB on other images: the first there, so the best
    assert (root / "best").read_text().strip() == "step_00000003"
    state = checkpoint.read_state(root / "step_00000003")
    assert (state["best_psnr"], state["val_images"], state["config"]["val"]) == (25.0, ["b.png"], str(other))
    assert "--val " + str(other) + " holds other images than the run was validated on" in capsys.readouterr().out
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row for row in rows if "val_changed" in row] == [{"step": 2, "val_changed": str(other)}]


def test_validation_images_too_small_for_niqe_are_refused_before_the_first_step(images, val_images, vgg_file, tmp_path):
    run, gan = tmp_path / "run", dict(stage="srgan", vgg=str(vgg_file))
    with pytest.raises(UserError, match=r"a\.png: too small \(48x48 after modcrop\).*NIQE.*--best-by niqe, the srgan "
                       r"stage's default\): choose larger --val images or --best-by psnr$"):
        train(config(images, run, **gan, steps=2, val=str(val_images)))
    assert not (run / "checkpoints").exists()
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "c.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match=r"c\.png: .*") as refused:  # not a size problem: no NIQE advice
        train(config(images, run, **gan, steps=2, val=str(tmp_path / "corrupt")))
    assert "--best-by" not in str(refused.value)
    assert train(config(images, run, **gan, steps=1, val=str(val_images), best_by="psnr")) == run


def test_saving_a_step_again_replaces_it_whole_and_leftovers_are_pruned(images, tmp_path):
    """After a resume from an older checkpoint the same step is saved again; a killed save's hidden folder goes."""
    run = train(config(images, tmp_path / "run", steps=4, checkpoint_every=2))
    root = RunFolder(run).checkpoints
    leftover = root / ".step_00000009.abc"
    leftover.mkdir()
    before = checkpoint_arrays(run, 4)
    resume(root / "step_00000002", steps=4)  # saves step 4 again over the existing folder
    assert not leftover.exists() and not list(root.glob(".step_*"))
    assert_same_arrays(before, checkpoint_arrays(run, 4))  # the same step, bit for bit
    assert (root / "latest").read_text().strip() == "step_00000004"


def test_a_record_carries_the_run_on_where_nothing_else_of_it_exists(images, vgg_file, tmp_path):
    """``export --record``: the generator and its moving average in float16, config, metrics up to the step, state;
    nothing else. From it alone (the run folder deleted, the data moved), ``--resume RECORD --out NEW --data MOVED``
    starts at the record's step with those weights, trains D alone for ``d_warmup`` steps, switches G and D to
    ``lr_final`` at the run's middle step, and its own checkpoints then resume exactly."""
    gan = dict(RECIPE, vgg=str(vgg_file), steps=10, d_warmup=2, log_every=1)
    run = train(config(images, tmp_path / "run", checkpoint_every=4, **dict(gan, steps=4)))
    result = CliRunner().invoke(main, ["export", str(run), "--record", str(tmp_path / "record")])
    assert result.exit_code == 0, result.output
    record = tmp_path / "record"
    assert sorted(p.name for p in record.iterdir()) == [
        "config.json", "generator.safetensors", "generator_ema.safetensors", "metrics.jsonl", "state.json"]
    saved = {f: mx.load(str(record / f)) for f in ("generator.safetensors", "generator_ema.safetensors")}
    assert all(v.dtype == mx.float16 for arrays in saved.values() for v in arrays.values())
    expected_g = {k: v.astype(mx.float16) for k, v in mx.load(str(run / "checkpoints/step_00000004/generator.safetensors")).items()}
    assert all(np.array_equal(np.array(saved["generator.safetensors"][k]), np.array(v)) for k, v in expected_g.items())
    assert [json.loads(line)["step"] for line in (record / "metrics.jsonl").read_text().splitlines()][-1] == 4
    moved = tmp_path / "moved"
    shutil.copytree(images, moved)
    shutil.rmtree(run)
    shutil.rmtree(images)

    trainer = train_module.resumed(str(record), steps=10, out=str(tmp_path / "carried"), data=[str(moved)],
                                   checkpoint_every=1, keep=10)  # fmt: skip
    assert trainer.step == 4 and trainer.warmup_end == 6
    for key, value in saved["generator_ema.safetensors"].items():
        assert np.array_equal(np.array(dict(tree_flatten(trainer.average.parameters()))[key]), np.array(value.astype(mx.float32)))
    carried = trainer.run()
    rows = [json.loads(line) for line in (carried / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "d_loss" in r][:6] == [1, 2, 3, 4, 5, 6]
    assert all("content" not in r for r in rows if r["step"] in (5, 6)) and "content" in rows[-1]
    at5, at6, at10 = (checkpoint_arrays(carried, step) for step in (5, 6, 10))
    assert at5["optimizer_d.safetensors:learning_rate"] == np.float32(1e-3 * 0.5)  # update 5 of 10: lr
    assert at6["optimizer_d.safetensors:learning_rate"] == np.float32(1e-4 * 0.5)  # update 6 of 10: lr_final
    assert at10["optimizer_g.safetensors:learning_rate"] == np.float32(1e-4)
    assert at10["optimizer_g.safetensors:step"] == 4 and at10["optimizer_d.safetensors:step"] == 6

    again = tmp_path / "again"
    shutil.copytree(carried, again)
    for step in (9, 10):
        shutil.rmtree(again / "checkpoints" / f"step_{step:08d}")
    (again / "checkpoints" / "latest").write_text("step_00000008\n")
    assert_same_arrays(checkpoint_arrays(resume(str(again)), 10), at10)


def test_a_record_keeps_the_best_generator_and_so_does_the_run_carried_on_from_it(images, vgg_file, tmp_path,
                                                                                   monkeypatch):
    """The best checkpoint (step 2 of 4, by NIQE) goes into the record: its moving average in float16, and its step.
    Carried on, the new run holds it as its best (pruning keeps it, ``--model RUN`` loads it), its own record
    carries it again unchanged, and resuming from it alone is refused in one line."""
    niqe = iter([6.0, 5.0, 7.0, 8.0, 9.0, 9.5])
    bias = {"bias_r": 0.0, "bias_g": 0.0, "bias_b": 0.0}
    monkeypatch.setattr(train_module, "evaluate",
                        lambda *a, **kw: {"mean": {"psnr": 30.0, "ssim": 0.5, "niqe": next(niqe), **bias}})
    (tmp_path / "val").mkdir()
    Image.new("RGB", (104, 104), "gray").save(tmp_path / "val" / "big.png")
    every = dict(checkpoint_every=1, val_every=1, keep=1)
    run = train(config(images, tmp_path / "run", stage="srgan", vgg=str(vgg_file), ema_decay=0.9, steps=4,
                       val=str(tmp_path / "val"), **every))  # fmt: skip
    assert (run / "checkpoints" / "best").read_text().strip() == "step_00000002"
    record = checkpoint.write_record(run / "checkpoints" / "step_00000004", tmp_path / "record")
    assert checkpoint.read_state(record)["best_step"] == 2
    best = mx.load(str(record / "best_generator.safetensors"))
    expected = mx.load(str(run / "checkpoints" / "step_00000002" / "generator_ema.safetensors"))
    assert best.keys() == expected.keys()
    assert all(v.dtype == mx.float16 and np.array_equal(np.array(v), np.array(expected[k].astype(mx.float16)))
               for k, v in best.items())  # fmt: skip
    shutil.rmtree(run)

    carried = train_module.resumed(str(record), steps=6, out=str(tmp_path / "carried"), **every).run()
    root = RunFolder(carried).checkpoints
    assert (root / "best").read_text().strip() == "step_00000002"
    assert sorted(p.name for p in (root / "step_00000002").iterdir()) == ["generator_ema.safetensors", "state.json"]
    loaded = dict(tree_flatten(model_io.load_generator(carried).parameters()))
    assert all(np.array_equal(np.array(loaded[k]), np.array(v.astype(mx.float32))) for k, v in best.items())
    again = checkpoint.write_record(root / "step_00000006", tmp_path / "again")
    assert checkpoint.read_state(again)["best_step"] == 2
    assert (again / "best_generator.safetensors").read_bytes() == (record / "best_generator.safetensors").read_bytes()
    with pytest.raises(UserError, match="step_00000002: only the best generator, carried from a record, not a "):
        resume(str(root / "step_00000002"))


def test_a_record_refuses_an_occupied_folder_and_a_changed_recipe(images, vgg_file, tmp_path):
    run = train(config(images, tmp_path / "run", checkpoint_every=2, **dict(RECIPE, vgg=str(vgg_file), d_warmup=1, steps=2)))
    checkpoint.write_record(run / "checkpoints" / "step_00000002", tmp_path / "record")
    with pytest.raises(UserError, match="already holds a run; carry the record .* on into an empty --out"):
        resume(str(tmp_path / "record"), out=str(run))
    with pytest.raises(UserError, match="drop --lr 0.5"):
        resume(str(tmp_path / "record"), out=str(tmp_path / "new"), lr=0.5)
