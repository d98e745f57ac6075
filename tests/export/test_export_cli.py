"""``deploykit export`` through typer's CliRunner: success, bad input, validation failure, the TensorRT line."""

from __future__ import annotations

import json
import textwrap

import pytest
from typer.testing import CliRunner

from deploykit.cli.app import app
from deploykit.export import load_onnx_artifact

NO_TRT = "TensorRT is not installed (pip install 'deploykit[tensorrt]')"


@pytest.fixture
def no_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Behave as on a machine without TensorRT, whatever this one has."""
    import deploykit.backends.tensorrt.runtime as trt_mod

    monkeypatch.setattr(trt_mod, "tensorrt_status", lambda: NO_TRT)


def _run(*args: str):
    return CliRunner().invoke(app, ["export", *args])


def test_export_writes_validated_onnx_and_says_engine_skipped(tmp_path, no_tensorrt) -> None:
    res = _run("lenet", "--out", str(tmp_path), "--device", "cpu")
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())  # rich wraps long lines
    onnx_path = tmp_path / "lenet.onnx"
    assert f"ONNX {onnx_path}" in out and f"manifest {onnx_path}.json" in out
    assert "validation passed on CPUExecutionProvider (cpu), 3 random batches of 1: max abs error" in out
    assert f"TensorRT engine skipped: {NO_TRT}" in out
    art = load_onnx_artifact(onnx_path)
    assert art.manifest["model"]["weight_seed"] == 0 and art.manifest["validation"]["passed"] is True
    v = art.manifest["validation"]
    assert f"max abs error {v['max_abs_error']:.3g}" in out


def test_explicit_trt_format_without_tensorrt_fails_after_writing_onnx(tmp_path, no_tensorrt) -> None:
    res = _run(
        "mnist1d-cnn", "--out", str(tmp_path), "--format", "trt", "--dynamic-batch", "--max-batch", "16"
    )
    assert res.exit_code == 3, res.output
    assert f"TensorRT engine skipped: {NO_TRT}" in " ".join(res.output.split())
    assert load_onnx_artifact(tmp_path / "mnist1d-cnn-dynamic.onnx").manifest["batch"]["dynamic"] is True


def test_a_batch_range_implies_a_dynamic_batch(tmp_path, no_tensorrt) -> None:
    res = _run("mnist1d-cnn", "--out", str(tmp_path), "--max-batch", "16")
    assert res.exit_code == 0, res.output
    assert load_onnx_artifact(tmp_path / "mnist1d-cnn-dynamic.onnx").manifest["batch"]["dynamic"] is True


def test_onnx_only_format_prints_no_tensorrt_line(tmp_path, no_tensorrt) -> None:
    res = _run("mnist1d-cnn", "--out", str(tmp_path), "--format", "onnx", "--fp16", "--batch-size", "2")
    assert res.exit_code == 0, res.output
    assert "TensorRT" not in res.output
    m = json.loads((tmp_path / "mnist1d-cnn-fp16-b2.onnx.json").read_text())
    assert m["precision"] == "fp16" and m["inputs"][0]["shape"] == [2, 1, 40]
    assert "not validated here" in res.output or m["validation"]["not_validated"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-model"], "unknown model"),
        (["lenet", "--fp16", "--bf16"], "choose one of"),
        (["lenet", "--batch-size", "2", "--dynamic-batch"], "choose one"),
        (["lenet", "--batch-size", "2", "--max-batch", "8"], "choose one"),
        (["lenet", "--format", "onnx", "--bf16"], "add trt to --format"),
        (["lenet", "--int8"], "--int8 needs real calibration data"),
        (["lenet", "--format", "tflite"], "unknown format"),
        (["lenet", "--opset", "99"], "opset"),
        (["lenet", "--exporter", "jit"], "exporter"),
        (["lenet", "--image-size", "2"], "cannot take input"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, args: list[str], message: str) -> None:
    res = _run(*args, "--out", str(tmp_path))
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert not list(tmp_path.glob("*.onnx"))


def test_validation_failure_exits_1_with_numbers(tmp_path, monkeypatch, no_tensorrt) -> None:
    (tmp_path / "dk_broken_model.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn

            class Broken(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(12, 3)

                def forward(self, x):
                    y = self.fc(x.flatten(1))
                    if torch.compiler.is_exporting() or torch.jit.is_tracing():
                        y = y + 1.0   # what a mistranslated layer looks like
                    return y
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    # --num-classes: create_model gives an import-path model 0 classes (and refuses them) without it
    res = _run("dk_broken_model:Broken", "--input-shape", "3x4", "--num-classes", "3", "--out", str(out))
    assert res.exit_code == 1, res.output
    text = " ".join(res.output.split())
    assert "validation failed" in text and "max abs error 1" in text
    assert "was not written" in text
    assert not (out / "dk_broken_model-Broken.onnx").exists()
    assert (out / "dk_broken_model-Broken.failed.onnx").exists()
