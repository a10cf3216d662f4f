"""The SRGAN generator's loss as data: one row of :data:`TERMS` per term.

A term has a name (its key in the step's output and in ``metrics.jsonl``, and its label in ``metrics.png``),
the :class:`~srgan_mlx.training.config.TrainConfig` field that weighs it (``None``: weight 1), a colour for its curve
and a builder that makes its function of the step's :class:`Outputs` from the run's config.
:func:`generator_terms` turns the table into the weighted terms a :class:`~srgan_mlx.training.steps.SRGANStep` sums,
in the table's order. A new term is one row here, its field in ``config.py`` and its test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import mlx.core as mx

from .config import TrainConfig
from .losses import (
    LowFrequencyAnchor, PerceptualLoss, artifact_loss, generator_adversarial_loss, pixel_l1,
    relativistic_generator_loss, subpixel_bias,
)  # fmt: skip
from ..networks.vgg import VGG19Features


class Outputs(NamedTuple):
    """What a generator loss term may read in one step."""

    lr: mx.array  # the LR batch, [0, 1]
    hr: mx.array  # the HR batch, [-1, 1]
    sr: mx.array  # the generator's output, [-1, 1]
    fake: mx.array  # D's logits on SR
    real: mx.array | None  # D's logits on HR, constants (computed where the step needs them)
    reference: mx.array | None  # the moving-average generator's SR, a constant (where a term needs it)


Loss = Callable[[Outputs], mx.array]


class WeightedTerm(NamedTuple):
    """A term as a step sums it: ``weight * loss(outputs)``; a weight of 0 is recorded, not summed."""

    name: str
    weight: float
    loss: Loss


@dataclass(frozen=True)
class Term:
    name: str
    weight: str | None  # the TrainConfig field that weighs it; None: always 1
    color: str  # its curve in metrics.png
    build: Callable[[TrainConfig, VGG19Features | None], Loss]
    recorded: bool = False  # in the step's output even at weight 0 (cheap and telling)
    needs_reference: bool = False  # reads Outputs.reference


def _content(config: TrainConfig, vgg: VGG19Features | None) -> Loss:
    perceptual = PerceptualLoss(vgg, config.vgg_layers, config.vgg_distance, config.vgg_rescale)
    return lambda o: perceptual(o.sr, o.hr)


def _adversarial(config: TrainConfig, _) -> Loss:
    if config.gan_loss == "relativistic":
        return lambda o: relativistic_generator_loss(o.real, o.fake)
    return lambda o: generator_adversarial_loss(o.fake)


def _anchor(config: TrainConfig, _) -> Loss:
    anchor = LowFrequencyAnchor(config.crop, config.scale)
    return lambda o: anchor(o.sr, o.lr)


TERMS = (
    Term("content", None, "#d62728", _content, recorded=True),
    Term("adversarial", "adversarial_weight", "#2ca02c", _adversarial, recorded=True),
    Term("pixel", "pixel_weight", "#8c564b", lambda c, v: lambda o: pixel_l1(o.sr, o.hr), recorded=True),
    Term("anchor", "anchor_weight", "#e377c2", _anchor, recorded=True),
    Term("phase", "phase_weight", "#17becf",
         lambda c, v: lambda o: subpixel_bias(o.sr, o.hr, c.scale, c.phase_window)),
    Term("artifact", "artifact_weight", "#bcbd22", lambda c, v: lambda o: artifact_loss(o.sr, o.hr, o.reference),
         needs_reference=True),
)  # fmt: skip
"""Every generator loss term of the SRGAN stage, in the order a step sums them."""


def weight_of(term: Term, config: TrainConfig) -> float:
    return 1.0 if term.weight is None else getattr(config, term.weight)


def generator_terms(config: TrainConfig, vgg: VGG19Features | None) -> list[WeightedTerm]:
    """The run's terms: every weighted one, and the recorded ones at weight 0."""
    return [
        WeightedTerm(term.name, weight_of(term, config), term.build(config, vgg))
        for term in TERMS if weight_of(term, config) or term.recorded
    ]  # fmt: skip


def needs_reference(config: TrainConfig) -> bool:
    """Whether a weighted term reads the moving average's output."""
    return any(term.needs_reference and weight_of(term, config) for term in TERMS)


def blind_terms(config: TrainConfig) -> tuple[str, ...]:
    """The terms named by ``--grid-blind``, whose gradient a step strips of its sub-pixel pattern."""
    return tuple(name.strip() for name in config.grid_blind.split(",") if name.strip())


def weighted_sum(terms: list[WeightedTerm], values: dict[str, mx.array]) -> mx.array:
    """``sum(weight * value)`` over the terms with a weight, in their order (a weight of 1 multiplies nothing)."""
    total = None
    for name, weight, _ in terms:
        if weight:
            value = values[name] if weight == 1 else weight * values[name]
            total = value if total is None else total + value
    return total
