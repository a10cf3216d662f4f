"""The ``upscale`` batch job: find the inputs, plan the outputs, upscale each file, summarise.

Inputs are files, folders (the images directly inside) and glob patterns.
Folder and glob expansion leaves out files named like this job's own outputs
(``*_x2``, ``*_x4``, ``*_x8``, ``*_compare``), so running twice on a folder does not
upscale the results. Outputs go next to each input as ``<name>_x<scale>.png``,
into a folder, or to one named file; an input is never overwritten, and every
file is written atomically. A bad file is reported and the batch goes on.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from .errors import UserError
from .generator import Generator
from .image_io import FORMATS, is_image_file, Picture, gray_to_rgb, read_picture, resize_bicubic, to_gray, write_picture
from .inference import super_resolve

"""Files picked up from folders and globs."""

"""Where the default generator ships (``weights/generator.safetensors``)."""

_OWN_OUTPUT = re.compile(r"_(x\d+|compare)$")


@dataclass
class Options:
    """How to upscale and where to write; mirrors the command-line options."""

    output: Path | None = None
    format: str | None = None
    """png, jpg or webp for outputs whose name this job chooses; png when None."""
    quality: int = 95
    tile: int | None = None
    max_memory: int | None = None
    skip_existing: bool = False
    compare: bool = False
    alpha: str = "bicubic"
    """bicubic or model."""


@dataclass
class Summary:
    """What happened to each input."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    """One-line reasons, each naming its file."""


def _is_image(path: Path) -> bool:
    return is_image_file(path) and not _OWN_OUTPUT.search(path.stem)


def find_inputs(specs: list[str]) -> tuple[list[Path], list[str]]:
    """Expand files, folders and globs into image files (in order, no repeats); also the specs that match nothing."""
    found: dict[Path, None] = {}
    missing = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            matches = [p for p in sorted(path.iterdir()) if _is_image(p)]
            problem = "no images in this folder"
        elif path.exists():
            matches = [path]
        else:
            matches = [p for p in map(Path, sorted(glob.glob(spec, recursive=True))) if _is_image(p)]
            problem = "no images match" if glob.has_magic(spec) else "no such file"
        if not matches:
            missing.append(f"{spec}: {problem}")
        found.update(dict.fromkeys(matches))
    return list(found), missing


def plan_outputs(inputs: list[Path], options: Options, scale: int) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Pair each input with its output path; refuse pairs that would overwrite an input or repeat an output."""
    out = options.output
    suffix = "." + (options.format or "png")
    to_file = out is not None and not out.is_dir() and out.suffix.lower() in FORMATS
    if to_file and len(inputs) > 1:
        raise UserError(f"-o {out}: a file name, but there are {len(inputs)} inputs (give a folder)")
    if to_file and options.format and FORMATS[out.suffix.lower()] != FORMATS[suffix]:
        raise UserError(f"-o {out}: extension does not match --format {options.format}")
    if out is not None and not to_file and out.suffix and not out.is_dir():
        raise UserError(f"-o {out}: unsupported output extension (use .png, .jpg, .jpeg or .webp, or a folder)")
    sources = {p.resolve() for p in inputs}
    planned: dict[Path, Path] = {}
    pairs, failed = [], []
    for src in inputs:
        name = f"{src.stem}_x{scale}{suffix}"
        dst = out if to_file else (out or src.parent) / name
        key = dst.resolve()
        if key in sources or (options.compare and compare_path(dst).resolve() in sources):
            failed.append(f"{src}: output {dst} would overwrite an input")
        elif key in planned:
            failed.append(f"{src}: output {dst} is also the output of {planned[key]}")
        else:
            planned[key] = src
            pairs.append((src, dst))
    return pairs, failed


def compare_path(output: Path) -> Path:
    """``<name>_compare.png`` beside an output ``<name>.<ext>``."""
    return output.with_name(f"{output.stem}_compare.png")


def upscale_picture(
    generator: Generator, picture: Picture, options: Options, on_tile: Callable[[int, int], None] | None = None
) -> Picture:
    """Super-resolve the colour; upscale alpha bicubically or with the model (alpha as gray)."""
    rgb = super_resolve(generator, picture.rgb, options.tile, options.max_memory, on_tile)
    alpha = picture.alpha
    if alpha is not None:
        if options.alpha == "model":
            alpha = to_gray(super_resolve(generator, gray_to_rgb(alpha), options.tile, options.max_memory, on_tile))
        else:
            alpha = resize_bicubic(alpha, (rgb.shape[1], rgb.shape[0]))
    return Picture(rgb, alpha, picture.mode, picture.icc_profile)


def side_by_side(picture: Picture, upscaled: Picture) -> Picture:
    """Bicubic upscale of ``picture`` on the left, ``upscaled`` on the right."""
    size = upscaled.size
    bicubic = np.stack([resize_bicubic(picture.rgb[:, :, c], size) for c in range(3)], axis=2)
    alpha = None
    if upscaled.alpha is not None:
        alpha = np.concatenate([resize_bicubic(picture.alpha, size), upscaled.alpha], axis=1)
    return Picture(np.concatenate([bicubic, upscaled.rgb], axis=1), alpha, upscaled.mode, upscaled.icc_profile)


def upscale_file(
    generator: Generator, src: Path, dst: Path, options: Options, on_tile: Callable[[int, int], None] | None = None
) -> None:
    """Read ``src``, super-resolve it, write ``dst`` (and the comparison when asked)."""
    picture = read_picture(src)
    upscaled = upscale_picture(generator, picture, options, on_tile)
    write_picture(dst, upscaled, options.quality)
    if options.compare:
        write_picture(compare_path(dst), side_by_side(picture, upscaled))


def run(generator: Generator, specs: list[str], options: Options, progress: bool = True) -> Summary:
    """Upscale every input ``specs`` names; failures are collected, not raised."""
    inputs, missing = find_inputs(specs)
    pairs, refused = plan_outputs(inputs, options, generator.scale)
    summary = Summary(failed=missing + refused)
    files = tqdm(pairs, unit="file", disable=not progress or not pairs)
    tiles = tqdm(unit="tile", leave=False, disable=not progress)

    def on_tile(done: int, total: int) -> None:
        tiles.total = total
        tiles.n = done
        tiles.refresh()

    with files, tiles:
        for src, dst in files:
            files.set_postfix_str(src.name)
            if options.skip_existing and dst.exists():
                summary.skipped.append(dst)
                continue
            try:
                upscale_file(generator, src, dst, options, on_tile)
            except (UserError, OSError) as exc:
                summary.failed.append(str(exc) if isinstance(exc, UserError) else f"{src}: {exc}")
            except MemoryError:
                summary.failed.append(f"{src}: out of memory (try a smaller --max-memory or --tile)")
            else:
                summary.written.append(dst)
    return summary
