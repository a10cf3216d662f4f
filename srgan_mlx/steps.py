"""Compiled training steps for the paper's two stages, built once per run.

Each step captures the networks' state (parameters and BatchNorm statistics),
the optimizers' state and MLX's random state, as ``mx.compile`` requires for
functions that update them. Call a step, then ``mx.eval`` its
result and ``step.state`` once per iteration. With more than one process in
``mx.distributed`` the gradients are averaged across ranks before each update
and BatchNorm running statistics after it.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim

from .losses import discriminator_loss, generator_adversarial_loss, mse, pixel_l1


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


class SRResNetStep:
    """One Adam update of the generator on pixel MSE: ``step(lr, hr) -> loss``."""

    def __init__(self, generator: nn.Module, optimizer: optim.Optimizer):
        self.state = [generator.state, optimizer.state, mx.random.state]

        def loss_fn(lr, hr):
            return mse(generator(lr), hr)

        loss_and_grad = nn.value_and_grad(generator, loss_fn)

        @partial(mx.compile, inputs=self.state, outputs=self.state)
        def step(lr, hr):
            loss, grads = loss_and_grad(lr, hr)
            optimizer.update(generator, _average(grads))
            _sync_batch_statistics(generator)
            return {"loss": loss}

        self._step = step

    def __call__(self, lr: mx.array, hr: mx.array) -> dict[str, mx.array]:
        return self._step(lr, hr)


class SRGANStep:
    """One alternating SRGAN update (k = 1): the generator, then the discriminator.

    Generator loss: ``content(sr, hr) + adversarial_weight * -log D(sr)`` (the paper's),
    plus ``pixel_weight * pixel_l1(sr, hr)`` when ``pixel_weight`` is not 0 (ESRGAN's
    addition against colour and brightness drift; 0 leaves the paper's loss as it is);
    discriminator loss: binary cross-entropy on real HR (1) and the same step's
    detached SR (0). Returns the loss terms (``pixel`` whatever its weight) and D's mean
    outputs on real and fake.
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
    ):
        self.state = [generator.state, discriminator.state, opt_g.state, opt_d.state, mx.random.state]

        def g_loss_fn(lr, hr):
            sr = generator(lr)
            content = content_loss(sr, hr)
            adversarial = generator_adversarial_loss(discriminator(sr))
            pixel = pixel_l1(sr, hr)
            total = content + adversarial_weight * adversarial
            if pixel_weight:
                total = total + pixel_weight * pixel
            return total, (content, adversarial, pixel, sr)

        def d_loss_fn(hr, sr):
            real, fake = discriminator(hr), discriminator(sr)
            return discriminator_loss(real, fake), (mx.sigmoid(real).mean(), mx.sigmoid(fake).mean())

        g_grad = nn.value_and_grad(generator, g_loss_fn)
        d_grad = nn.value_and_grad(discriminator, d_loss_fn)

        @partial(mx.compile, inputs=self.state, outputs=self.state)
        def step(lr, hr):
            (g_total, (content, adversarial, pixel, sr)), grads = g_grad(lr, hr)
            opt_g.update(generator, _average(grads))
            (d_total, (d_real, d_fake)), grads = d_grad(hr, mx.stop_gradient(sr))
            opt_d.update(discriminator, _average(grads))
            _sync_batch_statistics(generator)
            _sync_batch_statistics(discriminator)
            return {
                "loss": g_total,
                "content": content,
                "adversarial": adversarial,
                "pixel": pixel,
                "d_loss": d_total,
                "d_real": d_real,
                "d_fake": d_fake,
            }

        self._step = step

    def __call__(self, lr: mx.array, hr: mx.array) -> dict[str, mx.array]:
        return self._step(lr, hr)
