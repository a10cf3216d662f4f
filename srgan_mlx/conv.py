"""Stride-1 convolution as im2col/col2im plus one matrix product, with its own VJP.

MLX's CPU ``conv2d`` materialises an (N*H*W) x (kh*kw*C_in) im2col matrix and
its backward pass is slow; the generator's 9x9 64->3 output layer alone takes
seconds per training step. Here a convolution is written two ways that give
the same result:

* input-columns: ``im2col(x) @ W`` -- memory per pixel k*k*C_in;
* output-columns: ``col2im(x @ W')`` -- each input pixel's contribution to
  all k*k output offsets is one matrix product, then k*k shifted adds --
  memory per pixel k*k*C_out.

The cheaper one (the smaller of C_in and C_out) is used, forward and backward.
Everything is plain MLX ops, so it runs on Metal as well as on the CPU.
"""

from __future__ import annotations

from functools import lru_cache

import mlx.core as mx


def im2col(x: mx.array, k: int, pad_lo: int, out_h: int, out_w: int) -> mx.array:
    """(N, H, W, C) -> (N, out_h, out_w, k*k*C), column order (ki, kj, c)."""
    n, h, w, _ = x.shape
    pad_hi_h = out_h + k - 1 - h - pad_lo
    pad_hi_w = out_w + k - 1 - w - pad_lo
    xp = mx.pad(x, [(0, 0), (pad_lo, max(pad_hi_h, 0)), (pad_lo, max(pad_hi_w, 0)), (0, 0)])
    return mx.concatenate(
        [xp[:, i : i + out_h, j : j + out_w, :] for i in range(k) for j in range(k)], axis=-1
    )


def col2im(z: mx.array, k: int, pad_lo: int, out_h: int, out_w: int) -> mx.array:
    """(N, H, W, k*k*C) contributions -> (N, out_h, out_w, C): out[p] = sum_ij z_ij[p + i - pad_lo]."""
    n, h, w, kkc = z.shape
    c = kkc // (k * k)
    z = z.reshape(n, h, w, k * k, c)
    pad_hi_h = max(out_h + k - 1 - h - pad_lo, 0)
    pad_hi_w = max(out_w + k - 1 - w - pad_lo, 0)
    zp = mx.pad(z, [(0, 0), (pad_lo, pad_hi_h), (pad_lo, pad_hi_w), (0, 0), (0, 0)])
    out = None
    for i in range(k):
        for j in range(k):
            term = zp[:, i : i + out_h, j : j + out_w, i * k + j, :]
            out = term if out is None else out + term
    return out


def _matmul_last(a: mx.array, b: mx.array) -> mx.array:
    """(..., K) @ (K, M) -> (..., M)."""
    return (a.reshape(-1, a.shape[-1]) @ b).reshape(*a.shape[:-1], b.shape[-1])


def _weight_grad(x: mx.array, g: mx.array) -> mx.array:
    """sum over pixels of x^T g: (N,H,W,A), (N,H,W,B) -> (A, B)."""
    return x.reshape(-1, x.shape[-1]).T @ g.reshape(-1, g.shape[-1])


@lru_cache(maxsize=None)
def _conv_fn(k: int, pad: int, output_columns: bool):
    """A stride-1 conv with zero padding ``pad`` and custom VJP, for one shape family."""

    def forward(x, w):
        _, h, wd, _ = x.shape
        o, _, _, i = w.shape
        ho, wo = h + 2 * pad - k + 1, wd + 2 * pad - k + 1
        if output_columns:
            wz = w.transpose(3, 1, 2, 0).reshape(i, k * k * o)
            return col2im(_matmul_last(x, wz), k, pad, ho, wo)
        wm = w.transpose(1, 2, 3, 0).reshape(k * k * i, o)
        return _matmul_last(im2col(x, k, pad, ho, wo), wm)

    conv = mx.custom_function(forward)

    @conv.vjp
    def conv_vjp(primals, cotangent, output):
        x, w = primals
        g = cotangent
        _, h, wd, _ = x.shape
        o, _, _, i = w.shape
        # x-pixel a feeds output p = a - ki + pad, so dL/dz_ij[a] = g[a + pad - ki]
        back_pad = k - 1 - pad
        # the backward pass is the same sum with the kernel flipped in space
        w_flipped = w[:, ::-1, ::-1, :]
        if output_columns:
            gcols = im2col(g, k, back_pad, h, wd)
            dx = _matmul_last(gcols, w_flipped.transpose(1, 2, 0, 3).reshape(k * k * o, i))
            dw = _weight_grad(x, gcols).reshape(i, k, k, o)[:, ::-1, ::-1, :].transpose(3, 1, 2, 0)
        else:
            ho, wo = g.shape[1], g.shape[2]
            contributions = _matmul_last(g, w_flipped.reshape(o, k * k * i))
            dx = col2im(contributions, k, back_pad, h, wd)
            dw = _weight_grad(im2col(x, k, pad, ho, wo), g).reshape(k, k, i, o).transpose(3, 0, 1, 2)
        return dx, dw

    return conv


def conv2d_same(x: mx.array, weight: mx.array, padding: int) -> mx.array:
    """Stride-1 2-D convolution, NHWC input, (O, k, k, I) weight, zero padding."""
    o, k, k2, i = weight.shape
    if k != k2:
        raise ValueError("conv2d_same needs a square kernel")
    return _conv_fn(k, padding, o < i)(x, weight)
