"""Training examples: each HR crop is where the recipe says, turned as it says, and its LR is exactly MATLAB bicubic
of that very crop, for every flip and quarter turn (a one-pixel misalignment between the two would teach the
generator a shift)."""

import itertools

import numpy as np
import pytest
from PIL import Image

from srgan_mlx.errors import UserError
from srgan_mlx.quality.imresize import imresize
from srgan_mlx.training.config import TrainConfig
from srgan_mlx.training.data import BatchLoader, DataSet
from srgan_mlx.training.train import Trainer
from training_runs import TINY, config

CROP, SCALE = 24, 4
TRANSFORMS = list(itertools.product((False, True), range(4)))  # the eight symmetries of the square


class Recipes:
    """A sampler that hands the loader the recipes given (image, crop position as fractions, flip, turns)."""

    def __init__(self, recipes):
        self.recipes = recipes

    def next(self):
        return self.recipes

    def state_dict(self):
        return {}


def expected_hr(image: np.ndarray, u: float, v: float, flip: bool, turns: int) -> np.ndarray:
    """The crop at the documented position (a fraction of the free room, rounded down), mirrored left-right,
    then turned ``turns`` quarter turns counter-clockwise: written with PIL's transposes, not numpy's."""
    height, width = image.shape[:2]
    top, left = int(u * (height - CROP + 1)), int(v * (width - CROP + 1))
    crop = Image.fromarray(image).crop((left, top, left + CROP, top + CROP))
    if flip:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    for _ in range(turns):
        crop = crop.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
    return np.asarray(crop)


@pytest.mark.parametrize("u, v", [(0.0, 0.0), (0.37, 0.81), (0.999, 0.999)])
def test_every_flip_and_turn_keeps_lr_and_hr_aligned(tmp_path, u, v):
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (53, 71, 3), dtype=np.uint8)  # no symmetry, odd sizes
    Image.fromarray(image).save(tmp_path / "photo.png")
    data = DataSet([tmp_path / "photo.png"], 0, 0)
    recipes = [(0, u, v, flip, turns) for flip, turns in TRANSFORMS]
    loader = BatchLoader(data, Recipes(recipes), CROP, SCALE, workers=1, prefetch=1)
    try:
        lr, hr = loader.next()
    finally:
        loader.close()
    assert lr.shape == (8, CROP // SCALE, CROP // SCALE, 3) and hr.shape == (8, CROP, CROP, 3)
    seen = set()
    for i, (flip, turns) in enumerate(TRANSFORMS):
        want_hr = expected_hr(image, u, v, flip, turns)
        want_lr = imresize(want_hr, 1 / SCALE)  # MATLAB bicubic of exactly that crop
        assert np.array_equal(hr[i], want_hr.astype(np.float32) / 127.5 - 1.0), (flip, turns)
        assert np.array_equal(lr[i], want_lr.astype(np.float32) / 255.0), (flip, turns)
        seen.add(want_hr.tobytes())
    assert len(seen) == 8  # eight different examples: no transform is lost or repeated


def test_a_crop_one_pixel_over_would_be_seen():
    """The comparison above is sensitive: the LR of the crop one pixel down or right differs from the true LR."""
    rng = np.random.default_rng(7)
    image = Image.fromarray(rng.integers(0, 256, (53, 71, 3), dtype=np.uint8))
    true = imresize(np.asarray(image.crop((20, 10, 20 + CROP, 10 + CROP))), 1 / SCALE)
    for left, top in ((21, 10), (20, 11)):
        shifted = imresize(np.asarray(image.crop((left, top, left + CROP, top + CROP))), 1 / SCALE)
        assert not np.array_equal(true, shifted)


# --- in training runs ------------------------------------------------------------------------------------------

def test_corrupt_image_skipped_with_warning(images, tmp_path, capfd):
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    trainer = Trainer(config(images, tmp_path / "run", steps=2))
    err = capfd.readouterr().err
    assert err.count("broken.png") == 1 and "warning" in err
    assert trainer.data.unreadable == 1 and trainer.data.too_small == 1
    assert len(trainer.data.files) == 6
    trainer.run()


def test_truncated_image_skipped_at_load(images, tmp_path, capfd):
    data = (images / "img0.png").read_bytes()
    (images / "img0.png").write_bytes(data[: len(data) // 2])
    trainer = Trainer(config(images, tmp_path / "run", steps=4, batch_size=6))
    trainer.run()
    err = capfd.readouterr().err
    assert err.count("img0.png") == 1
    assert trainer.loader.unreadable == 1


def test_empty_dataset_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no usable training images"):
        Trainer(TrainConfig(data=[str(tmp_path / "empty")], out=str(tmp_path / "run"), **TINY))
