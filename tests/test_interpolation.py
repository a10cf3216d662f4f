"""Network interpolation (the --realism dial): endpoints exact, blends linear in every array, shapes checked."""

import numpy as np
import pytest

import srgan_mlx  # noqa: F401  (loads the BLAS before mlx)
import mlx.core as mx
from mlx.utils import tree_flatten

from srgan_mlx.errors import UserError
from srgan_mlx.generator import Generator
from srgan_mlx.interpolation import interpolate


def arrays(generator):
    return {k: np.array(v) for k, v in tree_flatten(generator.parameters())}


@pytest.fixture
def pair(tiny_generator):
    return tiny_generator(seed=1), tiny_generator(seed=2)


def test_endpoints_are_the_two_generators_exactly(pair):
    a, b = pair
    x = mx.random.uniform(shape=(1, 10, 12, 3), key=mx.random.key(0))
    for realism, expected in ((0.0, a), (1.0, b)):
        blended = interpolate(a, b, realism)
        assert not blended.training
        assert all(np.array_equal(v, arrays(expected)[k]) for k, v in arrays(blended).items())
        assert np.array_equal(np.array(blended(x)), np.array(expected(x)))


@pytest.mark.parametrize("realism", [0.25, 0.5, 0.75])
def test_every_array_is_the_weighted_mean(pair, realism):
    a, b = pair
    blended, wa, wb = arrays(interpolate(a, b, realism)), arrays(a), arrays(b)
    assert blended.keys() == wa.keys()
    running = [k for k in blended if "running" in k]
    assert running, "BatchNorm statistics must be blended too"
    for key, value in blended.items():
        np.testing.assert_allclose(value, (1 - realism) * wa[key] + realism * wb[key], rtol=1e-6, atol=1e-7)
    assert not np.array_equal(blended[running[0]], wa[running[0]])


def test_shapes_and_range_are_checked(pair):
    a, _ = pair
    other = Generator(4, num_blocks=3, channels=16)
    with pytest.raises(UserError, match="different shapes"):
        interpolate(a, other, 0.5)
    with pytest.raises(UserError, match="between 0 and 1"):
        interpolate(a, a, 1.5)
