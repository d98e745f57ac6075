"""Atomic writes: the file appears whole or not at all, and an unwritable target is one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from deploykit._io import atomic_path, atomic_write_text
from deploykit.cli.app import app
from deploykit.errors import ArtifactError


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"]


def test_failure_inside_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_unwritable_target_is_an_artifact_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ArtifactError, match=r"cannot write .*file/out\.txt"):
        atomic_write_text(blocker / "out.txt", "x")


def test_cli_output_to_an_unwritable_place_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    res = CliRunner().invoke(app, ["profile", "lenet", "-o", str(blocker / "out.txt")])
    assert res.exit_code == 2
    assert "cannot write" in res.output and "Traceback" not in res.output
