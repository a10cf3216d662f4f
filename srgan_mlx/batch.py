"""The batch job of ``srgan-mlx upscale``: find the inputs, plan the outputs, upscale each file, summarise.

Inputs are files, folders (the images directly inside) and glob patterns.
Folder and glob expansion leaves out files named like this job's own outputs
(``*_x2``, ``*_x4``, ``*_x8``, ``*_compare``), so running twice on a folder does not
upscale the results. Outputs go next to each input as ``<name>_x<scale>.png``,
into a folder, or to one named file; an input is never overwritten, and every
file is written atomically. A bad file is reported and the batch goes on.
The pixels come from an :class:`~srgan_mlx.upscaler.Upscaler`, as in the Python API.
"""

from __future__ import annotations

import glob
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from PIL import Image
from tqdm import tqdm

from .atomic import cannot_write_into
from .errors import UserError, warn
from .image_io import FORMATS, is_image_file, write_image
from .panels import labelled_row
from .picture import Picture, flatten, read_picture, resize_picture_bicubic, write_picture
from .upscaler import Upscaler

_OWN_OUTPUT = re.compile(r"_(x\d+|compare)$")


@dataclass
class Options:
    """Where and how to write; mirrors the command-line options (the upscaling ones belong to the Upscaler)."""

    output: Path | None = None
    format: str | None = None
    """png, jpg or webp for outputs whose name this job chooses; png when None."""
    quality: int = 95
    skip_existing: bool = False
    compare: bool = False


@dataclass
class Summary:
    """What happened to each input."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    """One-line reasons, each naming its file."""


def find_inputs(specs: list[str]) -> tuple[list[Path], list[str]]:
    """Expand files, folders and globs into image files (in order, no repeats); also why a spec gave none."""
    found: dict[Path, None] = {}
    missing = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            images = [p for p in sorted(path.iterdir()) if is_image_file(p)]
            problem = "no images in this folder"
        elif path.exists():
            found[path] = None  # named explicitly: taken whatever its name
            continue
        else:
            images = [p for p in map(Path, sorted(glob.glob(spec, recursive=True))) if is_image_file(p)]
            problem = "no images match" if glob.has_magic(spec) else "no such file"
        matches = [p for p in images if not _OWN_OUTPUT.search(p.stem)]
        if images and not matches:
            problem = f"only earlier results ({len(images)} files named *_x<scale> or *_compare), nothing to upscale"
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


def check_outputs(pairs: list[tuple[Path, Path]], options: Options) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Before any work: drop the pairs whose output cannot be written (its folder refuses files, or a folder has
    the output's name), each with its reason; pairs that ``--skip-existing`` will skip are not looked at."""
    problems: dict[Path, str | None] = {}
    kept, failed = [], []
    for src, dst in pairs:
        if options.skip_existing and dst.exists():
            kept.append((src, dst))
            continue
        if dst.parent not in problems:
            problems[dst.parent] = cannot_write_into(dst.parent)
        targets = [dst, compare_path(dst)] if options.compare else [dst]
        in_the_way = next((path for path in targets if path.is_dir()), None)
        if problems[dst.parent]:
            failed.append(f"{src}: cannot write {dst} ({problems[dst.parent]})")
        elif in_the_way is not None:
            failed.append(f"{src}: cannot write {in_the_way} (a folder has its name)")
        else:
            kept.append((src, dst))
    return kept, failed


def compare_path(output: Path) -> Path:
    """``<name>_compare.png`` beside an output ``<name>.<ext>``."""
    return output.with_name(f"{output.stem}_compare.png")


def comparison(picture: Picture, upscaled: Picture, label: str) -> Image.Image:
    """``bicubic | <label>``: a bicubic upscale of ``picture`` beside ``upscaled``, labelled, 8-bit RGB."""
    bicubic = resize_picture_bicubic(picture, upscaled.size)
    image = labelled_row([flatten(bicubic), flatten(upscaled)], ["bicubic", label])
    if upscaled.icc_profile:
        image.info["icc_profile"] = upscaled.icc_profile
    return image


def write_upscaled(
    upscaler: Upscaler, picture: Picture, dst: Path, options: Options, on_tile: Callable[[int, int], None] | None = None
) -> None:
    """Super-resolve ``picture`` and write ``dst`` (and the comparison when asked)."""
    upscaled = upscaler.upscale_picture(picture, on_tile)
    write_picture(dst, upscaled, options.quality)
    if options.compare:
        write_image(compare_path(dst), comparison(picture, upscaled, upscaler.label))


def run(upscaler: Upscaler, specs: list[str], options: Options, progress: bool = True) -> Summary:
    """Upscale every input ``specs`` names; failures are collected, not raised.

    A :class:`UserError` if no spec names any image (each spec's reason, in one line).
    """
    inputs, missing = find_inputs(specs)
    if not inputs:
        raise UserError("; ".join(missing))
    pairs, refused = plan_outputs(inputs, options, upscaler.scale)
    pairs, unwritable = check_outputs(pairs, options)
    summary = Summary(failed=missing + refused + unwritable)
    files = tqdm(pairs, unit="file", disable=not progress or not pairs)
    tiles = tqdm(unit="tile", leave=False, disable=not progress or not pairs)
    warned = False

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
                picture = read_picture(src)
                if picture.reduced_depth and not warned:
                    with tqdm.external_write_mode(sys.stderr):
                        warn(f"{src}: 16-bit colour is read and written at 8 bits (Pillow has no 16-bit colour mode)")
                    warned = True
                write_upscaled(upscaler, picture, dst, options, on_tile)
            except (UserError, OSError) as exc:
                summary.failed.append(str(exc) if isinstance(exc, UserError) else f"{src}: {exc}")
            except MemoryError:
                summary.failed.append(f"{src}: out of memory (try a smaller --max-memory or --tile)")
            else:
                summary.written.append(dst)
    return summary
