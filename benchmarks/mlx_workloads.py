"""The srgan-mlx side: the package's own networks and compiled training steps.

* ``a``: Generator() (x4, pixel shuffle), Discriminator(input_size=100),
  PerceptualLoss(VGG19Features(), "relu3_4"), SRGANStep with Adam 1e-3 for both
  (the seed's optimizer settings), on 25->100, batch 10.
* ``b_srresnet``: SRResNetStep(Generator(), Adam(1e-4)), 24->96, batch 16.
* ``b_srgan``: SRGANStep(Generator(), Discriminator(96), PerceptualLoss(relu5_4), Adam 1e-4 x2).

Adam is the package's (:class:`srgan_mlx.networks.kernels.Adam`: one multi-threaded update on the CPU), as
``srgan-mlx train`` uses it; ``SRGAN_MLX_KERNELS=0`` measures MLX's own element-wise path.
* ``c``: Generator().eval() on one 1x256x256x3 image, whole (no tiles); ``half=True``
  computes it in float16 (the GPU variant ``mlx-half``).
* ``d_rrdbnet``: RRDBNet x4 (23 blocks, 64 features, growth 32) on one 1x64x64x3 image, whole, with the
  weights of ``common.rrdbnet_weights`` mapped by srgan-mlx's converter (the PyTorch side loads the same arrays).

Each step is followed by ``mx.eval`` of its outputs and state, so the timing covers the work
(``mx.eval`` returns when the device has finished). ``use_device`` picks the CPU or the GPU;
the convolution path is then the one :func:`srgan_mlx.networks.devices.conv_path` gives that device.
"""

from __future__ import annotations

import srgan_mlx  # noqa: F401 -- loads the optimized BLAS; must come before mlx
from srgan_mlx.heap import keep_freed_memory
from srgan_mlx.native.libraries import active_blas
from srgan_mlx.networks.devices import conv_path, select_device

import mlx.core as mx  # noqa: E402
from mlx.utils import tree_flatten  # noqa: E402

from srgan_mlx.networks.discriminator import Discriminator  # noqa: E402
from srgan_mlx.networks.generator import Generator  # noqa: E402
from srgan_mlx.networks.kernels import Adam  # noqa: E402
from srgan_mlx.networks.layers import multiply_in_bfloat16  # noqa: E402
from srgan_mlx.networks.vgg import LAYER_NAMES, VGG19Features  # noqa: E402
from srgan_mlx.training.losses import PerceptualLoss  # noqa: E402
from srgan_mlx.training.steps import SRGANStep, SRResNetStep, paper_terms  # noqa: E402

from srgan_mlx.convert.models import map_state_dict  # noqa: E402

from common import ADVERSARIAL_WEIGHT, Spec, Workload, random_batch, rrdbnet_weights  # noqa: E402


keep_freed_memory()  # as the srgan-mlx command line does


def configure_threads(threads: int) -> None:
    """Nothing to set in-process: MLX's CPU ops run one at a time on its stream thread, and the
    oneDNN convolutions and sgemm take ``OMP_NUM_THREADS``, which run.py sets for the worker."""


def use_device(name: str) -> None:
    """``cpu`` or ``gpu`` (MLX's default device for everything built afterwards)."""
    select_device(name)


def versions() -> dict:
    from importlib.metadata import version

    found = {"mlx": version("mlx"), "srgan_mlx": srgan_mlx.__version__, "blas": active_blas(), "conv": conv_path()}
    if mx.default_device().type == mx.gpu:
        found["device"] = mx.device_info(mx.gpu).get("device_name", "gpu")
    return found


def _size(tree) -> int:
    return sum(v.size for _, v in tree_flatten(tree))


def count(model) -> dict[str, int]:
    return {"total": _size(model.parameters()), "trainable": _size(model.trainable_parameters())}


def count_vgg(vgg: VGG19Features, layer: str) -> dict[str, int]:
    """Parameters of the convs a loss at ``layer`` uses (VGG19Features holds all 16)."""
    used = LAYER_NAMES[: LAYER_NAMES.index(layer) + 1]
    total = sum(_size(getattr(vgg, name).parameters()) for name in used if name.startswith("conv"))
    return {"total": total, "trainable": 0}


def _peak() -> dict:
    return {"mlx_peak_memory_bytes": int(mx.get_peak_memory())}


def _srgan(spec, batch: int, bf16: bool = False) -> Workload:
    learning_rate = 1e-3 if spec.name == "a" else 1e-4
    G, D = Generator(scale=spec.scale), Discriminator(input_size=spec.hr_size)
    vgg = VGG19Features()
    if bf16:  # --bf16 vgg,discriminator
        multiply_in_bfloat16(vgg)
        multiply_in_bfloat16(D)
    content = PerceptualLoss(vgg, spec.vgg_layer)
    step_fn = SRGANStep(G, D, paper_terms(content, ADVERSARIAL_WEIGHT), Adam(learning_rate), Adam(learning_rate))
    lr, hr = (mx.array(a) for a in random_batch(spec, batch))

    def step():
        out = step_fn(lr, hr)
        mx.eval(out, step_fn.state)

    params = {"generator": count(G), "discriminator": count(D), "vgg": count_vgg(vgg, spec.vgg_layer)}
    return Workload(step, batch, params, extra=_peak)


def _srresnet(spec, batch: int) -> Workload:
    G = Generator(scale=spec.scale)
    step_fn = SRResNetStep(G, Adam(1e-4))
    lr, hr = (mx.array(a) for a in random_batch(spec, batch))

    def step():
        out = step_fn(lr, hr)
        mx.eval(out, step_fn.state)

    return Workload(step, batch, {"generator": count(G)}, extra=_peak)


def _inference(spec, batch: int, half: bool) -> Workload:
    dtype = mx.float16 if half else mx.float32
    G = Generator(scale=spec.scale)
    G.eval()
    G.set_dtype(dtype)
    mx.eval(G.parameters())
    x = mx.array(random_batch(spec, batch)[0]).astype(dtype)

    def step():
        mx.eval(G(x))

    return Workload(step, batch, {"generator": count(G)}, extra=_peak)


def _rrdbnet(spec, batch: int, half: bool) -> Workload:
    net, _ = map_state_dict(rrdbnet_weights())
    if half:
        net.set_dtype(mx.float16)
    mx.eval(net.parameters())
    x = mx.array(random_batch(spec, batch)[0]).astype(mx.float16 if half else mx.float32)

    def step():
        mx.eval(net(x))

    return Workload(step, batch, {"rrdbnet": count(net)}, extra=_peak)


BUILDERS = {"a": _srgan, "b_srresnet": _srresnet, "b_srgan": _srgan}


def build(spec: Spec, batch: int, half: bool = False, bf16: bool = False) -> Workload:
    """``half``: inference in float16; ``bf16``: the SRGAN steps' VGG19 and discriminator multiplying in bfloat16."""
    if spec.kind == "inference":
        return _inference(spec, batch, half)
    if spec.kind == "rrdbnet":
        return _rrdbnet(spec, batch, half)
    if half:
        raise ValueError("half precision is measured for inference only")
    if bf16:
        return _srgan(spec, batch, bf16=True)
    return BUILDERS[spec.name](spec, batch)
