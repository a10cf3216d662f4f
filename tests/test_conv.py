"""The large-kernel convolution equals mx.conv2d, forward and backward, in both formulations."""

import numpy as np
import pytest

import mlx.core as mx

from srgan_mlx.networks.conv import conv2d_same, conv2d_strided


@pytest.mark.parametrize(
    "n,h,w,cin,cout,k,pad",
    [(2, 7, 9, 5, 3, 3, 1), (2, 9, 8, 3, 6, 5, 2), (2, 8, 8, 6, 2, 9, 4), (1, 10, 7, 4, 4, 5, 2), (1, 6, 6, 2, 5, 5, 0)],
)
def test_matches_mx_conv2d(n, h, w, cin, cout, k, pad):
    keys = mx.random.split(mx.random.key(k * 100 + cin), 3)
    x = mx.random.normal((n, h, w, cin), key=keys[0])
    weight = mx.random.normal((cout, k, k, cin), key=keys[1]) * 0.1
    expected = mx.conv2d(x, weight, padding=pad)
    cotangent = mx.random.normal(expected.shape, key=keys[2])
    out = conv2d_same(x, weight, pad)
    assert np.allclose(np.array(out), np.array(expected), atol=1e-5)

    def grads(fn):
        return mx.grad(lambda x, w: (fn(x, w) * cotangent).sum(), argnums=(0, 1))(x, weight)

    ours = grads(lambda x, w: conv2d_same(x, w, pad))
    theirs = grads(lambda x, w: mx.conv2d(x, w, padding=pad))
    for a, b in zip(ours, theirs):
        assert np.allclose(np.array(a), np.array(b), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize(
    "n,h,w,cin,cout,k,stride,pad",
    [(2, 7, 9, 3, 5, 3, 2, 1), (2, 8, 8, 4, 6, 3, 2, 1), (1, 13, 13, 5, 3, 3, 2, 1), (2, 10, 11, 3, 4, 5, 2, 2),
     (1, 9, 9, 2, 3, 3, 3, 1)],
)
def test_strided_matches_mx_conv2d(n, h, w, cin, cout, k, stride, pad):
    keys = mx.random.split(mx.random.key(h * 10 + w), 3)
    x = mx.random.normal((n, h, w, cin), key=keys[0])
    weight = mx.random.normal((cout, k, k, cin), key=keys[1]) * 0.1
    expected = mx.conv2d(x, weight, stride=stride, padding=pad)
    cotangent = mx.random.normal(expected.shape, key=keys[2])
    assert np.array_equal(np.array(conv2d_strided(x, weight, stride, pad)), np.array(expected))

    def grads(fn):
        return mx.grad(lambda x, w: (fn(x, w) * cotangent).sum(), argnums=(0, 1))(x, weight)

    ours = grads(lambda x, w: conv2d_strided(x, w, stride, pad))
    theirs = grads(lambda x, w: mx.conv2d(x, w, stride=stride, padding=pad))
    for a, b in zip(ours, theirs):
        assert np.allclose(np.array(a), np.array(b), atol=1e-5, rtol=1e-5)
