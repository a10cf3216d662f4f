"""Tiny training runs for the tests of training (test_train, test_checkpoint, test_run_folder, test_data,
test_metrics_log, test_interrupts, test_train_command, test_training_parts): their settings, the images they
learn from (``conftest``'s ``images``), their checkpoints' arrays, and the train command's one-line errors."""

import json
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from srgan_mlx.cli import main
from srgan_mlx.files.run_folder import RunFolder
from srgan_mlx.training.config import TrainConfig
from srgan_mlx.training.train import Interrupted, Trainer

TINY = dict(scale=4, crop=24, batch_size=4, num_blocks=2, channels=16, workers=2, log_every=2)


def smooth_image(rng, size):
    """A smooth random RGB image (low-frequency content the tiny model can learn)."""
    coarse = rng.integers(0, 256, (max(size // 16, 1), max(size // 16, 1), 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((size, size), Image.BICUBIC)


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


def stop_at(trainer, at_step, real_step, lr, hr):
    if trainer.step + 1 == at_step:
        raise KeyboardInterrupt
    return real_step(lr, hr)


RECIPE = dict(stage="srgan", vgg_layers="conv1_2:0.1,relu2_2", vgg_distance="l1", vgg_rescale=0.1,
              bf16="vgg,discriminator,generator", steps=6, d_batch="joint", d_warmup=3, anchor_weight=1.0, d_shift=8,
              phase_weight=2.0, phase_window=3,
              pixel_weight=0.5, grid_blind="content,adversarial", grid_blind_mode="growth",
              artifact_weight=1.0, gan_loss="relativistic", adversarial_weight=5e-3, frozen_g_norm=True,
              d_lr_scale=0.5, beta2=0.99, adam_bias_correction=True, ema_decay=0.9, lr=1e-3,
              lr_final=1e-4)  # every SRGAN recipe option away from the paper's value


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
