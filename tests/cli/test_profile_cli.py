"""``deploykit profile`` through typer's CliRunner: the table, JSON totals, the memory sweep, ONNX files, and
bad input (a clear message and a non-zero exit, never a traceback)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from deploykit.cli.app import app
from deploykit.models import create_model


def _run(*args: str):
    return CliRunner().invoke(app, ["profile", *args])


def _lenet_params() -> int:
    model, _ = create_model("lenet")
    return sum(p.numel() for p in model.parameters())


def test_table_has_totals_and_findings() -> None:
    res = _run("lenet")
    assert res.exit_code == 0, res.output
    assert "total (" in res.output and "Findings" in res.output
    assert "fully connected layers hold" in res.output


def test_table_to_a_file_is_the_terminal_table_as_text(tmp_path) -> None:
    out = tmp_path / "lenet.txt"
    res = _run("lenet", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert f"wrote {out}" in res.output
    text = out.read_text()
    assert "total (" in text and "Findings" in text and "\x1b[" not in text


def test_json_totals_are_the_models_own_counts() -> None:
    res = _run("lenet", "--format", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    params = _lenet_params()
    assert doc["totals"]["params"] == params == 61706
    assert doc["totals"]["param_bytes"] == 4 * params
    # LeNet-5 (ReLU / max-pool form) conv + linear multiply-accumulates, by hand:
    macs = 6 * 28 * 28 * 25 + 16 * 10 * 10 * 6 * 25 + 400 * 120 + 120 * 84 + 84 * 10
    assert doc["totals"]["macs"] == macs
    assert "memory" not in doc


def test_batch_sweep_adds_memory_terms_that_scale_only_where_they_should() -> None:
    res = _run("lenet", "-b", "1,4", "--optimizer", "sgd-momentum", "--memory-target", "cpu", "--format", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["settings"]["batch_size"] == 1 and doc["input_shape"][0] == 1
    mem = doc["memory"]
    assert mem["batch_sizes"] == [1, 4] and mem["target"] == "cpu"
    terms = mem["terms"]
    pbytes = 4 * _lenet_params()
    assert terms["param_bytes"] == [pbytes, pbytes]
    assert terms["grad_bytes"] == [pbytes, pbytes]
    assert terms["optimizer_state_bytes"] == [pbytes, pbytes]  # one momentum buffer per parameter
    # input: fp32 images plus the int64 targets of the training step
    assert terms["input_bytes"] == [4 * 28 * 28, 4 * 4 * 28 * 28]
    assert [t["input_bytes"] for t in mem["training"]] == [4 * 28 * 28 + 8, 4 * (4 * 28 * 28 + 8)]
    assert terms["inference_peak_bytes"][1] > terms["inference_peak_bytes"][0]


def test_memory_table_in_the_terminal_output() -> None:
    res = _run("d2l-lenet", "--memory", "--optimizer", "none")
    assert res.exit_code == 0, res.output
    assert "Memory of d2l-lenet" in res.output and "inference only" in res.output
    assert "inference activation peak" in res.output and "not a memory figure" in res.output


def test_markdown_with_memory() -> None:
    res = _run("lenet", "-b", "1,2", "--format", "markdown", "--optimizer", "adam")
    assert res.exit_code == 0, res.output
    model, _ = create_model("lenet")
    # cuda target (the default): every parameter tensor is its own block, rounded up to 512 bytes
    pbytes = sum(-(-4 * p.numel() // 512) * 512 for p in model.parameters())
    pkb = f"{pbytes / 1e3:.2f} kB"
    assert f"| parameters | {pkb} | {pkb} | no |" in res.output
    # 4*28*28 = 3136 bytes -> one 512-byte-rounded block of 3584
    assert "| input batch | 3.58 kB | 6.66 kB | yes |" in res.output
    assert "training-step peak" in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("lenett",), "lenet"),  # the suggestion
        (("lenet", "-b", "0"), "positive integers"),
        (("lenet", "-b", "1,x"), "positive integers"),
        (("lenet", "--optimizer", "rmsprop", "--memory"), "unknown optimizer"),
        (("lenet", "--dtype", "fp8"), "unknown dtype"),
        (("lenet", "--format", "yaml"), "unknown format"),
        (("lenet", "--input-shape", "1x4x4"), "lenet"),
        (("missing.onnx",), "missing.onnx"),
    ],
)
def test_bad_input_is_a_message_not_a_traceback(args: tuple[str, ...], message: str) -> None:
    res = _run(*args)
    assert res.exit_code != 0
    assert "Traceback" not in res.output
    assert message in res.output


def test_onnx_file_profile_matches_the_pytorch_profile(tmp_path) -> None:
    from deploykit.export import export_onnx

    art = export_onnx("lenet", out_dir=tmp_path, seed=0, validate=False)
    res = _run(str(art.path), "--format", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["source"] == "onnx"
    torch_doc = json.loads(_run("lenet", "--format", "json").output)
    assert doc["totals"]["macs"] == torch_doc["totals"]["macs"]
    assert doc["totals"]["params"] == torch_doc["totals"]["params"]
    res = _run(str(art.path), "--memory")
    assert res.exit_code != 0 and "ONNX file" in res.output and "Traceback" not in res.output


def test_onnx_file_with_a_fixed_batch_is_profiled_at_its_own_batch(tmp_path) -> None:
    from deploykit.export import export_onnx

    art = export_onnx("lenet", out_dir=tmp_path, batch_size=3, seed=0, validate=False)
    res = _run(str(art.path), "--format", "json")  # no -b: the file's own batch, not the default 1
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["settings"]["batch_size"] == 3 and doc["settings"]["input_shape"] == [3, 1, 28, 28]
    assert doc["totals"]["macs"] == 3 * json.loads(_run("lenet", "--format", "json").output)["totals"]["macs"]
    res = _run(str(art.path), "-b", "2")
    assert res.exit_code == 2 and "fixed batch of 3" in res.output
