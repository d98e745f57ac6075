"""Smaller things a newcomer meets in ``deploykit profile``: a missing --engine file is "file not found"."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import deploykit.backends.tensorrt as trt_pkg
import deploykit.backends.tensorrt.runtime as trt_runtime
from deploykit.cli.app import app

RUNNER = CliRunner()


def test_engine_without_tensorrt_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    for mod in (trt_pkg, trt_runtime):
        monkeypatch.setattr(mod, "tensorrt_status", lambda: "TensorRT is not installed", raising=False)
    res = RUNNER.invoke(app, ["profile", "lenet", "--engine", "nope.engine"])
    assert res.exit_code == 3 and "TensorRT is not installed" in res.output


def test_missing_engine_file_says_file_not_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for mod in (trt_pkg, trt_runtime):  # as if TensorRT were usable: the file is what is missing
        monkeypatch.setattr(mod, "tensorrt_status", lambda: None, raising=False)
    missing = tmp_path / "resnet18-fp16.engine"
    res = RUNNER.invoke(app, ["profile", "lenet", "--engine", str(missing)])
    assert res.exit_code == 2, res.output
    assert f"--engine: file not found: {missing}" in " ".join(res.output.split())
    assert "manifest" not in res.output
