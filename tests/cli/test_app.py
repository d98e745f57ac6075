"""The top-level command: --version, help texts that the terminal wraps, the version in every JSON document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import deploykit
from deploykit.cli.app import app, unwrap_help

RUNNER = CliRunner()
SMOKE = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "cpu-smoke-cpu-amd-epyc.json"


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_flag(flag: str) -> None:
    res = RUNNER.invoke(app, [flag])
    assert res.exit_code == 0, res.output
    assert res.stdout == f"deploykit {deploykit.__version__}\n"


def test_version_matches_the_package_metadata() -> None:
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert f'version = "{deploykit.__version__}"' in text


def test_help_paragraphs_have_no_hard_line_breaks() -> None:
    assert unwrap_help("one two\n  three.\n\nnext\nline") == "one two three.\n\nnext line"
    for info in app.registered_commands:
        for para in (info.help or "").split("\n\n"):
            assert "\n" not in para, f"{info.name}: {para[:60]!r}"


@pytest.mark.parametrize(
    "args",
    [
        ["profile", "lenet", "-f", "json"],
        ["compare", "lenet", "d2l-lenet", "-f", "json"],
    ],
    ids=["profile", "compare"],
)
def test_json_documents_carry_the_version(args: list[str]) -> None:
    res = RUNNER.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["settings"]["deploykit_version"] == deploykit.__version__


def test_check_json_carries_the_version_and_its_settings(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    res = RUNNER.invoke(app, ["check", str(SMOKE), "--baseline", str(SMOKE), "--json", str(out)])
    assert res.exit_code == 0, res.output
    settings = json.loads(out.read_text())["settings"]
    assert settings["deploykit_version"] == deploykit.__version__ and settings["tolerance"] == 0.1
