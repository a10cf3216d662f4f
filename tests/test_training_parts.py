"""What a run is built of: both Adam optimizers take --adam-bias-correction, the generator and the
discriminator switch to ``lr_final`` at the same run step (D counting the warm-up, G not), and --bf16 reaches the
convolutions of the networks it names, and only those."""

import json

import mlx.core as mx
import numpy as np
import pytest

from srgan_mlx.errors import UserError
from srgan_mlx.networks.layers import Conv2d
from srgan_mlx.training.config import TrainConfig
from srgan_mlx.training.train import Trainer, resume
from srgan_mlx.training.training_parts import build
from training_runs import config


@pytest.mark.parametrize("corrected", [False, True])
def test_adam_bias_correction_reaches_both_optimizers(images, vgg_file, tmp_path, corrected):
    """``--adam-bias-correction``: the first update of a parameter with gradient g is ``lr`` x g / (|g| + eps) with
    it (Kingma & Ba's corrected moments: ~``lr`` x sign(g)), ``lr`` x 0.1 g / (sqrt(0.001) |g| + eps) without it
    (MLX's default: ~3.16 ``lr``); eps (1e-8) matters where |g| is small, as for a bias of the generator's tail."""
    trainer = Trainer(config(images, tmp_path / "run", stage="srgan", vgg=str(vgg_file), vgg_layers="relu1_1",
                             steps=1, lr=1e-3, lr_final=1e-3, adam_bias_correction=corrected))  # fmt: skip
    assert all(o.bias_correction is corrected for o in trainer.optimizers.values()) and len(trainer.optimizers) == 2
    step, seen = trainer.parts.train_step, {}
    real_step = step._step

    def recording(lr, hr):
        seen["g"] = np.abs(np.array(step.gradients(lr, hr)["generator"]["tail"]["bias"], dtype=np.float64))
        return real_step(lr, hr)

    step._step = recording
    before = np.array(trainer.generator.tail.bias)
    trainer.run()
    moved = np.abs(np.array(trainer.generator.tail.bias) - before)
    g, eps = seen["g"], trainer.optimizers["g"].eps
    expected = 1e-3 * g / (g + eps) if corrected else 1e-3 * 0.1 * g / (np.sqrt(1e-3) * g + eps)
    assert expected.min() > 0.5e-3  # (gradients large enough that the test is about the moments, not eps)
    np.testing.assert_allclose(moved, expected, rtol=1e-3)


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


def convolution_flags(network) -> set[bool]:
    return {module.bf16 for module in network.modules() if isinstance(module, Conv2d)}


@pytest.mark.parametrize("bf16, named", [
    ("", set()),
    ("discriminator", {"discriminator"}),
    ("vgg, generator", {"vgg", "generator"}),
    ("vgg,discriminator,generator", {"vgg", "discriminator", "generator"}),
])  # fmt: skip
def test_bf16_reaches_the_convolutions_of_the_networks_it_names(vgg_file, bf16, named):
    """Every convolution of a named network multiplies in bfloat16, none of the others'; the moving average
    (validation, export) stays in float32 whatever the setting."""
    parts = build(TrainConfig(stage="srgan", vgg=str(vgg_file), vgg_layers="relu1_1", ema_decay=0.9, bf16=bf16))
    networks = {"vgg": parts.vgg, "discriminator": parts.discriminator, "generator": parts.generator,
                "average": parts.average}  # fmt: skip
    assert {name: convolution_flags(net) for name, net in networks.items()} == {
        name: {name in named} for name in networks
    }


def test_bf16_names_a_known_network_or_says_which_are(vgg_file):
    with pytest.raises(UserError, match="^--bf16 vgg,d: unknown network 'd'; known: vgg, discriminator, generator$"):
        build(TrainConfig(stage="srgan", vgg=str(vgg_file), bf16="vgg,d"))


def test_configs_saved_with_vgg_bf16_read_as_bf16_vgg():
    assert TrainConfig.from_dict({"stage": "srgan", "vgg_bf16": True}).bf16 == "vgg"
    assert TrainConfig.from_dict({"stage": "srgan", "vgg_bf16": False}).bf16 == ""


def test_a_resumed_run_may_change_bf16(images, vgg_file, tmp_path):
    """How the convolutions multiply is how a run runs, not what it learns (and float32 anyway where the processor
    has no bfloat16 kernels): a run moves to or from a machine with them without starting again."""
    run = Trainer(config(images, tmp_path / "run", stage="srgan", vgg=str(vgg_file), vgg_layers="relu1_1", steps=1,
                         checkpoint_every=1))  # fmt: skip
    run.start()
    run.run()
    resumed = resume(str(tmp_path / "run"), steps=2, bf16="vgg,discriminator")
    assert (resumed / "checkpoints" / "latest").read_text().strip() == "step_00000002"
    assert json.loads((resumed / "config.json").read_text())["bf16"] == "vgg,discriminator"
