"""Upscale jobs for ``srgan-mlx serve``: a queue that one worker thread serves, with progress, cancelling,
and results in a private folder.

The CPU (or GPU) runs one job at a time, so jobs wait in order; each reports its queue position
and, while it runs, the tiles done. Uploads are checked before they are queued (a readable image
within the pixel limit) and kept as files, so another rendering of the same upload (another model
or realism) needs no new upload. The pixels come from :class:`~srgan_mlx.upscaling.upscaler.Upscaler`,
exactly as ``srgan-mlx upscale`` makes them with the same model, realism and memory budget.
Only the newest :data:`KEEP` jobs keep their files.
"""

from __future__ import annotations

import io
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..defaults import OUTPUT_FORMATS, QUALITY
from ..errors import UserError
from ..files.image_io import TooLarge, opened
from ..files.picture import flatten, read_picture, resize_picture_bicubic, write_picture
from ..upscaling.upscaler import Upscaler

KEEP = 64
"""Jobs whose files are kept; past that, the oldest finished job is forgotten."""
BICUBIC_PNG_LEVEL = 1
"""zlib level of the bicubic comparison image: fast to write, still lossless."""


class Cancelled(Exception):
    """Raised inside a running job when it is cancelled (between tiles)."""


@dataclass
class Job:
    """One upscale of one upload: what was asked, where it stands, and its files."""

    id: str
    name: str  # the upload's display name, never used as a path
    model: str
    realism: float | None
    format: str
    upload: Path
    size: tuple[int, int]  # input (width, height)
    status: str = "queued"  # queued, running, done, failed, cancelled
    tiles: tuple[int, int] = (0, 0)  # done, total
    error: str | None = None
    result: Path | None = None
    bicubic: Path | None = None
    scale: int | None = None
    seconds: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

    def download_name(self, fmt: str | None = None) -> str:
        """``<stem>_x4.png``; with a realism, ``<stem>_x4_realism0.5.png``; ``fmt`` instead of the job's format."""
        stem = re.sub(r"[^\w.-]+", "_", Path(self.name).stem)[:80] or "image"
        dial = "" if self.realism is None else f"_realism{self.realism:g}"
        return f"{stem}_x{self.scale}{dial}.{fmt or self.format}"


