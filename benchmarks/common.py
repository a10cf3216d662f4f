"""What the benchmark measures: the workloads, their shapes, and the small helpers every side shares.

Each framework module (``mlx_workloads``, ``tf_baseline``, ``torch_baseline``) exposes
``configure_threads(n)``, ``versions()`` and ``build(spec, batch) -> Workload``; ``run.py`` times
``Workload.step()`` in a worker process of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG_RESCALE = 1 / 12.75  # the paper's rescaling of VGG feature maps
ADVERSARIAL_WEIGHT = 1e-3


@dataclass(frozen=True)
class Spec:
    """One workload: LR side, scale, batch, what a step does."""

    name: str
    title: str
    lr_size: int
    scale: int
    batch: int
    kind: str  # "srgan", "srresnet" or "inference"
    vgg_layer: str | None = None  # content loss layer, srgan-mlx's name (relu3_4 / relu5_4)
    quick_batch: int | None = None  # --quick: smaller batch (timings then are not comparable)
    quick_lr_size: int | None = None  # --quick: smaller input

    @property
    def hr_size(self) -> int:
        return self.lr_size * self.scale


WORKLOADS: dict[str, Spec] = {
    "a": Spec("a", "seed config: SRGAN step 25->100, VGG relu3_4", 25, 4, 10, "srgan", "relu3_4", 2),
    "b_srresnet": Spec("b_srresnet", "paper: SRResNet MSE step 24->96", 24, 4, 16, "srresnet", None, 4),
    "b_srgan": Spec("b_srgan", "paper: SRGAN step 24->96, VGG relu5_4", 24, 4, 16, "srgan", "relu5_4", 2),
    "c": Spec("c", "inference: one 256x256 -> 1024x1024", 256, 4, 1, "inference", None, None, 128),
    "d_rrdbnet": Spec("d_rrdbnet", "inference: RRDBNet x4 (Real-ESRGAN's), one 64x64 -> 256x256", 64, 4, 1,
                      "rrdbnet", None, None, 32),
}


@dataclass
class Workload:
    """A built workload: ``step()`` runs one iteration to completion (synchronously)."""

    step: Callable[[], None]
    images: int  # images processed per step (the batch)
    params: dict[str, dict[str, int]]  # network -> {"total": n, "trainable": n}
    notes: list[str] = field(default_factory=list)
    extra: Callable[[], dict] | None = None  # framework-specific numbers read after the run


def rrdbnet_weights(blocks: int = 23, features: int = 64, growth: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """RealESRGAN_x4plus's shapes with random weights, in BasicSR's key names and torch's (O, I, kh, kw) layout: the
    same arrays for every framework (workload ``d_rrdbnet``). Weights N(0, 0.25 / fan_in), biases 0.01 N(0, 1): values
    stay of the order of 1 through the 23 blocks (no overflow, no denormals to slow a CPU down)."""
    rng = np.random.default_rng(seed)
    state = {}

    def conv(name, out_ch, in_ch):
        weight = 0.5 * rng.standard_normal((out_ch, in_ch, 3, 3)) / np.sqrt(9 * in_ch)
        state[f"{name}.weight"] = weight.astype(np.float32)
        state[f"{name}.bias"] = (0.01 * rng.standard_normal(out_ch)).astype(np.float32)

    conv("conv_first", features, 3)
    for i in range(blocks):
        for j in (1, 2, 3):
            for k in range(1, 6):
                conv(f"body.{i}.rdb{j}.conv{k}", features if k == 5 else growth, features + (k - 1) * growth)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        conv(name, features, features)
    conv("conv_last", 3, features)
    return state


def random_batch(spec: Spec, batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """LR in [0, 1] and HR in [-1, 1] (the paper's ranges), NHWC float32."""
    rng = np.random.default_rng(seed)
    lr = rng.random((batch, spec.lr_size, spec.lr_size, 3), dtype=np.float32)
    hr = rng.random((batch, spec.hr_size, spec.hr_size, 3), dtype=np.float32) * 2 - 1
    return lr, hr
