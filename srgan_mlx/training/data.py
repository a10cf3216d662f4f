"""Training data: random HR crops, dihedral augmentation, LR by MATLAB bicubic, loaded in background threads.

Every random choice of a batch (which images, where to crop, flip, rotation) is
drawn in the main thread by :class:`BatchSampler`, whose state is part of each
checkpoint, so a resumed run sees exactly the batches it would have seen.
Worker threads only decode, crop and downscale (PIL and numpy release the GIL).
With several ranks, every rank draws the same global batch and keeps its own
slice of it: the data is sharded, and the sampler state is the same everywhere.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..errors import warn
from ..files.image_io import IMAGE_SUFFIXES, READ_ERRORS, is_image_file, load_image, read_header
from ..quality.imresize import imresize

CACHE_BYTES = 2 << 30  # decoded images kept in memory, at most


def find_images(folders: list[str]) -> list[Path]:
    """All image files under the folders, recursively, sorted; a missing folder is an error."""
    files: list[Path] = []
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            raise UserError(f"{root}: no such data folder")
        files += sorted(p for p in root.rglob("*") if is_image_file(p))
    return files


@dataclass
class DataSet:
    """The usable images (at least ``crop`` pixels on each side) and what was left out."""

    files: list[Path]
    too_small: int
    unreadable: int

    @classmethod
    def scan(cls, folders: list[str], crop: int) -> "DataSet":
        files, too_small, unreadable = [], 0, 0
        for path in find_images(folders):
            try:
                width, height = read_header(path)
            except UserError as exc:
                warn(f"skipping {exc}")
                unreadable += 1
                continue
            if min(width, height) < crop:
                too_small += 1
            else:
                files.append(path)
        if not files:
            raise UserError(
                f"{', '.join(folders)}: no usable training images ({too_small} smaller than the {crop}px crop, "
                f"{unreadable} unreadable; formats {', '.join(IMAGE_SUFFIXES)})"
            )
        return cls(files, too_small, unreadable)


class BatchSampler:
    """Draws each batch's recipe: (image index, crop position as fractions, flip, quarter turns)."""

    def __init__(self, num_images: int, batch_size: int, seed: int, world_size: int = 1, rank: int = 0):
        self.num_images = num_images
        self.batch_size = batch_size
        self.world_size = world_size
        self.rank = rank
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(num_images)
        self.position = 0

    def _next_index(self) -> int:
        if self.position == self.num_images:
            self.order = self.rng.permutation(self.num_images)
            self.position = 0
        self.position += 1
        return int(self.order[self.position - 1])

    def next(self) -> list[tuple[int, float, float, bool, int]]:
        """This rank's slice of the next global batch."""
        recipes = []
        for _ in range(self.batch_size * self.world_size):
            index = self._next_index()
            u, v = self.rng.random(2)
            recipes.append((index, float(u), float(v), bool(self.rng.integers(2)), int(self.rng.integers(4))))
        return recipes[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "order": self.order.tolist(), "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.order = np.array(state["order"], dtype=np.int64)
        self.position = int(state["position"])


class BatchLoader:
    """Produces (lr, hr) float32 NHWC batches, LR in [0, 1] and HR in [-1, 1], ``prefetch`` batches ahead.

    An image that fails to decode is reported once, counted in ``unreadable``, and
    replaced by the next readable image with the same crop recipe.
    """

    def __init__(self, data: DataSet, sampler: BatchSampler, crop: int, scale: int, workers: int = 2, prefetch: int = 4):
        if crop % scale:
            raise UserError(f"crop {crop} is not a multiple of scale {scale}")
        self.data = data
        self.sampler = sampler
        self.crop = crop
        self.scale = scale
        self.pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="srgan-data")
        self.prefetch = prefetch
        self.pending: list[tuple[Future, dict]] = []
        self.cache: dict[int, np.ndarray] = {}
        self.cache_bytes = 0
        self.bad: set[int] = set()
        self.lock = threading.Lock()
        self.unreadable = data.unreadable
        self.consumed_state = sampler.state_dict()

    def _image(self, index: int) -> np.ndarray:
        image = self.cache.get(index)
        if image is None:
            image, _ = load_image(self.data.files[index])
            with self.lock:  # workers decode in parallel: the budget check and the update go together
                if index not in self.cache and self.cache_bytes + image.nbytes <= CACHE_BYTES:
                    self.cache[index] = image
                    self.cache_bytes += image.nbytes
        return image

    def _readable(self, index: int) -> np.ndarray:
        for offset in range(len(self.data.files)):
            candidate = (index + offset) % len(self.data.files)
            if candidate in self.bad:
                continue
            try:
                return self._image(candidate)
            except (UserError, *READ_ERRORS) as exc:
                with self.lock:  # several workers may hit the same file at once: report it once
                    if candidate not in self.bad:
                        self.bad.add(candidate)
                        self.unreadable += 1
                        warn(f"skipping unreadable training image {exc}")
        raise UserError("no readable training images left")

    def _example(self, recipe) -> tuple[np.ndarray, np.ndarray]:
        index, u, v, flip, turns = recipe
        image = self._readable(index)
        height, width = image.shape[:2]
        top, left = int(u * (height - self.crop + 1)), int(v * (width - self.crop + 1))
        hr = image[top : top + self.crop, left : left + self.crop]
        if flip:
            hr = hr[:, ::-1]
        hr = np.ascontiguousarray(np.rot90(hr, turns))
        return imresize(hr, 1 / self.scale), hr

    def _batch(self, recipes) -> tuple[np.ndarray, np.ndarray]:
        pairs = [self._example(r) for r in recipes]
        lr = np.stack([p[0] for p in pairs]).astype(np.float32) / 255.0
        hr = np.stack([p[1] for p in pairs]).astype(np.float32) / 127.5 - 1.0
        return lr, hr

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        """The next batch; the sampler state after it is in ``consumed_state``."""
        while len(self.pending) < self.prefetch:
            recipes = self.sampler.next()
            self.pending.append((self.pool.submit(self._batch, recipes), self.sampler.state_dict()))
        future, state = self.pending.pop(0)
        batch = future.result()
        self.consumed_state = state
        return batch

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
