"""The SRGAN step and its recipe options, each against a reference written here from its definition: the paper's
step (the defaults, bit for bit), the pixel loss, the joint discriminator batch, the low-frequency anchor, the
sub-pixel pattern term, the moving average, the discriminator's warm-up and shift, the relativistic GAN, LDL's
artifact term and frozen BatchNorm."""

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten, tree_unflatten

from srgan_mlx.networks import kernels
from srgan_mlx.networks.devices import conv_path
from srgan_mlx.networks.discriminator import UNetDiscriminator
from srgan_mlx.networks.generator import Generator
from srgan_mlx.training.losses import LowFrequencyAnchor, pixel_l1, subpixel_bias
from srgan_mlx.training.steps import DiscriminatorStep, SRGANStep, SRResNetStep
from srgan_steps import (
    CROP, arrays, artifact_map_reference, assert_moved_by, assert_step_matches, bce, content, networks, recipe_terms,
    sgd, without_growing_pattern, without_subpixel_pattern,
)  # fmt: skip


def one_step(batch, optimizer=lambda: optim.SGD(learning_rate=1.0), **weights):
    """One SRGAN step of fresh tiny networks with the recipe's terms at these weights: (G, D, the step's values)."""
    generator, discriminator = networks()
    step = SRGANStep(generator, discriminator, recipe_terms(**weights), optimizer(), optimizer())
    out = step(*batch)
    mx.eval(out, step.state)
    return generator, discriminator, {k: v.item() for k, v in out.items()}


def joint_bce_reference(ref_d, hr, sr):
    """D's loss and gradients, BCE on the halves of D(concat(HR, SR)) (the joint batch of the paper's loss)."""

    def d_loss(hr, sr):
        logits = ref_d(mx.concatenate([hr, sr]))
        return bce(logits[:2], logits[2:])

    return nn.value_and_grad(ref_d, d_loss)(hr, sr)


def test_phase_weight_enters_the_generators_gradient(batch):
    """With plain SGD the generators of weight w and weight 0 differ by w times the sub-pixel term's gradient."""
    lr, hr = batch
    moved = {}
    for weight in (0.0, 3.0):
        generator, _, out = one_step(batch, phase_weight=weight)
        moved[weight] = arrays(generator)
    reference, _ = networks()
    value, grads = nn.value_and_grad(reference, lambda lr: subpixel_bias(reference(lr), hr, 4))(lr)
    assert out["phase"] == pytest.approx(value.item(), rel=1e-5)
    assert out["loss"] == pytest.approx(
        out["content"] + 1e-3 * out["adversarial"] + 3.0 * out["phase"], rel=1e-5
    )
    assert_moved_by(moved[3.0], moved[0.0], {k: 3.0 * v for k, v in tree_flatten(grads)})


def test_joint_batch_step_against_its_definition(batch):
    """``joint``: D's update is minus the gradient of BCE on the logits of D(concat(HR, SR)), and the
    generator's adversarial term is -log D on the fake half of D(concat(HR, SR)), both in training mode."""
    lr, hr = batch
    generator, discriminator = networks()
    step = SRGANStep(generator, discriminator, recipe_terms(adversarial_weight=0.5), sgd(), sgd(), joint=True)
    before_g, before_d = arrays(generator), arrays(discriminator)
    ref_g, ref_d = networks()

    def g_loss(lr, hr):
        sr = ref_g(lr)
        logits = ref_d(mx.concatenate([hr, sr]))
        return content(sr, hr) - 0.5 * mx.mean(nn.log_sigmoid(logits[2:]))

    g_value, g_grads = nn.value_and_grad(ref_g, g_loss)(lr, hr)
    sr = mx.stop_gradient(ref_g(lr))

    d_value, d_grads = joint_bce_reference(ref_d, hr, sr)
    out = step(lr, hr)
    mx.eval(out, step.state)
    assert_step_matches(out, (generator, before_g, discriminator, before_d), (g_value, g_grads, d_value, d_grads))


def test_separate_and_joint_batches_differ(batch):
    """The two settings are not the same computation (BatchNorm statistics are per batch or shared)."""
    losses = []
    for joint in (False, True):
        generator, discriminator = networks()
        out = SRGANStep(generator, discriminator, recipe_terms(), sgd(), sgd(), joint=joint)(*batch)
        losses.append(out["d_loss"].item())
    assert abs(losses[0] - losses[1]) > 1e-4


