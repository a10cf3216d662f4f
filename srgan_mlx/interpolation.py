"""The fidelity/realism dial: network interpolation between SRResNet and SRGAN.

SRGAN's generator starts from SRResNet's weights and is fine-tuned with the perceptual
and adversarial losses, so the two generators stay close in weight space and every
blend of them is a working network (Wang et al., ESRGAN, 2018, section 3.4):
``theta = (1 - realism) * theta_srresnet + realism * theta_srgan``, applied to every
parameter and BatchNorm running statistic. ``realism`` 0 is SRResNet (highest PSNR),
1 is SRGAN (most realistic texture); values between trade one for the other with no
extra weights shipped.
"""

from __future__ import annotations

from mlx.utils import tree_flatten

from .errors import UserError
from .generator import Generator
from .model_io import generator_of


def interpolate(fidelity: Generator, realistic: Generator, realism: float) -> Generator:
    """A new eval-mode generator whose arrays are ``(1 - realism) * fidelity + realism * realistic``."""
    if not 0.0 <= realism <= 1.0:
        raise UserError(f"--realism must be between 0 and 1, got {realism}")
    if fidelity.config() != realistic.config():
        raise UserError(
            f"cannot blend generators of different shapes: {fidelity.config()} and {realistic.config()}"
        )
    theirs = dict(tree_flatten(realistic.parameters()))
    blended = [
        (name, (1.0 - realism) * ours + realism * theirs[name]) for name, ours in tree_flatten(fidelity.parameters())
    ]
    return generator_of(fidelity.config(), blended)
