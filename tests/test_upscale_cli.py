"""``srgan-mlx upscale`` end to end on a tiny random generator."""

from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image
from test_image_io import write_png16
from test_picture import make_inputs, srgb_profile

from srgan_mlx.cli import main


def run(*args):
    return CliRunner().invoke(main, ["upscale", *map(str, args)])


def _rgba(folder, name="a.png", size=(16, 12)):
    pixels = np.zeros((size[1], size[0], 4), np.uint8)
    pixels[..., :3] = 128
    pixels[:, size[0] // 2 :, 3] = 255
    Image.fromarray(pixels).save(folder / name)
    return folder / name


def test_every_mode_and_a_corrupt_file(tmp_path, model):
    folder = tmp_path / "in"
    folder.mkdir()
    expected = make_inputs(folder)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    result = run(folder, "--model", model)
    assert result.exit_code == 1, result.output
    assert "8 written, 1 failed" in result.output
    assert f"failed: {folder / 'corrupt.png'}: " in result.output
    for name, ((width, height), mode) in expected.items():
        with Image.open(folder / f"{name.rsplit('.', 1)[0]}_x4.png") as out:
            assert out.size == (4 * width, 4 * height), name
            assert out.mode == mode, name
            if name == "rgb.png":
                assert out.info.get("icc_profile") == srgb_profile()
            if name == "gray16.png":
                assert np.asarray(out).max() > 255
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary files left
    assert not (folder / "corrupt_x4.png").exists()


def test_alpha_upscaled_separately(tmp_path, model):
    src = _rgba(tmp_path)
    assert run(src, "--model", model, "-o", tmp_path / "bicubic.png").exit_code == 0
    with Image.open(tmp_path / "bicubic.png") as out:
        alpha = np.asarray(out)[..., 3]
    assert alpha.shape == (48, 64)
    assert alpha[:, :24].max() == 0 and alpha[:, 40:].min() == 255
    assert run(src, "--model", model, "-o", tmp_path / "model.png", "--alpha", "model").exit_code == 0
    with Image.open(tmp_path / "model.png") as out:
        assert (out.mode, out.size) == ("RGBA", (64, 48))


def test_output_names_formats_and_compare(tmp_path, model):
    src = _rgba(tmp_path, "pic.png")
    result = run(src, "--model", model, "-o", tmp_path / "out", "--format", "webp", "--compare", "--quiet")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "out" / "pic_x4.webp") as out:
        assert (out.format, out.size) == ("WEBP", (64, 48))
    with Image.open(tmp_path / "out" / "pic_x4_compare.png") as out:
        assert out.mode == "RGB" and out.width > 128 and out.height > 48  # labels and a divider added
    assert run(src, "--model", model, "-o", tmp_path / "one.jpg", "--quality", "80").exit_code == 0
    with Image.open(tmp_path / "one.jpg") as out:
        assert (out.format, out.mode, out.size) == ("JPEG", "RGB", (64, 48))
    result = run(src, "--model", model, "-o", tmp_path / "x.png", "--format", "jpg")
    assert result.exit_code == 1 and "does not match --format jpg" in result.output
    result = run(src, src.with_name("b.png"), "--model", model, "-o", tmp_path / "x.png")
    assert result.exit_code == 1


def test_never_overwrites_an_input(tmp_path, model):
    src = _rgba(tmp_path)
    before = src.read_bytes()
    result = run(src, "--model", model, "-o", src)
    assert result.exit_code == 1 and "would overwrite an input" in result.output
    assert src.read_bytes() == before


def test_skip_existing_and_own_outputs_not_reprocessed(tmp_path, model):
    _rgba(tmp_path)
    assert run(tmp_path, "--model", model, "--quiet").exit_code == 0
    output = tmp_path / "a_x4.png"
    stamp = output.stat().st_mtime_ns
    result = run(tmp_path, "--model", model, "--skip-existing", "--quiet")
    assert result.exit_code == 0 and "0 written, 0 failed, 1 skipped" in result.output
    assert output.stat().st_mtime_ns == stamp
    assert not (tmp_path / "a_x4_x4.png").exists()


def test_globs_and_missing_inputs(tmp_path, model):
    _rgba(tmp_path, "one.png")
    _rgba(tmp_path, "two.png")
    result = run(tmp_path / "*.png", tmp_path / "nothing.png", "--model", model, "--quiet")
    assert result.exit_code == 1
    assert "2 written, 1 failed" in result.output and "nothing.png: no such file" in result.output
    result = run(tmp_path / "nothing.png", "--model", model)
    assert result.exit_code == 1 and result.output == f"error: {tmp_path / 'nothing.png'}: no such file\n"


