"""``deploykit check`` (and the other readers of results files) cannot be fooled by unusable input: non-finite,
zero or negative timings, non-UTF-8 files, malformed cells, deep nesting are exit 2 with one line, never
"PASS" and never exit 1 (which CI reads as a regression)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deploykit.bench.results import BenchResult, CellResult, load_results
from deploykit.bench.timing import TimingStats
from deploykit.cli.app import app
from deploykit.errors import ArtifactError
from deploykit.report.check import compare_results

RUNNER = CliRunner()


def _result(*medians: float) -> BenchResult:
    cells = tuple(
        CellResult("resnet18", "eager", "fp32", b + 1, timing=TimingStats.from_repeats([[m]] * 5), correct=True)
        for b, m in enumerate(medians)
    )
    return BenchResult(cells=cells, device="cpu:test", environment={}, regime={"device_type": "cpu"}, spec={},
                       created_utc="2026-12-02T00:00:00Z")


def _write(path: Path, result: BenchResult) -> Path:
    path.write_text(json.dumps(result.to_dict()))  # json.dumps writes Infinity / NaN as they are
    return path


def _one_line_exit_2(res) -> str:
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert "Traceback" not in res.output and "PASS" not in res.output
    return lines[0]


@pytest.mark.parametrize("bad", [math.inf, math.nan, 0.0, -3.0])
def test_unusable_current_samples_are_exit_2_naming_the_cells(tmp_path: Path, bad: float) -> None:
    base = _write(tmp_path / "base.json", _result(1.0, 2.0, 3.0, 4.0))
    cur = _write(tmp_path / "cur.json", _result(1.0, bad, 3.0, bad))
    line = _one_line_exit_2(RUNNER.invoke(app, ["check", str(cur), "--baseline", str(base)]))
    assert "unusable timings" in line and "2 cell(s)" in line
    assert "resnet18/eager/fp32/b2" in line and "resnet18/eager/fp32/b4" in line


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_a_baseline_of_zero_or_negative_samples_is_exit_2(tmp_path: Path, bad: float) -> None:
    base = _write(tmp_path / "base.json", _result(bad, bad, bad, bad))
    cur = _write(tmp_path / "cur.json", _result(1.0, 2.0, 3.0, 4.0))
    line = _one_line_exit_2(RUNNER.invoke(app, ["check", str(cur), "--baseline", str(base)]))
    assert "base.json" in line and "4 cell(s)" in line


def test_compare_results_refuses_unusable_timings_given_directly() -> None:
    with pytest.raises(ArtifactError, match="current has unusable timings"):
        compare_results(_result(math.inf), _result(1.0))
    with pytest.raises(ArtifactError, match="baseline has unusable timings"):
        compare_results(_result(1.0), _result(0.0))


def _cell_dict() -> dict:
    return _result(1.0).to_dict()["cells"][0]


MALFORMED: dict[str, bytes] = {
    "not utf-8": b"\xff\xfe\x00garbage",
    "cells not a list": json.dumps({**_result(1.0).to_dict(), "cells": {"a": 1}}).encode(),
    "cells of strings": json.dumps({**_result(1.0).to_dict(), "cells": ["x", "y"]}).encode(),
    "deep nesting": b"[" * 100000 + b"]" * 100000,
    "deep object": ('{"a":' * 50000 + "1" + "}" * 50000).encode(),
    "not an object": b"[1, 2, 3]",
    "wrong schema": json.dumps({"schema": "other"}).encode(),
    "empty": b"",
    "truncated": json.dumps(_result(1.0).to_dict()).encode()[:100],
    "batch a string": json.dumps({**_result(1.0).to_dict(), "cells": [{**_cell_dict(), "batch": "1"}]}).encode(),
    "samples not numbers": json.dumps(
        {**_result(1.0).to_dict(), "cells": [{**_cell_dict(), "timing": {"repeats_ms": [["a"]]}}]}
    ).encode(),
    "timing not an object": json.dumps({**_result(1.0).to_dict(), "cells": [{**_cell_dict(), "timing": [1]}]}).encode(),
    "environment a list": json.dumps({**_result(1.0).to_dict(), "environment": [1]}).encode(),
    "null samples": json.dumps(
        {**_result(1.0).to_dict(), "cells": [{**_cell_dict(), "timing": {"repeats_ms": [[None]]}}]}
    ).encode(),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_results_are_one_line_exit_2_in_every_reader(tmp_path: Path, case: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(MALFORMED[case])
    good = _write(tmp_path / "good.json", _result(1.0))
    with pytest.raises(ArtifactError):
        load_results(bad)
    before = sorted(p.name for p in tmp_path.iterdir())
    for args in (
        ["check", str(bad), "--baseline", str(good)],
        ["check", str(good), "--baseline", str(bad)],
        ["bench-summary", str(bad), "--out", str(tmp_path / "rep"), "--no-plot"],
        ["bench-merge", str(good), str(bad), "-o", str(tmp_path / "merged.json")],
    ):
        line = _one_line_exit_2(RUNNER.invoke(app, args))
        assert "bad.json" in line
        assert len(line) < 600
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_save_writes_null_for_non_finite_numbers_and_says_so(tmp_path: Path) -> None:
    r = _result(1.0)
    c = r.cells[0]
    r = r.with_cells((CellResult(c.model, c.backend, c.precision, c.batch, timing=c.timing, speedup_vs_eager=math.inf,
                                 correct=True),))
    path = r.save(tmp_path / "r.json")
    text = path.read_text()
    assert "Infinity" not in text and "NaN" not in text
    data = json.loads(text)
    assert data["cells"][0]["speedup_vs_eager"] is None
    assert data["null_not_finite"] == [".cells[0].speedup_vs_eager was inf"]
    assert load_results(path).cells[0].median_ms == pytest.approx(1.0)


def test_bench_merge_output_is_strict_json(tmp_path: Path) -> None:
    a = _result(1.0, 2.0)
    a.save(tmp_path / "a.json")
    res = RUNNER.invoke(app, ["bench-merge", str(tmp_path / "a.json"), "-o", str(tmp_path / "m.json")])
    assert res.exit_code == 0, res.output
    json.loads((tmp_path / "m.json").read_text(), parse_constant=lambda s: pytest.fail(f"not JSON: {s}"))


def test_piped_check_report_is_not_cut_to_80_columns(tmp_path: Path) -> None:
    long_model = "a-model-with-a-rather-long-registered-name-for-this-table"
    cells = (CellResult(long_model, "onnxruntime-cpu", "fp32", 1, timing=TimingStats.from_repeats([[1.0]] * 5),
                        correct=True),)
    r = BenchResult(cells=cells, device="cpu:test", environment={}, regime={"device_type": "cpu"}, spec={},
                    created_utc="x")
    r.save(tmp_path / "r.json")
    res = RUNNER.invoke(app, ["check", str(tmp_path / "r.json"), "--baseline", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert long_model in res.output  # whole, not wrapped or cut with an ellipsis
    assert max(len(line) for line in res.output.splitlines()) > 80


# ------------------------------------------------------------------------ a baseline made of several runs
def _run(medians: list[float], correct: bool = True) -> BenchResult:
    """One process's result: one cell, five repeats with these medians."""
    cells = (CellResult("resnet18", "eager", "fp32", 1, timing=TimingStats.from_repeats([[m] for m in medians]),
                        correct=correct),)
    return BenchResult(cells=cells, device="cpu:test", environment={}, regime={"device_type": "cpu"}, spec={},
                       created_utc="x")


