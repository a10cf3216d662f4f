"""The TensorFlow/Keras baseline, written for this benchmark from the description of a public Keras SRGAN
re-implementation (jpalepu/SuperRes-GAN, ``SRGAN-Tensorflow/main.py``; no code taken from it).

Two sets of networks:

* the **seed's** (workload ``a``): the Keras re-implementation the project started
  from. Generator as the paper's but upsampling by Conv3x3(256) -> ``UpSampling2D(2)``
  (nearest) -> PReLU, BatchNorm momentum 0.5, linear 9x9 output; discriminator as the
  paper's with BatchNorm momentum 0.8 and a sigmoid output; VGG19 (random weights,
  ``weights=None``) cut at ``layers[10]`` = block3_conv4 after its ReLU. One step is the
  seed's: G ``predict_on_batch``, D ``train_on_batch`` on fakes (0) then reals (1),
  VGG features of the reals, then the combined model ``train_on_batch`` with losses
  [binary cross-entropy, MSE on VGG features] weighted [1e-3, 1]; Adam at Keras'
  default learning rate 1e-3 for both.
* the **paper's** (workloads ``b_*`` and ``c``), the same networks as srgan-mlx:
  pixel shuffle upsampling (``tf.nn.depth_to_space``), BatchNorm momentum 0.9 / eps
  1e-5 (MLX's defaults), a discriminator returning logits, VGG19 cut at block5_conv4
  (relu5_4) with ImageNet normalisation inside the loss. Training steps are
  ``tf.function``s mirroring ``srgan_mlx.training.steps``: one Adam update of G on
  content + 1e-3 * -log D(G(x)), then one of D on the same step's reals and
  detached fakes.

Every model is NHWC, float32, random weights; nothing is downloaded.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from keras import layers  # noqa: E402

from common import ADVERSARIAL_WEIGHT, IMAGENET_MEAN, IMAGENET_STD, VGG_RESCALE, Spec, Workload, random_batch  # noqa: E402

# srgan-mlx layer name -> Keras VGG19 layer name (Keras' convs include their ReLU)
VGG_LAYERS = {"relu3_4": "block3_conv4", "relu5_4": "block5_conv4"}


def configure_threads(threads: int) -> None:
    """``threads`` for each op (intra-op), one op at a time (inter-op 1). Before any TF op runs."""
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def versions() -> dict:
    return {"tensorflow": tf.__version__, "keras": keras.__version__}


# ---------------------------------------------------------------- networks


class DepthToSpace(layers.Layer):
    """Pixel shuffle x``r`` (TensorFlow's channel order; the cost is what matters here)."""

    def __init__(self, r: int, **kwargs):
        super().__init__(**kwargs)
        self.r = r

    def call(self, x):
        return tf.nn.depth_to_space(x, self.r)


def _bn(momentum: float, epsilon: float):
    return layers.BatchNormalization(momentum=momentum, epsilon=epsilon)


def generator(lr_size: int | None, *, seed_variant: bool, blocks: int = 16, channels: int = 64) -> keras.Model:
    """SRResNet x4. ``seed_variant``: UpSampling2D upsampling and BN momentum 0.5 (the seed's)."""
    momentum, eps = (0.5, 1e-3) if seed_variant else (0.9, 1e-5)
    inp = keras.Input((lr_size, lr_size, 3))
    x = layers.Conv2D(channels, 9, padding="same")(inp)
    x = skip = layers.PReLU(shared_axes=[1, 2])(x)
    for _ in range(blocks):
        y = layers.Conv2D(channels, 3, padding="same")(x)
        y = layers.PReLU(shared_axes=[1, 2])(_bn(momentum, eps)(y))
        y = _bn(momentum, eps)(layers.Conv2D(channels, 3, padding="same")(y))
        x = layers.Add()([x, y])
    x = _bn(momentum, eps)(layers.Conv2D(channels, 3, padding="same")(x))
    x = layers.Add()([x, skip])
    for _ in range(2):  # x2, twice
        x = layers.Conv2D(channels * 4, 3, padding="same")(x)
        x = layers.UpSampling2D(2)(x) if seed_variant else DepthToSpace(2)(x)
        x = layers.PReLU(shared_axes=[1, 2])(x)
    out = layers.Conv2D(3, 9, padding="same")(x)
    return keras.Model(inp, out, name="seed_generator" if seed_variant else "generator")


def discriminator(size: int, *, seed_variant: bool, bf16: bool = False) -> keras.Model:
    """8 conv3x3 (64..512, strides 1,2,...), LeakyReLU 0.2, BN on all but the first, Dense 1024, Dense 1.
    ``bf16``: built under Keras' ``mixed_bfloat16`` policy, its logits cast back to float32."""
    if bf16:
        policy = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            model = discriminator(size, seed_variant=seed_variant)
        finally:
            keras.mixed_precision.set_global_policy(policy)
        return keras.Model(model.input, keras.ops.cast(model.output, "float32"), name=model.name)
    momentum, eps = (0.8, 1e-3) if seed_variant else (0.9, 1e-5)
    inp = keras.Input((size, size, 3))
    x = inp
    for index, width in enumerate((64, 64, 128, 128, 256, 256, 512, 512)):
        x = layers.Conv2D(width, 3, strides=1 + index % 2, padding="same")(x)
        if index:
            x = _bn(momentum, eps)(x)
        x = layers.LeakyReLU(negative_slope=0.2)(x)
    x = layers.Flatten()(x)
    x = layers.LeakyReLU(negative_slope=0.2)(layers.Dense(1024)(x))
    out = layers.Dense(1, activation="sigmoid" if seed_variant else None)(x)
    return keras.Model(inp, out, name="seed_discriminator" if seed_variant else "discriminator")


def vgg19_features(size: int, layer: str, bf16: bool = False) -> keras.Model:
    """Keras VGG19 (random weights) cut after ``layer`` (srgan-mlx name), frozen; ``bf16``: built under Keras'
    ``mixed_bfloat16`` policy (bfloat16 compute, float32 variables), cast back to float32 at its output."""
    policy = keras.mixed_precision.global_policy()
    if bf16:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        vgg = keras.applications.VGG19(weights=None, include_top=False, input_shape=(size, size, 3))
    finally:
        keras.mixed_precision.set_global_policy(policy)
    name = VGG_LAYERS[layer]
    output = vgg.get_layer(name).output
    cut = keras.Model(vgg.input, keras.ops.cast(output, "float32") if bf16 else output, name=f"vgg19_to_{name}")
    cut.trainable = False
    return cut


def count(model: keras.Model) -> dict[str, int]:
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    return {"total": int(model.count_params()), "trainable": trainable}


# ---------------------------------------------------------------- workloads


def _seed_step(spec, batch: int) -> Workload:
    """Workload a: the seed's training step, as the seed wrote it (train_on_batch)."""
    G = generator(spec.lr_size, seed_variant=True)
    D = discriminator(spec.hr_size, seed_variant=True)
    vgg = vgg19_features(spec.hr_size, spec.vgg_layer)
    assert vgg.layers[-1].name == "block3_conv4"  # the seed's layers[10]
    D.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam())
    params = {"generator": count(G), "discriminator": count(D), "vgg": count(vgg)}  # D counted while trainable
    lr, hr = random_batch(spec, batch)
    hr = (hr + 1) / 2  # the seed's HR is in [0, 1]
    fake_label, real_label = np.zeros((batch, 1), np.float32), np.ones((batch, 1), np.float32)
    # Keras 3 traces D's train function on the first call with the trainable
    # state of that moment: trace it while D is trainable, then freeze D for the
    # combined model, as the seed intends (D learns only in its own step).
    D.train_on_batch(hr, real_label)
    D.trainable = False
    lr_in = keras.Input((spec.lr_size, spec.lr_size, 3))
    fake = G(lr_in)
    combined = keras.Model(lr_in, [D(fake), vgg(fake)], name="seed_gan")
    combined.compile(
        loss=["binary_crossentropy", "mse"], loss_weights=[ADVERSARIAL_WEIGHT, 1.0], optimizer=keras.optimizers.Adam()
    )

    def step():
        fakes = G.predict_on_batch(lr)
        D.train_on_batch(fakes, fake_label)
        D.train_on_batch(hr, real_label)
        features = vgg.predict_on_batch(hr)
        combined.train_on_batch(lr, [real_label, features])

    return Workload(step, batch, params, notes=[
        "TF (a): the seed's step: G predict_on_batch, D train_on_batch on fakes then reals, "
        "VGG predict_on_batch on reals, combined train_on_batch (Keras 3, no jit_compile)."
    ])