class JobQueue:
    """Jobs by id, served in order by one worker thread; ``upscaler(model, realism)`` gives the Upscaler to use
    (it may raise :class:`UserError`, which fails the job)."""

    def __init__(
        self, folder: Path, upscaler: Callable[[str, float | None], Upscaler], max_pixels: int, quality: int = QUALITY
    ):
        self.folder = folder
        self.upscaler = upscaler
        self.max_pixels = max_pixels
        self.quality = quality
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.waiting: list[str] = []
        self.changed = threading.Condition()
        self.converting = threading.Lock()
        self.closed = False
        self.worker = threading.Thread(target=self._serve, name="srgan-mlx-jobs", daemon=True)
        self.worker.start()

    def check_upload(self, data: bytes, name: str) -> tuple[int, int]:
        """The upload's (width, height) if it is a whole, readable image within the pixel limit; else a
        :class:`UserError` (:class:`TooLarge` over the limit). The size is read from the header before any
        pixel is decoded (a decompression bomb is refused unopened), then the whole image is decoded once."""
        if not data:
            raise UserError(f"{name}: empty upload (0 bytes)")
        with opened(Path(name), io.BytesIO(data)) as image:
            width, height = image.size
        if width * height > self.max_pixels:
            raise TooLarge(
                f"{name}: {width}x{height} is {width * height:,} pixels, over this server's limit of "
                f"{self.max_pixels:,} (srgan-mlx serve --max-pixels)"
            )
        picture = read_picture(Path(name), io.BytesIO(data))
        return picture.rgb.shape[1], picture.rgb.shape[0]

    def submit(self, data: bytes | None, name: str, model: str, realism: float | None, fmt: str,
               source: str | None = None) -> Job:  # fmt: skip
        """Queue an upscale of ``data`` (checked with :meth:`check_upload`), or of the upload of job ``source``."""
        if fmt not in OUTPUT_FORMATS:
            raise UserError(f"unknown format {fmt!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
        job_id = secrets.token_hex(8)
        if source is not None:
            earlier = self.get(source)
            upload, size, name = earlier.upload, earlier.size, earlier.name
        else:
            size = self.check_upload(data, name)
            upload = self.folder / f"{job_id}.upload"
            upload.write_bytes(data)
        job = Job(job_id, name, model, realism, fmt, upload, size)
        with self.changed:
            if self.closed:
                raise UserError("the server is stopping")
            self.jobs[job_id] = job
            self.waiting.append(job_id)
            self._forget_old()
            self.changed.notify_all()
        return job

    def get(self, job_id: str) -> Job:
        with self.changed:
            job = self.jobs.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job

    def result(self, job: Job, fmt: str) -> Path:
        """A finished job's result in ``fmt``: its own file, or that file re-encoded once and kept beside it."""
        if fmt not in OUTPUT_FORMATS:
            raise UserError(f"unknown format {fmt!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
        if fmt == job.format:
            return job.result
        path = job.result.with_suffix(f".{fmt}")
        with self.converting:
            if not path.is_file():
                write_picture(path, read_picture(job.result), self.quality)
        return path

    def position(self, job: Job) -> int | None:
        """How many jobs run or wait before ``job`` (0: it runs next or now); None once it has finished."""
        with self.changed:
            if job.status == "running":
                return 0
            if job.id not in self.waiting:
                return None
            running = any(self.jobs[j].status == "running" for j in self.jobs)
            return self.waiting.index(job.id) + running

    def cancel(self, job_id: str) -> Job:
        """Cancel a waiting job at once, a running one at its next tile; a finished one stays as it is."""
        job = self.get(job_id)
        with self.changed:
            job.cancel.set()
            if job.id in self.waiting:
                self.waiting.remove(job.id)
                job.status = "cancelled"
            self.changed.notify_all()
        return job

    def wait(self, job: Job, timeout: float | None = None) -> bool:
        """Block until ``job`` has finished (or ``timeout`` seconds); whether it has."""
        with self.changed:
            return self.changed.wait_for(lambda: job.finished, timeout)

    def close(self) -> None:
        """Cancel every job and stop the worker (the running job stops at its next tile)."""
        with self.changed:
            self.closed = True
            for job in self.jobs.values():
                job.cancel.set()
            self.changed.notify_all()
        self.worker.join(timeout=60)

    def _forget_old(self) -> None:
        """Past :data:`KEEP` jobs, delete the oldest finished ones' files (the caller holds the lock)."""
        finished = [j for j in self.jobs.values() if j.finished]
        for job in finished[: max(len(self.jobs) - KEEP, 0)]:
            del self.jobs[job.id]
            users = [j for j in self.jobs.values() if j.upload == job.upload]
            for path in (job.bicubic, None if users else job.upload):
                if path is not None:
                    path.unlink(missing_ok=True)
            for path in self.folder.glob(f"{job.id}.*"):  # the result in every format made
                path.unlink(missing_ok=True)

    def _serve(self) -> None:
        while True:
            with self.changed:
                self.changed.wait_for(lambda: self.waiting or self.closed)
                if self.closed:
                    return
                job = self.jobs[self.waiting.pop(0)]
                job.status = "running"
                self.changed.notify_all()
            self._run(job)
            with self.changed:
                self.changed.notify_all()

    def _run(self, job: Job) -> None:
        started = time.perf_counter()

        def on_tile(done: int, total: int) -> None:
            if job.cancel.is_set():
                raise Cancelled
            job.tiles = (done, total)

        try:
            upscaler = self.upscaler(job.model, job.realism)
            job.scale = upscaler.scale
            picture = read_picture(Path(job.name), io.BytesIO(job.upload.read_bytes()))
            size = (picture.rgb.shape[1] * upscaler.scale, picture.rgb.shape[0] * upscaler.scale)
            bicubic = self.folder / f"{job.id}.bicubic.png"
            flatten(resize_picture_bicubic(picture, size)).save(bicubic, format="PNG", compress_level=BICUBIC_PNG_LEVEL)
            job.bicubic = bicubic  # the page shows it while the model works
            upscaled = upscaler.upscale_picture(picture, on_tile)
            result = self.folder / f"{job.id}.{job.format}"
            write_picture(result, upscaled, self.quality)
            job.result = result
            job.status = "done"
        except Cancelled:
            job.status = "cancelled"
        except UserError as exc:
            job.error, job.status = str(exc), "failed"
        except MemoryError:
            job.error, job.status = f"{job.name}: out of memory (start the server with a smaller --max-memory)", "failed"
        except Exception as exc:  # the server must go on serving the next job
            job.error, job.status = f"{job.name}: {type(exc).__name__}: {exc}", "failed"
        finally:
            job.seconds = time.perf_counter() - started
