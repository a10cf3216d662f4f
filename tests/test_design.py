"""docs/design.md's map is the code's: every module of the package (and of ``convert/``) sits in exactly one row of
its table, in the folder that row names, and imports only from its own row and the rows it lists; the rows' order
admits no circle, and neither do the modules' imports. A new module that is not on the map, or an import that points
up a layer, fails here; so does a test module whose name does not say which module it tests."""

import ast
import fnmatch
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"
PACKAGE = "srgan_mlx"


def read_map() -> dict[str, dict]:
    """Row name -> {"folder": Path, "modules": set of dotted names, "imports": set of row names}, from the table
    under "## The map"."""
    section = DESIGN.read_text().split("## The map", 1)[1]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("**"):
            if rows and not line.startswith("|"):
                break  # the end of the table
            continue
        name = cells[0].strip("*")
        folder = cells[1].strip("`")
        prefix = PACKAGE + "." + folder.removeprefix(PACKAGE).strip("/").replace("/", ".") if folder != "convert/" else (
            PACKAGE + ".convert")
        prefix = prefix.rstrip(".")
        modules = {f"{prefix}.{module}" for module in re.findall(r"`([\w.]+)`", cells[2])}
        imports = set(re.findall(r"\*\*(\w+)\*\*", cells[3]))
        rows[name] = {"folder": ROOT / folder, "modules": modules, "imports": imports}
    return rows


MAP = read_map()


def module_files() -> dict[str, Path]:
    """Dotted name -> file of every module of the package, ``convert/`` as installed (``srgan_mlx.convert``)."""
    found = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")) + sorted((ROOT / "convert").glob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[0] == "convert":
            parts = [PACKAGE, *parts]
        found[".".join(parts)] = path
    return found


MODULES = module_files()


def row_of(module: str) -> str:
    """The map's row of a module; a package's ``__init__`` belongs to its folder's row (the top one: entry points)."""
    module = module.removesuffix(".__init__")
    for name, row in MAP.items():
        if module in row["modules"]:
            return name
    for name, row in MAP.items():  # a folder's package itself
        if any(m.rsplit(".", 1)[0] == module for m in row["modules"]) and name != "base":
            return name
    raise KeyError(module)


def imports_of(module: str) -> set[str]:
    """The package's modules (or packages) that ``module`` imports, anywhere in its file, by dotted name. ``import
    srgan_mlx`` alone (made first for its side effect: the BLAS loaded before MLX) is left out."""
    path = MODULES[module]
    package = module.split(".")[:-1]  # a package's own __init__ too: its name ends in ".__init__"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith(PACKAGE + ".")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            elif (node.module or "").split(".")[0] == PACKAGE:
                base = node.module
            else:
                continue
            for alias in node.names:  # `from . import kernels` imports a module; `from .x import y` a name of x
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES or
                          f"{base}.{alias.name}.__init__" in MODULES else base)
    found.discard(PACKAGE)
    return {name if name in MODULES else f"{name}.__init__" for name in found if name in MODULES or
            f"{name}.__init__" in MODULES}


def test_the_map_has_its_rows():
    assert list(MAP) == ["base", "native", "networks", "convert", "files", "quality", "upscaling", "training",
                         "serve", "commands", "entry"]
    for name, row in MAP.items():
        assert row["modules"], name
        assert row["imports"] <= set(MAP), (name, row["imports"] - set(MAP))


def test_every_module_sits_in_one_row_in_its_rows_folder():
    listed = [module for row in MAP.values() for module in row["modules"]]
    assert len(listed) == len(set(listed)), sorted(m for m in listed if listed.count(m) > 1)
    on_disk = {m for m in MODULES if not m.endswith("__init__") or m == f"{PACKAGE}.__init__"}
    assert not on_disk - set(listed) - {f"{PACKAGE}.__init__"}, f"not on the map: {sorted(on_disk - set(listed))}"
    assert not set(listed) - on_disk, f"on the map, not in the code: {sorted(set(listed) - on_disk)}"
    for name, row in MAP.items():
        for module in row["modules"]:
            assert MODULES[module].parent == row["folder"].resolve(), (name, module, MODULES[module])


