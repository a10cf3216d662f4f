"""The MLX networks equal independent torch.nn references on the same weights."""

import numpy as np
import pytest

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

torch = pytest.importorskip("torch", reason="PyTorch is not installed (its CPU build for these reference tests: see docs/install.md#tests)")

import torch_reference as ref  # noqa: E402  (needs torch)
from srgan_mlx.networks.discriminator import Discriminator, UNetDiscriminator, upsample2
from srgan_mlx.networks.generator import Generator
from srgan_mlx.networks.kernels import pixel_shuffle

TOL = 1e-4


def assert_close(actual, expected, tol=TOL):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    err = float(np.abs(actual - expected).max())
    assert err <= tol * scale, f"max abs error {err} > {tol} x {scale}"


def test_pixel_shuffle_matches_torch_order():
    x = mx.arange(2 * 3 * 4 * 12, dtype=mx.float32).reshape(2, 3, 4, 12)
    for r in (2,):
        expected = ref.nhwc(torch.nn.PixelShuffle(r)(ref.nchw(x)))
        assert np.array_equal(np.array(pixel_shuffle(x, r)), expected)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_generator_eval_mode(scale):
    torch_g = ref.randomize(ref.Generator(scale, num_blocks=2, channels=16), seed=scale).eval()
    g = Generator(scale, num_blocks=2, channels=16)
    ref.copy_to_mlx(torch_g, g)
    g.eval()
    x = mx.random.uniform(shape=(2, 11, 13, 3), key=mx.random.key(scale))
    assert_close(g(x), ref.nhwc(torch_g(ref.nchw(x))))


def test_generator_full_size_eval_mode():
    torch_g = ref.randomize(ref.Generator(), seed=7).eval()
    g = Generator()
    ref.copy_to_mlx(torch_g, g)
    g.eval()
    x = mx.random.uniform(shape=(1, 16, 16, 3), key=mx.random.key(7))
    assert_close(g(x), ref.nhwc(torch_g(ref.nchw(x))))


def test_generator_train_mode_output_gradients_and_batch_stats():
    torch_g = ref.randomize(ref.Generator(4, num_blocks=2, channels=16), seed=3).train()
    g = Generator(4, num_blocks=2, channels=16)
    ref.copy_to_mlx(torch_g, g)
    g.train()
    x = mx.random.uniform(shape=(3, 12, 12, 3), key=mx.random.key(1))
    weights = mx.random.normal((3, 48, 48, 3), key=mx.random.key(2))

    def loss(model, x):
        return (model(x) * weights).sum()

    value, grads = nn.value_and_grad(g, lambda x: loss(g, x))(x)
    torch_out = torch_g(ref.nchw(x))
    (torch_out * ref.nchw(weights)).sum().backward()
    assert_close(value, torch_out.mul(ref.nchw(weights)).sum().item(), tol=1e-4)

    torch_grads = {n: p.grad for n, p in torch_g.named_parameters()}
    for name, grad in tree_flatten(grads):
        expected = torch_grads[name].numpy()
        if expected.ndim == 4:
            expected = expected.transpose(0, 2, 3, 1)
        assert_close(grad, expected, tol=1e-4)
    # BatchNorm running statistics were updated the same way (unbiased variance, momentum 0.1)
    mlx_state = dict(tree_flatten(g.parameters()))
    for name, tensor in torch_g.state_dict().items():
        if "running" in name:
            assert_close(mlx_state[name], tensor.numpy())


@pytest.mark.parametrize("size", [96, 100])
def test_discriminator_train_and_eval(size):
    torch_d = ref.randomize(ref.Discriminator(size), seed=size)
    d = Discriminator(size)
    ref.copy_to_mlx(torch_d, d)
    x = mx.random.uniform(-1, 1, shape=(2, size, size, 3), key=mx.random.key(size))
    for train in (True, False):
        torch_d.train(train)
        d.train(train)
        assert_close(d(x), torch_d(ref.nchw(x)).detach().numpy())


