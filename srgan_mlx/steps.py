"""Compiled training steps for the paper's two stages, built once per run.

Each step captures the networks' state (parameters and BatchNorm statistics),
the optimizers' state and MLX's random state, as ``mx.compile`` requires for
functions that update them. Call a step, then ``mx.eval`` its
result and ``step.state`` once per iteration. With more than one process in
``mx.distributed`` the gradients are averaged across ranks before each update
and BatchNorm running statistics after it.

Both steps can keep an exponential moving average of the generator (every array,
BatchNorm statistics included) in a second generator, updated after each of its
updates; the SRGAN step also takes the training recipe's options (see
:class:`SRGANStep`), and :class:`DiscriminatorStep` trains the discriminator alone.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim

from mlx.utils import tree_map

from .losses import discriminator_loss, generator_adversarial_loss, mse, pixel_l1, subpixel_bias


def _average(grads):
    """Mean of the gradients over all ranks (a no-op with one process)."""
    return nn.average_gradients(grads) if mx.distributed.init().size() > 1 else grads


def _sync_batch_statistics(model: nn.Module) -> None:
    """Average BatchNorm running statistics over ranks, so every rank holds the same model.

    Each rank normalises with its own batch's statistics (as PyTorch DDP does without
    SyncBatchNorm); only the running estimates used at inference are shared.
    """
    size = mx.distributed.init().size()
    if size == 1:
        return
    for module in model.modules():
        if isinstance(module, nn.BatchNorm) and module.track_running_stats:
            module.running_mean = mx.distributed.all_sum(module.running_mean) / size
            module.running_var = mx.distributed.all_sum(module.running_var) / size


def _update_average(average: nn.Module, model: nn.Module, decay: float) -> None:
    """``average <- decay * average + (1 - decay) * model`` for every array (BasicSR's ``model_ema``)."""
    average.update(tree_map(lambda a, m: decay * a + (1 - decay) * m, average.parameters(), model.parameters()))


def translate(images: mx.array, shift: int) -> mx.array:
    """NHWC ``images`` circularly shifted by one random offset in ``0..shift-1`` pixels along each axis (from MLX's
    random state, so a compiled step draws new offsets each call and a reseeded run repeats them)."""
    offsets = mx.random.randint(0, shift, (2,))
    _, height, width, _ = images.shape
    images = mx.take(images, (mx.arange(height) + offsets[0]) % height, axis=1)
    return mx.take(images, (mx.arange(width) + offsets[1]) % width, axis=2)


def _discriminate(
    discriminator: nn.Module, hr: mx.array, sr: mx.array, joint: bool, shift: int = 0
) -> tuple[mx.array, mx.array]:
    """D's logits on the real and the fake batch: two calls (each normalised by BatchNorm with its own batch's
    statistics, as the paper's code does) or, ``joint``, one call on the two concatenated (shared statistics).
    ``shift`` > 1: both batches first circularly shifted by the same random offset (:func:`translate`)."""
    if shift > 1:
        both = translate(mx.concatenate([hr, sr]), shift)
        hr, sr = both[: hr.shape[0]], both[hr.shape[0] :]
    if not joint:
        return discriminator(hr), discriminator(sr)
    logits = discriminator(mx.concatenate([hr, sr]))
    return logits[: hr.shape[0]], logits[hr.shape[0] :]


def _discriminator_update(discriminator: nn.Module, optimizer: optim.Optimizer, joint: bool, shift: int = 0):
    """``update(hr, sr)``: one Adam step of D on binary cross-entropy (real 1, fake 0); returns D's loss and mean
    outputs. ``sr`` is treated as a constant."""

    def loss_fn(hr, sr):
        real, fake = _discriminate(discriminator, hr, sr, joint, shift)
        return discriminator_loss(real, fake), (mx.sigmoid(real).mean(), mx.sigmoid(fake).mean())

    loss_and_grad = nn.value_and_grad(discriminator, loss_fn)

    def update(hr, sr):
        (loss, (real, fake)), grads = loss_and_grad(hr, mx.stop_gradient(sr))
        optimizer.update(discriminator, _average(grads))
        _sync_batch_statistics(discriminator)
        return {"d_loss": loss, "d_real": real, "d_fake": fake}

    return update


class SRResNetStep:
    """One Adam update of the generator on pixel MSE: ``step(lr, hr) -> loss``; with ``average`` (a generator of
    the same shape) and ``average_decay``, then the moving average's update."""

    def __init__(
        self,
        generator: nn.Module,
        optimizer: optim.Optimizer,
        average: nn.Module | None = None,
        average_decay: float = 0.0,
    ):
        self.state = [generator.state, optimizer.state, mx.random.state]
        if average is not None:
            self.state.append(average.state)

        def loss_fn(lr, hr):
            return mse(generator(lr), hr)

        loss_and_grad = nn.value_and_grad(generator, loss_fn)

        @partial(mx.compile, inputs=self.state, outputs=self.state)
        def step(lr, hr):
            loss, grads = loss_and_grad(lr, hr)
            optimizer.update(generator, _average(grads))
            _sync_batch_statistics(generator)
            if average is not None:
                _update_average(average, generator, average_decay)
            return {"loss": loss}

        self._step = step

    def __call__(self, lr: mx.array, hr: mx.array) -> dict[str, mx.array]:
        return self._step(lr, hr)


class SRGANStep:
    """One alternating SRGAN update (k = 1): the generator, then the discriminator.

    Generator loss: ``content(sr, hr) + adversarial_weight * -log D(sr)`` (the paper's), plus
    ``pixel_weight * pixel_l1(sr, hr)`` (ESRGAN's L1), ``anchor_weight * anchor(sr, lr)`` (a low-frequency
    anchor, :class:`srgan_mlx.losses.LowFrequencyAnchor`) and ``phase_weight * subpixel_bias(sr, hr, scale)``
    (against a fixed sub-pixel grid) where their weights are not 0; discriminator loss:
    binary cross-entropy on real HR (1) and the same step's detached SR (0). ``joint``: D sees real and fake as
    one batch, in its own update and in the generator's adversarial term (the fake half of D on HR and SR
    concatenated), so both uses of D normalise alike. ``d_shift``: D sees real and fake circularly shifted by
    a random offset at each use (:func:`translate`). ``average``: a generator kept as the moving average of
    this one (``average_decay``). With the defaults this is the paper's step. Returns the loss terms (``pixel``,
    ``anchor`` when given and ``phase`` when weighted) and D's mean outputs on real and fake.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        content_loss: Callable[[mx.array, mx.array], mx.array],
        opt_g: optim.Optimizer,
        opt_d: optim.Optimizer,
        adversarial_weight: float = 1e-3,
        pixel_weight: float = 0.0,
        anchor: Callable[[mx.array, mx.array], mx.array] | None = None,
        anchor_weight: float = 0.0,
        joint: bool = False,
        average: nn.Module | None = None,
        average_decay: float = 0.0,
        d_shift: int = 0,
        phase_weight: float = 0.0,
    ):
        if anchor_weight and anchor is None:
            raise ValueError("anchor_weight needs an anchor")
        self.state = [generator.state, discriminator.state, opt_g.state, opt_d.state, mx.random.state]
        if average is not None:
            self.state.append(average.state)

        def g_loss_fn(lr, hr):
            sr = generator(lr)
            terms = {"content": content_loss(sr, hr)}
            fake = _discriminate(discriminator, hr, sr, joint, d_shift)[1] if joint or d_shift > 1 else discriminator(sr)
            terms["adversarial"] = generator_adversarial_loss(fake)
            terms["pixel"] = pixel_l1(sr, hr)
            total = terms["content"] + adversarial_weight * terms["adversarial"]
            if pixel_weight:
                total = total + pixel_weight * terms["pixel"]
            if anchor is not None:
                terms["anchor"] = anchor(sr, lr)
                if anchor_weight:
                    total = total + anchor_weight * terms["anchor"]
            if phase_weight:
                terms["phase"] = subpixel_bias(sr, hr, sr.shape[1] // lr.shape[1])
                total = total + phase_weight * terms["phase"]
            return total, (terms, sr)

        g_grad = nn.value_and_grad(generator, g_loss_fn)
        d_update = _discriminator_update(discriminator, opt_d, joint, d_shift)

        @partial(mx.compile, inputs=self.state, outputs=self.state)
        def step(lr, hr):
            (g_total, (terms, sr)), grads = g_grad(lr, hr)
            opt_g.update(generator, _average(grads))
            d_terms = d_update(hr, sr)
            _sync_batch_statistics(generator)
            if average is not None:
                _update_average(average, generator, average_decay)
            return {"loss": g_total, **terms, **d_terms}

        self._step = step

    def __call__(self, lr: mx.array, hr: mx.array) -> dict[str, mx.array]:
        return self._step(lr, hr)


class DiscriminatorStep:
    """One update of the discriminator alone, against the generator's output (its weights are not updated;
    in training mode its BatchNorm running statistics follow the batches, as in an SRGAN step): the
    discriminator's warm-up (BasicSR's ``net_d_init_iters``). Same D loss, ``joint`` and ``d_shift`` as
    :class:`SRGANStep`."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, opt_d: optim.Optimizer, joint: bool = False,
                 d_shift: int = 0):  # fmt: skip
        self.state = [generator.state, discriminator.state, opt_d.state, mx.random.state]
        d_update = _discriminator_update(discriminator, opt_d, joint, d_shift)

        @partial(mx.compile, inputs=self.state, outputs=self.state)
        def step(lr, hr):
            out = d_update(hr, generator(lr))
            _sync_batch_statistics(generator)
            return out

        self._step = step

    def __call__(self, lr: mx.array, hr: mx.array) -> dict[str, mx.array]:
        return self._step(lr, hr)
