"""Read the layers of a Keras HDF5 weights file into numpy (needs h5py: ``pip install 'srgan-mlx[keras]'``).

Keras' ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` (Keras 1's ``save_weights``,
read unchanged by Keras 2) is laid out as later Keras 2 files are: the root attribute
``layer_names`` lists every layer in order (input and pooling layers too); each layer is a
group whose attribute ``weight_names`` lists its weights in the layer's own order (for a
convolution: kernel, then bias), each the path of a dataset inside that group
(``block1_conv1_W_1:0`` in that release; ``block1_conv1/kernel:0`` in files Keras 2 writes).
A whole-model ``model.save`` file holds the same under the group ``model_weights``.
Convolution kernels are HWIO (height, width, in, out). HDF5 holds data only: nothing in
the file is run.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from srgan_mlx.errors import UserError


def _names(attrs, key: str, where: str) -> list[str]:
    """A Keras name-list attribute (bytes or str entries) as strings."""
    if key not in attrs:
        raise UserError(f"{where} has no {key!r} attribute; not a Keras weights file")
    return [n.decode("utf8") if isinstance(n, bytes) else str(n) for n in np.atleast_1d(attrs[key])]


def read_layers(path: str | os.PathLike) -> dict[str, list[tuple[str, np.ndarray]]]:
    """``{layer name: [(weight name, array), ...]}`` in the file's order, for every layer with weights."""
    path = Path(path)
    try:
        import h5py
    except ImportError:
        raise UserError(f"{path}: reading Keras .h5 files needs h5py (pip install 'srgan-mlx[keras]')") from None
    try:
        with h5py.File(path, "r") as handle:
            root = (
                handle["model_weights"] if "layer_names" not in handle.attrs and "model_weights" in handle else handle
            )
            layers = {}
            for layer in _names(root.attrs, "layer_names", "the file"):
                if layer not in root:
                    raise UserError(f"layer {layer} is listed but has no group (truncated or corrupt file)")
                group = root[layer]
                weights = []
                for name in _names(group.attrs, "weight_names", f"layer {layer}"):
                    if name not in group:
                        raise UserError(f"weight {layer}/{name} is listed but missing (truncated or corrupt file)")
                    weights.append((name, np.asarray(group[name])))
                if weights:
                    layers[layer] = weights
            return layers
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    except Exception as exc:  # h5py raises OSError, KeyError, ValueError... for damaged files
        raise UserError(f"{path}: not a readable HDF5 file ({type(exc).__name__}: {exc})") from None
