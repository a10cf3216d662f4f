"""Training: learning, exact resume, crash-safe checkpoints, Ctrl-C, run folders, bad data, NaN stop, CLI errors."""

import json
from functools import partial
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import srgan_mlx  # noqa: F401  (loads the BLAS before mlx)
import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten, tree_map, tree_unflatten
from srgan_mlx.cli import main
from srgan_mlx.errors import UserError
from srgan_mlx.files import model_io
from srgan_mlx.files.run_folder import RunFolder
from srgan_mlx.networks import weights_io
from srgan_mlx.training import checkpoint
from srgan_mlx.training import train as train_module, training_parts
from srgan_mlx.training.config import TrainConfig
from srgan_mlx.training.train import Interrupted, Trainer, TrainingError, resume, train

TINY = dict(scale=4, crop=24, batch_size=4, num_blocks=2, channels=16, workers=2, log_every=2)


def smooth_image(rng, size):
    """A smooth random RGB image (low-frequency content the tiny model can learn)."""
    coarse = rng.integers(0, 256, (max(size // 16, 1), max(size // 16, 1), 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((size, size), Image.BICUBIC)


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        smooth_image(rng, 64).save(folder / ("sub" if i % 2 else "") / f"img{i}.png")
    smooth_image(rng, 16).save(folder / "too_small.png")
    return folder


def config(images, out, **kw):
    return TrainConfig(data=[str(images)], out=str(out), **{**TINY, **kw})


def checkpoint_arrays(run, step):
    """Every array of a checkpoint (networks and optimizer states), keyed ``file:name``."""
    folder = RunFolder(run).checkpoint(step)
    return {
        f"{file.name}:{key}": np.array(value)
        for file in sorted(folder.glob("*.safetensors"))
        for key, value in mx.load(str(file)).items()
    }


def assert_same_arrays(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key]), key


def interrupted(config, at_step):
    """Start ``config`` and stop it at once (as a second Ctrl-C or a kill would) when step ``at_step`` starts;
    return the run folder."""
    trainer = Trainer(config)
    trainer.start()
    real_step = trainer.parts.train_step._step

    def step(lr, hr):
        if trainer.step + 1 == at_step:
            raise KeyboardInterrupt
        return real_step(lr, hr)

    trainer.parts.train_step._step = step
    with pytest.raises(Interrupted, match=f"stopped at step {at_step - 1}; the last checkpoint is step_"):
        trainer.run()
    return Path(config.out)


def test_loss_falls(images, tmp_path):
    out = train(config(images, tmp_path / "run", steps=40, checkpoint_every=40, lr=1e-3, log_every=5))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 8
    assert np.mean(losses[-2:]) < 0.75 * np.mean(losses[:2]), losses
    assert (out / "metrics.png").is_file()


def test_resume_is_exact(images, tmp_path):
    straight = train(config(images, tmp_path / "a", steps=6, checkpoint_every=3))
    half = train(config(images, tmp_path / "b", steps=3, checkpoint_every=3))
    resumed = resume(str(half), steps=6)
    a, b = checkpoint_arrays(straight, 6), checkpoint_arrays(resumed, 6)
    assert {key.split(":")[0] for key in a} == {"generator.safetensors", "optimizer_g.safetensors"}
    assert_same_arrays(a, b)
    state_a = checkpoint.read_state(straight / "checkpoints" / "step_00000006")
    state_b = checkpoint.read_state(resumed / "checkpoints" / "step_00000006")
    assert state_a["sampler"] == state_b["sampler"]


@pytest.fixture
def vgg_file(tmp_path):
    """Random VGG19 weights in the converter's format (the content loss only needs some VGG)."""
    from srgan_mlx.networks.vgg import VGG19Features

    path = tmp_path / "vgg19.safetensors"
    weights_io.save_module(path, VGG19Features(), "vgg19", {})
    return path


def test_srgan_resume_is_exact_across_the_learning_rate_switch(images, vgg_file, tmp_path):
    """Generator, discriminator and both Adam states equal an uninterrupted run's, bit for bit.

    6 steps: the rate drops from ``lr`` to ``lr_final`` at update 3 (the half-way point).
    Resumed from step 3, the switch comes right after the resume; from step 2, the resumed
    run crosses it.
    """
    gan = dict(stage="srgan", vgg=str(vgg_file), vgg_layers="relu2_2", steps=6, lr=1e-3, lr_final=1e-4)
    straight = train(config(images, tmp_path / "straight", checkpoint_every=3, **gan))
    expected = checkpoint_arrays(straight, 6)
    assert {key.split(":")[0] for key in expected} == {
        "generator.safetensors", "discriminator.safetensors", "optimizer_g.safetensors", "optimizer_d.safetensors"
    }
    for opt in ("g", "d"):  # the schedule did switch: the last update used lr_final
        assert checkpoint_arrays(straight, 3)[f"optimizer_{opt}.safetensors:learning_rate"] == np.float32(1e-3)
        assert expected[f"optimizer_{opt}.safetensors:learning_rate"] == np.float32(1e-4)
    for every, stop in ((3, 5), (2, 3)):
        run = interrupted(config(images, tmp_path / f"every{every}", checkpoint_every=every, **gan), stop)
        assert (run / "checkpoints" / "latest").read_text().strip() == f"step_{every:08d}"
        resumed = resume(str(run))
        assert_same_arrays(checkpoint_arrays(resumed, 6), expected)


RECIPE = dict(stage="srgan", vgg_layers="conv1_2:0.1,relu2_2", vgg_distance="l1", vgg_rescale=0.1, vgg_bf16=True,
              steps=6, d_batch="joint", d_warmup=3, anchor_weight=1.0, d_shift=8, phase_weight=2.0, pixel_weight=0.5,
              artifact_weight=1.0, gan_loss="relativistic", adversarial_weight=5e-3, frozen_g_norm=True,
              d_lr_scale=0.5, beta2=0.99, adam_bias_correction=True, ema_decay=0.9, lr=1e-3,
              lr_final=1e-4)  # every SRGAN recipe option away from the paper's value


def test_srgan_recipe_resumes_exactly_in_and_after_the_warmup(images, vgg_file, tmp_path):
    """With every recipe option on, a run stopped during the discriminator's warm-up or after it ends, resumed,
    with the arrays of a run never stopped: generator, its moving average, discriminator, both optimizers."""
    gan = dict(RECIPE, vgg=str(vgg_file))
    straight = train(config(images, tmp_path / "straight", checkpoint_every=2, keep=5, **gan))
    expected = checkpoint_arrays(straight, 6)
    assert {key.split(":")[0] for key in expected} == {
        "generator.safetensors", "generator_ema.safetensors", "discriminator.safetensors",
        "optimizer_g.safetensors", "optimizer_d.safetensors",
    }  # fmt: skip
    for stop, latest in ((3, 2), (5, 4)):
        trainer = Trainer(config(images, tmp_path / f"stop{stop}", checkpoint_every=2, **gan))
        trainer.start()
        for name in ("warmup_step", "train_step"):
            step = getattr(trainer.parts, name)
            step._step = partial(stop_at, trainer, stop, step._step)
        with pytest.raises(Interrupted):
            trainer.run()
        assert (Path(trainer.folder.path) / "checkpoints" / "latest").read_text().strip() == f"step_{latest:08d}"
        assert_same_arrays(checkpoint_arrays(resume(str(trainer.folder.path)), 6), expected)


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


def test_a_record_refuses_an_occupied_folder_and_a_changed_recipe(images, vgg_file, tmp_path):
    run = train(config(images, tmp_path / "run", checkpoint_every=2, **dict(RECIPE, vgg=str(vgg_file), d_warmup=1, steps=2)))
    checkpoint.write_record(run / "checkpoints" / "step_00000002", tmp_path / "record")
    with pytest.raises(UserError, match="already holds a run; carry the record .* on into an empty --out"):
        resume(str(tmp_path / "record"), out=str(run))
    with pytest.raises(UserError, match="drop --lr 0.5"):
        resume(str(tmp_path / "record"), out=str(tmp_path / "new"), lr=0.5)


def stop_at(trainer, at_step, real_step, lr, hr):
    if trainer.step + 1 == at_step:
        raise KeyboardInterrupt
    return real_step(lr, hr)


def test_warmup_trains_the_discriminator_alone_then_both(images, vgg_file, tmp_path):
    """The warm-up's steps leave the generator's weights (and so its average) where ``--init`` put them and log D's
    terms alone, in lines of their own; then the generator moves and its average follows it."""
    init = train(config(images, tmp_path / "pre", steps=1, checkpoint_every=1))
    run = train(config(images, tmp_path / "gan", checkpoint_every=1, keep=10, log_every=2, init=str(init),
                       **dict(RECIPE, vgg=str(vgg_file))))  # fmt: skip
    initial = {k: v for k, v in checkpoint_arrays(init, 1).items() if k.startswith("generator.")}
    for step in (1, 2, 3):
        arrays = checkpoint_arrays(run, step)
        for key, value in initial.items():
            if "running" not in key:  # BatchNorm statistics follow the batches, as in any training-mode step
                assert np.array_equal(arrays[key], value), (step, key)
                assert np.array_equal(arrays[key.replace("generator.", "generator_ema.")], value), (step, key)
    moved = checkpoint_arrays(run, 4)
    assert not np.array_equal(moved["generator.safetensors:tail.weight"], initial["generator.safetensors:tail.weight"])
    average = moved["generator_ema.safetensors:tail.weight"]
    assert np.allclose(average, 0.9 * initial["generator.safetensors:tail.weight"]
                       + 0.1 * moved["generator.safetensors:tail.weight"], atol=1e-7)  # fmt: skip
    rows = metrics_rows(run)
    assert [r["step"] for r in rows] == [2, 3, 4, 6]  # a line at the warm-up's end
    assert {"d_loss", "d_real", "d_fake"} <= set(rows[1]) and "content" not in rows[1]
    assert {"content", "adversarial", "anchor", "phase", "artifact", "d_loss"} <= set(rows[2])


def test_a_run_with_a_moving_average_upscales_with_it(images, tmp_path):
    """``--ema-decay``: validation, upscale, export and --init take the average, not the last trained weights."""
    run = train(config(images, tmp_path / "run", steps=2, checkpoint_every=2, ema_decay=0.5, lr=1e-2))
    assert model_io.resolve_generator_file(run).name == "generator_ema.safetensors"
    checkpoint_folder = run / "checkpoints" / "step_00000002"
    assert model_io.resolve_generator_file(checkpoint_folder).name == "generator_ema.safetensors"
    average = model_io.load_generator(run)
    stored = mx.load(str(checkpoint_folder / "generator_ema.safetensors"))
    for key, value in tree_flatten(average.parameters()):
        assert np.array_equal(np.array(value), np.array(stored[key])), key


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


def test_corrupt_image_skipped_with_warning(images, tmp_path, capfd):
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    trainer = Trainer(config(images, tmp_path / "run", steps=2))
    err = capfd.readouterr().err
    assert err.count("broken.png") == 1 and "warning" in err
    assert trainer.data.unreadable == 1 and trainer.data.too_small == 1
    assert len(trainer.data.files) == 6
    trainer.run()


def test_truncated_image_skipped_at_load(images, tmp_path, capfd):
    data = (images / "img0.png").read_bytes()
    (images / "img0.png").write_bytes(data[: len(data) // 2])
    trainer = Trainer(config(images, tmp_path / "run", steps=4, batch_size=6))
    trainer.run()
    err = capfd.readouterr().err
    assert err.count("img0.png") == 1
    assert trainer.loader.unreadable == 1


def test_empty_dataset_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no usable training images"):
        Trainer(TrainConfig(data=[str(tmp_path / "empty")], out=str(tmp_path / "run"), **TINY))


def test_nan_loss_stops_and_keeps_last_checkpoint(images, tmp_path):
    trainer = Trainer(config(images, tmp_path / "run", steps=4, checkpoint_every=2))
    real_step = trainer.parts.train_step._step
    calls = []

    def poisoned(lr, hr):
        calls.append(1)
        out = real_step(lr, hr)
        return {**out, "loss": out["loss"] * (math.nan if len(calls) == 3 else 1.0)}

    trainer.parts.train_step._step = poisoned
    with pytest.raises(TrainingError, match="loss became nan at step 3"):
        trainer.run()
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == "step_00000002"


def test_srgan_without_vgg_names_the_converter(images, tmp_path):
    result = CliRunner().invoke(
        main, ["train", "--stage", "srgan", "--preset", "tiny", "--data", str(images), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 1
    assert "srgan-mlx convert-vgg" in result.output and "Traceback" not in result.output


def test_srgan_stage_runs_from_srresnet_init(images, vgg_file, tmp_path):
    pre = train(config(images, tmp_path / "pre", steps=2, checkpoint_every=2))
    out = train(config(images, tmp_path / "gan", stage="srgan", steps=4, checkpoint_every=2,
                       init=str(pre), vgg=str(vgg_file), vgg_layers="relu2_2"))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"content", "adversarial", "d_loss", "d_real", "d_fake"} <= rows[-1].keys()
    assert (out / "checkpoints" / "step_00000004" / "discriminator.safetensors").is_file()
    assert (out / "checkpoints" / "step_00000004" / "optimizer_d.safetensors").is_file()


def test_srgan_stage_trains_with_the_original_vgg19(images, tmp_path, original_vgg19):
    """The paper's content loss (relu5_4 of the original VGG19, Caffe input convention) through a few SRGAN steps."""
    vgg_file = tmp_path / "vgg19.safetensors"
    converted = CliRunner().invoke(main, ["convert-vgg", str(original_vgg19), "-o", str(vgg_file)])
    assert converted.exit_code == 0, converted.output
    out = train(config(images, tmp_path / "gan", stage="srgan", steps=3, checkpoint_every=3, log_every=1,
                       vgg=str(vgg_file), vgg_layers="relu5_4"))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for row in rows:
        assert math.isfinite(row["loss"]) and row["content"] > 0 and 0 < row["d_real"] < 1 and 0 < row["d_fake"] < 1
    assert (out / "checkpoints" / "step_00000003" / "discriminator.safetensors").is_file()


DIST_WORKER = """
import sys, numpy as np
import srgan_mlx, mlx.core as mx
from mlx.utils import tree_flatten
from srgan_mlx.training.config import TrainConfig
from srgan_mlx.training.train import Trainer
images, out = sys.argv[1], sys.argv[2]
t = Trainer(TrainConfig(data=[images], out=out + "/run", steps=3, checkpoint_every=3, scale=4, crop=24,
                        batch_size=2, num_blocks=2, channels=16, workers=1, lr=1e-3))
t.run()
rank = mx.distributed.init().rank()
arrays = {"generator." + k: v for k, v in tree_flatten(t.generator.parameters())}
arrays.update({"optimizer." + k: v for k, v in tree_flatten(t.optimizers["g"].state)})
np.savez(f"{out}/rank{rank}.npz", **{k: np.array(v) for k, v in arrays.items()})
"""


def running_statistics(model):
    return {k: v for k, v in tree_flatten(model.parameters()) if k.endswith(("running_mean", "running_var"))}


def data_parallel_reference(images, out, steps, ranks, per_rank, **kw):
    """What ``ranks`` data-parallel processes compute, in one process, written out step by step.

    The global batch of ``ranks * per_rank`` images is split into consecutive shards; each
    shard runs forward and backward with its own BatchNorm batch statistics from the same
    running statistics; the update uses the mean of the shards' gradients, and the new
    running statistics are the mean of the shards'. A single-process trainer with the
    global batch size supplies the initial weights and the global batches.
    Returns the generator's arrays and the Adam state, keyed as the worker saves them.
    """
    trainer = Trainer(config(images, out, steps=steps, batch_size=ranks * per_rank, **kw))
    generator, cfg = trainer.generator, trainer.config
    optimizer = training_parts.adam(cfg)

    def loss(lr, hr):
        return mx.mean(mx.square(generator(lr) - hr))

    try:
        for _ in range(steps):
            lr, hr = trainer.loader.next()
            start = running_statistics(generator)
            grads, statistics = [], []
            for shard_lr, shard_hr in zip(np.split(lr, ranks), np.split(hr, ranks)):
                generator.update(tree_unflatten(list(start.items())))
                grads.append(nn.value_and_grad(generator, loss)(mx.array(shard_lr), mx.array(shard_hr))[1])
                statistics.append(running_statistics(generator))
            optimizer.update(generator, tree_map(lambda *g: sum(g) / ranks, *grads))
            generator.update(tree_unflatten([(k, sum(s[k] for s in statistics) / ranks) for k in start]))
            mx.eval(generator.parameters(), optimizer.state)
    finally:
        trainer.loader.close()
    arrays = {"generator." + k: v for k, v in tree_flatten(generator.parameters())}
    arrays.update({"optimizer." + k: v for k, v in tree_flatten(optimizer.state)})
    return {k: np.array(v) for k, v in arrays.items()}


def free_ports(count):
    """The first of ``count`` consecutive free TCP ports on localhost.

    mlx.launch's ring backend listens on one port per rank from a fixed default (32323), so
    two test runs at once on one machine would collide or connect to each other.
    """
    for _ in range(100):
        sockets = [socket.socket() for _ in range(count)]
        try:
            sockets[0].bind(("127.0.0.1", 0))
            first = sockets[0].getsockname()[1]
            for offset, other in enumerate(sockets[1:], 1):
                other.bind(("127.0.0.1", first + offset))
            return first
        except OSError:
            continue
        finally:
            for one in sockets:
                one.close()
    raise RuntimeError(f"no {count} consecutive free ports on localhost")


@pytest.mark.skipif(sys.platform == "win32", reason="ring backend on localhost")
def test_two_ranks_equal_one_process_on_the_global_batch(images, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(DIST_WORKER)
    launcher = Path(sys.executable).with_name("mlx.launch")
    port = free_ports(2)
    launcher_temp = tmp_path / "launcher-temp"  # mlx.launch leaves its mktemp files behind: here, not in $TMPDIR
    launcher_temp.mkdir()
    result = subprocess.run(
        [str(launcher), "-n", "2", "--starting-port", str(port), "--", sys.executable, str(script), str(images),
         str(tmp_path)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "TMPDIR": str(launcher_temp)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rank0, rank1 = dict(np.load(tmp_path / "rank0.npz")), dict(np.load(tmp_path / "rank1.npz"))
    assert_same_arrays(rank0, rank1)  # every rank holds the same model ...
    assert (tmp_path / "run" / "checkpoints" / "step_00000003").is_dir()

    # ... and that model is what data-parallel training is defined to compute on the global batch
    expected = data_parallel_reference(images, tmp_path / "reference", steps=3, ranks=2, per_rank=2, lr=1e-3)
    assert rank0.keys() == expected.keys()
    assert rank0["optimizer.step"] == 3

    def kind(key):  # BN running means / variances, Adam first / second moments, the rest by file
        return next((k for k in ("running_mean", "running_var", ".m", ".v") if key.endswith(k)), key.split(".")[0])

    scale = {}
    for key, value in expected.items():
        scale[kind(key)] = max(scale.get(kind(key), 0.0), float(np.abs(value).max()))
    for key, value in expected.items():
        # float tolerance, relative to the largest value of the same kind (moments span 1e-20 to 1e-4)
        assert np.abs(rank0[key] - value).max() <= 1e-4 * scale[kind(key)], key


# --- run folders, Ctrl-C, resume options, metrics, validation images, --init -----------------------------------

CLI_TINY = ["--scale", "4", "--crop", "24", "--batch-size", "4", "--num-blocks", "2", "--channels", "16",
            "--workers", "1", "--log-every", "1"]  # fmt: skip


def cli_train(*args):
    return CliRunner().invoke(main, ["train", *map(str, args)])


def metrics_rows(run):
    return [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def assert_one_line(text, *fragments):
    assert text.count("\n") == 1 and "Traceback" not in text, text
    for fragment in fragments:
        assert fragment in text, text


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
                    "--steps, --workers, --log-every, --val-every, --checkpoint-every, --keep, --device")  # fmt: skip
    assert (run / "checkpoints" / "latest").read_text() == before and not (tmp_path / "elsewhere").exists()
    assert cli_train("--resume", run, "--preset", "tiny").exit_code == 2
    assert cli_train("--resume", run, "--overwrite").exit_code == 2


def ctrl_c(trainer, at_steps, again_while_saving=None, monkeypatch=None):
    """Press Ctrl-C (a real SIGINT) during each step of ``at_steps``; and while the checkpoint of step
    ``again_while_saving`` is being written, if given."""
    real_step = trainer.parts.train_step._step

    def step(lr, hr):
        if trainer.step + 1 in at_steps:
            signal.raise_signal(signal.SIGINT)
        return real_step(lr, hr)

    trainer.parts.train_step._step = step
    if again_while_saving:
        real_save = weights_io.save_module

        def pressed_again(path, *args, **kw):
            real_save(path, *args, **kw)
            if Path(path).parent.name.startswith(f".step_{again_while_saving:08d}."):
                signal.raise_signal(signal.SIGINT)

        monkeypatch.setattr(checkpoint, "save_module", pressed_again)


def test_ctrl_c_saves_the_current_step_and_resume_continues_exactly(images, tmp_path):
    """Ctrl-C in step 5 (between checkpoints every 4 and metrics lines every 2): the run ends at step 5 with a
    checkpoint there; resumed, it ends with the weights and the metrics lines of a run never stopped."""
    settings = dict(steps=8, checkpoint_every=4, log_every=2)
    straight = train(config(images, tmp_path / "straight", **settings))
    trainer = Trainer(config(images, tmp_path / "run", **settings))
    trainer.start()
    ctrl_c(trainer, {5})
    with pytest.raises(Interrupted) as stopped:
        trainer.run()
    run = tmp_path / "run"
    assert str(stopped.value) == f"stopped by Ctrl-C at step 5, checkpoint saved; continue with: srgan-mlx train --resume {run}"
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_00000005"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C is the user's again
    resume(str(run))
    assert_same_arrays(checkpoint_arrays(run, 8), checkpoint_arrays(straight, 8))
    rows, expected = metrics_rows(run), metrics_rows(straight)
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    # bit for bit, the line at step 6 too: it averages step 5 (before Ctrl-C) and step 6 (after the resume)
    assert [r["loss"] for r in rows] == [r["loss"] for r in expected]


SECOND_PRESS_WHILE_SAVING = """
import signal, sys
from pathlib import Path
import srgan_mlx
from srgan_mlx.training import checkpoint
from srgan_mlx.training.config import TrainConfig
from srgan_mlx.training.train import Trainer

images, out = sys.argv[1:]
trainer = Trainer(TrainConfig(data=[images], out=out, steps=8, checkpoint_every=2, **{tiny}))
trainer.start()
real_step, real_save = trainer.parts.train_step._step, checkpoint.save_module

def step(lr, hr):
    if trainer.step + 1 == 3:
        signal.raise_signal(signal.SIGINT)  # the first press: stop after step 3 with a checkpoint
    return real_step(lr, hr)

def save(path, *args, **kw):
    real_save(path, *args, **kw)
    if Path(path).parent.name.startswith(".step_00000003."):
        signal.raise_signal(signal.SIGINT)  # the second, while that checkpoint is being written

trainer.parts.train_step._step = step
checkpoint.save_module = save
trainer.run()
print("not stopped")
"""


def test_second_ctrl_c_stops_at_once_and_keeps_the_last_checkpoint(images, tmp_path):
    """In a real process: the second press ends it at once (killed by SIGINT, here in the middle of writing the
    checkpoint the first press asked for); the previous checkpoint stays the latest and the run resumes from it."""
    run = tmp_path / "run"
    script = SECOND_PRESS_WHILE_SAVING.replace("{tiny}", repr(TINY))
    process = subprocess.run([sys.executable, "-c", script, str(images), str(run)], capture_output=True, text=True,
                             timeout=600)  # fmt: skip
    assert process.returncode == -signal.SIGINT, process.stderr
    assert "not stopped" not in process.stdout
    assert f"press again to stop at once (this step is lost; continue from the last checkpoint with: srgan-mlx " \
           f"train --resume {run})" in process.stderr
    folder = run / "checkpoints"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["latest", "step_00000002"]
    assert (folder / "latest").read_text().strip() == "step_00000002"
    resume(str(run))
    assert (folder / "latest").read_text().strip() == "step_00000008"
    assert not list(folder.glob(".*"))  # the abandoned checkpoint's hidden folder is pruned at the next save


def test_ctrl_c_on_the_command_line_is_one_line_and_status_130(images, tmp_path, monkeypatch):
    real = Trainer._train_one

    def train_one(self, bar, total):
        real(self, bar, total)
        if self.step == 2:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(Trainer, "_train_one", train_one)
    run = tmp_path / "run"
    result = cli_train("--data", images, "--out", run, *CLI_TINY, "--steps", 6)
    assert result.exit_code == 130
    assert result.stderr.splitlines()[-1] == (
        f"stopped by Ctrl-C at step 2, checkpoint saved; continue with: srgan-mlx train --resume {run}"
    )
    assert "done" not in result.stdout


def test_rows_written_after_the_checkpoint_are_dropped_on_resume(images, tmp_path):
    """Killed at step 6 with a checkpoint at 3: metrics.jsonl holds steps 1-5; resumed, each step once."""
    run = interrupted(config(images, tmp_path / "run", steps=7, checkpoint_every=3, log_every=1), 6)
    assert [r["step"] for r in metrics_rows(run)] == [1, 2, 3, 4, 5]
    resume(str(run))
    assert [r["step"] for r in metrics_rows(run)] == [1, 2, 3, 4, 5, 6, 7]


@pytest.fixture
def val_images(tmp_path):
    folder = tmp_path / "val"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for name in ("a", "b"):
        smooth_image(rng, 48).save(folder / f"{name}.png")
    return folder


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
        assert set(json.loads(text)) == {"config", "began_at", "sampler", "best_psnr", "unlogged", "step"}
    assert abs(len(states[1]) - len(states[0])) < 100  # three times the history, the same size


def test_validation_logs_colour_and_writes_labelled_panels(images, val_images, tmp_path, capsys):
    from srgan_mlx.quality.imresize import imresize

    run = train(config(images, tmp_path / "run", steps=2, checkpoint_every=2, val=str(val_images), val_every=2))
    row = metrics_rows(run)[-1]
    assert set(row) == {"step", "val_psnr", "val_ssim", "val_bias_r", "val_bias_g", "val_bias_b"}
    line = next(line for line in capsys.readouterr().out.splitlines() if "validation PSNR" in line)
    assert f"colour SR-HR R {row['val_bias_r']:+.2f} G {row['val_bias_g']:+.2f} B {row['val_bias_b']:+.2f}" in line
    hr = np.asarray(Image.open(val_images / "a.png").convert("RGB"))
    panel = np.asarray(Image.open(run / "validation" / "step_00000002" / "a.png"))
    strip = panel.shape[0] - 48
    assert 0 < strip < 48 and panel.shape[1] > 3 * 48
    assert np.array_equal(panel[strip:, -48:], hr)  # HR on the right, pixel for pixel
    assert np.array_equal(panel[strip:, :48], imresize(imresize(hr, 0.25), 4.0))  # MATLAB bicubic on the left
    assert len(np.unique(panel[:strip].reshape(-1, 3), axis=0)) > 2  # the labels are drawn in the strip


def test_init_accepts_the_shipped_model_name(images, vgg_file, tmp_path):
    trainer = Trainer(config(images, tmp_path / "gan", stage="srgan", num_blocks=16, channels=64, init="srresnet",
                             vgg=str(vgg_file), vgg_layers="relu1_1", batch_size=1))  # fmt: skip
    trainer.start()
    shipped = model_io.load_generator("srresnet")
    expected = dict(tree_flatten(shipped.parameters()))
    for key, value in tree_flatten(trainer.generator.parameters()):
        assert np.array_equal(np.array(value), np.array(expected[key])), key
    trainer.loader.close()
    result = cli_train("--stage", "srgan", "--init", "srresnet", "--vgg", vgg_file, "--data", images,
                       "--out", tmp_path / "tiny", *CLI_TINY)  # fmt: skip
    assert result.exit_code == 1
    assert_one_line(result.stderr, "srresnet_x4.safetensors: generator", "does not match this run's")


def test_resume_from_a_checkpoint_folder_carried_elsewhere(images, tmp_path):
    """A checkpoint folder outside any run (carried back from another machine) continues in the run folder its
    config names; a path that is neither a run nor a checkpoint is a one-line error."""
    run = train(config(images, tmp_path / "run", steps=2, checkpoint_every=2))
    carried = tmp_path / "carried" / "step_00000002"
    shutil.copytree(run / "checkpoints" / "step_00000002", carried)
    shutil.rmtree(run)
    assert resume(str(carried), steps=3) == run
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_00000003"
    for missing, message in ((tmp_path / "nope", "no such run or checkpoint folder"),
                             (images, "not a checkpoint or a run folder with checkpoints")):  # fmt: skip
        with pytest.raises(UserError, match=f"{missing}: {message}"):
            resume(str(missing))


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


@pytest.mark.parametrize("corrected", [False, True])
def test_adam_bias_correction_reaches_both_optimizers(images, vgg_file, tmp_path, corrected):
    """``--adam-bias-correction``: the first update of a parameter is ``lr`` x sign(gradient) with it (Kingma & Ba's
    corrected moments), ``lr`` x 0.1 / sqrt(0.001) ~ 3.16 ``lr`` without it (MLX's default)."""
    trainer = Trainer(config(images, tmp_path / "run", stage="srgan", vgg=str(vgg_file), vgg_layers="relu1_1",
                             steps=1, lr=1e-3, lr_final=1e-3, adam_bias_correction=corrected))  # fmt: skip
    assert all(o.bias_correction is corrected for o in trainer.optimizers.values()) and len(trainer.optimizers) == 2
    before = np.array(trainer.generator.tail.bias)
    trainer.run()
    moved = np.abs(np.array(trainer.generator.tail.bias) - before)
    np.testing.assert_allclose(moved, 1e-3 if corrected else 1e-3 * 0.1 / np.sqrt(1e-3), rtol=5e-2)  # eps shifts small gradients


def test_resume_with_latest_naming_a_checkpoint_that_is_gone_takes_the_newest(images, tmp_path, capsys):
    run = train(config(images, tmp_path / "run", steps=4, checkpoint_every=2))
    RunFolder(run).point("latest", run / "checkpoints" / "step_00000009")
    capsys.readouterr()
    resume(str(run), steps=6)
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_00000006"
    err = capsys.readouterr().err
    assert (f"srgan-mlx: warning: {run / 'checkpoints' / 'latest'} names step_00000009, which is not a complete "
            "checkpoint; using step_00000004, the newest that is") in err