def test_anchor_weight_enters_the_generators_gradient(batch):
    """With plain SGD the generators of weight w and weight 0 differ by w times the anchor's gradient."""
    lr, hr = batch
    anchor = LowFrequencyAnchor(CROP, 4)
    moved = {}
    for weight in (0.0, 0.7):
        generator, _, out = one_step(batch, anchor_weight=weight)
        moved[weight] = arrays(generator)
    reference, _ = networks()
    value, grads = nn.value_and_grad(reference, lambda lr: anchor(reference(lr), lr))(lr)
    assert out["anchor"] == pytest.approx(value.item(), rel=1e-5)
    assert out["loss"] == pytest.approx(
        out["content"] + 1e-3 * out["adversarial"] + 0.7 * out["anchor"], rel=1e-5
    )
    assert_moved_by(moved[0.7], moved[0.0], {k: 0.7 * v for k, v in tree_flatten(grads)})


@pytest.mark.parametrize("kind", ["srresnet", "srgan"])
def test_moving_average_follows_its_definition(batch, kind):
    """After each update, average = d * average + (1 - d) * generator, over every array (BN statistics too)."""
    decay = 0.75
    generator, discriminator = networks()
    average, _ = networks(seed=1)
    average.update(generator.parameters())
    if kind == "srresnet":
        step = SRResNetStep(generator, optim.Adam(1e-2), average, decay)
    else:
        step = SRGANStep(generator, discriminator, recipe_terms(), optim.Adam(1e-2), optim.Adam(1e-2),
                         average=average, average_decay=decay)  # fmt: skip
    expected = arrays(generator)
    for _ in range(3):
        mx.eval(step(*batch), step.state)
        expected = {k: decay * v + (1 - decay) * arrays(generator)[k] for k, v in expected.items()}
    got = arrays(average)
    assert got.keys() == expected.keys() and any("running_var" in k for k in got)
    for key in got:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-6, err_msg=key)
    assert not np.allclose(got["tail.weight"], arrays(generator)["tail.weight"])


@pytest.mark.parametrize("joint", [False, True])
def test_discriminator_warmup_step_moves_only_the_discriminator(batch, joint):
    """D's update is the SRGAN step's D update on the generator's output; the generator's weights stay."""
    lr, hr = batch
    generator, discriminator = networks()
    before_g, before_d = arrays(generator), arrays(discriminator)
    ref_g, ref_d = networks()
    sr = mx.stop_gradient(ref_g(lr))

    def d_loss(hr, sr):
        if joint:
            logits = ref_d(mx.concatenate([hr, sr]))
            return bce(logits[:2], logits[2:])
        return bce(ref_d(hr), ref_d(sr))

    _, d_grads = nn.value_and_grad(ref_d, d_loss)(hr, sr)
    step = DiscriminatorStep(generator, discriminator, sgd(), joint=joint)
    out = step(lr, hr)
    mx.eval(out, step.state)
    assert set(out) == {"d_loss", "d_real", "d_fake"}
    after_g = arrays(generator)
    for key in dict(tree_flatten(generator.trainable_parameters())):
        assert np.array_equal(after_g[key], before_g[key]), key
    trainable_d = dict(tree_flatten(discriminator.trainable_parameters()))
    assert_moved_by({k: v for k, v in arrays(discriminator).items() if k in trainable_d}, before_d, d_grads)


def test_pixel_loss_enters_the_generators_gradient(batch):
    """With plain SGD at rate 1 an update is minus the gradient, so the two runs' generators differ by
    ``weight`` times the gradient of the L1 pixel loss on [0, 1] values, computed here from its definition."""
    weight = 0.5
    plain, _, _ = one_step(batch, pixel_weight=0.0)
    pixel, _, losses = one_step(batch, pixel_weight=weight)
    reference, _ = networks()
    lr, hr = batch

    def l1(lr, hr):
        return mx.mean(mx.abs((reference(lr) + 1) / 2 - (hr + 1) / 2))

    value, grads = nn.value_and_grad(reference, l1)(lr, hr)
    assert losses["pixel"] == pytest.approx(value.item(), rel=1e-5)
    assert losses["loss"] == pytest.approx(
        losses["content"] + 1e-3 * losses["adversarial"] + weight * losses["pixel"], rel=1e-6
    )
    grads = {k: np.array(v) for k, v in tree_flatten(grads)}
    moved, expected = arrays(pixel), arrays(plain)
    scale = max(np.abs(g).max() for g in grads.values())
    for key, grad in grads.items():
        np.testing.assert_allclose(moved[key] - expected[key], -weight * grad, atol=1e-4 * scale, err_msg=key)


