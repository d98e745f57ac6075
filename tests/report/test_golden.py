"""Golden files: the rendered profile, memory and compare output of fixed models, byte for byte.

A change to what the tables show must be deliberate: regenerate the files with ``pytest --update-golden
tests/report/test_golden.py`` and review the diff. The commands write to a file (``-o``), which renders at a fixed
width whatever the terminal, so the output does not depend on where the tests run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from deploykit.cli.app import app

GOLDEN = Path(__file__).resolve().parents[1] / "golden"

CASES = {
    "profile-lenet.txt": ["profile", "lenet"],
    "profile-d2l-nin-depth2.txt": ["profile", "d2l-nin", "--depth", "2", "--gpu", "rtx3050-laptop"],
    "profile-lenet-memory.txt": ["profile", "lenet", "-b", "1,8", "--optimizer", "sgd-momentum"],
    "profile-mnist1d-cnn.md": ["profile", "mnist1d-cnn", "-f", "markdown", "--dtype", "fp16"],
    "profile-lenet.csv": ["profile", "lenet", "-f", "csv"],
    "compare-lenet-d2l-lenet.txt": ["compare", "lenet", "d2l-lenet"],
    "compare-lenet-d2l-lenet.md": ["compare", "lenet", "d2l-lenet", "-f", "markdown"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendered_output_matches_the_golden_file(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    out = tmp_path / name
    res = CliRunner().invoke(app, [*CASES[name], "-o", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text(encoding="utf-8")
    golden = GOLDEN / name
    if request.config.getoption("--update-golden"):
        golden.write_text(text, encoding="utf-8")
    assert golden.is_file(), f"no golden file {golden}: run pytest --update-golden {__file__}"
    assert text == golden.read_text(encoding="utf-8"), f"{name} differs from {golden} (see the module docstring)"
