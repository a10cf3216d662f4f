"""Labelled images side by side (``bicubic | srresnet``, ``bicubic | SR | HR``), for people to look at.

Each image keeps its pixels one to one; its label sits in a dark strip above
it, never over the picture, and a dark divider separates neighbours. Text
scales with the images (Pillow's built-in font; no font files needed).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BACKGROUND = "#202020"
"""Colour of the label strip and the dividers."""
TEXT = "#f0f0f0"


def text_size(height: int) -> int:
    """Label size in pixels for images ``height`` pixels high: 1/20 of it, within 12-48."""
    return max(12, min(48, round(height / 20)))


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """``text``, shortened with '...' until it fits in ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..." if text else ""


def labelled_row(images: Sequence[Image.Image | np.ndarray], labels: Sequence[str]) -> Image.Image:
    """``images`` (PIL images or HxWx3 uint8 arrays) in a row, top-aligned, each under its label; 8-bit RGB."""
    if len(images) != len(labels) or not images:
        raise ValueError(f"need one label per image, got {len(images)} images and {len(labels)} labels")
    images = [Image.fromarray(i) if isinstance(i, np.ndarray) else i for i in images]
    height = max(i.height for i in images)
    size = text_size(height)
    font = ImageFont.load_default(size)
    pad = size // 2
    strip = size + 2 * pad
    divider = max(2, size // 4)
    width = sum(i.width for i in images) + divider * (len(images) - 1)
    canvas = Image.new("RGB", (width, strip + height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    x = 0
    for image, label in zip(images, labels):
        canvas.paste(image.convert("RGB"), (x, strip))
        text = _fit(draw, label, font, image.width - pad)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        draw.text((x + (image.width - right - left) / 2, (strip - bottom - top) / 2), text, fill=TEXT, font=font)
        x += image.width + divider
    return canvas
