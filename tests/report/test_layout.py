"""Every table the CLI prints follows one rule (deploykit.report.layout): complete at its natural width when
stdout is not a terminal; in a terminal, optional columns left out (and named) until it fits, cells wrapped,
nothing cut with an ellipsis.

Golden files under tests/golden/layout/ hold each table at 80 and 120 terminal columns and piped; regenerate them
with ``pytest --update-golden tests/report/test_layout.py`` and review the diff.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.table import Table
from typer.testing import CliRunner

from deploykit.bench.results import load_results
from deploykit.cli.app import app
from deploykit.report.bench import bench_table
from deploykit.report.layout import fit_table, natural_width, optional_columns, render_text

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "layout"
SMOKE = ROOT / "benchmarks" / "results" / "cpu-smoke-cpu-amd-epyc.json"
ANSI = re.compile(r"\x1b\[[0-9;]*m")

CASES = {
    "list": ["list", "*lenet*"],
    "profile": ["profile", "lenet"],
    "compare": ["compare", "lenet", "d2l-lenet"],
    "check": ["check", str(SMOKE), "--baseline", str(SMOKE)],
}
WIDTHS = (80, 120, None)  # None: stdout is not a terminal (a pipe, a CI log)


def run_at(args: list[str], width: int | None) -> str:
    """The command's stdout as a terminal of ``width`` columns shows it (styles stripped), or piped."""
    env = {"TTY_COMPATIBLE": "1", "COLUMNS": str(width), "NO_COLOR": "1"} if width else {"TTY_COMPATIBLE": "0"}
    res = CliRunner().invoke(app, args, env=env)
    assert res.exit_code == 0, res.output
    return ANSI.sub("", res.stdout)


def _check_golden(name: str, text: str, request: pytest.FixtureRequest) -> None:
    golden = GOLDEN / name
    if request.config.getoption("--update-golden"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert golden.is_file(), f"no golden file {golden}: run pytest --update-golden {__file__}"
    assert text == golden.read_text(encoding="utf-8"), f"{name} differs from {golden} (see the module docstring)"


def _table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line[:1] in "│┃┏┡└├"]


def _assert_follows_the_rule(text: str, width: int | None) -> None:
    lines = _table_lines(text)
    assert lines, text
    assert not any("…" in line for line in lines), "a table cell was cut short:\n" + text
    if width is not None:
        too_wide = [line for line in text.splitlines() if len(line) > width]
        assert not too_wide, f"lines wider than {width}: {too_wide}"
    if width is None:
        assert all(line == line.rstrip() for line in text.splitlines()), "trailing spaces in piped output"


@pytest.mark.parametrize("width", WIDTHS, ids=lambda w: f"{w}-columns" if w else "piped")
@pytest.mark.parametrize("case", sorted(CASES))
def test_cli_table_at_width_matches_golden(case: str, width: int | None, request: pytest.FixtureRequest) -> None:
    text = run_at(CASES[case], width)
    _assert_follows_the_rule(text, width)
    _check_golden(f"{case}-{width or 'piped'}.txt", text, request)


@pytest.mark.parametrize("width", WIDTHS, ids=lambda w: f"{w}-columns" if w else "piped")
def test_bench_table_at_width_matches_golden(width: int | None, request: pytest.FixtureRequest) -> None:
    text = render_text([bench_table(load_results(SMOKE))], width)
    _assert_follows_the_rule(text, width)
    _check_golden(f"bench-{width or 'piped'}.txt", text, request)


def test_piped_table_is_complete_and_names_are_whole() -> None:
    text = run_at(["list", "dense*"], None)
    for name in ("densenet121", "densenet161", "densenet169", "densenet201"):
        assert name in text
    assert "torchvision.models.densenet121" in text  # the source column is not cut either
    assert "left out" not in text


def test_narrow_terminal_names_the_columns_it_left_out() -> None:
    text = run_at(["profile", "lenet"], 100)
    assert "left out to fit 100 columns:" in text
    left_out = text.split("left out to fit 100 columns:")[1].split(";")[0]
    header = next(line for line in text.splitlines() if line.startswith("┃"))
    for col in (c.strip() for c in left_out.split(",")):
        assert col not in header.split("┃")
    for col in ("Layer", "Op", "Params", "MACs", "FLOPs"):
        assert col in header


def _table(*widths: int) -> Table:
    t = Table()
    for i in range(len(widths)):
        t.add_column(f"c{i}")
    t.add_row(*("x" * w for w in widths))
    return t


def test_fit_table_drops_optional_columns_in_order_only_until_it_fits() -> None:
    t = optional_columns(_table(10, 30, 30, 30), ("c3", "c1", "c2"))
    full = natural_width(t)
    assert fit_table(t, None) == [] and natural_width(t) == full
    assert fit_table(t, full - 1) == ["c3"]
    assert [str(c.header) for c in t.columns] == ["c0", "c1", "c2"]
    t = optional_columns(_table(10, 30, 30, 30), ("c3", "c1", "c2"))
    assert fit_table(t, 20) == ["c3", "c1", "c2"]  # then the rest wraps
    out = render_text([t], 20)
    assert "x" * 10 in out.replace("│", "").replace(" ", "").replace("\n", "") and "…" not in out


def test_optional_columns_must_exist() -> None:
    with pytest.raises(ValueError, match="not columns"):
        optional_columns(_table(3), ("nope",))
