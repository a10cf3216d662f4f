"""One registry of the ``SRGAN_MLX_*`` environment variables: every name the code, the tests, the benchmarks and the
build read is in it; the package's code names each through it alone; docs/install.md lists exactly its names."""

import ast
import re
from pathlib import Path

from srgan_mlx.environment import VARIABLES

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"SRGAN_MLX_[A-Z0-9_]*[A-Z0-9]")


def code_files() -> list[Path]:
    found = [*(ROOT / "srgan_mlx").rglob("*.py"), *(ROOT / "convert").glob("*.py"), ROOT / "setup.py", ROOT / ".ci" / "run"]
    for folder in ("tests", "benchmarks", "tools", "experiments"):
        found += (ROOT / folder).rglob("*.py")
    return sorted(found)


def literal_strings(path: Path) -> list[str]:
    """The string constants of a module's code (f-strings' parts too), its docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}  # fmt: skip
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]  # fmt: skip


def test_every_variable_read_anywhere_is_registered():
    unknown = {(path.relative_to(ROOT).as_posix(), name) for path in code_files()
               for name in NAME.findall(path.read_text()) if name not in VARIABLES}  # fmt: skip
    assert not unknown, sorted(unknown)
    assert all(NAME.fullmatch(name) for name in VARIABLES)


def test_the_package_names_each_variable_in_the_registry_alone():
    """No string in the package's code (or ``convert/``) spells a variable's name: it comes from the registry."""
    registry = ROOT / "srgan_mlx" / "environment.py"
    spelled = [(path.relative_to(ROOT).as_posix(), text) for path in code_files()
               if path.suffix == ".py" and path != registry and path.parts[len(ROOT.parts)] in ("srgan_mlx", "convert")
               for text in literal_strings(path) if "SRGAN_MLX_" in text]  # fmt: skip
    assert not spelled, spelled
    assert len(set(VARIABLES)) == len(VARIABLES) == len(re.findall(r'^\w+ = "SRGAN_MLX_', registry.read_text(), re.M))


def test_setup_reads_the_build_switch_from_the_registry():
    setup = (ROOT / "setup.py").read_text()
    assert 'DISABLE_ENV = _environment_variable("BUILD_ONEDNN")' in setup
    assert not [text for text in literal_strings(ROOT / "setup.py") if NAME.fullmatch(text)]


def test_the_install_page_lists_exactly_the_registry():
    page = (ROOT / "docs" / "install.md").read_text()
    table = page.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(SRGAN_MLX_\w+)` \| (.+) \|$", table, re.M)
    assert [name for name, _ in rows] == list(VARIABLES)
    assert dict(rows) == VARIABLES