def test_memory_budget_tiles_match_whole_image(tmp_path, model):
    from srgan_mlx.upscaling.inference import auto_tile
    from srgan_mlx.files.model_io import load_generator

    from srgan_mlx.upscaling.inference import bytes_per_pixel

    pixels = np.random.default_rng(1).integers(0, 256, (40, 44, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    budget = 40 * 40 * bytes_per_pixel(load_generator(model))  # below the 40x44 image: a 16 px core plus margins
    assert run(tmp_path / "a.png", "--model", model, "--tile", "1000", "-o", tmp_path / "whole.png").exit_code == 0
    assert run(tmp_path / "a.png", "--model", model, "--max-memory", str(budget), "-o", tmp_path / "tiled.png").exit_code == 0
    assert auto_tile(load_generator(model), 40, 44, budget) < 40  # the budget does split the image
    with Image.open(tmp_path / "whole.png") as whole, Image.open(tmp_path / "tiled.png") as tiled:
        assert np.array_equal(np.asarray(whole), np.asarray(tiled))  # tiles are exact
    result = run(tmp_path / "a.png", "--model", model, "--max-memory", "2XB")
    assert result.exit_code == 2 and "not a size" in result.output


def test_shipped_model_is_the_default(tmp_path):
    Image.fromarray(np.full((12, 10, 3), 128, np.uint8)).save(tmp_path / "grey.png")
    result = run(tmp_path / "grey.png")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "grey_x4.png") as out:
        assert out.size == (40, 48) and out.mode == "RGB"
        assert abs(float(np.asarray(out, np.float32)[8:40, 8:32].mean()) - 128) < 6


def test_unshipped_model_is_a_one_line_error(tmp_path, monkeypatch):
    from srgan_mlx import defaults

    monkeypatch.setitem(defaults.MODEL_NAMES, "srgan-x8", "srgan_x8.safetensors")  # a name with no file in this install
    result = run(_rgba(tmp_path), "--model", "srgan-x8")
    assert result.exit_code == 1 and "'srgan-x8' is not shipped" in result.output


def _lines(result) -> list[str]:
    return result.output.strip().splitlines()


def test_compare_image_is_labelled_bicubic_and_model(tmp_path, model):
    pixels = np.random.default_rng(2).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    renamed = tmp_path / "model" / "other.safetensors"
    renamed.write_bytes(Path(model).read_bytes())
    for weights, name in ((model, "g"), (renamed, "o")):
        assert run(tmp_path / "a.png", "--model", weights, "-o", tmp_path / f"{name}.png", "--compare").exit_code == 0
    with Image.open(tmp_path / "g.png") as out, Image.open(tmp_path / "g_compare.png") as compare:
        sr, both = np.asarray(out), np.asarray(compare)
    strip = both.shape[0] - 48
    assert both.shape[1] > 128 and strip > 0
    np.testing.assert_array_equal(both[strip:, -64:], sr)  # the model's output, unchanged, on the right
    divider = both[strip:, 64 : both.shape[1] - 64]
    assert divider.size and np.all(divider == divider[0, 0])  # one plain colour between the two
    with Image.open(tmp_path / "o_compare.png") as other:
        labels = both[:strip], np.asarray(other)[:strip]
    assert np.array_equal(labels[0][:, :64], labels[1][:, :64])  # "bicubic" both times
    assert not np.array_equal(labels[0][:, -64:], labels[1][:, -64:])  # the label names the weights file


def test_sixteen_bit_colour_warns_once(tmp_path, model):
    for name in ("a.png", "b.png"):
        write_png16(tmp_path / name, np.random.default_rng(0).integers(0, 65536, (6, 7, 3), dtype=np.uint16))
    result = run(tmp_path, "--model", model, "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("warning") == 1
    assert f"warning: {tmp_path / 'a.png'}: 16-bit colour is read and written at 8 bits" in result.stderr
    with Image.open(tmp_path / "b_x4.png") as out:
        assert (out.mode, out.size) == ("RGB", (28, 24))


def test_memory_budget_below_the_smallest_tile_warns_with_the_size_used(tmp_path, model):
    src = _rgba(tmp_path, size=(40, 36))
    result = run(src, "--model", model, "--max-memory", "1MB", "--quiet")
    assert result.exit_code == 0, result.output
    warning = [line for line in _lines(result) if "warning" in line]
    assert len(warning) == 1
    from srgan_mlx.upscaling.inference import smallest_tile_memory
    from srgan_mlx.files.model_io import load_generator

    needed = round(smallest_tile_memory(load_generator(model)) / 2**20)
    assert f"max memory 1 MiB is below what the smallest tile needs, about {needed} MiB (40x40 input pixels" in warning[0]
    assert "warning" not in run(src, "--model", model, "--max-memory", "100MB", "--quiet").output


def test_unknown_model_lists_the_shipped_ones(tmp_path):
    result = run(_rgba(tmp_path), "--model", "srresnett")
    assert result.exit_code == 1 and len(_lines(result)) == 1
    assert "error: unknown model 'srresnett'; shipped models: srresnet" in result.output
    result = run(_rgba(tmp_path), "--model", tmp_path / "runs" / "missing")
    assert result.exit_code == 1 and _lines(result) == [f"error: {tmp_path / 'runs' / 'missing'}: no such file or folder"]


def test_folder_of_earlier_results_says_so(tmp_path, model):
    _rgba(tmp_path, "a.png")
    assert run(tmp_path, "--model", model, "--compare", "--quiet").exit_code == 0
    (tmp_path / "a.png").unlink()
    result = run(tmp_path, "--model", model)
    assert result.exit_code == 1 and len(_lines(result)) == 1
    assert f"error: {tmp_path}: only earlier results (2 files named *_x<scale> or *_compare)" in result.output
    result = run(tmp_path / "*_x4*.png", "--model", model)
    assert result.exit_code == 1 and "only earlier results (2 files" in result.output
    assert run(tmp_path / "a_x4.png", "--model", model, "--quiet").exit_code == 0  # named: taken


def test_unwritable_outputs_fail_before_any_network_call(tmp_path, model, monkeypatch):
    """A file where the output folder should be, a folder with the output's name, a folder that refuses files (not
    as root, which writes anyway): each input that would be written there fails at once, before the generator runs
    for anyone; the others are upscaled."""
    import os

    from srgan_mlx.upscaling.upscaler import Upscaler

    calls = []
    real = Upscaler.upscale_picture
    monkeypatch.setattr(Upscaler, "upscale_picture", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    src = tmp_path / "in.png"
    Image.new("RGB", (12, 10), (40, 90, 160)).save(src)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    (tmp_path / "taken_x4.png").mkdir()
    result = run(src, "--model", model, "-o", blocker / "sub")
    assert result.exit_code == 1 and calls == [], result.output
    assert result.stderr == f"  failed: {src}: cannot write {blocker / 'sub' / 'in_x4.png'} ({blocker} is a file, not a " \
                            "folder)\n"
    assert result.stdout == "0 written, 1 failed\n"
    taken = tmp_path / "taken.png"
    Image.new("RGB", (12, 10)).save(taken)
    result = run(taken, src, "--model", model)
    assert result.exit_code == 1 and len(calls) == 1, result.output  # in.png only
    assert f"failed: {taken}: cannot write {tmp_path / 'taken_x4.png'} (a folder has its name)" in result.stderr
    assert (tmp_path / "in_x4.png").is_file()
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        result = run(src, "--model", model, "-o", locked)
        assert result.exit_code == 1 and len(calls) == 1 and "Permission denied" in result.stderr, result.output


def fake_png(path, width, height):
    """A PNG whose header says ``width`` x ``height`` but that holds almost no pixel data."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))  # fmt: skip
    return path


def test_the_pixel_limit_is_srgan_mlx_own_not_pillows(tmp_path, model, monkeypatch):
    """Pillow's decompression-bomb guard (a warning from 89 megapixels, a refusal from 179) does not speak: the
    limit is --max-pixels, by default what the machine's memory holds for the result, worded here, checked from
    the header before any work; raised, the file is read (here: found to be a fake)."""
    import warnings

    from srgan_mlx.upscaling import batch

    monkeypatch.setattr(batch, "physical_memory", lambda: 16 * 2**30)  # the default limit: 16 GiB / (48 B x 16)
    huge = fake_png(tmp_path / "huge.png", 10_000, 9_000)  # 90 MP: Pillow would warn
    bigger = fake_png(tmp_path / "bigger.png", 15_000, 12_000)  # 180 MP: Pillow would refuse
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = run(huge, "--model", model, "-o", tmp_path / "out")
        assert result.exit_code == 1, result.output
        assert result.stderr == (
            f"  failed: {huge}: 10000x9000 is 90 megapixels; its x4 result needs about 64 GiB of memory and this "
            "machine has 16 GiB (the limit here: 22 megapixels; --max-pixels N to try anyway)\n")
        result = run(bigger, "--model", model, "-o", tmp_path / "out", "--max-pixels", 100_000_000)
        assert result.stderr == f"  failed: {bigger}: 15000x12000 is 180,000,000 pixels, over --max-pixels 100,000,000\n"
        result = run(bigger, "--model", model, "-o", tmp_path / "out", "--max-pixels", 200_000_000)
        assert result.exit_code == 1 and "DecompressionBomb" not in result.output, result.output
        assert result.stderr.startswith(f"  failed: {bigger}: not a readable image (")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