@pytest.mark.parametrize("network", ["generator", "discriminator"])
def test_batchnorm_epsilon_in_eval_mode(network):
    """torch's BatchNorm eps (1e-5) in every layer, seen through eval mode with running variances near it."""
    if network == "generator":
        torch_net, net = ref.Generator(4, num_blocks=2, channels=16), Generator(4, num_blocks=2, channels=16)
        x = mx.random.uniform(shape=(2, 11, 13, 3), key=mx.random.key(21))
    else:
        torch_net, net = ref.Discriminator(32), Discriminator(32)
        x = mx.random.uniform(-1, 1, shape=(2, 32, 32, 3), key=mx.random.key(21))
    ref.running_variances_near_eps(ref.randomize(torch_net, seed=21), seed=21).eval()
    ref.copy_to_mlx(torch_net, net)
    net.eval()
    assert_close(net(x), ref.nhwc(torch_net(ref.nchw(x))))


def test_discriminator_rejects_wrong_size():
    with pytest.raises(ValueError, match="expects 96x96"):
        Discriminator(96)(mx.zeros((1, 64, 64, 3)))


def mlx_vgg_like(torch_vgg) -> "VGG19Features":
    """A torchvision-convention ``VGG19Features`` holding the reference's weights, matched by the reference's names."""
    from srgan_mlx.networks.vgg import VGG19Features

    arrays = {}
    for name, layer in zip(torch_vgg.names, torch_vgg.features):
        if name.startswith("conv"):
            arrays[f"{name}.weight"] = mx.array(layer.weight.detach().numpy().transpose(0, 2, 3, 1))
            arrays[f"{name}.bias"] = mx.array(layer.bias.detach().numpy())
    vgg = VGG19Features("torchvision")
    vgg.load_weights(list(arrays.items()), strict=True)
    return vgg


def test_vgg19_features_at_every_named_layer():
    from torch_vgg import TorchVGG19

    torch_vgg = TorchVGG19()
    torch_vgg.init_random(seed=5)
    vgg = mlx_vgg_like(torch_vgg)
    x = mx.random.uniform(shape=(2, 32, 32, 3), key=mx.random.key(5))
    ours = vgg(x, tuple(torch_vgg.names))
    theirs = torch_vgg.activations(ref.nchw(x), tuple(torch_vgg.names))
    assert ours.keys() == theirs.keys() == set(torch_vgg.names)
    for name in torch_vgg.names:
        assert_close(ours[name], ref.nhwc(theirs[name]))
    assert tree_flatten(vgg.trainable_parameters()) == []  # frozen


def test_vgg_loss_matches_an_independent_reference():
    from torch_vgg import TorchVGG19

    from srgan_mlx.training.losses import PerceptualLoss

    torch_vgg = TorchVGG19()
    torch_vgg.init_random(seed=3)
    vgg = mlx_vgg_like(torch_vgg)
    sr = mx.random.uniform(-1, 1, (2, 16, 16, 3), key=mx.random.key(1))
    hr = mx.random.uniform(-1, 1, (2, 16, 16, 3), key=mx.random.key(2))
    # the paper's loss: MSE of phi_2,2 feature maps each scaled by 1/12.75, on images mapped [-1, 1] -> [0, 1]
    fake = torch_vgg.activations((ref.nchw(sr) + 1) / 2, ("relu2_2",))["relu2_2"].double()
    real = torch_vgg.activations((ref.nchw(hr) + 1) / 2, ("relu2_2",))["relu2_2"].double()
    expected = torch.mean((fake / 12.75 - real / 12.75) ** 2).item()
    got = PerceptualLoss(vgg, "relu2_2")(sr, hr).item()
    assert abs(got - expected) <= 1e-4 * expected, (got, expected)
    with pytest.raises(ValueError, match="unknown VGG19 layer"):
        PerceptualLoss(vgg, "relu9_9")