def test_pooled_baseline_sees_drift_between_runs() -> None:
    # Three baseline processes, each quiet inside (noise 0) but drifting between runs: 50, 55, 60 ms.
    runs = [_run([m] * 5) for m in (50.0, 55.0, 60.0)]
    current = _run([60.0] * 5)  # the same code, in a slow process: +20% against the first run alone
    (one,) = compare_results(current, runs[0]).comparisons
    assert one.status == "regression" and one.threshold == pytest.approx(0.10)  # the false alarm of issue 14
    (pooled,) = compare_results(current, runs).comparisons
    assert pooled.baseline_ms == pytest.approx(55.0)
    assert pooled.noise_baseline == pytest.approx((60.0 - 50.0) / 55.0)  # IQR/median of the 15 pooled repeats
    assert pooled.status == "unchanged" and "3 runs pooled" in pooled.note
    # ... and a real slowdown still fails: +50% over the pooled median
    (slow,) = compare_results(_run([82.5] * 5), runs).comparisons
    assert slow.status == "regression"


def test_pooled_baseline_is_wrong_if_any_run_was_wrong() -> None:
    runs = [_run([1.0] * 5), _run([1.0] * 5, correct=False)]
    (c,) = compare_results(_run([1.0] * 5, correct=False), runs).comparisons
    assert c.status != "wrong"  # the baseline was not correct either: not a new failure


