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


def test_onnx_profile_counts_gemm_with_weights_as_fully_connected(tmp_path: Path) -> None:
    from deploykit.export.onnx import export_module
    from deploykit.models import create_model
    from deploykit.profile import get_device, roofline
    from deploykit.profile.findings import findings
    from deploykit.profile.onnx_graph import profile_onnx

    module, spec = create_model("lenet", device="cpu")
    art = export_module(module, spec, out_dir=tmp_path, name="lenet")
    prof = profile_onnx(art.path)
    f = findings(prof, roofline(prof, get_device("h100")))
    fc = sum(m.weight.numel() + m.bias.numel() for m in (module.fc1, module.fc2, module.fc3))
    assert f.fc_params == fc == 59134  # the three Gemm nodes and their initializers
    res = RUNNER.invoke(app, ["profile", str(art.path)])
    assert res.exit_code == 0, res.output
    assert "fully connected layers hold 59.13 K parameters" in res.output


def test_tiny_times_keep_significant_digits() -> None:
    from deploykit.report.profile_tables import fmt_sig, fmt_time

    assert fmt_time(3.2e-8) == "32.0 ns" and fmt_time(1.24e-5) == "12.4 µs" and fmt_time(0.0361) == "36.1 ms"
    assert fmt_time(2.5) == "2.50 s" and fmt_sig(0.01234) == "0.0123" and fmt_sig(0) == "0"
    res = RUNNER.invoke(app, ["profile", "lenet"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "0.000 ms" not in text and " 0.0 µs" not in text
    assert "ns roofline floor" in text or "µs roofline floor" in text


TINY = '''import torch.nn as nn


class TinyCNN(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten())
'''


def test_a_python_file_path_is_a_model_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "mynet.py").write_text(TINY)
    monkeypatch.chdir(tmp_path)
    res = RUNNER.invoke(app, ["profile", "nets/mynet.py:TinyCNN", "--input-shape", "3x8x8", "-f", "json"])
    assert res.exit_code == 0, res.output
    import json

    assert json.loads(res.stdout)["totals"]["params"] == 3 * 4 * 9 + 4
    res = RUNNER.invoke(app, ["profile", "nets/nope.py:TinyCNN", "--input-shape", "3x8x8"])
    assert res.exit_code == 2 and "file not found: nets/nope.py" in " ".join(res.output.split())


def test_a_missing_module_says_what_is_on_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = RUNNER.invoke(app, ["profile", "no_such_net_module:TinyCNN", "--input-shape", "3x8x8"])
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and "No module named 'no_such_net_module'" in text
    assert f"the current folder {tmp_path} is on the path" in text and "PYTHONPATH=DIR" in text
    assert "path/to/file.py:TinyCNN" in text and "Traceback" not in text


def test_plots_say_when_they_replace_a_file_and_compare_does_not_take_profile_names(tmp_path: Path) -> None:
    res = RUNNER.invoke(app, ["profile", "lenet", "--plot", str(tmp_path), "-f", "json"])
    assert res.exit_code == 0 and "replaced" not in res.output
    res = RUNNER.invoke(app, ["compare", "lenet", "d2l-lenet", "--plot", str(tmp_path), "-f", "json"])
    assert res.exit_code == 0 and "replaced" not in res.output  # compare-<model>-layers.png: its own names
    assert (tmp_path / "lenet-layers.png").is_file() and (tmp_path / "compare-lenet-layers.png").is_file()
    res = RUNNER.invoke(app, ["profile", "lenet", "--plot", str(tmp_path), "-f", "json"])
    assert f"wrote {tmp_path / 'lenet-layers.png'} (replaced the earlier file)" in " ".join(res.output.split())