def test_weighted_multilayer_l1_perceptual_loss_matches_an_independent_reference():
    """ESRGAN/LDL's form: L1 on pre-ReLU maps (conv) and a post-ReLU one, each weighted, maps rescaled."""
    from torch_vgg import TorchVGG19

    from srgan_mlx.training.losses import PerceptualLoss

    torch_vgg = TorchVGG19()
    torch_vgg.init_random(seed=4)
    vgg = mlx_vgg_like(torch_vgg)
    sr = mx.random.uniform(-1, 1, (2, 16, 16, 3), key=mx.random.key(3))
    hr = mx.random.uniform(-1, 1, (2, 16, 16, 3), key=mx.random.key(4))
    weights = {"conv1_2": 0.1, "conv2_2": 0.5, "relu3_4": 2.0}
    fake = torch_vgg.activations((ref.nchw(sr) + 1) / 2, tuple(weights))
    real = torch_vgg.activations((ref.nchw(hr) + 1) / 2, tuple(weights))
    expected = sum(w * torch.mean(torch.abs(fake[n].double() / 57.6 - real[n].double() / 57.6)).item()
                   for n, w in weights.items())  # fmt: skip
    got = PerceptualLoss(vgg, "conv1_2:0.1,conv2_2:0.5,relu3_4:2", "l1", 1 / 57.6)(sr, hr).item()
    assert abs(got - expected) <= 1e-4 * expected, (got, expected)
    single = PerceptualLoss(vgg, "conv2_2", "l1", 1 / 57.6)(sr, hr).item()
    assert single == pytest.approx(torch.mean(torch.abs(fake["conv2_2"] - real["conv2_2"])).item() / 57.6, rel=1e-4)


def test_adversarial_losses_are_finite_for_extreme_logits():
    from srgan_mlx.training.losses import discriminator_loss, generator_adversarial_loss

    logits = mx.array([-1e4, -30.0, 0.0, 30.0, 1e4])
    assert np.isfinite(generator_adversarial_loss(logits).item())
    assert np.isfinite(discriminator_loss(logits, logits).item())
    assert_close(generator_adversarial_loss(mx.array([0.0])), np.log(2.0), tol=1e-6)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor([2.0, -1.0]), torch.ones(2))
    expected += torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor([0.5, 3.0]), torch.zeros(2))
    assert_close(discriminator_loss(mx.array([2.0, -1.0]), mx.array([0.5, 3.0])), expected.item(), tol=1e-6)


def test_discriminator_gradients_match_torch():
    torch_d = ref.randomize(ref.Discriminator(32), seed=11).train()
    d = Discriminator(32)
    ref.copy_to_mlx(torch_d, d)
    d.train()
    x = mx.random.uniform(-1, 1, shape=(2, 32, 32, 3), key=mx.random.key(11))
    value_and_grad = nn.value_and_grad(d, lambda x: d(x).sum())
    (_, grads), x_grad = value_and_grad(x), mx.grad(lambda x: d(x).sum())(x)
    tx = ref.nchw(x).requires_grad_(True)
    torch_d(tx).sum().backward()
    assert_close(x_grad, ref.nhwc(tx.grad))
    assert_paper_discriminator_grads(grads, torch_d)


def assert_paper_discriminator_grads(grads, torch_d):
    """MLX's parameter gradients of a 32-pixel paper discriminator against torch's (NHWC, NHWC flatten order)."""
    torch_grads = {n.replace("weight_orig", "weight"): p.grad for n, p in torch_d.named_parameters()}
    for name, grad in tree_flatten(grads):
        expected = torch_grads[name].numpy()
        if expected.ndim == 4:
            expected = expected.transpose(0, 2, 3, 1)
        if name == "fc1.weight":
            expected = expected.reshape(-1, 512, 2, 2).transpose(0, 2, 3, 1).reshape(expected.shape[0], -1)
        assert_close(grad, expected)


def paper_sn_pair(seed: int):
    torch_d = ref.randomize(ref.Discriminator(32, spectral_norm=True), seed=seed).train()
    d = Discriminator(32, spectral_norm=True)
    ref.copy_to_mlx(torch_d, d)
    d.train()
    return torch_d, d


def test_paper_discriminator_with_spectral_norm_matches_torch():
    """``paper-sn``: over three training-mode calls the logits and the kept vectors ``u`` of both dense layers agree
    with torch's ``spectral_norm``; then, afresh, the gradients with respect to the input and every parameter (never
    ``u``), the first dense layer's weight in NHWC order."""
    torch_d, d = paper_sn_pair(12)
    for call in range(3):
        x = mx.random.uniform(-1, 1, shape=(3, 32, 32, 3), key=mx.random.key(40 + call))
        assert_close(d(x), torch_d(ref.nchw(x)).detach().numpy())
        kept = ref.to_mlx_arrays(torch_d)
        assert_close(d.fc1.u, np.array(kept["fc1.u"]), tol=1e-5)
        assert_close(d.fc2.u, np.array(kept["fc2.u"]), tol=1e-5)
    torch_d, d = paper_sn_pair(13)
    x = mx.random.uniform(-1, 1, shape=(2, 32, 32, 3), key=mx.random.key(13))
    _, grads = nn.value_and_grad(d, lambda x: d(x).sum())(x)
    assert not any(name.endswith(".u") for name, _ in tree_flatten(grads))
    torch_d, d = paper_sn_pair(13)
    x_grad = mx.grad(lambda x: d(x).sum())(x)
    tx = ref.nchw(x).requires_grad_(True)
    torch_d(tx).sum().backward()
    assert_close(x_grad, ref.nhwc(tx.grad))
    assert_paper_discriminator_grads(grads, torch_d)


