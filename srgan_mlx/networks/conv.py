"""Stride-1 convolution with large kernels as one matrix product plus shifted copies or adds.

MLX's CPU ``conv2d`` materialises an (N*H*W) x (k*k*C_in) im2col matrix and its
backward pass is slow; for the generator's 9x9 convolutions that is most of a
training step (the 64->3 output layer at 96x96 alone took seconds). Here a
convolution is computed through the side with fewer channels, kept *planar*
(channels first, ``(C, N, H, W)``) so that every shifted slice is a block of
contiguous rows:

* few input channels (the 3->64 head): columns of the input, ``cols(x)^T @ W``;
  memory per pixel k*k*C_in;
* few output channels (the 64->3 tail): each input pixel's contribution to all
  k*k output offsets is one matrix product ``W'^T @ x^T``, then k*k shifted adds;
  memory per pixel k*k*C_out.

The backward pass (a custom VJP) is the same two formulations with the kernel
flipped in space. Everything is plain MLX ops, so it runs on Metal as well.
"""

from __future__ import annotations

from functools import lru_cache

import mlx.core as mx


def _pad_hw(p: mx.array, lo: int, out_h: int, out_w: int, k: int) -> mx.array:
    """Zero-pad the last two axes of a planar array for a k x k window giving out_h x out_w."""
    h, w = p.shape[-2:]
    widths = [(0, 0)] * (p.ndim - 2)
    return mx.pad(p, widths + [(lo, max(out_h + k - 1 - h - lo, 0)), (lo, max(out_w + k - 1 - w - lo, 0))])


def planar_im2col(p: mx.array, k: int, pad_lo: int, out_h: int, out_w: int) -> mx.array:
    """(C, N, H, W) -> (k*k*C, N*out_h*out_w), rows ordered (ki, kj, c)."""
    c, n = p.shape[:2]
    pp = _pad_hw(p, pad_lo, out_h, out_w, k)
    taps = [pp[..., i : i + out_h, j : j + out_w] for i in range(k) for j in range(k)]
    return mx.stack(taps).reshape(k * k * c, n * out_h * out_w)


def planar_col2im(z: mx.array, k: int, pad_lo: int, out_h: int, out_w: int) -> mx.array:
    """Contributions (k*k, C, N, H, W) -> (C, N, out_h, out_w): out[p] = sum_ij z_ij[p + i - pad_lo]."""
    zp = _pad_hw(z, pad_lo, out_h, out_w, k)
    out = None
    for i in range(k):
        for j in range(k):
            term = zp[i * k + j, ..., i : i + out_h, j : j + out_w]
            out = term if out is None else out + term
    return out


def _planar(x: mx.array) -> mx.array:
    """NHWC -> (C, N, H, W)."""
    return x.transpose(3, 0, 1, 2)


def _pixels(x: mx.array) -> mx.array:
    """NHWC -> (N*H*W, C), no copy."""
    return x.reshape(-1, x.shape[-1])


