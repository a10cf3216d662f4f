"""The training loop: it learns, resumes bit for bit (the SRGAN recipe too, in and after the discriminator's
warm-up and across the learning-rate switch), stops on a NaN loss, trains from --init and with the original VGG19,
validates with labelled panels, keeps a moving average, and two data-parallel processes equal one on the global
batch."""

import json
import math
import os
import shutil
import socket
import subprocess
import sys
from functools import partial
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from click.testing import CliRunner
from mlx.utils import tree_flatten, tree_map, tree_unflatten
from PIL import Image

from srgan_mlx.cli import main
from srgan_mlx.errors import UserError
from srgan_mlx.files import model_io
from srgan_mlx.training import checkpoint, training_parts
from srgan_mlx.training.train import Interrupted, Trainer, TrainingError, resume, train
from training_runs import (
    CLI_TINY, RECIPE, assert_one_line, assert_same_arrays, checkpoint_arrays, cli_train, config, interrupted,
    metrics_rows, stop_at,
)


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


@pytest.mark.parametrize("lr_final, said", [
    (1e-4, "--steps 4: the learning rate drops to 0.0001 at step 2 (was 1)"),
    (1e-3, "--steps 4: the learning rate stays at 0.001 to the end"),
])  # fmt: skip
def test_srgan_resume_with_more_steps_says_where_the_rate_drops(images, vgg_file, tmp_path, capsys, lr_final, said):
    """Extending a run moves the half-way switch; a constant rate is not reported as a drop."""
    gan = dict(stage="srgan", vgg=str(vgg_file), vgg_layers="relu2_2", steps=2, lr=1e-3, lr_final=lr_final)
    run = train(config(images, tmp_path / "run", checkpoint_every=2, **gan))
    capsys.readouterr()
    resume(str(run), steps=4)
    assert [line for line in capsys.readouterr().out.splitlines() if "learning rate" in line] == [said]


@pytest.mark.parametrize("discriminator", ["paper", "paper-sn", "unet"])
def test_srgan_recipe_resumes_exactly_in_and_after_the_warmup(images, vgg_file, tmp_path, discriminator):
    """With every recipe option on, a run stopped during the discriminator's warm-up or after it ends, resumed,
    with the arrays of a run never stopped: generator, its moving average, discriminator (the U-Net's kept
    power-iteration vectors too, and paper-sn's), both optimizers."""
    gan = dict(RECIPE, vgg=str(vgg_file), discriminator=discriminator)
    straight = train(config(images, tmp_path / "straight", checkpoint_every=2, keep=5, **gan))
    expected = checkpoint_arrays(straight, 6)
    assert {key.split(":")[0] for key in expected} == {
        "generator.safetensors", "generator_ema.safetensors", "discriminator.safetensors",
        "optimizer_g.safetensors", "optimizer_d.safetensors",
    }  # fmt: skip
    assert any(key.endswith(".u") for key in expected) == (discriminator != "paper")
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