def test_zero_weight_is_the_papers_step_bit_for_bit(batch):
    """Weight 0 against the paper's step written out here (content + 1e-3 x -log D(G(x)), then D's update),
    compiled the same way: identical weights and Adam states after two steps."""
    generator, discriminator = networks()
    opt_g, opt_d = optim.Adam(1e-3), optim.Adam(1e-3)
    state = [generator.state, discriminator.state, opt_g.state, opt_d.state, mx.random.state]

    def g_loss(lr, hr):
        sr = generator(lr)
        return content(sr, hr) + 1e-3 * mx.mean(mx.logaddexp(0.0, -discriminator(sr))), sr

    def d_loss(hr, sr):
        return mx.mean(mx.logaddexp(0.0, -discriminator(hr))) + mx.mean(mx.logaddexp(0.0, discriminator(sr)))

    @partial(mx.compile, inputs=state, outputs=state)
    def paper(lr, hr):
        (loss, sr), grads = nn.value_and_grad(generator, g_loss)(lr, hr)
        opt_g.update(generator, grads)
        opt_d.update(discriminator, nn.value_and_grad(discriminator, d_loss)(hr, mx.stop_gradient(sr))[1])
        return loss

    ours_g, ours_d = networks()
    ours_opt_g, ours_opt_d = optim.Adam(1e-3), optim.Adam(1e-3)
    ours = SRGANStep(ours_g, ours_d, recipe_terms(), ours_opt_g, ours_opt_d)
    for _ in range(2):
        expected = paper(*batch)
        mx.eval(expected, state)
        got = ours(*batch)
        mx.eval(got, ours.state)
        assert got["loss"].item() == expected.item()
    for a, b in ((ours_g, generator), (ours_d, discriminator)):
        assert arrays(a).keys() == arrays(b).keys()
        for key, value in arrays(a).items():
            assert np.array_equal(value, arrays(b)[key]), key
    for a, b in ((ours_opt_g, opt_g), (ours_opt_d, opt_d)):
        for (key, value), (_, other) in zip(tree_flatten(a.state), tree_flatten(b.state)):
            assert np.array_equal(np.array(value), np.array(other)), key


def test_translate_is_one_circular_shift_for_the_whole_batch():
    from srgan_mlx.training.steps import translate

    rng = np.random.default_rng(3)
    images = rng.normal(size=(4, 12, 10, 3)).astype(np.float32)
    mx.random.seed(7)
    offsets = np.array(mx.random.randint(0, 8, (2,)))
    mx.random.seed(7)
    got = np.array(translate(mx.array(images), 8))
    expected = np.roll(images, (-int(offsets[0]), -int(offsets[1])), axis=(1, 2))
    assert np.array_equal(got, expected)
    assert any(not np.array_equal(np.array(translate(mx.array(images), 8)), got) for _ in range(5))  # new draws


def test_d_shift_of_one_is_no_shift_and_larger_shifts_change_the_step(batch):
    """``d_shift`` 0 and 1 leave D's inputs as they are (the paper's step, bit for bit); 16 changes what D sees."""
    results = {}
    for shift in (0, 1, 16):
        generator, discriminator = networks()
        mx.random.seed(0)
        step = SRGANStep(generator, discriminator, recipe_terms(), sgd(), sgd(), joint=True, d_shift=shift)
        out = step(*batch)
        mx.eval(out, step.state)
        results[shift] = (out["d_loss"].item(), arrays(discriminator))
    assert results[0][0] == results[1][0]
    for key, value in results[0][1].items():
        assert np.array_equal(value, results[1][1][key]), key
    assert results[16][0] != results[0][0]


