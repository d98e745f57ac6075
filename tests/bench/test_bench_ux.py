"""``deploykit bench`` defaults a newcomer gets on a small CPU machine, the plan line, and ties within noise."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from deploykit.bench.results import BenchResult, CellResult
from deploykit.bench.spec import BenchSpec, default_cpu_threads
from deploykit.bench.timing import TimingOptions, TimingStats
from deploykit.cli.app import app
from deploykit.report.bench import bench_table, plan_line, summary_lines, tied_with_fastest
from deploykit.report.layout import render_text


def _cell(backend: str, median: float, noise: float) -> CellResult:
    a = noise / 2.0  # repeat medians m(1 + k a), k = -2..2: IQR/median = 2a = noise
    timing = TimingStats.from_repeats([[median * (1 + k * a)] for k in (-2, -1, 0, 1, 2)])
    return CellResult("resnet18", backend, "fp32", 1, status="ok", correct=True, timing=timing)


def _result(*cells: CellResult) -> BenchResult:
    return BenchResult(cells=cells, device="cpu:Test", environment={}, regime={"device_type": "cpu"}, spec={},
                       created_utc="2026-12-01T00:00:00Z")


def test_difference_within_noise_is_a_tie() -> None:
    r = _result(_cell("eager", 10.0, 0.05), _cell("ort", 9.5, 0.05))  # 5.3% apart, noise 5% + 5%
    assert [c.backend for c in tied_with_fastest(r)[("resnet18", "fp32", 1)]] == ["eager"]
    (line,) = summary_lines(r)
    assert "tie within noise: ort 9.50 ms" in line and "eager 10.0 ms" in line and "no fastest" in line
    text = render_text([bench_table(r)])
    assert "ort =" in text and "eager =" in text and "★" not in text


def test_difference_beyond_noise_is_a_fastest() -> None:
    r = _result(_cell("eager", 10.0, 0.02), _cell("ort", 8.0, 0.02))  # 25% apart, noise 2% + 2%
    assert tied_with_fastest(r)[("resnet18", "fp32", 1)] == []
    assert summary_lines(r)[0].startswith("resnet18 fp32 b1: fastest correct = ort 8.00 ms")
    text = render_text([bench_table(r)])
    assert "ort ★" in text and "=" not in text.replace("━", "")


def test_default_cpu_threads_is_half_the_cores_at_most_4(monkeypatch: pytest.MonkeyPatch) -> None:
    for cores, expected in ((1, 1), (2, 1), (4, 2), (8, 4), (64, 4)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid, n=cores: set(range(n)), raising=False)
        assert default_cpu_threads() == expected


def test_plan_line_states_the_settings() -> None:
    spec = BenchSpec(models=("lenet",), backends=("eager", "ort"), device="cpu", threads=1,
                     timing=TimingOptions(iterations=20, repeats=5))
    line = plan_line(spec)
    assert line.startswith("plan: 2 cell(s) on cpu (1 thread for torch and ONNX Runtime)")
    assert "5 repeats of up to 20 samples" in line and "at most 10 s" in line


def test_cpu_bench_uses_and_prints_the_default_threads(tmp_path) -> None:
    res = CliRunner().invoke(app, ["bench", "lenet", "--device", "cpu", "--backend", "eager", "--repeats", "2",
                                   "--iterations", "3", "--warmup", "1", "--warmup-seconds", "0", "-o",
                                   str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    n = default_cpu_threads()
    assert f"plan: 1 cell(s) on cpu ({n} thread" in res.output
    import json

    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["spec"]["threads"] == n and doc["regime"]["cpu_threads"] == n


def test_timing_help_shows_the_defaults() -> None:
    res = CliRunner().invoke(app, ["bench", "--help"], env={"COLUMNS": "250"})
    text = " ".join(res.output.split())
    t = TimingOptions()
    for default in (t.iterations, t.repeats, t.warmup_iters):
        assert f"(default {default})" in text
    assert f"(default {t.warmup_seconds:g})" in text and f"(default {t.cell_seconds:g})" in text
