"""``deploykit profile`` / ``export`` with integer inputs, models that need the CPU, and the notes that say so."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deploykit.cli.app import app

NETS = '''
import torch
from torch import nn


class Tokens(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 8)
        self.dec = nn.Linear(8, 50)

    def forward(self, x):
        return self.dec(self.emb(x))


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.big = nn.Linear(8, 8)

    def forward(self, x):
        return self.big(x) if x.abs().sum() > 0 else x
'''


@pytest.fixture
def nets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    (tmp_path / "dk_cli_nets.py").write_text(textwrap.dedent(NETS))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "dk_cli_nets", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield "dk_cli_nets"
    sys.modules.pop("dk_cli_nets", None)


def _run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


def test_token_model_with_integer_inputs(nets: str) -> None:
    res = _run("profile", f"{nets}:Tokens", "--input-shape", "7", "--input-dtype", "int64", "-f", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    # 7 int64 ids gathered from the table (no arithmetic), then 7 x 8 x 50 = 2800 MACs, 5600 + 350 bias adds
    assert (doc["totals"]["macs"], doc["totals"]["flops"], doc["totals"]["params"]) == (2800, 5950, 850)
    assert doc["op_categories"]["embedding"] == "no arithmetic"
    assert doc["settings"]["inputs"] == {"dtype": "int64", "range": None, "seed": 0}
    assert doc["notes"] == [] and "note:" not in res.output
    res = _run("profile", f"{nets}:Tokens", "--input-shape", "7", "--input-dtype", "int64", "--input-range", "0,50",
               "--trace-device", "cpu", "-f", "json")
    assert res.exit_code == 0, res.output
    assert "note: traced on cpu with real tensors; input: int64 uniform in [0, 50) (seed 0)" in res.output
    assert json.loads(res.stdout)["totals"]["macs"] == 2800


def test_data_dependent_model_falls_back_to_the_cpu_with_one_note(nets: str) -> None:
    res = _run("profile", f"{nets}:Branchy", "--input-shape", "8")
    assert res.exit_code == 0, res.output
    notes = [line for line in res.output.splitlines() if line.startswith("note:")]
    assert notes == [f"note: {nets}:Branchy cannot be traced on the meta device (RuntimeError: Tensor.item() cannot "
                     "be called on meta tensors): built and traced on the CPU with real tensors; input: standard "
                     "normal float32 (seed 0)"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("lenet", "--input-range", "0,5"), "--input-range applies to integer inputs"),
        (("lenet", "--input-dtype", "int8"), "unknown input dtype 'int8'"),
        (("lenet", "--input-dtype", "int64", "--input-range", "9,3"), "LO < HI"),
        (("lenet", "--convention", "thop"), "unknown convention"),
    ],
)
def test_bad_input_options(args: tuple[str, ...], message: str) -> None:
    res = _run("profile", *args)
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output


def test_export_validates_a_token_model_on_valid_ids(nets: str, tmp_path: Path) -> None:
    res = _run("export", f"{nets}:Tokens", "--input-shape", "7", "--input-dtype", "int64", "--format", "onnx",
               "--device", "cpu", "-o", str(tmp_path / "out"))
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "out" / f"{nets}-Tokens.onnx.json").read_text())
    assert manifest["validation"]["passed"] is True
    assert manifest["inputs"][0]["dtype"] == "int64"
    assert manifest["model"]["inputs"] == {"dtype": "int64", "range": [0, 50], "seed": 0}
    # the ONNX file's profile: an integer-input graph, the same MACs; its own types, so no --input-dtype
    onnx_file = str(tmp_path / "out" / f"{nets}-Tokens.onnx")
    res = _run("profile", onnx_file, "-f", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["totals"]["macs"] == 2800
    res = _run("profile", onnx_file, "--input-dtype", "int64")
    assert res.exit_code == 2 and "need the PyTorch model" in res.output