def test_relativistic_joint_step_against_its_definition(batch):
    """``gan="relativistic"``, joint: D moves by minus the gradient of RaGAN on the halves of D(concat(HR, SR)) (each
    side's mean held constant), G by minus that of content + w x RaGAN's generator loss with D's real half held
    constant; d_real/d_fake are the mean sigmoids of the relativistic logits."""
    lr, hr = batch
    generator, discriminator = networks()
    step = SRGANStep(generator, discriminator, recipe_terms(adversarial_weight=0.5, gan_loss="relativistic"), sgd(),
                     sgd(), gan="relativistic", joint=True)  # fmt: skip
    before_g, before_d = arrays(generator), arrays(discriminator)
    ref_g, ref_d = networks()

    def g_loss(lr, hr):
        sr = ref_g(lr)
        logits = ref_d(mx.concatenate([hr, sr]))
        real, fake = mx.stop_gradient(logits[:2]), logits[2:]
        ragan = -mx.mean(nn.log_sigmoid(-(real - fake.mean()))) - mx.mean(nn.log_sigmoid(fake - real.mean()))
        return content(sr, hr) + 0.5 * ragan / 2

    g_value, g_grads = nn.value_and_grad(ref_g, g_loss)(lr, hr)
    sr = mx.stop_gradient(ref_g(lr))

    def d_loss(hr, sr):
        logits = ref_d(mx.concatenate([hr, sr]))
        real, fake = logits[:2], logits[2:]
        return bce(real - mx.stop_gradient(fake.mean()), fake - mx.stop_gradient(real.mean())) / 2

    d_value, d_grads = nn.value_and_grad(ref_d, d_loss)(hr, sr)
    out = step(lr, hr)
    mx.eval(out, step.state)
    assert_step_matches(out, (generator, before_g, discriminator, before_d), (g_value, g_grads, d_value, d_grads))


def test_gradients_are_what_the_step_applies(batch):
    """``SRGANStep.gradients``: with plain SGD a step moves each network by minus the gradients it reports for the
    same batch, and reporting them moves nothing (the RaGAN joint recipe, grid blind on: the most the step does)."""
    lr, hr = batch
    moved, reported = networks(), networks()
    options = dict(gan="relativistic", joint=True, blind=("content", "adversarial"), blind_window=3,
                   blind_mode="growth")  # fmt: skip
    terms = recipe_terms(adversarial_weight=0.5, gan_loss="relativistic")
    step = SRGANStep(*moved, terms, sgd(), sgd(), **options)
    before = [arrays(network) for network in moved]
    probe = SRGANStep(*reported, terms, sgd(), sgd(), **options)
    grads = probe.gradients(lr, hr)
    for network, was in zip(reported, before):
        trainable = dict(tree_flatten(network.trainable_parameters()))
        assert trainable and all(np.array_equal(value, was[key]) for key, value in trainable.items())
    mx.eval(step(lr, hr), step.state)
    for network, was, name in zip(moved, before, ("generator", "discriminator")):
        assert_moved_by(arrays(network), was, grads[name])


@pytest.mark.parametrize("mode", ["pattern", "growth"])
def test_grid_blind_terms_reach_the_generator_without_their_subpixel_pattern(batch, mode):
    """``blind=("content", "adversarial")`` per 3 x 3 LR-pixel window: G moves by minus the generator's vector-Jacobian
    product with the SR gradient of content + w x -log D (joint), less its sub-pixel pattern per window (``pattern``)
    or less the part of it that lengthens the grid the batch prints, the mean pattern of SR - HR (``growth``),
    both written with slices, plus the pixel term's gradient whole; the values and D's update are the unblinded
    step's."""
    lr, hr = batch
    generator, discriminator = networks()
    terms = recipe_terms(adversarial_weight=0.5, pixel_weight=0.5)
    step = SRGANStep(generator, discriminator, terms, sgd(), sgd(), joint=True, blind=("content", "adversarial"),
                     blind_window=3, blind_mode=mode)  # fmt: skip
    before_g, before_d = arrays(generator), arrays(discriminator)
    ref_g, ref_d = networks()
    sr = ref_g(lr)

    def blind_part(sr):
        logits = ref_d(mx.concatenate([hr, sr]))
        return content(sr, hr) - 0.5 * mx.mean(nn.log_sigmoid(logits[2:]))

    value, blind_grad = mx.value_and_grad(blind_part)(sr)
    pixel_value, pixel_grad = mx.value_and_grad(lambda sr: 0.5 * pixel_l1(sr, hr))(sr)
    if mode == "pattern":
        blinded = without_subpixel_pattern(np.array(blind_grad), 3)
    else:
        blinded, removed = without_growing_pattern(np.array(blind_grad), np.array(sr - hr), 3)
        kept = np.all(np.stack(removed) == 0, axis=1)  # per window, image and channel
        assert kept.any() and (~kept).any()  # both cases are met
    cotangent = mx.array(blinded) + pixel_grad
    _, g_grads = nn.value_and_grad(ref_g, lambda lr: mx.sum(ref_g(lr) * cotangent))(lr)
    sr = mx.stop_gradient(sr)

    d_value, d_grads = joint_bce_reference(ref_d, hr, sr)
    out = step(lr, hr)
    mx.eval(out, step.state)
    references = (value + pixel_value, g_grads, d_value, d_grads)
    assert_step_matches(out, (generator, before_g, discriminator, before_d), references)
    assert not np.allclose(np.array(blind_grad), np.array(cotangent - pixel_grad), atol=1e-6)


