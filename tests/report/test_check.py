"""``deploykit check`` on synthetic result files: the noise-aware rule, missing cells, unusable input, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from deploykit.bench.results import SCHEMA, BenchResult, CellResult
from deploykit.bench.timing import TimingStats
from deploykit.cli.app import app
from deploykit.errors import ArtifactError, InvalidInput
from deploykit.report.check import (
    check_markdown,
    check_summary,
    check_table,
    compare_cell,
    compare_results,
    parse_tolerance,
)

H100 = "NVIDIA H100 80GB HBM3"
RUNNER = CliRunner()


def stats(median: float, noise: float = 0.0) -> TimingStats:
    """Five single-sample repeats with the given median and IQR/median exactly ``noise``.

    Repeat medians m(1 - 2a), m(1 - a), m, m(1 + a), m(1 + 2a) with a = noise / 2: p25 = m(1 - a), p75 = m(1 + a),
    so IQR / median = 2a = noise.
    """
    a = noise / 2.0
    return TimingStats.from_repeats([[median * (1 + k * a)] for k in (-2, -1, 0, 1, 2)])


def cell(
    backend: str = "eager", median: float = 1.0, noise: float = 0.0, *, batch: int = 1, **kw: Any
) -> CellResult:
    status = kw.pop("status", "ok")
    timing = stats(median, noise) if status == "ok" else None
    return CellResult(
        "resnet18",
        backend,
        "fp16",
        batch,
        status=status,
        timing=timing,
        correct=kw.pop("correct", True),
        **kw,
    )


def result(
    *cells: CellResult, device: str = H100, driver: str = "580.82", torch: str = "2.11.0", **regime: Any
) -> BenchResult:
    env = {
        "torch": torch,
        "onnxruntime": "1.31.1",
        "gpu": {
            "name": device,
            "cuda_runtime": "13.0",
            "cudnn": 91000,
            "nvidia_smi": {"driver_version": driver},
        },
    }
    reg = {"device_type": "cuda", "transfers_included": False, "cudnn_benchmark": True, **regime}
    return BenchResult(
        cells=cells, device=device, environment=env, regime=reg, spec={}, created_utc="2026-11-22T00:00:00Z"
    )


def test_stats_helper_has_exact_noise() -> None:
    s = stats(2.0, 0.2)
    assert s.median_ms == pytest.approx(2.0)
    assert s.noise == pytest.approx(0.2)


def test_identical_run_passes() -> None:
    r = result(cell("eager", 1.82), cell("cuda-graph", 0.49), cell("eager", 2.73, batch=64))
    rep = compare_results(r, r)
    assert not rep.failed and rep.exit_code == 0
    assert [c.status for c in rep.comparisons] == ["unchanged"] * 3
    assert all(c.change == 0.0 for c in rep.comparisons)
    assert check_summary(rep) == "PASS: 3 unchanged"


def test_regression_beyond_tolerance_fails() -> None:
    rep = compare_results(result(cell("eager", 1.2)), result(cell("eager", 1.0)))
    (c,) = rep.comparisons
    assert c.status == "regression"
    assert c.change == pytest.approx(0.2)
    assert c.threshold == pytest.approx(0.10)
    assert rep.failed and rep.exit_code == 1
    assert check_summary(rep) == "FAIL: 1 regression"


def test_small_slowdown_within_tolerance_passes() -> None:
    (c,) = compare_results(result(cell("eager", 1.05)), result(cell("eager", 1.0))).comparisons
    assert c.status == "unchanged"
    (c,) = compare_results(
        result(cell("eager", 1.05)), result(cell("eager", 1.0)), tolerance=0.04
    ).comparisons
    assert c.status == "regression"


def test_improvement_is_reported_and_passes() -> None:
    rep = compare_results(result(cell("eager", 0.8)), result(cell("eager", 1.0)))
    (c,) = rep.comparisons
    assert c.status == "improvement"
    assert c.change == pytest.approx(-0.2)
    assert not rep.failed
    assert rep.improvements == [c]


def test_noise_widens_the_threshold() -> None:
    # threshold = max(10%, 2 x (10% + 0%)) = 20%: +15% with 10% noise is not a regression ...
    (c,) = compare_results(result(cell("eager", 1.15, 0.10)), result(cell("eager", 1.0))).comparisons
    assert c.threshold == pytest.approx(0.20)
    assert c.noise_current == pytest.approx(0.10)
    assert c.status == "unchanged"
    # ... the same +15% measured quietly is
    (c,) = compare_results(result(cell("eager", 1.15)), result(cell("eager", 1.0))).comparisons
    assert c.status == "regression"
    # ... and +25% is a regression even with the noise
    (c,) = compare_results(result(cell("eager", 1.25, 0.10)), result(cell("eager", 1.0))).comparisons
    assert c.status == "regression"
    # baseline noise counts too: 2 x (5% + 5%) = 20%
    (c,) = compare_results(result(cell("eager", 1.15, 0.05)), result(cell("eager", 1.0, 0.05))).comparisons
    assert c.threshold == pytest.approx(0.20)
    assert c.status == "unchanged"


def test_unusable_noise_is_marked_unreliable() -> None:
    (c,) = compare_results(result(cell("eager", 1.0, 0.30)), result(cell("eager", 1.0))).comparisons
    assert c.status == "unchanged"
    assert "unreliable" in c.note
    assert c.threshold == pytest.approx(0.60)


def test_missing_and_new_cells_are_listed_not_failed() -> None:
    cur = result(cell("eager", 1.0), cell("compile", 0.3))
    base = result(cell("eager", 1.0), cell("cuda-graph", 0.5))
    rep = compare_results(cur, base)
    by = {c.backend: c for c in rep.comparisons}
    assert by["cuda-graph"].status == "missing"
    assert by["cuda-graph"].baseline_ms == pytest.approx(0.5)
    assert by["compile"].status == "new"
    assert by["eager"].status == "unchanged"
    assert not rep.failed


def test_skipped_now_is_missing_but_error_and_oom_are_broken() -> None:
    base = result(cell("trt", 0.3), cell("ort", 0.9), cell("compile", 0.4))
    cur = result(
        cell("trt", status="skipped", reason="trt: TensorRT is not installed"),
        cell("ort", status="error", reason="RuntimeError: boom"),
        cell("compile", status="oom", reason="CUDA out of memory"),
    )
    rep = compare_results(cur, base)
    by = {c.backend: c for c in rep.comparisons}
    assert by["trt"].status == "missing" and "TensorRT" in by["trt"].note
    assert by["ort"].status == "broken" and "boom" in by["ort"].note
    assert by["compile"].status == "broken"
    assert rep.failed
    assert [c.status for c in rep.comparisons][:2] == ["broken", "broken"]  # failures sort first


def test_cell_that_became_wrong_fails_even_when_fast() -> None:
    base = result(cell("trt", 0.5))
    cur = result(cell("trt", 0.25, correct=False, max_rel_error=0.8, tolerance=0.03))
    (c,) = compare_results(cur, base).comparisons
    assert c.status == "wrong"
    assert c.failing


def test_baseline_cell_not_ok_makes_current_new_or_not_run() -> None:
    c = compare_cell(cell("trt", 0.5), cell("trt", status="skipped", reason="x"), 0.1)
    assert c.status == "new"
    c = compare_cell(
        cell("trt", status="skipped", reason="no TensorRT"), cell("trt", status="oom", reason="x"), 0.1
    )
    assert (c.status, c.note) == ("not run", "skipped: no TensorRT")
    assert not c.failing


@pytest.mark.parametrize(
    ("cur", "match"),
    [
        (result(cell(), device="NVIDIA A100-SXM4-80GB"), "different devices"),
        (result(cell(), driver="575.10"), "different NVIDIA drivers"),
        (result(cell(), transfers_included=True), "transfers_included"),
        # a true-fp32 sweep against a file from before sweeps recorded their fp32 math (TF32 convolutions)
        (result(cell(), fp32_math={"policy": "ieee"}), "different fp32 math: current ieee, baseline unrecorded"),
    ],
)
def test_incomparable_files_raise(cur: BenchResult, match: str) -> None:
    with pytest.raises(ArtifactError, match=match):
        compare_results(cur, result(cell()))


def test_library_version_change_is_a_warning() -> None:
    rep = compare_results(result(cell(), torch="2.12.0"), result(cell()))
    assert rep.warnings == ("torch: baseline 2.11.0, current 2.12.0",)
    assert not rep.failed


@pytest.mark.parametrize(
    ("text", "value"), [("10%", 0.10), ("0.05", 0.05), ("5", 0.05), ("2.5%", 0.025), (0.2, 0.2)]
)
def test_parse_tolerance(text: str | float, value: float) -> None:
    assert parse_tolerance(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["abc", "150%", "-5%", "100"])
def test_parse_tolerance_rejects(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_tolerance(text)


def test_renderers_list_every_comparison() -> None:
    rep = compare_results(result(cell("eager", 1.2), cell("compile", 0.3)), result(cell("eager", 1.0)))
    md = check_markdown(rep)
    assert "| regression | resnet18 | eager | fp16 | 1 | 1.00 | 1.20 | +20.0% | ±10.0% |" in md
    assert "| new | resnet18 | compile |" in md
    assert check_table(rep).row_count == 2
    assert check_table(rep, show_unchanged=False).row_count == 2


# ------------------------------------------------------------------------------------------------------ CLI
def _write(path: Path, r: BenchResult) -> Path:
    r.save(path)
    return path


def test_cli_identical_passes_and_regression_fails(tmp_path: Path) -> None:
    base = _write(tmp_path / "base.json", result(cell("eager", 1.0), cell("cuda-graph", 0.5)))
    same = RUNNER.invoke(app, ["check", str(base), "--baseline", str(base)])
    assert same.exit_code == 0, same.output
    assert "PASS: 2 unchanged" in same.output

    slow = _write(tmp_path / "slow.json", result(cell("eager", 1.0), cell("cuda-graph", 0.6)))
    md = tmp_path / "check.md"
    js = tmp_path / "check.json"
    res = RUNNER.invoke(
        app, ["check", str(slow), "--baseline", str(base), "--markdown", str(md), "--json", str(js)]
    )
    assert res.exit_code == 1, res.output
    assert "FAIL: 1 regression, 1 unchanged" in res.output
    assert "| regression | resnet18 | cuda-graph |" in md.read_text()
    assert json.loads(js.read_text())["failed"] is True

    # a looser tolerance lets the +20% through
    loose = RUNNER.invoke(app, ["check", str(slow), "--baseline", str(base), "--tolerance", "25%"])
    assert loose.exit_code == 0, loose.output


def test_cli_unusable_input_exits_2(tmp_path: Path) -> None:
    base = _write(tmp_path / "base.json", result(cell()))
    other = _write(tmp_path / "a100.json", result(cell(), device="NVIDIA A100-SXM4-80GB"))
    res = RUNNER.invoke(app, ["check", str(other), "--baseline", str(base)])
    assert res.exit_code == 2
    assert "different devices" in res.output

    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"schema": "deploykit.bench", "cells": [')
    res = RUNNER.invoke(app, ["check", str(corrupt), "--baseline", str(base)])
    assert res.exit_code == 2
    assert "not valid JSON" in res.output

    future = tmp_path / "future.json"
    d = result(cell()).to_dict()
    d["schema_version"] = 99
    future.write_text(json.dumps(d))
    res = RUNNER.invoke(app, ["check", str(future), "--baseline", str(base)])
    assert res.exit_code == 2
    assert "schema version 99" in res.output

    alien = tmp_path / "alien.json"
    alien.write_text(json.dumps({"schema": "pytest-benchmark", "benchmarks": []}))
    res = RUNNER.invoke(app, ["check", str(alien), "--baseline", str(base)])
    assert res.exit_code == 2
    assert SCHEMA in res.output

    res = RUNNER.invoke(app, ["check", str(tmp_path / "nope.json"), "--baseline", str(base)])
    assert res.exit_code == 2
    assert "cannot read" in res.output

    res = RUNNER.invoke(app, ["check", str(base), "--baseline", str(base), "--tolerance", "lots"])
    assert res.exit_code == 2


def test_cli_help_documents_the_rule() -> None:
    res = RUNNER.invoke(app, ["check", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    text = " ".join(res.output.split())
    assert "threshold = max(tolerance, 2 x (noise_current + noise_baseline))" in text
    assert "2 unusable input" in text


# ---------------------------------------------------------------------------------------------------- merge
def test_merge_parts_of_a_sweep(tmp_path: Path) -> None:
    from deploykit.bench.results import merge_results

    a = result(cell("eager", 1.0), cell("cuda-graph", 0.5), compile_mode="default")
    b = result(cell("compile", 0.3), cell("cuda-graph", 0.45), compile_mode="max-autotune")
    m = merge_results([a, b])
    assert [c.backend for c in m.cells] == ["eager", "compile", "cuda-graph"]
    assert m.cell("resnet18", "cuda-graph", "fp16", 1).median_ms == pytest.approx(0.45)  # type: ignore[union-attr]
    assert "compile_mode" not in m.regime and m.regime["transfers_included"] is False
    with pytest.raises(ArtifactError, match="different devices"):
        merge_results([a, result(cell(), device="NVIDIA L4")])
    with pytest.raises(ArtifactError, match="different fp32 math"):
        merge_results([a, result(cell(), fp32_math={"policy": "ieee"})])
    pa, pb, out = _write(tmp_path / "a.json", a), _write(tmp_path / "b.json", b), tmp_path / "m.json"
    res = RUNNER.invoke(app, ["bench-merge", str(pa), str(pb), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "3 cells from 2 files" in res.output
    res = RUNNER.invoke(app, ["check", str(out), "--baseline", str(out)])
    assert res.exit_code == 0, res.output


def test_cpu_results_need_the_same_thread_count() -> None:
    def cpu(threads: int) -> BenchResult:
        return result(
            cell(),
            device="cpu:AMD EPYC",
            driver="",
            device_type="cpu",
            cpu_threads=threads,
            ort_threads=threads,
        )

    assert not compare_results(cpu(1), cpu(1)).failed
    with pytest.raises(ArtifactError, match="cpu_threads"):
        compare_results(cpu(2), cpu(1))


def test_files_without_a_common_cell_are_unusable() -> None:
    with pytest.raises(ArtifactError, match=r"no .* cell in common"):
        compare_results(result(cell("eager", batch=64)), result(cell("eager", batch=1)))


def test_markdown_summary_shows_fp32_math_and_both_memory_peaks() -> None:
    from deploykit.report.bench import markdown_summary

    r = result(cell("eager", 1.0, peak_mem_bytes=300_000_000, setup_peak_mem_bytes=1_300_000_000),
               fp32_math={"policy": "ieee"})
    text = markdown_summary(r)
    assert "fp32 math: ieee" in text and "setup peak MB = the one-time peak" in text
    header = next(ln for ln in text.splitlines() if ln.startswith("| model |"))
    row = next(ln for ln in text.splitlines() if ln.startswith("| resnet18 |"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    vals = [c.strip() for c in row.strip("|").split("|")]
    assert len(cols) == len(vals)
    got = dict(zip(cols, vals, strict=True))
    assert got["peak MB"].startswith("300") and got["setup peak MB"].startswith("1300")
