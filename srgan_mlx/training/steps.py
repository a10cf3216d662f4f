"""Compiled training steps for the paper's two stages, built once per run.

Each step captures the networks' state (parameters and BatchNorm statistics),
the optimizers' state and MLX's random state, as ``mx.compile`` requires for
functions that update them. Call a step, then ``mx.eval`` its
result and ``step.state`` once per iteration. With more than one process in
``mx.distributed`` the gradients are averaged across ranks before each update
and BatchNorm running statistics after it.

Both steps can keep an exponential moving average of the generator (every array,
BatchNorm statistics included) in a second generator, updated after each of its
updates; the SRGAN step sums the generator loss terms it is given (:mod:`srgan_mlx.training.loss_terms`)
and takes the recipe's discriminator options (see :class:`SRGANStep`), and
:class:`DiscriminatorStep` trains the discriminator alone. Steps are traced with
:func:`srgan_mlx.networks.kernels.unfused`, so a network in eval mode inside one (the moving average read
as a reference, a generator with frozen BatchNorm) stays differentiable.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim

from mlx.utils import tree_map

from ..networks import kernels
from .loss_terms import Outputs, WeightedTerm, weighted_sum
from .losses import (
    discriminator_loss, generator_adversarial_loss, grid_blind, mse, relativistic_discriminator_loss,
    relativistic_logits,
)  # fmt: skip

DISCRIMINATOR_LOSSES = {"vanilla": discriminator_loss, "relativistic": relativistic_discriminator_loss}
"""The discriminator's loss for each ``--gan-loss``, from D's logits on real and on fake."""


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


def _batch_dependent(discriminator: nn.Module) -> bool:
    """Whether the discriminator's output on an image depends on the rest of its batch (BatchNorm in training
    mode). Without that, one call on real and fake together equals two calls, and two calls let a step skip the
    backward pass through D on real images where their logits are constants."""
    return any(isinstance(module, nn.BatchNorm) for module in discriminator.modules())


def _probabilities(real: mx.array, fake: mx.array, gan: str) -> tuple[mx.array, mx.array]:
    """D's mean output on real and on fake: the sigmoid of its logits (relativistic: of the relativistic ones)."""
    if gan == "relativistic":
        real, fake = relativistic_logits(real, fake)
    return mx.sigmoid(real).mean(), mx.sigmoid(fake).mean()


