"""Atomic writes (srgan_mlx/atomic.py): a target is the old one or the new one, never a mix or a leftover."""

from __future__ import annotations

import os
import stat

import pytest

from srgan_mlx.atomic import atomic_folder, write_text


def test_a_folder_replaces_the_old_one_as_a_whole(tmp_path):
    target = tmp_path / "step_00000200"
    target.mkdir()
    (target / "old_only.txt").write_text("old")
    (target / "state.json").write_text("old")
    with atomic_folder(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".step_00000200.")
        assert (target / "state.json").read_text() == "old"  # still the old one while the new one is written
        write_text(tmp / "state.json", "new")
    assert sorted(p.name for p in target.iterdir()) == ["state.json"]
    assert (target / "state.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000200"]  # no hidden folder left behind


def test_an_error_keeps_the_old_folder_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "record"
    target.mkdir()
    (target / "state.json").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_folder(target) as tmp:
            write_text(tmp / "state.json", "new")
            raise KeyboardInterrupt
    assert (target / "state.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record"]


def test_a_new_folder_and_its_parents_are_made(tmp_path):
    target = tmp_path / "records" / "srgan"
    with atomic_folder(target) as tmp:
        write_text(tmp / "config.json", "{}")
    assert (target / "config.json").read_text() == "{}"
    assert sorted(p.name for p in target.parent.iterdir()) == ["srgan"]


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask022", "umask077"])
def test_written_folders_and_files_have_the_permissions_mkdir_and_open_give(tmp_path, umask):
    """Not the private 0700 / 0600 of tempfile's temporary names: a run folder others may read stays readable."""
    previous = os.umask(umask)
    try:
        plain = tmp_path / "plain"
        plain.mkdir()
        (plain / "state.json").write_text("{}")
        with atomic_folder(tmp_path / "atomic") as tmp:
            write_text(tmp / "state.json", "{}")
    finally:
        os.umask(previous)
    for name in ("", "state.json"):
        assert stat.S_IMODE((tmp_path / "atomic" / name).stat().st_mode) == stat.S_IMODE((plain / name).stat().st_mode)
    assert stat.S_IMODE((tmp_path / "atomic").stat().st_mode) == 0o777 & ~umask
