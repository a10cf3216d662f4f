"""The losses, each against its definition written here: the low-frequency anchor's MATLAB-bicubic downscale,
the sub-pixel pattern and the gradient blind to it, the VGG layer weights, the relativistic GAN losses and their gradients, LDL's artifact map."""


import mlx.core as mx
import numpy as np
import pytest

from srgan_mlx.quality.imresize import imresize
from srgan_mlx.training.losses import (
    LowFrequencyAnchor, artifact_map, grid_blind, layer_weights, relativistic_discriminator_loss, relativistic_generator_loss,
    subpixel_bias,
)
from srgan_steps import CROP, artifact_map_reference, without_growing_pattern, without_subpixel_pattern


@pytest.mark.parametrize("size, scale", [(24, 4), (96, 4), (48, 2), (96, 8)])
def test_anchor_downscale_is_matlab_imresize(size, scale):
    """The anchor's two matrix products equal the numpy MATLAB imresize (float input: no rounding), borders too."""
    rng = np.random.default_rng(size + scale)
    images = rng.uniform(0, 1, (2, size, size, 3))
    anchor = LowFrequencyAnchor(size, scale)
    got = np.array(anchor.downscale(mx.array(images.astype(np.float32))))
    expected = np.stack([imresize(image, 1 / scale) for image in images])
    assert got.shape == expected.shape == (2, size // scale, size // scale, 3)
    np.testing.assert_allclose(got, expected, atol=2e-6)


def test_anchor_is_zero_for_the_hr_itself_and_sees_a_colour_cast():
    """SR = HR gives 0 against the LR made from it; a uniform cast of c on [0, 1] gives c."""
    rng = np.random.default_rng(1)
    hr = rng.uniform(0.1, 0.9, (1, CROP, CROP, 3))
    lr = mx.array(imresize(hr[0], 0.25)[None].astype(np.float32))
    anchor = LowFrequencyAnchor(CROP, 4)
    sr = mx.array((hr * 2 - 1).astype(np.float32))
    assert anchor(sr, lr).item() == pytest.approx(0, abs=1e-6)
    assert anchor(sr + 2 * 0.03, lr).item() == pytest.approx(0.03, rel=1e-4)


def test_subpixel_bias_against_its_definition():
    """Per image and channel: the mean of SR - HR over the pixels at each of the 4 x 4 positions of the LR blocks,
    less the mean of those 16, in absolute value, averaged, on [0, 1] values (written with strided slices)."""
    rng = np.random.default_rng(2)
    sr, hr = (rng.uniform(-1, 1, (2, CROP, CROP, 3)).astype(np.float32) for _ in range(2))
    means = np.stack([(sr - hr)[:, i::4, j::4].mean(axis=(1, 2)) / 2 for i in range(4) for j in range(4)])
    expected = np.abs(means - means.mean(axis=0)).mean()
    assert subpixel_bias(mx.array(sr), mx.array(hr), 4).item() == pytest.approx(expected, rel=1e-5)


def test_windowed_subpixel_bias_against_its_definition():
    """``window``: the same per window of LR pixels (written with slices of each window), and the whole crop as one
    window is the unwindowed term; a grid printed with opposite signs on the two halves of the crop cancels over
    the crop but not per window."""
    rng = np.random.default_rng(4)
    sr, hr = (rng.uniform(-1, 1, (2, CROP, CROP, 3)).astype(np.float32) for _ in range(2))
    side = 3 * 4  # 3 LR pixels
    deviations = []
    for top in range(0, CROP, side):
        for left in range(0, CROP, side):
            part = (sr - hr)[:, top : top + side, left : left + side]
            means = np.stack([part[:, i::4, j::4].mean(axis=(1, 2)) / 2 for i in range(4) for j in range(4)])
            deviations.append(np.abs(means - means.mean(axis=0)))
    assert subpixel_bias(mx.array(sr), mx.array(hr), 4, 3).item() == pytest.approx(np.mean(deviations), rel=1e-5)
    whole = subpixel_bias(mx.array(sr), mx.array(hr), 4).item()
    assert subpixel_bias(mx.array(sr), mx.array(hr), 4, CROP // 4).item() == pytest.approx(whole, rel=1e-6)
    grid = np.zeros((1, CROP, CROP, 3), np.float32)
    grid[:, 1::4, 2 : CROP // 2 : 4] = 0.16
    grid[:, 1::4, CROP // 2 + 2 :: 4] = -0.16
    flat = mx.zeros_like(mx.array(grid))
    assert subpixel_bias(mx.array(grid), flat, 4).item() == pytest.approx(0, abs=1e-7)
    deviation = np.abs(np.array([0.08] + [0.0] * 15) - 0.08 / 16).mean()
    assert subpixel_bias(mx.array(grid), flat, 4, 3).item() == pytest.approx(deviation, rel=1e-5)


def test_subpixel_bias_sees_a_grid_and_not_a_cast():
    """A uniform offset and SR = HR give 0; a dot of +g at one position of every 4 x 4 block (a grid of period 4)
    gives the mean absolute deviation of (g, 0, ..., 0) / 2 from its mean; the same dots at a position that moves
    from block to block through all 16 (no fixed phase) give 0."""
    rng = np.random.default_rng(3)
    hr = rng.uniform(-0.8, 0.8, (1, CROP, CROP, 3)).astype(np.float32)
    assert subpixel_bias(mx.array(hr), mx.array(hr), 4).item() == 0
    assert subpixel_bias(mx.array(hr + 0.1), mx.array(hr), 4).item() == pytest.approx(0, abs=1e-7)
    grid = np.zeros_like(hr)
    grid[:, 1::4, 2::4] = 0.16
    deviations = np.array([0.08] + [0.0] * 15) - 0.08 / 16
    assert subpixel_bias(mx.array(hr + grid), mx.array(hr), 4).item() == pytest.approx(np.abs(deviations).mean())
    wandering = np.zeros((1, 32, 32, 3), np.float32)
    for row in range(8):  # 8 x 8 blocks; block (row, col) has its dot at position (row % 4, col % 4)
        for col in range(8):
            wandering[:, 4 * row + row % 4, 4 * col + col % 4] = 0.16
    flat = mx.zeros_like(mx.array(wandering))
    assert subpixel_bias(mx.array(wandering), flat, 4).item() == pytest.approx(0, abs=1e-7)


@pytest.mark.parametrize("window", [0, 3])
def test_grid_blind_keeps_the_images_and_removes_the_pattern_from_the_gradient(window):
    """Forward: the images, bit for bit. Backward, for the loss sum(images * R): R less its sub-pixel pattern per
    window of ``window`` LR pixels (0: the whole crop; :func:`srgan_steps.without_subpixel_pattern`); so a gradient
    made of a grid alone is stopped, and one with no fixed phase (a constant, or R less its pattern) passes."""
    rng = np.random.default_rng(5)
    images = rng.uniform(-1, 1, (2, CROP, CROP, 3)).astype(np.float32)
    r = rng.normal(size=images.shape).astype(np.float32)
    expected = without_subpixel_pattern(r, window or CROP // 4)
    x = mx.array(images)
    assert np.array_equal(np.array(grid_blind(x, 4, window)), images)

    def grad_of(weights):
        return np.array(mx.grad(lambda y: mx.sum(grid_blind(y, 4, window) * mx.array(weights)))(x))

    np.testing.assert_allclose(grad_of(r), expected, atol=1e-5)
    np.testing.assert_allclose(grad_of(expected), expected, atol=1e-5)
    np.testing.assert_allclose(grad_of(r - expected), 0, atol=1e-5)
    constant = np.full_like(r, 0.3)
    np.testing.assert_allclose(grad_of(constant), constant, atol=1e-6)


@pytest.mark.parametrize("window", [0, 3])
def test_grid_blind_growth_removes_only_the_push_that_grows_the_grid_there(window):
    """With the HR batch as ``target``: the images unchanged; the gradient of sum(images * R) is R less, per window,
    image and channel, the part of its pattern along the batch's mean pattern of images - HR where descent
    lengthens it (:func:`srgan_steps.without_growing_pattern`); windows where descent shortens it keep R whole; so
    no window's descent lengthens the grid to first order; HR gets no gradient."""
    rng = np.random.default_rng(6)
    hr = rng.uniform(-1, 1, (2, CROP, CROP, 3)).astype(np.float32)
    grid = np.tile(rng.normal(size=(2, 1, 4, 1, 4, 3)), (1, CROP // 4, 1, CROP // 4, 1, 1)).reshape(hr.shape)
    images = (hr + 0.1 * grid).astype(np.float32)
    r = rng.normal(size=images.shape).astype(np.float32)
    expected, removed = without_growing_pattern(r, images - hr, window or CROP // 4)
    x, target = mx.array(images), mx.array(hr)
    assert np.array_equal(np.array(grid_blind(x, 4, window, target)), images)
    got, to_hr = mx.grad(lambda y, t: mx.sum(grid_blind(y, 4, window, t) * mx.array(r)), argnums=(0, 1))(x, target)
    np.testing.assert_allclose(np.array(got), expected, atol=1e-5)
    assert not np.any(np.array(to_hr))
    removed = np.stack(removed)  # (windows, positions, n, c)
    kept = np.all(removed == 0, axis=1)
    assert kept.any() and (~kept).any()  # both cases are met
    _, left = without_growing_pattern(np.array(got), images - hr, window or CROP // 4)
    np.testing.assert_allclose(np.stack(left), 0, atol=1e-6)  # what remains lengthens the grid in no window


def test_layer_weights_parse_names_and_weights():
    assert layer_weights("relu5_4") == {"relu5_4": 1.0}
    assert layer_weights("conv1_2:0.1, conv5_4:1") == {"conv1_2": 0.1, "conv5_4": 1.0}
    for spec, message in (("relu9_9", "unknown VGG19 layer 'relu9_9'"), ("conv1_2:0", "must be above 0"),
                          ("conv1_2:a", "must be a number"), ("relu1_1,relu1_1", "given twice")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            layer_weights(spec)


def softplus(x):
    return np.logaddexp(0.0, x)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_relativistic_losses_and_gradients_against_their_definition():
    """ESRGAN's RaGAN, written out in numpy: D's loss and its gradient (each side through its own logits only), G's
    loss and its gradient with respect to the fake logits (the real ones are constants)."""
    rng = np.random.default_rng(5)
    real, fake = rng.normal(1.0, 2.0, 6), rng.normal(-0.5, 2.0, 6)
    n = len(real)
    d_value = (softplus(-(real - fake.mean())).mean() + softplus(fake - real.mean()).mean()) / 2
    d_real = -sigmoid(-(real - fake.mean())) / (2 * n)
    d_fake = sigmoid(fake - real.mean()) / (2 * n)
    r, f = mx.array(real.astype(np.float32)), mx.array(fake.astype(np.float32))
    value, (got_r, got_f) = mx.value_and_grad(relativistic_discriminator_loss, argnums=(0, 1))(r, f)
    assert value.item() == pytest.approx(d_value, rel=1e-5)
    np.testing.assert_allclose(np.array(got_r), d_real, rtol=1e-4)
    np.testing.assert_allclose(np.array(got_f), d_fake, rtol=1e-4)
    g_value = (softplus(real - fake.mean()).mean() + softplus(-(fake - real.mean())).mean()) / 2
    g_fake = (sigmoid(real - fake.mean()).mean() * -1 / n - sigmoid(-(fake - real.mean())) / n) / 2
    value, got = mx.value_and_grad(lambda f: relativistic_generator_loss(r, f))(f)
    assert value.item() == pytest.approx(g_value, rel=1e-5)
    np.testing.assert_allclose(np.array(got), g_fake, rtol=1e-4)


def test_artifact_map_against_its_definition():
    rng = np.random.default_rng(6)
    sr, hr, reference = (rng.uniform(-1, 1, (2, 20, 16, 3)).astype(np.float32) for _ in range(3))
    got = np.array(artifact_map(*(mx.array(a) for a in (sr, hr, reference))))
    expected = artifact_map_reference(sr, hr, reference)
    assert (expected == 0).any() and (expected > 0).any()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