@lru_cache(maxsize=None)
def _conv_fn(k: int, pad: int, few_outputs: bool):
    """A stride-1 conv with zero padding ``pad`` and custom VJP, for one formulation."""

    def forward(x, w):
        n, h, wd, _ = x.shape
        o, _, _, i = w.shape
        ho, wo = h + 2 * pad - k + 1, wd + 2 * pad - k + 1
        if few_outputs:
            contributions = w.transpose(1, 2, 0, 3).reshape(k * k * o, i) @ _pixels(x).T
            out = planar_col2im(contributions.reshape(k * k, o, n, h, wd), k, pad, ho, wo)
            return out.transpose(1, 2, 3, 0)
        cols = planar_im2col(_planar(x), k, pad, ho, wo)
        return (cols.T @ w.transpose(1, 2, 3, 0).reshape(k * k * i, o)).reshape(n, ho, wo, o)

    conv = mx.custom_function(forward)

    @conv.vjp
    def conv_vjp(primals, cotangent, output):
        x, w = primals
        g = cotangent
        n, h, wd, _ = x.shape
        o, _, _, i = w.shape
        ho, wo = g.shape[1], g.shape[2]
        back_pad = k - 1 - pad  # input pixel a feeds output a + pad - ki
        w_flipped = w[:, ::-1, ::-1, :]
        if few_outputs:
            gcols = planar_im2col(_planar(g), k, back_pad, h, wd)  # (k*k*o, n*h*w)
            dx = (gcols.T @ w_flipped.transpose(1, 2, 0, 3).reshape(k * k * o, i)).reshape(n, h, wd, i)
            dw = (_pixels(x).T @ gcols.T).reshape(i, k, k, o)[:, ::-1, ::-1, :].transpose(3, 1, 2, 0)
        else:
            contributions = w_flipped.reshape(o, k * k * i).T @ _pixels(g).T  # (k*k*i, n*ho*wo)
            dx = planar_col2im(contributions.reshape(k * k, i, n, ho, wo), k, back_pad, h, wd)
            dx = dx.transpose(1, 2, 3, 0)
            cols = planar_im2col(_planar(x), k, pad, ho, wo)
            dw = (cols @ _pixels(g)).reshape(k, k, i, o).transpose(3, 0, 1, 2)
        return dx, dw

    return conv


def conv2d_same(x: mx.array, weight: mx.array, padding: int) -> mx.array:
    """Stride-1 2-D convolution, NHWC input, (O, k, k, I) weight, zero padding."""
    o, k, k2, i = weight.shape
    if k != k2:
        raise ValueError("conv2d_same needs a square kernel")
    return _conv_fn(k, padding, o < i)(x, weight)


@lru_cache(maxsize=None)
def _strided_conv_fn(stride: int, pad: int):
    """``mx.conv2d`` with ``stride`` > 1, whose input gradient avoids MLX's slow dilated-input path.

    The input gradient of a strided convolution is the stride-1 convolution, with the kernel
    flipped and transposed, of the output gradient spread onto the stride-1 grid (zeros
    between). MLX's CPU backend computes it with a dilated-input convolution about 40x
    slower than the forward pass; here it is one zero-interleave and one ordinary conv.
    The weight gradient is MLX's own (fast) one.
    """

    def forward(x, w):
        return mx.conv2d(x, w, stride=stride, padding=pad)

    conv = mx.custom_function(forward)

    @conv.vjp
    def conv_vjp(primals, cotangent, output):
        x, w = primals
        g = cotangent
        n, h, wd, _ = x.shape
        o, k, _, i = w.shape
        full_h, full_w = h + 2 * pad - k + 1, wd + 2 * pad - k + 1  # stride-1 output size
        oh, ow = g.shape[1], g.shape[2]
        spread = mx.stack([g] + [mx.zeros_like(g)] * (stride - 1), axis=2).reshape(n, oh * stride, ow, o)
        spread = mx.stack([spread] + [mx.zeros_like(spread)] * (stride - 1), axis=3)
        spread = spread.reshape(n, oh * stride, ow * stride, o)[:, :full_h, :full_w]
        spread = mx.pad(spread, [(0, 0), (0, full_h - spread.shape[1]), (0, full_w - spread.shape[2]), (0, 0)])
        w_t = w[:, ::-1, ::-1, :].transpose(3, 1, 2, 0)
        dx = mx.conv2d(spread, w_t, padding=k - 1 - pad)
        _, (dw,) = mx.vjp(lambda w: mx.conv2d(x, w, stride=stride, padding=pad), [w], [g])
        return dx, dw

    return conv


def conv2d_strided(x: mx.array, weight: mx.array, stride: int, padding: int) -> mx.array:
    """2-D convolution with an integer stride > 1 and symmetric zero padding, NHWC."""
    return _strided_conv_fn(stride, padding)(x, weight)
