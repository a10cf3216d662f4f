"""The command line: every command listed, each command's module imported only when it runs; ``python -m srgan_mlx``
and ``python -m convert.vgg19`` from a clone with nothing installed, and from an install."""

import subprocess
import sys
from pathlib import Path

import pytest

from srgan_mlx.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]

FROM_A_CLONE = """
import runpy, sys
# what an install adds to the import system (an editable install's finder), gone: only the clone on the path
sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
sys.path_hooks[:] = [h for h in sys.path_hooks if not getattr(h, "__module__", "").startswith("__editable__")]
sys.path_importer_cache.clear()
sys.path[:] = [p for p in sys.path if p not in ("", ".")]
sys.path.insert(0, {root!r})
module, *sys.argv[1:] = sys.argv[1:]
if module == "-c":
    exec(sys.argv[1])
else:
    sys.argv[0] = module
    runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def run(args: list[str], cwd: Path, clone: bool = False) -> subprocess.CompletedProcess:
    """``python -m <args>`` (or ``python -c CODE``) in ``cwd``; ``clone``: as from a clone of the repository that is
    not installed."""
    prefix = ["-c", FROM_A_CLONE.format(root=str(ROOT))] if clone else [] if args[0] == "-c" else ["-m"]
    return subprocess.run([sys.executable, *prefix, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_every_command_module_is_listed():
    modules = sorted(path.stem for path in (ROOT / "srgan_mlx" / "commands").glob("*.py"))
    assert sorted(name.replace("-", "_") for name in COMMANDS) == [m for m in modules if m not in ("__init__", "options")]
    assert main.list_commands(None) == sorted(COMMANDS)
    for name in COMMANDS:
        assert main.get_command(None, name).name == name
    assert main.get_command(None, "options") is None
    assert main.get_command(None, "convert_vgg") is None  # commands go by their dashed names only


def test_a_command_imports_its_own_module_alone(tmp_path):
    """Getting one command imports its module and no other command's (the shared options may come with it)."""
    probe = ("import sys; from srgan_mlx.cli import main; loaded = lambda: sorted(m for m in sys.modules if "
             "m.startswith('srgan_mlx.commands.') and m != 'srgan_mlx.commands.options'); print(loaded()); "
             "main.get_command(None, 'export'); print(loaded())")
    lines = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                           check=True).stdout.splitlines()  # fmt: skip
    assert lines == ["[]", "['srgan_mlx.commands.export']"]


@pytest.mark.parametrize("clone", [False, True], ids=["installed", "clone"])
def test_python_m_srgan_mlx_lists_every_command(tmp_path, clone):
    result = run(["srgan_mlx", "--help"], ROOT if clone else tmp_path, clone)
    assert result.returncode == 0, result.stderr
    listed = result.stdout.split("Commands:")[1].split()
    assert all(name in listed for name in COMMANDS), result.stdout


def test_from_a_clone_convert_is_the_packages(tmp_path):
    """From a clone, ``srgan_mlx.convert`` is the repository's ``convert/``, as an install makes it."""
    probe = "import importlib.util, srgan_mlx; print(importlib.util.find_spec('srgan_mlx.convert').origin)"
    for clone in (True, False):
        result = run(["-c", probe], tmp_path, clone)
        assert result.returncode == 0, result.stderr
        origin = Path(result.stdout.strip())
        assert origin == ROOT / "convert" / "__init__.py" if clone else origin.parts[-2:] == ("convert", "__init__.py")


@pytest.mark.parametrize(
    "launcher, clone",
    [(["srgan_mlx", "convert-vgg"], True), (["convert.vgg19"], True), (["srgan_mlx", "convert-vgg"], False),
     (["srgan_mlx.convert.vgg19"], False), (["convert.vgg19"], False)],
    ids=["clone-srgan_mlx", "clone-convert.vgg19", "installed-srgan_mlx", "installed-srgan_mlx.convert.vgg19",
         "installed-convert.vgg19-in-the-clone"],
)
def test_the_vgg19_converter_starts(tmp_path, launcher, clone):
    cwd = ROOT if clone or launcher == ["convert.vgg19"] else tmp_path
    result = run([*launcher, "--help"], cwd, clone)
    assert result.returncode == 0, result.stderr
    assert "--download" in result.stdout
