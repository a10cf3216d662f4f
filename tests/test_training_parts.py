"""What a run is built of: both Adam optimizers take --adam-bias-correction, and the generator and the
discriminator switch to ``lr_final`` at the same run step (D counting the warm-up, G not)."""


import mlx.core as mx
import numpy as np
import pytest

from srgan_mlx.training.config import TrainConfig
from srgan_mlx.training.train import Trainer
from training_runs import config


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


def test_generator_and_discriminator_switch_learning_rate_at_the_same_run_step():
    """D's optimizer counts every run step, G's only those after the warm-up; both use ``lr_final`` from the run's
    middle step on, and D's rates are ``d_lr_scale`` times G's."""
    from srgan_mlx.training.training_parts import learning_rate

    config = TrainConfig(stage="srgan", steps=20, d_warmup=4, lr=1e-3, lr_final=1e-4, d_lr_scale=0.5)
    g, d = learning_rate(config, "g"), learning_rate(config, "d")
    for run_step in range(4, 20):  # (an optimizer counts its updates in uint64)
        expected = 1e-3 if run_step < 10 else 1e-4
        assert g(mx.array(run_step - 4, mx.uint64)).item() == pytest.approx(expected)
        assert d(mx.array(run_step, mx.uint64)).item() == pytest.approx(0.5 * expected)
    carried = learning_rate(config, "g", start=12)  # a run carried on from its record at step 12: G from step 16
    assert carried(mx.array(0, mx.uint64)).item() == pytest.approx(1e-4)
