"""The models ``srgan-mlx serve`` offers, loaded once, and their blends with the fidelity model (the realism dial),
the newest few kept in memory."""

from __future__ import annotations

import threading

from ..errors import UserError
from ..networks.generator import Generator
from ..upscaling.interpolation import blendable, check_realism, interpolate
from ..upscaling.upscaler import Upscaler

CACHED_BLENDS = 4
"""Blended generators (model, realism) kept in memory, newest first."""


class Models:
    """The generators a server offers, loaded once, and their blends with the fidelity model (the realism dial).

    ``generators``: display name -> eval-mode generator (the first is the default); ``fidelity``: the
    realism dial's fidelity end as (name, generator), or None (no dial); every served model of its shape but
    itself gets the dial. ``max_memory``/``tile`` go to every :class:`Upscaler`.
    """

    def __init__(self, generators: dict[str, Generator], fidelity: tuple[str, Generator] | None,
                 max_memory: int | None = None, tile: int | None = None):  # fmt: skip
        if not generators:
            raise UserError("no model to serve")
        self.generators = generators
        self.fidelity = fidelity
        self.max_memory = max_memory
        self.tile = tile
        self.lock = threading.Lock()
        self.blends: dict[tuple[str, float | None], Upscaler] = {}

    @property
    def default(self) -> str:
        return next(iter(self.generators))

    def has_dial(self, name: str) -> bool:
        if self.fidelity is None:
            return False
        fidelity_name, fidelity = self.fidelity
        return name != fidelity_name and blendable(fidelity, self.generators[name])

    def describe(self) -> list[dict]:
        return [
            {"name": name, "scale": g.scale, "realism": self.has_dial(name)} for name, g in self.generators.items()
        ]

    def check(self, name: str, realism: float | None) -> None:
        """A :class:`UserError` unless ``name`` is served and ``realism`` (None, or in the dial's range) applies to it."""
        if name not in self.generators:
            raise UserError(f"unknown model {name!r}; this server has {', '.join(self.generators)}")
        if realism is not None and not self.has_dial(name):
            raise UserError(f"model {name!r} has no realism dial on this server")
        if realism is not None:
            check_realism(realism)

    def upscaler(self, name: str, realism: float | None) -> Upscaler:
        """The :class:`Upscaler` of ``name`` (blended at ``realism`` with the fidelity model), built on first use."""
        self.check(name, realism)
        key = (name, realism)
        with self.lock:
            if key in self.blends:
                self.blends[key] = self.blends.pop(key)  # most recently used last
                return self.blends[key]
        generator = self.generators[name]
        if realism is not None:
            generator = interpolate(self.fidelity[1], generator, realism)
        upscaler = Upscaler(generator, tile=self.tile, max_memory=self.max_memory, label=name)
        with self.lock:
            self.blends[key] = upscaler
            while len(self.blends) > CACHED_BLENDS:
                self.blends.pop(next(iter(self.blends)))
        return upscaler
