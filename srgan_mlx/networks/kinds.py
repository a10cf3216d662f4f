"""The super-resolution networks, by the kind their weights files name: SRResNet's :class:`Generator` and ESRGAN's
:class:`RRDBNet`. A new super-resolution network gets its kind here."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from .generator import Generator
from .rrdbnet import RRDBNet

NETWORKS: dict[str, type[nn.Module]] = {"generator": Generator, "rrdbnet": RRDBNet}
"""The super-resolution networks by weights-file kind."""
Network = Generator | RRDBNet


def kind_of(network: nn.Module) -> str:
    """The weights-file kind of a super-resolution network."""
    for kind, cls in NETWORKS.items():
        if type(network) is cls:
            return kind
    raise TypeError(f"not a super-resolution network: {type(network).__name__}")


def network_dtype(network: Network) -> mx.Dtype:
    """The dtype a network computes in: its parameters'."""
    return tree_flatten(network.parameters())[0][1].dtype
