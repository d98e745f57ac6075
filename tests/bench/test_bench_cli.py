"""``deploykit bench`` and ``deploykit bench-summary`` through typer's CliRunner, on the CPU with a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deploykit.bench import load_results
from deploykit.cli.app import app

RUNNER = CliRunner()
# one thread: on a shared CPU other processes stall multi-threaded barriers
FAST = [
    "--iterations",
    "4",
    "--repeats",
    "3",
    "--warmup",
    "2",
    "--warmup-seconds",
    "0.2",
    "--cell-seconds",
    "3",
    "--threads",
    "1",
]


@pytest.fixture(scope="module")
def results_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cli")
    out = tmp / "lenet-cpu.json"
    res = RUNNER.invoke(
        app,
        [
            "bench",
            "lenet",
            "--device",
            "cpu",
            "--backend",
            "eager,channels-last,cuda-graph,ort",
            "--batch",
            "1,2",
            "--cache-dir",
            str(tmp / "cache"),
            "--output",
            str(out),
            *FAST,
        ],
        env={"COLUMNS": "200"},
    )
    assert res.exit_code == 0, res.output
    assert f"wrote {out}" in res.output
    assert "lenet fp32 b1: fastest correct =" in res.output
    assert "skipped: cuda-graph needs a CUDA device" in res.output
    return out


def test_bench_writes_a_loadable_result(results_file: Path) -> None:
    r = load_results(results_file)
    assert [(c.backend, c.batch, c.status) for c in r.cells] == [
        ("eager", 1, "ok"),
        ("channels-last", 1, "ok"),
        ("cuda-graph", 1, "skipped"),
        ("ort", 1, "ok"),
        ("eager", 2, "ok"),
        ("channels-last", 2, "ok"),
        ("cuda-graph", 2, "skipped"),
        ("ort", 2, "ok"),
    ]
    assert all(c.correct for c in r.cells if c.ok)
    ort = r.cell("lenet", "ort", "fp32", 2)
    assert ort is not None and ort.info["provider"] == "CPUExecutionProvider" and ort.info["threads"] == 1
    assert r.spec["timing"]["iterations"] == 4
    assert all(c.timing is not None and c.timing.n_repeats == 3 for c in r.cells if c.ok)


def test_check_passes_an_identical_run(results_file: Path) -> None:
    res = RUNNER.invoke(app, ["check", str(results_file), "--baseline", str(results_file)])
    assert res.exit_code == 0, res.output
    assert "PASS: 2 not run, 6 unchanged" in res.output  # skipped in both files: listed, never a failure


def test_bench_summary_writes_markdown_and_plot(results_file: Path, tmp_path: Path) -> None:
    res = RUNNER.invoke(
        app, ["bench-summary", str(results_file), "--out", str(tmp_path), "--title", "lenet on CPU"]
    )
    assert res.exit_code == 0, res.output
    md = (tmp_path / "lenet-cpu.md").read_text()
    png = tmp_path / "lenet-cpu.png"
    assert md.startswith("# lenet on CPU\n")
    assert "![median latency](lenet-cpu.png)" in md
    assert "| lenet | 1 | fp32 |" in md
    assert "skipped: cuda-graph needs a CUDA device" in md
    # the command that re-runs this sweep, rebuilt from the spec stored in the results file
    assert (
        "- re-run: `deploykit bench lenet --backend eager,channels-last,cuda-graph,ort --precision fp32 --batch 1,2"
        " --iterations 4 --repeats 3 --warmup 2 --warmup-seconds 0.2 --cell-seconds 3 --device cpu --seed 0"
        " --threads 1`"
    ) in md
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_default_output_under_benchmarks_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    res = RUNNER.invoke(app, ["bench", "mnist1d-cnn", "--device", "cpu", "--backend", "eager", *FAST])
    assert res.exit_code == 0, res.output
    files = list((tmp_path / "benchmarks" / "results").glob("bench-cpu-*.json"))
    assert len(files) == 1
    assert json.loads(files[0].read_text())["cells"][0]["model"] == "mnist1d-cnn"


def test_bench_from_a_suite_file(tmp_path: Path) -> None:
    suite = tmp_path / "tiny.json"
    suite.write_text(
        json.dumps(
            {
                "models": ["lenet"],
                "backends": ["eager"],
                "batches": [3],
                "device": "cpu",
                "timing": {"iterations": 3, "repeats": 3, "warmup_iters": 1, "warmup_seconds": 0.1},
            }
        )
    )
    out = tmp_path / "r.json"
    res = RUNNER.invoke(app, ["bench", "--suite", str(suite), "--output", str(out), "--no-save"])
    assert res.exit_code == 0, res.output
    assert not out.exists()  # --no-save wins
    res = RUNNER.invoke(app, ["bench", "--suite", str(suite), "--output", str(out), "--batch", "2"])
    assert res.exit_code == 0, res.output
    r = load_results(out)
    assert [c.batch for c in r.cells] == [2]  # the command line overrides the suite
    assert r.spec["name"] == "tiny"


def test_bench_errors_are_one_line(tmp_path: Path) -> None:
    res = RUNNER.invoke(app, ["bench", "lenett", "--device", "cpu", "--no-save"])
    assert res.exit_code == 2
    assert "unknown model 'lenett'" in res.output and "Traceback" not in res.output
    res = RUNNER.invoke(app, ["bench", "lenet", "--device", "cpu", "--backend", "tvm", "--no-save"])
    assert res.exit_code == 2 and "unknown backend(s) tvm" in res.output
    res = RUNNER.invoke(app, ["bench", "lenet", "--device", "cpu", "--batch", "one", "--no-save"])
    assert res.exit_code == 2 and "bad --batch" in res.output
    res = RUNNER.invoke(app, ["bench", "--no-save"])
    assert res.exit_code == 2 and "give at least one MODEL" in res.output


def test_bench_cuda_without_cuda_exits_3() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    res = RUNNER.invoke(app, ["bench", "lenet", "--device", "cuda", "--no-save"])
    assert res.exit_code == 3
    assert "no CUDA device" in res.output


def test_bench_help_documents_timing_and_defaults() -> None:
    res = RUNNER.invoke(app, ["bench", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    text = " ".join(res.output.split())
    assert "CUDA events on the stream doing the work" in text
    assert "noise = IQR/median across repeats" in text
    assert "host-device transfers are not included" in text


def test_reproduce_command_only_for_a_single_sweep() -> None:
    from deploykit.report.bench import reproduce_command

    assert reproduce_command({"merged_from": [{"models": ["lenet"]}]}) is None
    assert reproduce_command({}) is None
    spec = {"models": ["my.mod:Net"], "device": "cpu", "input_shape": [3, 32, 32], "timing": {}}
    assert reproduce_command(spec) == "deploykit bench my.mod:Net --device cpu --input-shape 3x32x32"
