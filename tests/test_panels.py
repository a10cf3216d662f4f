"""Labelled images side by side: pixels kept one to one, a label strip above, a plain divider between."""

import numpy as np
import pytest
from PIL import Image, ImageColor

from srgan_mlx.files.panels import BACKGROUND, labelled_row

RNG = np.random.default_rng(5)


def test_images_kept_exactly_with_labels_above_and_dividers_between():
    images = [RNG.integers(0, 256, (40, width, 3), dtype=np.uint8) for width in (30, 50, 24)]
    row = np.asarray(labelled_row([images[0], Image.fromarray(images[1]), images[2]], ["bicubic", "SR", "HR"]))
    strip = row.shape[0] - 40
    background = ImageColor.getrgb(BACKGROUND)
    assert strip >= 12 and row.shape[1] > 104
    divider = (row.shape[1] - 104) // 2
    x = 0
    for image in images:
        np.testing.assert_array_equal(row[strip:, x : x + image.shape[1]], image)
        label = row[:strip, x : x + image.shape[1]]
        assert np.any(np.any(label != background, axis=2))  # some text drawn in this panel's strip
        if x + image.shape[1] < row.shape[1]:
            assert np.all(row[:, x + image.shape[1] : x + image.shape[1] + divider] == background)
        x += image.shape[1] + divider


def test_long_label_stays_above_its_own_image():
    row = np.asarray(labelled_row([np.zeros((20, 24, 3), np.uint8)] * 2, ["a very long model name indeed", ""]))
    strip = row.shape[0] - 20
    assert np.all(row[:strip, 24:] == ImageColor.getrgb(BACKGROUND))  # nothing spilled past the first panel


def test_text_grows_with_the_images():
    small, large = (labelled_row([np.zeros((h, h, 3), np.uint8)], ["SR"]) for h in (40, 800))
    assert large.height - 800 > small.height - 40


def test_one_label_per_image():
    with pytest.raises(ValueError, match="one label per image"):
        labelled_row([np.zeros((4, 4, 3), np.uint8)], ["a", "b"])
