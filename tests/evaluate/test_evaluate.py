"""Evaluation: metrics against hand-computed values, ONNX Runtime equal to eager with the same trained_m1d weights
on real test data, the rendered table, and the CLI's exit codes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from deploykit.cli.app import app
from deploykit.evaluate import Evaluation, evaluate_model, evaluate_onnx, logit_metrics
from deploykit.train import TrainOptions, train_model

NO_TRT = "TensorRT is not installed (pip install 'deploykit[tensorrt]')"


@pytest.fixture(autouse=True)
def no_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Behave as on a machine without TensorRT, whatever this one has."""
    import deploykit.backends.tensorrt.runtime as trt_mod

    monkeypatch.setattr(trt_mod, "tensorrt_status", lambda: NO_TRT)


def test_metrics_match_hand_computed_values() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 0.5]])
    ref = torch.tensor([[1.0, 2.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 1.0]])
    labels = torch.tensor([0, 2, 0])
    m = logit_metrics(logits, labels, ref)
    assert m.samples == 3
    assert m.top1 == pytest.approx(2 / 3)  # predictions 0, 1, 0 against labels 0, 2, 0
    assert m.top5 is None  # 3 classes: no top-5
    assert m.agreement == pytest.approx(2 / 3)  # eager predicts 1, 1, 0
    assert m.max_abs_error == pytest.approx(1.0)
    assert m.mean_abs_error == pytest.approx(2.5 / 9)
    cos = [4 / 5, 1.0, 1.5 / math.sqrt(1.25 * 2)]
    assert m.cosine_mean == pytest.approx(sum(cos) / 3)
    assert m.cosine_min == pytest.approx(0.8)
    assert logit_metrics(ref, labels, ref).agreement == 1.0 and logit_metrics(ref, labels, ref).max_abs_error == 0.0


def test_top5_and_non_finite_samples() -> None:
    logits = torch.tensor([[0.0, 1, 2, 3, 4, 5, 6], [6.0, 5, 4, 3, 2, 1, 0], [float("nan"), 0, 0, 0, 0, 0, 0]])
    labels = torch.tensor([0, 0, 1])
    m = logit_metrics(logits, labels, torch.zeros(3, 7) + torch.arange(7.0))
    assert m.top1 == pytest.approx(1 / 3)  # only sample 1 predicts class 0; the NaN sample counts as wrong
    assert m.top5 == pytest.approx(1 / 3)  # sample 0: class 0 is last of 7; sample 2 (NaN) wrong
    assert m.agreement == pytest.approx(1 / 3)  # reference predicts 6 everywhere
    assert m.nonfinite_samples == 1 and m.max_abs_error == math.inf and m.cosine_min == 0.0
    const = logit_metrics(torch.zeros(3, 7), labels, torch.zeros(3, 7) + torch.arange(7.0))
    assert const.agreement == 0.0 and const.cosine_mean == 0.0  # a constant zero output agrees with nothing


