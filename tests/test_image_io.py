"""Image files: one EXIF policy for every reader, header sizes that agree with it, one error wording."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from srgan_mlx.errors import UserError
from srgan_mlx.files.image_io import load_image, opened, read_header, reduces_depth
from srgan_mlx.files.picture import read_picture

RNG = np.random.default_rng(0)

# EXIF 2.32, tag 0x0112: how the stored rows and columns map to the displayed image
DISPLAYED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirrored left-right
    3: lambda a: a[::-1, ::-1],  # rotated 180 degrees
    4: lambda a: a[::-1, :],  # mirrored top-bottom
    5: lambda a: a.transpose(1, 0, 2),  # stored row 0 is the displayed left column, top to bottom
    6: lambda a: a[::-1].transpose(1, 0, 2),  # stored row 0 is the displayed right column: 90 degrees clockwise
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # stored row 0 is the right column, bottom to top
    8: lambda a: a[:, ::-1].transpose(1, 0, 2),  # stored row 0 is the left column, bottom to top: anticlockwise
}


def write_png16(path, pixels: np.ndarray) -> None:
    """A 16-bit PNG (colour type 0, 4, 2 or 6 by channel count) written byte by byte, as PIL cannot write one."""
    height, width, channels = pixels.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_everywhere(tmp_path, orientation):
    stored = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.png"  # lossless, so pixels can be compared exactly
    Image.fromarray(stored).save(path, exif=exif)
    upright = DISPLAYED[orientation](stored)
    pixels, gray = load_image(path)
    np.testing.assert_array_equal(pixels, upright)
    assert not gray
    np.testing.assert_array_equal(np.rint(read_picture(path).rgb * 255).astype(np.uint8), upright)
    assert read_header(path) == (upright.shape[1], upright.shape[0])


def test_jpeg_orientation_and_header_agree(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(RNG.integers(0, 256, (16, 40, 3), dtype=np.uint8)).save(tmp_path / "r.jpg", exif=exif)
    assert read_header(tmp_path / "r.jpg") == (16, 40)
    assert load_image(tmp_path / "r.jpg")[0].shape == (40, 16, 3)


@pytest.mark.parametrize("orientation", [None, 6])
def test_header_size_needs_no_pixels(tmp_path, orientation):
    """The upright size of a PNG whose pixel data is cut off: read from the header (and eXIf chunk) alone."""
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    Image.fromarray(RNG.integers(0, 256, (64, 48, 3), dtype=np.uint8)).save(tmp_path / "cut.png", exif=exif)
    data = (tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: data.index(b"IDAT") + 64])
    assert read_header(tmp_path / "cut.png") == ((64, 48) if orientation else (48, 64))
    with pytest.raises(UserError, match="not a readable image"):
        load_image(tmp_path / "cut.png")


def _bad_files(folder):
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    (folder / "text.jpg").write_text("hello")
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / "cut.png")
    (folder / "cut.png").write_bytes((folder / "cut.png").read_bytes()[:200])
    return {"bad.png": "not a readable image", "text.jpg": "not a readable image",
            "cut.png": "not a readable image (", "missing.png": "no such file"}


@pytest.mark.parametrize("reader", [read_picture, load_image, read_header])
def test_one_error_wording_for_every_reader(tmp_path, reader):
    for name, problem in _bad_files(tmp_path).items():
        if reader is read_header and name == "cut.png":
            continue  # its header is intact
        with pytest.raises(UserError) as info:
            reader(tmp_path / name)
        message = str(info.value)
        assert message.startswith(f"{tmp_path / name}: {problem}") and "\n" not in message, message


def test_sixteen_bit_colour_is_reported_sixteen_bit_gray_is_not(tmp_path):
    write_png16(tmp_path / "rgb16.png", RNG.integers(0, 65536, (4, 5, 3), dtype=np.uint16))
    write_png16(tmp_path / "la16.png", RNG.integers(0, 65536, (4, 5, 2), dtype=np.uint16))
    write_png16(tmp_path / "gray16.png", RNG.integers(0, 65536, (4, 5, 1), dtype=np.uint16))
    Image.fromarray(RNG.integers(0, 256, (4, 5, 3), dtype=np.uint8)).save(tmp_path / "rgb8.png")
    found = {}
    for name in ("rgb16.png", "la16.png", "gray16.png", "rgb8.png"):
        with opened(tmp_path / name) as image:
            found[name] = reduces_depth(image)
    assert found == {"rgb16.png": True, "la16.png": True, "gray16.png": False, "rgb8.png": False}
    assert read_picture(tmp_path / "rgb16.png").reduced_depth
    assert read_picture(tmp_path / "gray16.png").mode == "I;16"


def test_sixteen_bit_gray_is_refused_for_datasets(tmp_path):
    write_png16(tmp_path / "g.png", np.zeros((4, 5, 1), np.uint16))
    with pytest.raises(UserError, match="g.png: I;16 .*use 8-bit"):
        read_header(tmp_path / "g.png")


def test_a_format_limit_is_a_one_line_error_and_leaves_nothing(tmp_path):
    from srgan_mlx.files.image_io import write_image

    with pytest.raises(UserError, match=r"wide\.webp: cannot write image .*WebP"):
        write_image(tmp_path / "wide.webp", Image.new("RGB", (16384, 1)))
    assert list(tmp_path.iterdir()) == []  # no half-written or temporary file
    (tmp_path / "taken.png").mkdir()
    with pytest.raises(UserError, match="taken.png: is a folder, not a file to write"):
        write_image(tmp_path / "taken.png", Image.new("RGB", (4, 4)))