def test_each_row_imports_from_exactly_the_rows_it_lists():
    wrong, used = [], {name: set() for name in MAP}
    for module in MODULES:
        own = row_of(module)
        for target in sorted(imports_of(module)):
            theirs = row_of(target)
            if theirs != own:
                used[own].add(theirs)
            if theirs != own and theirs not in MAP[own]["imports"]:
                wrong.append(f"{module} ({own}) imports {target} ({theirs})")
    assert not wrong, "\n".join(wrong)
    assert {name: row["imports"] for name, row in MAP.items()} == used  # and lists no row it does not import from


def test_the_rows_are_in_layer_order():
    """A row imports only from rows above it in the table: the layers admit no circle."""
    order = list(MAP)
    for name, row in MAP.items():
        for other in row["imports"]:
            assert order.index(other) < order.index(name), f"{name} imports from {other}, which comes after it"


def test_no_module_imports_itself_through_others():
    graph = {module: imports_of(module) for module in MODULES}
    state = {}

    def visit(module, path):
        if state.get(module) == "done":
            return
        if state.get(module) == "open":
            cycle = path[path.index(module):] + [module]
            pytest.fail("import circle: " + " -> ".join(cycle))
        state[module] = "open"
        for target in sorted(graph[module]):
            if target != module and not module.startswith(target.removesuffix(".__init__") + "."):
                visit(target, path + [module])
        state[module] = "done"

    for module in graph:
        visit(module, [])


SUITES = {"docs": "the docs' commands run", "design": "this map", "parity": "the networks against torch.nn references",
          "parity_peers": "PyTorch generators' layouts against their torch.nn models",
          "benchmark_report": "benchmarks/run.py's table and chart"}
"""The test modules that test no one module."""


def test_each_test_module_is_named_after_the_module_it_tests():
    """``tests/test_<module>.py``, or ``test_<module>_<aspect>.py`` (``test_train_command``, ``test_upscale_cli``),
    so that any module's tests are found by its name."""
    names = {module.rsplit(".", 1)[-1] for module in MODULES if not module.endswith("__init__")}
    unnamed = [path.name for path in sorted((ROOT / "tests").glob("test_*.py"))
               if path.stem[5:] not in SUITES and not any(path.stem[5:] == name or path.stem[5:].startswith(f"{name}_")
                                                          for name in names)]  # fmt: skip
    assert not unnamed, unnamed
    assert all((ROOT / "tests" / f"test_{suite}.py").is_file() for suite in SUITES)


def test_every_package_and_its_files_are_installed():
    """pyproject.toml installs every folder of the package and every file in it that is not Python (the shipped
    weights, NIQE's model, the recipes, the page), so that an install holds what a clone does."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / PACKAGE).rglob("__init__.py")}
    assert set(setuptools["packages"]) == folders | {f"{PACKAGE}.convert"}
    assert setuptools["package-dir"] == {f"{PACKAGE}.convert": "convert"}
    built = ("__pycache__", "_ext", "libsrgan_sgemm", "_build.json")  # the native build's outputs, not sources
    for file in (ROOT / PACKAGE).rglob("*"):
        if not file.is_file() or file.suffix in (".py", ".pyc") or any(mark in str(file) for mark in built):
            continue
        package = max((f for f in folders if (ROOT / f.replace(".", "/")) in file.parents), key=len)
        inside = file.relative_to(ROOT / package.replace(".", "/")).as_posix()
        assert any(fnmatch.fnmatch(inside, pattern) for pattern in setuptools["package-data"].get(package, [])), (
            f"{file.relative_to(ROOT)} is not package data of {package}")