def test_onnx_equals_eager_with_the_same_trained_weights_on_real_data(trained_m1d: Path, data_cache: Path, tmp_path: Path) -> None:
    ev = evaluate_model("mnist1d-cnn", "mnist1d", weights=trained_m1d, cache_dir=data_cache, onnx_dir=tmp_path)
    eager, fp32, fp16 = ev.row("eager fp32"), ev.row("onnx fp32"), ev.row("onnx fp16")
    assert ev.data["samples"] == 1000 and ev.data["split"] == "test"
    assert eager.metrics and fp32.metrics and fp16.metrics
    assert eager.metrics.top1 > 0.4
    assert fp32.metrics.agreement == 1.0 and fp32.metrics.top1 == eager.metrics.top1
    assert fp32.metrics.max_abs_error is not None and fp32.metrics.max_abs_error < 1e-3
    assert fp16.metrics.agreement is not None and fp16.metrics.agreement > 0.97
    assert any("CPUExecutionProvider ran" in n and "not fp16 arithmetic" in n for n in fp16.notes)
    assert ev.row("tensorrt").status == "skipped" and ev.row("tensorrt").reason == NO_TRT
    assert ev.weights is not None and ev.weights["source"] == str(trained_m1d)
    # the kept ONNX file's manifest names the weights it was exported with
    manifest = json.loads((tmp_path / "mnist1d-cnn-dynamic.onnx.json").read_text())
    assert manifest["model"]["weights"]["sha256"] == ev.weights["sha256"]
    # independently of evaluate: ONNX Runtime on the real test inputs gives eager's logits
    from deploykit.backends.ort import OrtRunner
    from deploykit.data import load_data
    from deploykit.models import create_model

    model, _ = create_model("mnist1d-cnn", device="cpu", weights=trained_m1d)
    test = load_data("mnist1d", (1, 40), cache_dir=data_cache).test
    with OrtRunner(tmp_path / "mnist1d-cnn-dynamic.onnx") as r, torch.no_grad():
        ort_out = r.infer(test.x.contiguous())
        torch.testing.assert_close(ort_out, model(test.x), rtol=1e-4, atol=1e-4 * float(model(test.x).abs().max()))
    assert Evaluation.from_dict(json.loads(json.dumps(ev.to_dict()))).to_dict() == ev.to_dict()


def test_random_weights_are_flagged_and_other_weights_disagree(trained_m1d: Path, data_cache: Path, tmp_path: Path) -> None:
    ev = evaluate_model("mnist1d-cnn", "mnist1d", cache_dir=data_cache, limit=200, precisions=["fp32"], tensorrt=False)
    assert ev.weights is None and any("random weights" in n for n in ev.notes)
    # an ONNX file of *other* weights, evaluated against the trained_m1d model: its decisions differ
    other = tmp_path / "other"
    evaluate_model("mnist1d-cnn", "mnist1d", cache_dir=data_cache, limit=10, precisions=["fp32"], tensorrt=False, onnx_dir=other)
    mixed = evaluate_model("mnist1d-cnn", "mnist1d", weights=trained_m1d, cache_dir=data_cache, limit=200, tensorrt=False,
                           onnx_files=[other / "mnist1d-cnn-dynamic.onnx"])
    row = mixed.rows[1]
    assert row.label == "onnx fp32 (mnist1d-cnn-dynamic.onnx)" and row.metrics is not None
    assert row.metrics.agreement is not None and row.metrics.agreement < 0.5


def test_evaluate_an_onnx_file_with_and_without_weights(trained_m1d: Path, data_cache: Path, tmp_path: Path) -> None:
    evaluate_model("mnist1d-cnn", "mnist1d", weights=trained_m1d, cache_dir=data_cache, limit=10, precisions=["fp16"],
                   tensorrt=False, onnx_dir=tmp_path)
    f = tmp_path / "mnist1d-cnn-fp16-dynamic.onnx"
    alone = evaluate_onnx(f, "mnist1d", cache_dir=data_cache)
    assert alone.reference is None and alone.rows[0].metrics is not None
    assert alone.rows[0].metrics.agreement is None and alone.rows[0].precision == "fp16"
    assert "no eager reference" in alone.notes[0]
    paired = evaluate_onnx(f, "mnist1d", weights=trained_m1d, cache_dir=data_cache)
    assert [r.label for r in paired.rows] == ["eager fp32", "onnx fp16 (mnist1d-cnn-fp16-dynamic.onnx)"]
    assert paired.rows[1].metrics is not None and paired.rows[1].metrics.top1 == alone.rows[0].metrics.top1


def test_lenet_on_digits(tmp_path: Path) -> None:
    out = tmp_path / "lenet.safetensors"
    train_model("lenet", "digits", TrainOptions(epochs=2, lr=1e-3, batch_size=64, threads=1), output=out)
    ev = evaluate_model("lenet", "digits", weights=out, precisions=["fp32"], tensorrt=False)
    assert ev.data["samples"] == 359 and ev.data["sample_shape"] == [1, 28, 28]
    assert ev.row("onnx fp32").metrics is not None and ev.row("onnx fp32").metrics.agreement == 1.0


