"""``deploykit check`` in a GitHub Actions job: the verdict table appended to the job summary, regressions as
``::error::`` annotations, and ``--changes-only`` saying "no changes" instead of printing an empty table."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from deploykit.bench.results import BenchResult, CellResult
from deploykit.bench.timing import TimingStats
from deploykit.cli.app import app

RUNNER = CliRunner()


def _result(path: Path, **medians: float) -> Path:
    cells = tuple(
        CellResult("resnet18", backend, "fp32", 1, status="ok", correct=True,
                   timing=TimingStats.from_repeats([[m * (1 + k * 0.005)] for k in (-2, -1, 0, 1, 2)]))
        for backend, m in medians.items()
    )
    env = {"torch": "2.11.0", "onnxruntime": "1.31.1", "cpu": "Test CPU", "gpu": None}
    BenchResult(cells=cells, device="cpu:Test CPU", environment=env,
                regime={"device_type": "cpu", "threads": 1, "transfers_included": False}, spec={},
                created_utc="2026-12-01T00:00:00Z").save(path)
    return path


def test_regression_goes_to_the_job_summary_and_an_error_annotation(tmp_path: Path) -> None:
    base = _result(tmp_path / "base.json", eager=10.0, ort=5.0)
    cur = _result(tmp_path / "cur.json", eager=10.0, ort=8.0)
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    res = RUNNER.invoke(app, ["check", str(cur), "--baseline", str(base)], env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert res.exit_code == 1, res.output
    text = summary.read_text()
    assert text.startswith("earlier step\n")  # appended, never overwritten
    assert "**FAIL: 1 regression, 1 unchanged**" in text
    assert "| regression | resnet18 | ort | fp32 | 1 | 5.00 | 8.00 | +60.0% |" in text
    errors = [line for line in res.stdout.splitlines() if line.startswith("::error")]
    # '%' is escaped as '%25' (and ':' in properties as '%3A'): the runner decodes them back
    assert errors == [
        "::error title=deploykit check%3A regression::resnet18 ort fp32 b1 regression: +60.0%25 (threshold "
        "±10.0%25), 5.00 -> 8.00 ms"
    ]


def test_pass_writes_the_summary_without_annotations(tmp_path: Path) -> None:
    base = _result(tmp_path / "base.json", eager=10.0)
    summary = tmp_path / "summary.md"
    res = RUNNER.invoke(app, ["check", str(base), "--baseline", str(base), "--github-summary"],
                        env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert res.exit_code == 0, res.output
    assert "**PASS: 1 unchanged**" in summary.read_text() and "::error" not in res.stdout


def test_no_github_summary_and_outside_actions(tmp_path: Path) -> None:
    base = _result(tmp_path / "base.json", eager=10.0)
    summary = tmp_path / "summary.md"
    res = RUNNER.invoke(app, ["check", str(base), "--baseline", str(base), "--no-github-summary"],
                        env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert res.exit_code == 0 and not summary.exists()
    res = RUNNER.invoke(app, ["check", str(base), "--baseline", str(base), "--github-summary"],
                        env={"GITHUB_STEP_SUMMARY": ""})
    assert res.exit_code == 2
    assert "GITHUB_STEP_SUMMARY is not set" in res.output and "Traceback" not in res.output


def test_unwritable_summary_is_one_line(tmp_path: Path) -> None:
    base = _result(tmp_path / "base.json", eager=10.0)
    res = RUNNER.invoke(app, ["check", str(base), "--baseline", str(base)],
                        env={"GITHUB_STEP_SUMMARY": str(tmp_path / "missing" / "summary.md")})
    assert res.exit_code == 2 and "cannot append to GITHUB_STEP_SUMMARY" in res.output


def test_changes_only_without_changes_says_so(tmp_path: Path) -> None:
    base = _result(tmp_path / "base.json", eager=10.0, ort=5.0)
    res = RUNNER.invoke(app, ["check", str(base), "--baseline", str(base), "--changes-only"])
    assert res.exit_code == 0, res.output
    assert "no changes: all 2 cells unchanged" in res.stdout and "┏" not in res.stdout