SHARED_PASS_SCRIPT = """
import srgan_mlx, sys
import mlx.core as mx
sys.path.insert(0, sys.argv[1])
from srgan_steps import networks, recipe_terms, sgd
from srgan_mlx.training.steps import SRGANStep
generator, discriminator = networks()
step = SRGANStep(generator, discriminator, recipe_terms(adversarial_weight=0.5), sgd(), sgd(), gan="relativistic",
                 joint=True, blind=tuple(sys.argv[2].split(",")) if sys.argv[2] else ())
mx.random.seed(1)
lr, hr = mx.random.uniform(shape=(3, 6, 6, 3)), mx.random.uniform(-1, 1, (3, 24, 24, 3))
mx.eval(step(lr, hr), step.state)
"""


@pytest.mark.skipif(conv_path() != "onednn", reason="counts convolutions in oneDNN's log (the CPU path on Linux)")
@pytest.mark.parametrize("blind", ["", "content,adversarial"])
def test_a_step_runs_the_discriminator_forward_once(blind):
    """The generator's terms and D's update judge the same joint batch with the same weights: the compiled step
    computes that forward pass once (counted in oneDNN's log of the convolutions it executes: D's 8, on the 6
    images of the joint batch; the generator's run on 3), the grid blind included (it once made D's update judge
    another array, so the pass ran twice)."""
    here = Path(__file__).resolve().parent
    env = {**os.environ, "ONEDNN_VERBOSE": "1"}
    done = subprocess.run([sys.executable, "-c", SHARED_PASS_SCRIPT, str(here), blind], env=env, capture_output=True,
                          text=True, check=True)  # fmt: skip
    executed = [line for line in done.stdout.splitlines() if line.startswith("onednn_verbose,") and ",exec," in line]
    forward = [line for line in executed if ",forward_training," in line]
    assert sum(",mb3_" in line for line in forward) > 0  # the log is what is read: the generator's are there
    assert sum(",mb6_" in line for line in forward) == 8


def test_relativistic_step_with_the_unet_discriminator_against_its_definition(batch):
    """The U-Net discriminator (no BatchNorm): with ``joint`` too, each use of D is two calls, HR then SR, so its
    kept power-iteration vectors move four times a step; G's loss reads D(HR) as a constant (no gradient through
    it), D's loss is RaGAN averaged over the pixels."""
    lr, hr = batch
    before = {}
    for key in ("step", "ref"):
        mx.random.seed(3)
        before[key] = (Generator(4, num_blocks=2, channels=16), UNetDiscriminator(8))
    generator, discriminator = before["step"]
    ref_g, ref_d = before["ref"]
    step = SRGANStep(generator, discriminator, recipe_terms(adversarial_weight=0.5, gan_loss="relativistic"), sgd(),
                     sgd(), gan="relativistic", joint=True)  # fmt: skip
    before_g, before_d = arrays(generator), arrays(discriminator)

    def g_loss(lr, hr):
        sr = ref_g(lr)
        real = mx.stop_gradient(ref_d(hr))
        fake = ref_d(sr)
        ragan = -mx.mean(nn.log_sigmoid(-(real - fake.mean()))) - mx.mean(nn.log_sigmoid(fake - real.mean()))
        return content(sr, hr) + 0.5 * ragan / 2

    g_value, g_grads = nn.value_and_grad(ref_g, g_loss)(lr, hr)
    sr = mx.stop_gradient(ref_g(lr))

    def d_loss(hr, sr):
        real, fake = ref_d(hr), ref_d(sr)
        return bce(real - mx.stop_gradient(fake.mean()), fake - mx.stop_gradient(real.mean())) / 2

    d_value, d_grads = nn.value_and_grad(ref_d, d_loss)(hr, sr)
    out = step(lr, hr)
    mx.eval(out, step.state)
    assert_step_matches(out, (generator, before_g, discriminator, before_d), (g_value, g_grads, d_value, d_grads))
    kept = {k: v for k, v in arrays(discriminator).items() if k.endswith(".u")}
    assert len(kept) == 8
    for key, value in kept.items():
        np.testing.assert_allclose(value, np.array(dict(tree_flatten(ref_d.parameters()))[key]), atol=1e-5, err_msg=key)
        assert not np.allclose(value, before_d[key], atol=1e-3), key  # they moved