def test_check_takes_several_baselines(tmp_path: Path) -> None:
    paths = []
    for i, m in enumerate((50.0, 55.0, 60.0)):
        paths.append(tmp_path / f"b{i}.json")
        _run([m] * 5).save(paths[-1])
    _run([60.0] * 5).save(tmp_path / "cur.json")
    args = ["check", str(tmp_path / "cur.json")]
    assert RUNNER.invoke(app, [*args, "--baseline", str(paths[0])]).exit_code == 1
    res = RUNNER.invoke(app, [*args, *[x for p in paths for x in ("--baseline", str(p))]])
    assert res.exit_code == 0, res.output
    assert "PASS" in res.output


def test_baselines_from_different_devices_are_refused() -> None:
    other = BenchResult(cells=_run([1.0] * 5).cells, device="cpu:other", environment={},
                        regime={"device_type": "cpu"}, spec={}, created_utc="x")
    with pytest.raises(ArtifactError, match="different devices"):
        compare_results(_run([1.0] * 5), [_run([1.0] * 5), other])


# ------------------------------------------------------------------------------------- check-ab (paired)
def test_check_ab_calls_an_unmistakable_slowdown_a_regression(tmp_path: Path) -> None:
    out = tmp_path / "ab.json"
    res = RUNNER.invoke(app, ["check-ab", "fakes.bad_models:Fast", "fakes.bad_models:Slow", "--input-shape", "4",
                              "--rounds", "6", "--json", str(out)])
    assert res.exit_code == 1, res.output
    assert res.stderr.startswith("REGRESSION: fakes.bad_models:Slow / fakes.bad_models:Fast = x")
    doc = json.loads(out.read_text())
    assert doc["status"] == "regression" and len(doc["ratios"]) == 6 and min(doc["ratios"]) > 1.5


def test_check_ab_on_the_same_model_is_not_a_regression() -> None:
    # tolerance 50%: identical code would need a median ratio above 1.5 with all but the extreme rounds above 1
    res = RUNNER.invoke(app, ["check-ab", "fakes.bad_models:Fast", "fakes.bad_models:Fast", "--input-shape", "4",
                              "--rounds", "6", "--calls", "20", "--tolerance", "50%"])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith(("UNCHANGED", "IMPROVEMENT"))


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--rounds", "3"], 2),
        (["--device", "tpu"], 2),
        (["--calls", "0"], 2),
    ],
)
def test_check_ab_bad_options_are_one_line(args: list[str], code: int) -> None:
    res = RUNNER.invoke(app, ["check-ab", "fakes.bad_models:Fast", "fakes.bad_models:Fast", "--input-shape", "4",
                              *args])
    assert res.exit_code == code and len(res.stderr.strip().splitlines()) == 1, res.output


def test_check_ab_refuses_models_with_different_inputs() -> None:
    res = RUNNER.invoke(app, ["check-ab", "lenet", "mnist1d-cnn"])
    assert res.exit_code == 2 and "different inputs" in res.stderr
