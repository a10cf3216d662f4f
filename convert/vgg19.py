"""Convert torchvision's ImageNet VGG19 weights into the MLX weights file the perceptual loss loads.

Reads a ``torch.save`` file, zip or legacy format (torchvision's ``vgg19-dcbb9e9d.pth`` is
legacy), through the torch-free restricted reader in :mod:`convert.pth`, or a safetensors
copy (timm's ``vgg19.tv_in1k``). Keeps the 16 ``features.N`` convolutions (the classifier
is ignored), checks their torchvision shapes and dtypes, renames them ``convK_M`` and
transposes OIHW -> OHWI, loads them into :class:`VGG19Features` strictly, then writes
``srgan-mlx/vgg19`` safetensors recording the source name, its SHA-256 and this
converter's version.

    python -m convert.vgg19 vgg19-dcbb9e9d.pth -o vgg19.safetensors
    python -m convert.vgg19 --download -o vgg19.safetensors
"""

from __future__ import annotations

import hashlib
import sys
import urllib.request
from pathlib import Path

import srgan_mlx  # noqa: F401  (first: it loads the BLAS that MLX must find before mlx is imported)

import click
import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten
from tqdm import tqdm

from convert.pth import load_state_dict
from srgan_mlx.atomic import atomic_path
from srgan_mlx.errors import UserError
from srgan_mlx.model_io import load_into, save_module
from srgan_mlx.vgg import LAYER_NAMES, VGG19Features

CONVERTER_VERSION = "convert.vgg19/1"
OFFICIAL_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
OFFICIAL_SHA256_PREFIX = "dcbb9e9d"
TORCH_SUFFIXES = (".pth", ".pt", ".bin")
ACCEPTED_DTYPES = (np.float32, np.float16)  # bfloat16 arrives widened to float32 by both readers


def torch_key(name: str) -> str:
    """torchvision's key for an MLX parameter: ``conv1_2.weight`` -> ``features.2.weight``."""
    layer, param = name.split(".")
    return f"features.{LAYER_NAMES.index(layer)}.{param}"


def torch_shapes(vgg: VGG19Features) -> dict[str, tuple[int, ...]]:
    """torchvision's (OIHW) shape of every parameter of ``vgg``, keyed by MLX name."""
    shapes = {}
    for name, array in tree_flatten(vgg.parameters()):
        shape = tuple(array.shape)
        shapes[name] = (shape[0], shape[3], shape[1], shape[2]) if len(shape) == 4 else shape
    return shapes


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    return digest.hexdigest()


def is_feature(key: str) -> bool:
    """Whether a torchvision key belongs to ``features`` (not the classifier)."""
    return key.startswith("features.")


def read_features(path: Path) -> dict[str, np.ndarray]:
    """The ``features.*`` tensors of a ``torch.save`` or safetensors file, as numpy (bfloat16 widened to float32)."""
    if path.suffix in TORCH_SUFFIXES:
        return load_state_dict(path, keep=is_feature)
    if path.suffix != ".safetensors":
        raise UserError(f"{path}: unsupported file type; expected a torch.save .pth or a .safetensors file")
    try:
        arrays = mx.load(str(path))
    except Exception as exc:  # mlx raises RuntimeError/ValueError for bad files
        raise UserError(f"{path}: not a readable safetensors file ({exc})") from None
    features = {k: v for k, v in arrays.items() if is_feature(k)}
    return {k: np.array(v.astype(mx.float32) if v.dtype == mx.bfloat16 else v) for k, v in features.items()}


def _listing(keys: list[str], limit: int = 4) -> str:
    """``a, b, c, d and 3 more``."""
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def mlx_weights(tensors: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]], source: Path) -> dict:
    """Check torchvision's ``features.N`` tensors and return them as MLX parameters (float32, OHWI)."""
    wanted = {torch_key(name): name for name in shapes}
    unexpected = sorted(k for k in tensors if k not in wanted)
    if unexpected:
        raise UserError(f"{source}: unexpected weights {_listing(unexpected)}; not plain VGG19 (no vgg19_bn)")
    missing = [k for k in wanted if k not in tensors]
    if missing:
        raise UserError(f"{source}: missing VGG19 weights {_listing(missing)}")
    weights = {}
    for key, name in wanted.items():
        array = tensors[key]
        if array.dtype not in ACCEPTED_DTYPES:
            raise UserError(f"{source}: {key} has dtype {array.dtype}; expected float32, float16 or bfloat16")
        if array.shape != shapes[name]:
            raise UserError(f"{source}: {key} has shape {array.shape}; torchvision's VGG19 has {shapes[name]}")
        array = array.astype(np.float32)
        weights[name] = mx.array(array.transpose(0, 2, 3, 1) if array.ndim == 4 else array)
    return weights


def convert(src: Path, dst: Path, sha256: str) -> None:
    """Read ``src``, check it, load it strictly into ``VGG19Features`` and write ``dst`` atomically."""
    vgg = VGG19Features()
    load_into(vgg, mlx_weights(read_features(src), torch_shapes(vgg), src), src)
    save_module(dst, vgg, "vgg19", {}, source=src.name, sha256=sha256, converter_version=CONVERTER_VERSION)


def download(url: str, dst: Path) -> None:
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


def run(src: Path | None, dst: Path, fetch: bool) -> None:
    """The command's work: optionally download, hash and check the source, convert."""
    if dst.suffix != ".safetensors":
        raise UserError(f"{dst}: the output must be a .safetensors file")
    if fetch:
        src = src or dst.with_name(Path(OFFICIAL_URL).name)
        if src.exists():
            click.echo(f"{src} exists; not downloading it again")
        else:
            download(OFFICIAL_URL, src)
    elif src is None:
        raise click.UsageError("give SRC, or --download")
    if not src.is_file():
        raise UserError(f"{src}: no such file")
    sha256 = sha256_file(src)
    click.echo(f"SHA-256 {sha256}  {src}")
    official = sha256.startswith(OFFICIAL_SHA256_PREFIX)
    if fetch and not official:
        raise UserError(f"{src}: SHA-256 is not torchvision's ({OFFICIAL_SHA256_PREFIX}...); delete it and retry")
    convert(src, dst, sha256)
    if not official:
        click.echo(
            f"warning: SHA-256 does not start with {OFFICIAL_SHA256_PREFIX}: not torchvision's "
            f"{Path(OFFICIAL_URL).name} (fine for a faithful copy, e.g. a safetensors export)",
            err=True,
        )
    click.echo(f"wrote {dst}")


@click.command("convert-vgg", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("src", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "dst", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="MLX weights file to write (.safetensors).")  # fmt: skip
@click.option("--download", "fetch", is_flag=True,
              help="First fetch torchvision's vgg19-dcbb9e9d.pth to SRC (default: beside the output).")  # fmt: skip
def command(src: Path | None, dst: Path, fetch: bool):
    """Convert torchvision's ImageNet VGG19 weights to MLX.

    SRC is a torch.save .pth (torchvision's vgg19-dcbb9e9d.pth) or a .safetensors copy;
    the output is what the perceptual loss loads.
    """
    try:
        run(src, dst, fetch)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    command()
