"""benchmarks/gpu_session.sh on a machine without a GPU: the dry run lists slices that fit a device call, and a
missing precondition stops a slice before it starts with one line and exit 3, leaving nothing written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_session.sh"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHON": sys.executable, **(env or {})}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=300)


def test_dry_run_lists_every_slice_within_nine_minutes_headline_first(tmp_path: Path) -> None:
    r = run("--dry-run", "--out", str(tmp_path), "all")
    assert r.returncode == 0, r.stderr
    rows = [ln for ln in r.stdout.splitlines() if re.match(r"^\S+\s+~\d+ min  needs ", ln)]
    assert len(rows) >= 10
    minutes = {ln.split()[0]: int(re.search(r"~(\d+) min", ln).group(1)) for ln in rows}  # type: ignore[union-attr]
    assert all(0 < m <= 9 for m in minutes.values()), minutes
    first = rows[0]
    # the headline: eager vs the other backends for resnet18 at fp16, batch 1 and 64
    assert first.startswith("headline ") and "bench resnet18 " in first
    assert "--precision fp16" in first and "--batch 1,64" in first and "eager" in first and "ort" in first
    for ln in rows:  # every bench slice writes its own JSON into the folder given
        if " bench " in ln:
            assert f"--output {tmp_path}/{ln.split()[0]}.json" in ln
    # compile (max-autotune) cells are split per model, the long ones per batch
    assert {"compile-densenet121-b1", "compile-densenet121-b64", "compile-resnet50-b64"} <= set(minutes)
    assert not tmp_path.joinpath("headline.json").exists()


def test_unknown_slice_is_one_line_and_exit_2() -> None:
    r = run("--dry-run", "no-such-slice")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "unknown slice 'no-such-slice'" in r.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the no-GPU path")
def test_no_cuda_stops_before_anything_runs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = run("--out", str(out), "headline")
    assert r.returncode == 3
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "no CUDA device visible" in r.stderr
    assert not out.exists()


def test_ort_slices_need_the_cuda_provider(tmp_path: Path) -> None:
    # Pretend CUDA is visible (a sitecustomize patching torch.cuda.is_available); the CPU-only onnxruntime
    # installed here has no CUDAExecutionProvider: the ORT slice must stop there, not record skipped cells.
    site = tmp_path / "site"
    site.mkdir()
    site.joinpath("sitecustomize.py").write_text("import torch\ntorch.cuda.is_available = lambda: True\n")
    out = tmp_path / "out"
    r = run("--out", str(out), "ort-fp16-a", env={"PYTHONPATH": str(site)})
    assert r.returncode == 3, r.stderr
    assert "has no CUDAExecutionProvider" in r.stderr and "stage onnxruntime-gpu" in r.stderr
    assert not out.exists()
