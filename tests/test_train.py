"""Training: learning, exact resume, crash-safe checkpoints, bad data, NaN stop, CLI errors."""

import json
import math
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
import mlx.optimizers as optim
from mlx.utils import tree_flatten, tree_map, tree_unflatten
from srgan_mlx import checkpoint, model_io
from srgan_mlx.cli import main
from srgan_mlx.config import TrainConfig
from srgan_mlx.errors import UserError
from srgan_mlx import train as train_module
from srgan_mlx.train import Trainer, TrainingError, train

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
    folder = checkpoint.checkpoint_dir(run) / f"step_{step:08d}"
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
    """Run ``config`` and stop it (as Ctrl-C would) when step ``at_step`` starts; return the run folder."""
    trainer = Trainer(config)
    real_step = trainer.train_step._step

    def step(lr, hr):
        if trainer.step + 1 == at_step:
            raise KeyboardInterrupt
        return real_step(lr, hr)

    trainer.train_step._step = step
    with pytest.raises(KeyboardInterrupt):
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
    resumed = train(TrainConfig(steps=6), resume=str(half))
    a, b = checkpoint_arrays(straight, 6), checkpoint_arrays(resumed, 6)
    assert {key.split(":")[0] for key in a} == {"generator.safetensors", "optimizer_g.safetensors"}
    assert_same_arrays(a, b)
    state_a = checkpoint.read_state(straight / "checkpoints" / "step_00000006")
    state_b = checkpoint.read_state(resumed / "checkpoints" / "step_00000006")
    assert state_a["sampler"] == state_b["sampler"]


@pytest.fixture
def vgg_file(tmp_path):
    """Random VGG19 weights in the converter's format (the content loss only needs some VGG)."""
    from srgan_mlx.vgg import VGG19Features

    path = tmp_path / "vgg19.safetensors"
    model_io.save_module(path, VGG19Features(), "vgg19", {})
    return path


def test_srgan_resume_is_exact_across_the_learning_rate_switch(images, vgg_file, tmp_path):
    """Generator, discriminator and both Adam states equal an uninterrupted run's, bit for bit.

    6 steps: the rate drops from ``lr`` to ``lr_final`` at update 3 (the half-way point).
    Resumed from step 3, the switch comes right after the resume; from step 2, the resumed
    run crosses it.
    """
    gan = dict(stage="srgan", vgg=str(vgg_file), vgg_layer="relu2_2", steps=6, lr=1e-3, lr_final=1e-4)
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
        resumed = train(TrainConfig(), resume=str(run))
        assert_same_arrays(checkpoint_arrays(resumed, 6), expected)


def test_interrupted_checkpoint_keeps_previous(images, tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(config(images, run, steps=2, checkpoint_every=2))
    real_save = model_io.save_module

    def crash_midway(path, *args, **kw):
        real_save(path, *args, **kw)
        raise KeyboardInterrupt  # killed right after the first file of the new checkpoint

    monkeypatch.setattr(checkpoint, "save_module", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(steps=4), resume=str(run))
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_00000002"
    # no half-written checkpoint folder is left behind either
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step_00000002"]
    generator = model_io.load_generator(run)
    assert generator.config() == {"scale": 4, "num_blocks": 2, "channels": 16}


@pytest.mark.parametrize("keep", [0, 2])
def test_pruning_keeps_latest_best_and_the_newest(images, tmp_path, monkeypatch, keep):
    """A checkpoint every step, validation PSNR falling after step 1: the old best survives pruning."""
    psnr = iter([30.0, 29.0, 28.0, 27.0, 26.0, 25.0])
    monkeypatch.setattr(train_module, "evaluate", lambda *args, **kw: {"mean": {"psnr": next(psnr), "ssim": 0.5}})
    run = train(config(images, tmp_path / "run", steps=6, checkpoint_every=1, val=str(images), val_every=1, keep=keep))
    root = checkpoint.checkpoint_dir(run)
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
    real_step = trainer.train_step._step
    calls = []

    def poisoned(lr, hr):
        calls.append(1)
        out = real_step(lr, hr)
        return {**out, "loss": out["loss"] * (math.nan if len(calls) == 3 else 1.0)}

    trainer.train_step._step = poisoned
    with pytest.raises(TrainingError, match="loss became nan at step 3"):
        trainer.run()
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == "step_00000002"


def test_srgan_without_vgg_names_the_converter(images, tmp_path):
    result = CliRunner().invoke(
        main, ["train", "--stage", "srgan", "--preset", "tiny", "--data", str(images), "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 1
    assert "convert.vgg19" in result.output and "Traceback" not in result.output


def test_srgan_stage_runs_from_srresnet_init(images, vgg_file, tmp_path):
    pre = train(config(images, tmp_path / "pre", steps=2, checkpoint_every=2))
    out = train(config(images, tmp_path / "gan", stage="srgan", steps=4, checkpoint_every=2,
                       init=str(pre), vgg=str(vgg_file), vgg_layer="relu2_2"))
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
                       vgg=str(vgg_file), vgg_layer="relu5_4"))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for row in rows:
        assert math.isfinite(row["loss"]) and row["content"] > 0 and 0 < row["d_real"] < 1 and 0 < row["d_fake"] < 1
    assert (out / "checkpoints" / "step_00000003" / "discriminator.safetensors").is_file()


DIST_WORKER = """
import sys, numpy as np
import srgan_mlx, mlx.core as mx
from mlx.utils import tree_flatten
from srgan_mlx.config import TrainConfig
from srgan_mlx.train import Trainer
images, out = sys.argv[1], sys.argv[2]
t = Trainer(TrainConfig(data=[images], out=out + "/run", steps=3, checkpoint_every=3, scale=4, crop=24,
                        batch_size=2, num_blocks=2, channels=16, workers=1, lr=1e-3))
t.run()
rank = mx.distributed.init().rank()
arrays = {"generator." + k: v for k, v in tree_flatten(t.generator.parameters())}
arrays.update({"optimizer." + k: v for k, v in tree_flatten(t.opt_g.state)})
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
    optimizer = optim.Adam(cfg.lr, betas=[cfg.beta1, cfg.beta2])

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
    result = subprocess.run(
        [str(launcher), "-n", "2", "--starting-port", str(port), "--", sys.executable, str(script), str(images),
         str(tmp_path)],
        capture_output=True, text=True, timeout=600,
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