def _cli(*args: str):
    return CliRunner().invoke(app, ["evaluate", *args])


def test_cli_table_markdown_json(trained_m1d: Path, data_cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DEPLOYKIT_CACHE_DIR", str(data_cache.parent / "cli"))
    res = _cli("mnist1d-cnn", "--weights", str(trained_m1d), "--data", "mnist1d", "--limit", "100")
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "mnist1d-cnn on mnist1d test[:100]: 100 samples" in text
    assert "eager fp32" in text and "reference" in text and "onnx fp32" in text and "onnx fp16" in text
    assert f"tensorrt: skipped: {NO_TRT}" in text
    res = _cli("mnist1d-cnn", "-w", str(trained_m1d), "-d", "mnist1d", "--limit", "50", "--precision", "fp32", "-f", "markdown",
               "-o", str(tmp_path / "e.md"))
    assert res.exit_code == 0, res.output
    md = (tmp_path / "e.md").read_text()
    assert "| artifact | runtime | top-1 | top-5 | agreement | max \\|Δlogit\\| |" in md and "| onnx fp32 |" in md
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len({line.replace("\\|", "").count("|") for line in table}) == 1  # every row has the header's columns
    res = _cli("mnist1d-cnn", "-w", str(trained_m1d), "-d", "mnist1d", "--limit", "50", "--precision", "fp32", "-f", "json")
    assert res.exit_code == 0
    assert json.loads(res.stdout)["schema"] == "deploykit.evaluation"


def test_cli_exit_codes(trained_m1d: Path, data_cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DEPLOYKIT_CACHE_DIR", str(data_cache.parent / "cli"))
    base = ["mnist1d-cnn", "-w", str(trained_m1d), "-d", "mnist1d", "--limit", "50", "--precision", "fp32"]
    assert _cli(*base, "--min-agreement", "100").exit_code == 0  # fp32 agrees on every sample
    random_onnx = tmp_path / "r"
    evaluate_model("mnist1d-cnn", "mnist1d", cache_dir=data_cache, limit=10, precisions=["fp32"], tensorrt=False,
                   onnx_dir=random_onnx)
    res = _cli(*base, "--onnx", str(random_onnx / "mnist1d-cnn-dynamic.onnx"), "--min-agreement", "99")
    assert res.exit_code == 1 and "below 99% top-1 agreement with eager" in res.output
    for args, match in [
        ((*base[:3], "-d", "digits"), "digits are 8x8 grey images"),
        (("lenet", "-w", str(trained_m1d), "-d", "digits"), "do not fit lenet"),
        ((*base, "--precision", "int4"), "unknown precision int4"),
        ((*base, "--min-agreement", "120"), "is a percentage"),
        ((str(tmp_path / "nope.onnx"), "-d", "mnist1d"), "ONNX file not found"),
        ((*base, "--onnx", str(tmp_path / "nope.onnx")), "ONNX file not found"),
    ]:
        res = _cli(*args)
        assert res.exit_code == 2, (args, res.output)
        assert match in " ".join(res.output.split()) and "Traceback" not in res.output
    garbage = tmp_path / "g.onnx"
    garbage.write_bytes(b"not onnx")
    res = _cli(str(garbage), "-d", "mnist1d")
    assert res.exit_code == 2 and "cannot read ONNX file" in res.output


def test_shares_are_truncated_never_rounded_up_to_100() -> None:
    from deploykit.report.evaluate import fmt_share

    assert fmt_share(1.0) == "100%"
    assert fmt_share(9999 / 10000) == "99.9%"
    assert fmt_share(999 / 1000, 1000) == "99.9% (999/1000)"
    assert fmt_share(350 / 359) == "97.4%"  # 97.49%: truncated
    assert [fmt_share(k / 1000) for k in (941, 290, 570)] == ["94.1%", "29.0%", "57.0%"]
    assert fmt_share(None) == "—"
