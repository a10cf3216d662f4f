"""The convolution every network uses, whose implementation depends on the device, and the spectrally normalised
layers of the discriminators."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from ..native import onednn
from .conv import conv2d_same, conv2d_strided
from .devices import conv_path

IM2COL_CHUNK_BYTES = 4 << 20  # im2col matrix of one image above which a batch is convolved image by image


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (weight ``(out, kh, kw, in)``, NHWC) whose implementation depends on the device.

    :func:`srgan_mlx.networks.devices.conv_path` decides, when the network is called. ``mlx``: ``mx.conv2d``.
    ``onednn`` (the CPU default where the extension loads): every float32 layer with a square kernel and
    symmetric padding (all of the generator, discriminator and VGG19) through oneDNN's primitives, forward
    with the bias fused and both gradients (:mod:`srgan_mlx.native.onednn`); the 9x9 tail with 3 outputs on
    2x2 pixel blocks, where oneDNN's kernels are faster. ``tuned`` (the CPU default without the extension):
    the pure-MLX forms of :mod:`srgan_mlx.networks.conv` where MLX's CPU ``conv2d`` is slowest (large kernels, very
    unequal channel counts, strided input gradients, large maps image by image), ``mx.conv2d`` elsewhere.
    Every path computes the same convolution with the parameters of ``nn.Conv2d``, so weights load either
    way; per-layer speeds are in docs/performance.md. ``bf16`` (set on a layer): on the onednn path it
    multiplies in bfloat16 where the processor has bfloat16 kernels, as ``SRGAN_MLX_ONEDNN_BF16=1`` makes
    every layer do.
    """

    bf16 = False

    def __call__(self, x: mx.array) -> mx.array:
        return self.convolve(x, self.weight)

    def convolve(self, x: mx.array, weight: mx.array) -> mx.array:
        """This layer's convolution (stride, padding, bias, path) with ``weight`` in place of its own."""
        path = conv_path()
        bias = self.bias if "bias" in self else None
        if path == "onednn" and self._symmetric() and x.dtype == weight.dtype == mx.float32:
            out_ch, k, _, _ = weight.shape
            if not (self.stride[0] == 1 and out_ch <= 4 and k >= 5 and k == 2 * self.padding[0] + 1):
                return onednn.conv2d(x, weight, self.stride[0], self.padding[0], bias, self.bf16)  # bias fused
            y = onednn.conv2d_few_outputs(x, weight, self.padding[0])  # the 9x9 tail: 3x faster
        else:
            y = self._mx_conv(x, weight) if path == "mlx" else self._tuned_conv(x, weight)
        return y if bias is None else y + bias

    def _symmetric(self) -> bool:
        """Square kernel, one stride and one padding for both axes, no dilation or groups."""
        _, kh, kw, _ = self.weight.shape
        return (
            kh == kw
            and self.stride[0] == self.stride[1]
            and self.padding[0] == self.padding[1]
            and self.dilation == 1
            and self.groups == 1
        )

    def _tuned_conv(self, x: mx.array, weight: mx.array) -> mx.array:
        out_ch, kh, kw, in_ch = weight.shape
        symmetric = self._symmetric()
        if symmetric and self.stride[0] == 1 and (kh >= 5 or 4 * min(in_ch, out_ch) <= max(in_ch, out_ch)):
            return conv2d_same(x, weight, self.padding[0])
        if symmetric and self.stride[0] > 1:
            # MLX's own input gradient of a strided conv is ~40x slower than its forward pass
            return conv2d_strided(x, weight, self.stride[0], self.padding[0])
        if x.shape[0] > 1 and x.shape[1] * x.shape[2] * kh * kw * in_ch * 4 > IM2COL_CHUNK_BYTES:
            # one image at a time: each one's im2col matrix stays in cache (forward 1.5-1.8x faster)
            return mx.concatenate([self._mx_conv(x[i : i + 1], weight) for i in range(x.shape[0])])
        return self._mx_conv(x, weight)

    def _mx_conv(self, x: mx.array, weight: mx.array) -> mx.array:
        return mx.conv2d(x, weight, self.stride, self.padding, self.dilation, self.groups)


def multiply_in_bfloat16(network: nn.Module) -> nn.Module:
    """``network`` with every :class:`Conv2d` in it multiplying in bfloat16 on the oneDNN path where the processor
    has bfloat16 kernels (inputs rounded to 8 significant bits, sums and outputs float32); float32 elsewhere."""
    for module in network.modules():
        if isinstance(module, Conv2d):
            module.bf16 = True
    return network


class SpectralNorm:
    """Spectral normalisation (Miyato et al. 2018) for a layer with a ``weight`` of one row per output: the weight
    it computes with is divided by its largest singular value, as a matrix of one row per output.

    The singular value comes from one power iteration per call, started from the vector ``u`` (one value per
    output) that the layer keeps: ``v = W^T u / |W^T u|``, ``u' = W v / |W v|``, ``sigma = u' . W v``, with ``u``
    and ``v`` constants for the gradient, as ``torch.nn.utils.spectral_norm`` computes it. In training mode each
    call keeps ``u'`` for the next (``u`` is frozen: saved with the weights and in checkpoints, never trained); in
    eval mode ``u`` is read and not changed. The order of a row's entries (NHWC weights here) does not change ``u``
    or ``sigma``.
    """

    EPS = 1e-12  # torch's normalize

    def keep_u(self) -> None:
        """Start ``u`` at a random unit vector, frozen."""
        self.u = _normalize(mx.random.normal((self.weight.shape[0],)))
        self.freeze(keys=["u"], recurse=False)

    def unfreeze(self, *args, **kwargs):
        """Unfreeze as ``nn.Module`` does, except ``u``, which is never trained."""
        super().unfreeze(*args, **kwargs)
        self.freeze(keys=["u"], recurse=False)
        return self

    def sigma(self) -> mx.array:
        """The weight's largest singular value (one power iteration), moving ``u`` on in training mode."""
        matrix = self.weight.reshape(self.weight.shape[0], -1)
        v = _normalize(mx.stop_gradient(matrix).T @ self.u)
        u = _normalize(mx.stop_gradient(matrix) @ v)
        if self.training:
            self.u = u
        return u @ (matrix @ v)

    def normalized_weight(self) -> mx.array:
        """The weight divided by its largest singular value, moving ``u`` on in training mode."""
        return self.weight / self.sigma()


class SpectralNormConv2d(SpectralNorm, Conv2d):
    """A :class:`Conv2d` (no bias by default), spectrally normalised (:class:`SpectralNorm`)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = False):  # fmt: skip
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        self.keep_u()

    def __call__(self, x: mx.array) -> mx.array:
        return self.convolve(x, self.normalized_weight())


class SpectralNormLinear(SpectralNorm, nn.Linear):
    """An ``nn.Linear`` (with bias), spectrally normalised (:class:`SpectralNorm`)."""

    def __init__(self, input_dims: int, output_dims: int):
        super().__init__(input_dims, output_dims)
        self.keep_u()

    def __call__(self, x: mx.array) -> mx.array:
        # x (W / sigma)^T + b computed as (x W^T) / sigma + b: the paper D's first dense layer has 18.9M weights,
        # and dividing its outputs instead of its weight saves element-wise passes over them
        return (x @ self.weight.T) / self.sigma() + self.bias


def _normalize(vector: mx.array) -> mx.array:
    return vector / mx.maximum(mx.linalg.norm(vector), SpectralNorm.EPS)
