"""The batch job of ``srgan-mlx upscale``: find the inputs, plan the outputs, upscale each file, summarise.

Inputs are files, folders (the images directly inside) and glob patterns.
Folder and glob expansion leaves out files named like this job's own outputs
(``*_x2``, ``*_x4``, ``*_x8``, ``*_compare``), so running twice on a folder does not
upscale the results. Outputs go next to each input as ``<name>_x<scale>.png``,
into a folder, or to one named file; an input is never overwritten, and every
file is written atomically. A bad file is reported and the batch goes on.
The pixels come from an :class:`~srgan_mlx.upscaling.upscaler.Upscaler`, as in the Python API.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from PIL import Image
from tqdm import tqdm

from ..atomic import cannot_write_into
from ..defaults import FORMAT_EXTENSIONS, OUTPUT_FORMATS, QUALITY
from ..errors import UserError, warn
from ..files.image_io import SUFFIXES_TEXT, image_size, is_image_file, write_image
from ..files.panels import labelled_row
from ..files.picture import Picture, flatten, read_picture, resize_picture_bicubic, write_picture
from ..progress import progress as show_progress
from .upscaler import Upscaler

_OWN_OUTPUT = re.compile(r"_(x\d+|compare)$")


@dataclass
class Options:
    """Where and how to write; mirrors the command-line options (the upscaling ones belong to the Upscaler)."""

    output: Path | None = None
    format: str | None = None
    """One of :data:`~srgan_mlx.defaults.OUTPUT_FORMATS` for outputs whose name this job chooses; the first (png)
    when None."""
    quality: int = QUALITY
    skip_existing: bool = False
    compare: bool = False
    max_pixels: int | None = None
    """Largest input in pixels; None: what this machine's memory holds for the result (:func:`default_max_pixels`)."""


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
    suffix = "." + (options.format or OUTPUT_FORMATS[0])
    to_file = out is not None and not out.is_dir() and out.suffix.lower() in FORMAT_EXTENSIONS
    if to_file and len(inputs) > 1:
        raise UserError(f"-o {out}: a file name, but there are {len(inputs)} inputs (give a folder)")
    if to_file and options.format and FORMAT_EXTENSIONS[out.suffix.lower()] != options.format:
        raise UserError(f"-o {out}: extension does not match --format {options.format}")
    if out is not None and not to_file and out.suffix and not out.is_dir():
        raise UserError(f"-o {out}: unsupported output extension (use {SUFFIXES_TEXT}, or a folder)")
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


BYTES_PER_OUTPUT_PIXEL = 48
"""Peak memory per output pixel while a result is made and written (an 8000x8000 output: 2.65 GiB, 44 bytes)."""


def physical_memory() -> int:
    """This machine's memory in bytes (16 GiB where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 16 * 2**30


def default_max_pixels(scale: int) -> int:
    """The largest input whose x``scale`` result fits in this machine's memory: the network runs in tiles of any
    image size, but the result is held whole (:data:`BYTES_PER_OUTPUT_PIXEL`)."""
    return physical_memory() // (BYTES_PER_OUTPUT_PIXEL * scale * scale)


def check_inputs(pairs: list[tuple[Path, Path]], options: Options, scale: int) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Before any work: drop the inputs whose header is unreadable or names more pixels than ``--max-pixels`` (by
    default what this machine's memory holds for the result), each with its one-line reason."""
    limit = options.max_pixels or default_max_pixels(scale)
    kept, failed = [], []
    for src, dst in pairs:
        if options.skip_existing and dst.exists():
            kept.append((src, dst))
            continue
        try:
            width, height = image_size(src)
        except UserError as exc:
            failed.append(str(exc))
            continue
        if width * height <= limit:
            kept.append((src, dst))
        elif options.max_pixels:
            failed.append(f"{src}: {width}x{height} is {width * height:,} pixels, over --max-pixels {limit:,}")
        else:
            need = width * height * scale * scale * BYTES_PER_OUTPUT_PIXEL
            failed.append(
                f"{src}: {width}x{height} is {width * height / 1e6:.0f} megapixels; its x{scale} result needs about "
                f"{need / 2**30:.0f} GiB of memory and this machine has {physical_memory() / 2**30:.0f} GiB "
                f"(the limit here: {limit / 1e6:.0f} megapixels; --max-pixels N to try anyway)"
            )
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
    upscaler: Upscaler, picture: Picture, dst: Path, options: Options, on_tile: Callable[[int, int], None] | None = None,
    progress: bool = False,
) -> None:
    """Super-resolve ``picture`` and write ``dst`` (and the comparison when asked); ``progress``: the bytes written
    (encoding a large PNG takes a while) on a progress bar."""
    upscaled = upscaler.upscale_picture(picture, on_tile)
    with show_progress(unit="B", unit_scale=True, desc=f"writing {dst.name}", leave=False,
                       disable=not progress) as written:  # fmt: skip
        write_picture(dst, upscaled, options.quality, on_bytes=written.update)
    if options.compare:
        write_image(compare_path(dst), comparison(picture, upscaled, upscaler.label))


def run(upscaler: Upscaler, specs: list[str], options: Options, progress: bool = True) -> Summary:
    """Upscale every input ``specs`` names; failures are collected, not raised.

    A :class:`UserError` if no spec names any image (each spec's reason, in one line). Every output folder and
    every input's header (readable, within the pixel limit) is checked before the first file is upscaled.
    """
    inputs, missing = find_inputs(specs)
    if not inputs:
        raise UserError("; ".join(missing))
    pairs, refused = plan_outputs(inputs, options, upscaler.scale)
    pairs, unwritable = check_outputs(pairs, options)
    pairs, too_large = check_inputs(pairs, options, upscaler.scale)
    summary = Summary(failed=missing + refused + unwritable + too_large)
    quiet = not progress or not pairs
    files = show_progress(pairs, unit="file", disable=quiet)
    tiles = show_progress(unit="tile", desc="tiles", leave=False, disable=quiet)
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
                write_upscaled(upscaler, picture, dst, options, on_tile, progress=not quiet)
            except (UserError, OSError) as exc:
                summary.failed.append(str(exc) if isinstance(exc, UserError) else f"{src}: {exc}")
            except MemoryError:
                summary.failed.append(f"{src}: out of memory (try a smaller --max-memory or --tile)")
            else:
                summary.written.append(dst)
    return summary
