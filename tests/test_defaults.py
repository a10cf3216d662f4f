"""Every value a user can set or meet outside the training settings has one home, ``srgan_mlx/defaults.py``: the
options' defaults, choices and help texts, the functions' default arguments and the server's limits all come from
it, and the package's code spells none of them again."""

import ast
import inspect
from pathlib import Path

from srgan_mlx import defaults
from srgan_mlx.cli import main
from srgan_mlx.defaults import size_text

ROOT = Path(__file__).resolve().parents[1]


def options(command: str) -> dict:
    return {param.name: param for param in main.get_command(None, command).params}


def test_size_text_is_what_the_size_option_reads():
    from srgan_mlx.commands.options import Size

    for size in (defaults.MAX_MEMORY, defaults.MAX_UPLOAD, 512 * 1024, 1536, 3 * 1024**4):
        assert Size().convert(size_text(size), None, None) == size
    assert (size_text(2 * 1024**3), size_text(64 * 1024**2), size_text(1536)) == ("2GB", "64MB", "1536B")


def test_the_options_take_their_defaults_and_choices_from_defaults():
    upscale, serve, evaluate = options("upscale"), options("serve"), options("evaluate")
    assert upscale["quality"].default == serve["quality"].default == defaults.QUALITY
    assert list(upscale["fmt"].type.choices) == list(defaults.OUTPUT_FORMATS)
    assert list(upscale["alpha"].type.choices) == list(defaults.ALPHA_METHODS)
    assert upscale["alpha"].default == defaults.ALPHA_METHODS[0]
    assert f"e.g. {size_text(defaults.MAX_MEMORY)} (the default" in upscale["max_memory"].help
    assert f"[{size_text(defaults.MAX_MEMORY)}]" in serve["max_memory"].help
    assert f"[{defaults.DEFAULT_MODEL}]" in upscale["model"].help and defaults.DEFAULT_MODEL in evaluate["model"].help
    assert f"[{defaults.FIDELITY_MODEL}]" in upscale["fidelity_model"].help
    assert f"{defaults.REALISTIC_MODEL} first" in serve["models"].help
    assert (upscale["realism"].type.min, upscale["realism"].type.max) == defaults.REALISM_RANGE
    assert serve["host"].default == defaults.HOST and serve["port"].default == defaults.PORT
    assert serve["max_upload"].type.convert(serve["max_upload"].default, None, None) == defaults.MAX_UPLOAD
    assert serve["max_pixels"].default == defaults.MAX_PIXELS
    assert serve["timeout"].default == defaults.TIMEOUT
    assert serve["max_connections"].default == defaults.MAX_CONNECTIONS


def test_the_functions_and_the_server_take_their_defaults_from_defaults():
    from srgan_mlx.files.image_io import write_image
    from srgan_mlx.files.picture import write_picture
    from srgan_mlx.serve.jobs import JobQueue
    from srgan_mlx.serve.server import Limits, Server
    from srgan_mlx.upscaling.batch import Options
    from srgan_mlx.upscaling.upscaler import Upscaler

    for function in (write_image, write_picture, JobQueue.__init__, Server.__init__):
        assert inspect.signature(function).parameters["quality"].default == defaults.QUALITY, function
    assert Options().quality == defaults.QUALITY
    assert inspect.signature(Upscaler.__init__).parameters["model"].default == defaults.DEFAULT_MODEL
    assert inspect.signature(Upscaler.__init__).parameters["alpha"].default == defaults.ALPHA_METHODS[0]
    limits = Limits()
    assert (limits.max_upload, limits.max_pixels, limits.timeout, limits.min_upload_rate, limits.max_connections) == (
        defaults.MAX_UPLOAD, defaults.MAX_PIXELS, defaults.TIMEOUT, defaults.MIN_UPLOAD_RATE, defaults.MAX_CONNECTIONS)


def test_every_output_format_has_its_file_format_and_media_type():
    from srgan_mlx.files.image_io import FORMATS, PIL_FORMATS
    from srgan_mlx.serve.routes import IMAGE_TYPES, format_named

    assert set(PIL_FORMATS) == set(IMAGE_TYPES) == set(defaults.OUTPUT_FORMATS) == set(defaults.FORMAT_EXTENSIONS.values())
    assert set(FORMATS) == set(defaults.FORMAT_EXTENSIONS)
    assert [format_named(name) for name in ("PNG", "jpeg", "JPG", "webp")] == ["png", "jpg", "jpg", "webp"]


def test_the_package_spells_no_default_again():
    """The values that only defaults.py should hold (the quality, the port, the shipped models' files, the sizes as
    the options write them) appear nowhere else in the package's code as literals."""
    held = {defaults.QUALITY, defaults.PORT, defaults.HOST, *defaults.MODEL_NAMES.values(),
            size_text(defaults.MAX_MEMORY), size_text(defaults.MAX_UPLOAD)}  # fmt: skip
    found = [f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}"
             for path in sorted((ROOT / "srgan_mlx").rglob("*.py")) + sorted((ROOT / "convert").glob("*.py"))
             if path.name != "defaults.py" for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Constant) and not isinstance(node.value, bool) and node.value in held]  # fmt: skip
    assert not found, found
    model_words = [node.value for path in (ROOT / "srgan_mlx" / "commands").glob("*.py")
                   for node in ast.walk(ast.parse(path.read_text()))
                   if isinstance(node, ast.Constant) and node.value in defaults.MODEL_NAMES]  # fmt: skip
    assert not model_words, model_words  # the commands name models through defaults.py