def _paper_srresnet(spec, batch: int) -> Workload:
    G = generator(None, seed_variant=False)
    opt = keras.optimizers.Adam(1e-4)
    opt.build(G.trainable_variables)
    lr, hr = (tf.constant(a) for a in random_batch(spec, batch))

    @tf.function
    def train(lr, hr):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(G(lr, training=True) - hr))
        grads = tape.gradient(loss, G.trainable_variables)
        opt.apply_gradients(zip(grads, G.trainable_variables))
        return loss

    def step():
        train(lr, hr).numpy()

    return Workload(step, batch, {"generator": count(G)})


def _paper_srgan(spec, batch: int, bf16: bool = False) -> Workload:
    G = generator(None, seed_variant=False)
    D = discriminator(spec.hr_size, seed_variant=False, bf16=bf16)
    vgg = vgg19_features(spec.hr_size, spec.vgg_layer, bf16)
    opt_g, opt_d = keras.optimizers.Adam(1e-4), keras.optimizers.Adam(1e-4)
    opt_g.build(G.trainable_variables)
    opt_d.build(D.trainable_variables)
    mean, std = tf.constant(IMAGENET_MEAN), tf.constant(IMAGENET_STD)
    lr, hr = (tf.constant(a) for a in random_batch(spec, batch))

    def content_loss(sr, hr):
        both = (tf.concat([sr, hr], 0) + 1) / 2
        features = vgg((both - mean) / std, training=False) * VGG_RESCALE
        fake, real = tf.split(features, 2)
        return tf.reduce_mean(tf.square(fake - tf.stop_gradient(real)))

    @tf.function
    def train(lr, hr):
        with tf.GradientTape() as tape:
            sr = G(lr, training=True)
            content = content_loss(sr, hr)
            adversarial = tf.reduce_mean(tf.nn.softplus(-D(sr, training=True)))
            g_loss = content + ADVERSARIAL_WEIGHT * adversarial
        grads = tape.gradient(g_loss, G.trainable_variables)
        opt_g.apply_gradients(zip(grads, G.trainable_variables))
        sr = tf.stop_gradient(sr)
        with tf.GradientTape() as tape:
            real, fake = D(hr, training=True), D(sr, training=True)
            d_loss = tf.reduce_mean(tf.nn.softplus(-real)) + tf.reduce_mean(tf.nn.softplus(fake))
        grads = tape.gradient(d_loss, D.trainable_variables)
        opt_d.apply_gradients(zip(grads, D.trainable_variables))
        return g_loss, d_loss

    def step():
        g_loss, _ = train(lr, hr)
        g_loss.numpy()

    return Workload(step, batch, {"generator": count(G), "discriminator": count(D), "vgg": count(vgg)})


def _inference(spec, batch: int) -> Workload:
    G = generator(None, seed_variant=False)
    x = tf.constant(random_batch(spec, batch)[0])

    @tf.function
    def infer(x):
        return G(x, training=False)

    def step():
        infer(x)[0, 0, 0, 0].numpy()

    return Workload(step, batch, {"generator": count(G)})


BUILDERS = {"a": _seed_step, "b_srresnet": _paper_srresnet, "b_srgan": _paper_srgan, "c": _inference}


def build(spec: Spec, batch: int, bf16: bool = False) -> Workload:
    """``bf16``: the paper's SRGAN step with VGG19 and the discriminator under the ``mixed_bfloat16`` policy (what
    srgan-mlx's ``--bf16 vgg,discriminator`` does on its side)."""
    if bf16:
        if spec.name != "b_srgan":
            raise ValueError("the bfloat16 VGG19 and discriminator are measured in the paper's SRGAN step (b_srgan)")
        return _paper_srgan(spec, batch, bf16=True)
    return BUILDERS[spec.name](spec, batch)
