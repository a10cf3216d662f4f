"""The fidelity/realism dial: network interpolation between SRResNet and SRGAN.

SRGAN's generator starts from SRResNet's weights and is fine-tuned with the perceptual
and adversarial losses, so the two generators stay close in weight space and every
blend of them is a working network (Wang et al., ESRGAN, 2018, section 3.4):
``theta = (1 - realism) * theta_srresnet + realism * theta_srgan``, applied to every
parameter and BatchNorm running statistic. ``realism`` 0 is SRResNet (highest PSNR),
1 is SRGAN (most realistic texture); values between trade one for the other with no
extra weights shipped.

The same works for any two networks of one architecture and shape where one is a fine-tune of the other, e.g.
ESRGAN's PSNR-oriented and GAN RRDBNets (``RRDB_PSNR_x4.pth`` and ``RRDB_ESRGAN_x4.pth``, or Real-ESRNet and
Real-ESRGAN), as ESRGAN's ``net_interp.py`` blends them; two different architectures cannot be blended.
"""

from __future__ import annotations

from mlx.utils import tree_flatten

from ..convert.models import describe_network
from ..defaults import REALISM_RANGE
from ..errors import UserError
from ..files.model_io import generator_of
from ..networks.kinds import Network


def check_realism(realism: float) -> float:
    """``realism`` if it is within :data:`~srgan_mlx.defaults.REALISM_RANGE`, else a :class:`UserError`: the one check
    of the dial's value, for the command line, the server and :func:`interpolate`."""
    low, high = REALISM_RANGE
    if not low <= realism <= high:
        raise UserError(f"realism must be between {low:g} and {high:g}, got {realism:g}")
    return realism


def blendable(fidelity: Network, realistic: Network) -> bool:
    """Whether two networks can be blended: the same architecture and shape."""
    return type(fidelity) is type(realistic) and fidelity.config() == realistic.config()


def interpolate(fidelity: Network, realistic: Network, realism: float) -> Network:
    """A new eval-mode network whose arrays are ``(1 - realism) * fidelity + realism * realistic``: the one blending
    function, behind ``--realism`` and the server's dial."""
    check_realism(realism)
    if not blendable(fidelity, realistic):
        raise UserError(
            f"cannot blend networks of different shapes: {describe_network(fidelity)} (--fidelity-model) and "
            f"{describe_network(realistic)} (--model); the realism dial (network interpolation) needs two networks "
            "of the same architecture and shape, one fine-tuned from the other"
        )
    theirs = dict(tree_flatten(realistic.parameters()))
    blended = [
        (name, (1.0 - realism) * ours + realism * theirs[name]) for name, ours in tree_flatten(fidelity.parameters())
    ]
    return generator_of(fidelity.config(), blended, type(fidelity))