def test_artifact_term_reads_the_moving_average_in_eval_mode_and_weights_the_l1(batch):
    """The SRGAN step's ``artifact`` term against the reference generator in eval mode (running statistics, so not
    the batch's), and with plain SGD the generators of weight w and 0 differ by w times the gradient of the
    map-weighted L1 with the map held constant."""
    lr, hr = batch
    moved = {}
    for weight in (0.0, 2.0):
        generator, discriminator = networks()
        average, _ = networks(seed=9)
        average.eval()
        step = SRGANStep(generator, discriminator, recipe_terms(artifact_weight=weight, ema_decay=0.9), sgd(), sgd(),
                         reference=average)  # fmt: skip
        out = step(lr, hr)
        mx.eval(out, step.state)
        moved[weight] = arrays(generator)
    reference_g, _ = networks()
    stable, _ = networks(seed=9)
    stable.eval()
    with kernels.unfused():
        stable_sr = np.array(stable(lr))
    assert not np.allclose(np.array(stable.train()(lr)), stable_sr)  # a step reading training mode would differ
    weight_map = mx.array(artifact_map_reference(np.array(reference_g(lr)), np.array(hr), stable_sr))

    def weighted_l1(lr):
        return mx.mean(mx.abs(weight_map * ((reference_g(lr) + 1) / 2 - (hr + 1) / 2)))

    value, grads = nn.value_and_grad(reference_g, weighted_l1)(lr)
    assert out["artifact"].item() == pytest.approx(value.item(), rel=1e-4)
    assert_moved_by(moved[2.0], moved[0.0], {k: 2.0 * v for k, v in tree_flatten(grads)})


def test_frozen_norm_generator_trains_with_running_statistics(batch):
    """``freeze_norm``: the step's gradient is that of eval-mode BatchNorm (running statistics), the statistics stay,
    scale and shift move, and switching the generator to eval and back to training keeps the BatchNorm frozen."""
    lr, hr = batch
    generator, discriminator = networks()
    rng = np.random.default_rng(7)
    stats = {k: mx.array(rng.uniform(0.5, 2.0, v.shape).astype(np.float32))
             for k, v in tree_flatten(generator.parameters()) if "running" in k}  # fmt: skip
    generator.update(tree_unflatten(list(stats.items())))
    generator.freeze_norm()
    generator.eval().train()
    assert generator.training and not generator.blocks[0].bn1.training
    reference = Generator(4, num_blocks=2, channels=16)
    reference.update(generator.parameters())
    reference.eval()
    with kernels.unfused():
        _, grads = nn.value_and_grad(reference, lambda lr: content(reference(lr), hr))(lr)
    before = arrays(generator)
    step = SRGANStep(generator, discriminator, recipe_terms(adversarial_weight=0.0), sgd(), sgd())
    mx.eval(step(lr, hr), step.state)
    after = arrays(generator)
    for key in stats:
        assert np.array_equal(after[key], before[key]), key
    assert not np.array_equal(after["blocks.0.bn1.weight"], before["blocks.0.bn1.weight"])
    trainable = dict(tree_flatten(generator.trainable_parameters()))
    assert_moved_by({k: v for k, v in after.items() if k in trainable},
                    {k: v for k, v in before.items() if k in trainable}, grads)  # fmt: skip