def _discriminator_update(discriminator: nn.Module, optimizer: optim.Optimizer, joint: bool, shift: int = 0,
                          gan: str = "vanilla"):  # fmt: skip
    """``update(hr, sr)``: one Adam step of D on its ``gan`` loss (:data:`DISCRIMINATOR_LOSSES`: real 1, fake 0);
    returns D's loss and mean outputs. ``sr`` is treated as a constant. Also returned: the loss-and-gradient function
    the update applies (``loss_and_grad(hr, sr)``)."""
    d_loss = DISCRIMINATOR_LOSSES[gan]
    joint = joint and _batch_dependent(discriminator)

    def loss_fn(hr, sr):
        real, fake = _discriminate(discriminator, hr, sr, joint, shift)
        return d_loss(real, fake), _probabilities(real, fake, gan)

    loss_and_grad = nn.value_and_grad(discriminator, loss_fn)

    def update(hr, sr):
        (loss, (real, fake)), grads = loss_and_grad(hr, mx.stop_gradient(sr))
        optimizer.update(discriminator, _average(grads))
        _sync_batch_statistics(discriminator)
        return {"d_loss": loss, "d_real": real, "d_fake": fake}

    return update, loss_and_grad


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
            with kernels.unfused():
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

    Generator loss: the sum of ``terms`` (:mod:`srgan_mlx.training.loss_terms`: each a name, a weight and a function of the
    step's :class:`~srgan_mlx.training.loss_terms.Outputs`); the paper's are the VGG content loss and ``1e-3 * -log D(SR)``
    (:func:`paper_terms`). Discriminator loss: ``gan`` (``vanilla``, the paper's binary cross-entropy on real HR (1)
    and the same step's detached SR (0); ``relativistic``, ESRGAN's RaGAN, whose generator term reads D's logits on
    HR as constants). ``joint``: D sees real and fake as one batch, in its own update and in the generator's terms
    (the halves of D on HR and SR concatenated), so both uses of D normalise alike; a discriminator without
    BatchNorm sees them in two calls (HR first) either way, the same logits, and no gradient is computed through
    its call on HR where those logits are constants. ``d_shift``: D sees real and
    fake circularly shifted by a random offset at each use (:func:`translate`). ``average``: a generator kept as
    the moving average of this one (``average_decay``); ``reference``: a generator whose output (in its current
    mode, no gradient) terms read as ``Outputs.reference`` (LDL's artifact map reads the moving average in eval
    mode). ``blind``: the terms whose gradient loses its fixed sub-pixel pattern on its way to the generator (they
    read the SR output, and D judges it for ``adversarial``, through :func:`~srgan_mlx.training.losses.grid_blind`
    per ``blind_window`` LR pixels; ``blind_mode`` ``growth``: only the part that would lengthen the grid the batch
    prints, the mean pattern of SR - HR). With the paper's terms and the defaults this is the paper's step.
    Returns the total ``loss``, each term and D's loss and mean outputs on real and fake.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        terms: list[WeightedTerm],
        opt_g: optim.Optimizer,
        opt_d: optim.Optimizer,
        *,
        gan: str = "vanilla",
        joint: bool = False,
        d_shift: int = 0,
        average: nn.Module | None = None,
        average_decay: float = 0.0,
        reference: nn.Module | None = None,
        blind: tuple[str, ...] = (),
        blind_window: int = 0,
        blind_mode: str = "pattern",
    ):
        if gan not in DISCRIMINATOR_LOSSES:
            raise ValueError(f"unknown GAN loss {gan!r}; known: {', '.join(DISCRIMINATOR_LOSSES)}")
        self.state = [generator.state, discriminator.state, opt_g.state, opt_d.state, mx.random.state]
        if average is not None:
            self.state.append(average.state)
        both = joint or d_shift > 1 or gan == "relativistic"  # D's logits on HR are computed anyway or needed
        joint = joint and _batch_dependent(discriminator)  # else two calls: no backward pass through D(HR)

        def g_loss_fn(lr, hr):
            sr = generator(lr)
            target = hr if blind_mode == "growth" else None
            seen = grid_blind(sr, sr.shape[1] // lr.shape[1], blind_window, target) if blind else sr
            judged = seen if "adversarial" in blind else sr
            if both:
                real, fake = _discriminate(discriminator, hr, judged, joint, d_shift)
                real = mx.stop_gradient(real)
            else:
                real, fake = None, discriminator(judged)
            stable = None if reference is None else mx.stop_gradient(reference(lr))
            outputs = Outputs(lr, hr, sr, fake, real, stable)
            blinded = outputs._replace(sr=seen)
            values = {name: loss(blinded if name in blind else outputs) for name, _, loss in terms}
            return weighted_sum(terms, values), (values, judged)

        g_grad = nn.value_and_grad(generator, g_loss_fn)
        d_update, d_grad = _discriminator_update(discriminator, opt_d, joint, d_shift, gan)

        @partial(mx.compile, inputs=self.state, outputs=self.state)
        def step(lr, hr):
            with kernels.unfused():
                (g_total, (values, judged)), grads = g_grad(lr, hr)
                opt_g.update(generator, _average(grads))
                d_terms = d_update(hr, judged)  # the array D judged above: compile shares D's forward pass
            _sync_batch_statistics(generator)
            if average is not None:
                _update_average(average, generator, average_decay)
            return {"loss": g_total, **values, **d_terms}

        def gradients(lr, hr):
            with kernels.unfused():
                (_, (_, judged)), g_grads = g_grad(lr, hr)
                _, d_grads = d_grad(hr, mx.stop_gradient(judged))
            return {"generator": g_grads, "discriminator": d_grads}

        self._step = step
        self._gradients = gradients

    def __call__(self, lr: mx.array, hr: mx.array) -> dict[str, mx.array]:
        return self._step(lr, hr)

    def gradients(self, lr: mx.array, hr: mx.array) -> dict[str, dict]:
        """The gradients the step would hand each optimizer (``generator``, ``discriminator``: each network's
        parameters' gradient of its loss, before the update), with nothing updated; not compiled (measurements)."""
        return self._gradients(lr, hr)


def paper_terms(content: Callable[[mx.array, mx.array], mx.array], adversarial_weight: float = 1e-3) -> list[WeightedTerm]:
    """The paper's generator loss: ``content(sr, hr) + adversarial_weight * -log D(SR)``."""
    return [
        WeightedTerm("content", 1.0, lambda o: content(o.sr, o.hr)),
        WeightedTerm("adversarial", adversarial_weight, lambda o: generator_adversarial_loss(o.fake)),
    ]


class DiscriminatorStep:
    """One update of the discriminator alone, against the generator's output (its weights are not updated;
    in training mode its BatchNorm running statistics follow the batches, as in an SRGAN step): the
    discriminator's warm-up (BasicSR's ``net_d_init_iters``). Same ``gan`` loss, ``joint`` and ``d_shift`` as
    :class:`SRGANStep`."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, opt_d: optim.Optimizer, *, gan: str = "vanilla",
                 joint: bool = False, d_shift: int = 0):  # fmt: skip
        self.state = [generator.state, discriminator.state, opt_d.state, mx.random.state]
        d_update, _ = _discriminator_update(discriminator, opt_d, joint, d_shift, gan)

        @partial(mx.compile, inputs=self.state, outputs=self.state)
        def step(lr, hr):
            with kernels.unfused():
                out = d_update(hr, generator(lr))
            _sync_batch_statistics(generator)
            return out

        self._step = step

    def __call__(self, lr: mx.array, hr: mx.array) -> dict[str, mx.array]:
        return self._step(lr, hr)
