"""Convolutions through oneDNN (the kernels inside TensorFlow's CPU path), as primitives of the native extension.

``SRGAN_MLX_ONEDNN_BF16=1`` makes the convolutions multiply in bfloat16 (inputs rounded to 8
significant bits, sums and results in float32) where the processor has bfloat16 kernels
(AVX512-BF16: Zen 4/5, Sapphire Rapids): 2x the float32 speed, opt-in because it changes the
numbers at the third significant digit. Call these only where :func:`srgan_mlx.networks.devices.conv_path`
gives ``onednn``.
"""

from __future__ import annotations

import os
import re

from .. import environment
from .loader import extension



def multiplied_types(implementation: str) -> tuple[str, str]:
    """The data types of the two operands a cached primitive multiplies, from its line of the extension's
    ``implementations()`` (``forward n2 10x10 32->16 k3 s1 p1 bf16: brgconv:avx512_core_amx [bf16 x bf16]``):
    what oneDNN's primitive descriptor reports, not read from the kernel's name (AMX kernels are called
    ``brgconv:avx512_core_amx`` whatever they compute in). A :class:`ValueError` for a line without them."""
    match = re.search(r"\[(\w+) x (\w+)\]\s*$", implementation)
    if match is None:
        raise ValueError(f"no operand data types in {implementation!r}")
    return match.group(1), match.group(2)


def ran_in_bfloat16(implementation: str) -> bool:
    """Whether the primitive of an ``implementations()`` line multiplies in bfloat16 (see :func:`multiplied_types`):
    True where ``SRGAN_MLX_ONEDNN_BF16=1`` found bfloat16 kernels, False where it fell back to float32."""
    return multiplied_types(implementation) == ("bf16", "bf16")


def conv2d(x, weight, stride: int, padding: int, bias=None, bf16: bool = False):
    """``mx.conv2d`` (plus ``bias``, fused) through oneDNN: square kernel, symmetric padding, float32, CPU;
    differentiable. Multiplies in bfloat16 with ``bf16`` or ``SRGAN_MLX_ONEDNN_BF16=1`` (float32 where the
    processor has no bfloat16 kernels)."""
    bf16 = bf16 or os.environ.get(environment.ONEDNN_BF16, "").strip() == "1"
    return extension().conv2d(x, weight, stride, padding, bias, bf16=bf16)


def conv2d_few_outputs(x, weight, padding: int):
    """A stride-1 "same" convolution with very few output channels (the generator's 9x9 64->3 tail), computed
    on 2x2 pixel blocks: oneDNN's kernels vectorise over output channels and run 3 of them at 60-95 GFLOP/s.

    The input goes space-to-depth (C -> 4C channels at half resolution), the kernel becomes one of
    ``2 * ((padding + 1) // 2) + 1`` taps mapping the 4C block channels to the 4 x O channels of an
    output block, and the result goes depth-to-space: 1.23x the multiply-adds for a 9x9 kernel, but
    forward and weight gradient ~3x faster (input gradient the same). Built from MLX ops around
    :func:`conv2d`, so it is differentiable; odd sizes get one zero row/column, which is padding anyway.
    """
    import mlx.core as mx

    n, h, w, c = x.shape
    o, k, _, _ = weight.shape
    if k != 2 * padding + 1:
        raise ValueError("conv2d_few_outputs computes 'same' convolutions (kernel 2 * padding + 1)")
    x = mx.pad(x, [(0, 0), (0, h % 2), (0, w % 2), (0, 0)])
    hb, wb = x.shape[1] // 2, x.shape[2] // 2
    blocks = x.reshape(n, hb, 2, wb, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, hb, wb, 4 * c)
    reach = (padding + 1) // 2  # taps on either side, in blocks
    taps = 2 * reach + 1
    edge = 2 * reach + 1 - padding
    padded = mx.pad(weight, [(0, 0), (edge, edge), (edge, edge), (0, 0)])
    # kernel tap u (block offset u - reach) from block row p to output row a is weight row 2(u - reach) + p - a + padding
    rows = [mx.concatenate([
        mx.concatenate([padded[:, p - a + 1 :: 2][:, :taps, q - b + 1 :: 2][:, :, :taps] for q in (0, 1)], axis=-1)
        for p in (0, 1)], axis=-1) for a in (0, 1) for b in (0, 1)]
    blocked = mx.stack(rows).reshape(4 * o, taps, taps, 4 * c)  # output channels (a, b, o), input (p, q, c)
    out = conv2d(blocks, blocked, 1, reach)
    out = out.reshape(n, hb, wb, 2, 2, o).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * hb, 2 * wb, o)
    return out[:, :h, :w]