def unet_pair(seed: int, channels: int = 8):
    torch_d = ref.randomize(ref.UNetDiscriminator(channels), seed=seed).train()
    d = UNetDiscriminator(channels)
    ref.copy_to_mlx(torch_d, d)
    return torch_d, d


def test_unet_discriminator_train_mode_over_calls_with_its_power_iteration():
    """Each training-mode call moves every ``u`` one power iteration on, as torch's spectral_norm does; the
    outputs of three calls in a row agree, and so do the vectors kept."""
    torch_d, d = unet_pair(31)
    for call in range(3):
        x = mx.random.uniform(-1, 1, shape=(2, 32, 24, 3), key=mx.random.key(call))
        assert_close(d(x), torch_d(ref.nchw(x)).detach().numpy())
        kept = ref.to_mlx_arrays(torch_d)
        for name, value in tree_flatten(d.parameters()):
            if name.endswith(".u"):
                assert_close(value, np.array(kept[name]), tol=1e-5)


def test_unet_discriminator_gradients_match_torch():
    torch_d, d = unet_pair(32)
    x = mx.random.uniform(-1, 1, shape=(2, 16, 16, 3), key=mx.random.key(32))
    cotangent = mx.random.normal((2, 16, 16), key=mx.random.key(33))
    _, grads = nn.value_and_grad(d, lambda x: (d(x) * cotangent).sum())(x)
    assert len(tree_flatten(grads)) == 12  # every weight and the two biases, never a kept vector u
    torch_d, d = unet_pair(32)  # afresh: the call above moved u on
    x_grad = mx.grad(lambda x: (d(x) * cotangent).sum())(x)
    tx = ref.nchw(x).requires_grad_(True)
    (torch_d(tx) * torch.from_numpy(np.array(cotangent))).sum().backward()
    assert_close(x_grad, ref.nhwc(tx.grad))
    torch_grads = {n.replace("weight_orig", "weight"): p.grad for n, p in torch_d.named_parameters()}
    for name, grad in tree_flatten(grads):
        expected = torch_grads[name].numpy()
        assert_close(grad, expected.transpose(0, 2, 3, 1) if expected.ndim == 4 else expected)


def test_unet_discriminator_eval_mode_keeps_u():
    _, d = unet_pair(34)
    d.eval()
    before = {n: np.array(v) for n, v in tree_flatten(d.parameters()) if n.endswith(".u")}
    mx.eval(d(mx.zeros((1, 16, 16, 3))))
    assert all(np.array_equal(np.array(v), before[n]) for n, v in tree_flatten(d.parameters()) if n.endswith(".u"))
    assert not any(n.endswith(".u") for n, _ in tree_flatten(d.trainable_parameters()))
    d.down[0].unfreeze()  # as BatchNorm's statistics, u stays frozen
    assert "u" not in d.down[0].trainable_parameters()


@pytest.mark.parametrize("shape", [(1, 3, 5, 2), (2, 6, 4, 3)])
def test_bilinear_upsampling_matches_torch_interpolate(shape):
    x = mx.random.normal(shape, key=mx.random.key(sum(shape)))
    expected = torch.nn.functional.interpolate(ref.nchw(x), scale_factor=2, mode="bilinear", align_corners=False)
    assert_close(upsample2(x), ref.nhwc(expected), tol=1e-6)


def test_unet_discriminator_rejects_sides_not_a_multiple_of_8():
    with pytest.raises(ValueError, match="multiples of 8, got 20x16"):
        UNetDiscriminator(8)(mx.zeros((1, 20, 16, 3)))
