"""Every ``srgan-mlx`` command shown in the README and docs/ names a real command and real options with valid
values (parsed by the command line itself, not run); the README keeps to its length, and its links resolve."""

import re
import shlex
from pathlib import Path

import click
import pytest

from srgan_mlx.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shown_commands():
    """(page, command line) for each ``srgan-mlx ...`` line in a shell code block, with continuation lines joined."""
    found = []
    for page in PAGES:
        blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", page.read_text(), re.S)
        for block in blocks:
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].strip()
                if line.startswith("srgan-mlx ") and not any(mark in line for mark in ("...", "[", "|")):  # not a synopsis
                    found.append((page.name, line))
                for part in line.split("&&"):
                    part = part.strip()
                    if part.startswith("srgan-mlx ") and part != line:
                        found.append((page.name, part))
    return found


COMMANDS = shown_commands()


def test_the_pages_show_commands():
    assert len(COMMANDS) >= 20
    assert {"README.md", "training.md", "upscaling.md", "evaluation.md", "vgg19.md"} <= {page for page, _ in COMMANDS}


@pytest.mark.parametrize("page, line", COMMANDS, ids=[f"{p}:{line[:60]}" for p, line in COMMANDS])
def test_shown_command_parses(page, line):
    args = shlex.split(line)[1:]
    name, rest = args[0], args[1:]
    assert name in main.commands, f"{page}: unknown command {name!r} in {line!r}"
    command = main.commands[name]
    try:
        command.make_context(name, rest, resilient_parsing=False).close()
    except click.UsageError as exc:
        if "Missing" in str(exc) or "does not exist" in str(exc):
            return  # a required argument left out, or a path only the user has: the command itself is right
        raise AssertionError(f"{page}: {line!r}: {exc}") from None


def test_readme_is_short_and_its_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target
    for page in PAGES[1:]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith("http"):
                assert (page.parent / target).exists(), f"{page.name}: {target}"
