"""INT8 post-training quantization: the Q/DQ graph is what TensorRT takes (int8, zero point 0, per-channel symmetric
weights, fp32 bias), calibration refuses anything but real held-out-disjoint data, and the accuracy gate fails a
calibration measured to be broken (one sample, minmax) while passing a proper one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from deploykit.errors import InvalidInput, ValidationError
from deploykit.export import export_module
from deploykit.export.int8 import (
    DEFAULT_MAX_ACCURACY_DROP,
    Int8Options,
    calibration_splits,
    check_overlap,
    qdq_summary,
    quantize_artifact,
)
from deploykit.models import create_model


@pytest.fixture(scope="module")
def fp32(trained_m1d: Path, data_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    module, spec = create_model("mnist1d-cnn", device="cpu", weights=trained_m1d)
    art = export_module(module, spec, out_dir=tmp_path_factory.mktemp("onnx"), dynamic_batch=True)
    calib, test = calibration_splits("mnist1d", spec, cache_dir=data_cache)
    return module, art, calib, test


def test_qdq_graph_is_what_tensorrt_takes(fp32, tmp_path: Path) -> None:
    module, art, calib, test = fp32
    res = quantize_artifact(art, module, calib, test, Int8Options(samples=256), out_dir=tmp_path)
    path = res.artifact.path
    assert path.name == "mnist1d-cnn-int8-dynamic.onnx" and path.is_file()
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    compute = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm")]
    assert len(compute) == 4  # three Conv1d and the Linear: every one quantized
    for n in compute:
        x_dq, w_dq = producers[n.input[0]], producers[n.input[1]]
        assert x_dq.op_type == w_dq.op_type == "DequantizeLinear"
        w = inits[w_dq.input[0]]
        assert w.data_type == onnx.TensorProto.INT8
        scales = numpy_helper.to_array(inits[w_dq.input[1]])
        out_channels = w.dims[0]
        assert scales.shape == (out_channels,)  # per channel
        wq = numpy_helper.to_array(w)
        assert wq.min() >= -127 and wq.max() <= 127  # symmetric: -128 unused
        assert numpy_helper.to_array(inits[x_dq.input[1]]).shape == ()  # activations per tensor
        # the bias stays fp32 (TensorRT takes no int32 DequantizeLinear)
        if len(n.input) > 2:
            assert inits[n.input[2]].data_type == onnx.TensorProto.FLOAT
    zps = [inits[n.input[2]] for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert zps and all(z.data_type == onnx.TensorProto.INT8 and not numpy_helper.to_array(z).any() for z in zps)
    s = qdq_summary(path)
    assert s["quantized_ops"] == {"Conv": 3, "Gemm": 1} and s["float_ops"] == {}
    assert s["zero_points_int8_zero"] and s["weights_per_channel"] and s["tensorrt_compatible"]
    assert res.verdict == "passed"


def test_manifest_records_calibration_data_ops_and_accuracy(fp32, tmp_path: Path) -> None:
    module, art, calib, test = fp32
    res = quantize_artifact(art, module, calib, test, Int8Options(method="entropy", samples=300), out_dir=tmp_path)
    m = json.loads(res.artifact.manifest_path.read_text())
    assert m["precision"] == "int8" and m["file"] == res.artifact.path.name
    q = m["quantization"]
    assert q["method"] == "entropy" and q["samples"] == 300 and q["format"] == "QDQ"
    assert q["preprocess"]["status"] == "done"
    assert q["data"]["name"] == "mnist1d" and q["data"]["split"] == "train[:300]"
    assert q["data"]["sha256"] == calib.subset(300).sha256
    assert q["evaluation_data"]["split"] == "test" and q["evaluation_data"]["sha256"] == test.sha256
    assert q["ops"]["quantized_ops"] == {"Conv": 3, "Gemm": 1}
    assert q["extra_options"]["ActivationSymmetric"] and q["extra_options"]["QuantizeBias"] is False
    v = m["validation"]
    assert v["status"] == "passed" and v["passed"] is True
    assert v["max_accuracy_drop_points"] == DEFAULT_MAX_ACCURACY_DROP
    assert v["accuracy_drop_points"] == pytest.approx((v["fp32_top1"] - v["int8"]["top1"]) * 100)
    assert v["int8"]["samples"] == len(test) and 0.0 < v["int8"]["agreement"] <= 1.0
    assert v["onnx_fp32"]["agreement"] == 1.0
    assert m["source"]["sha256"] == art.manifest["sha256"]
    from deploykit.export.onnx import load_onnx_artifact

    assert load_onnx_artifact(res.artifact.path).manifest["sha256"] == m["sha256"]


def test_gate_fails_a_calibration_measured_to_be_broken(fp32, tmp_path: Path) -> None:
    module, art, calib, test = fp32
    # measure first: one calibration sample with minmax clips most activations of this model
    loose = quantize_artifact(art, module, calib, test, Int8Options(samples=1, max_accuracy_drop=100), out_dir=tmp_path / "m")
    assert loose.accuracy_drop_points > 5.0
    # and a proper calibration of the same model stays within the default gate
    good = quantize_artifact(art, module, calib, test, Int8Options(samples=512), out_dir=tmp_path / "g")
    assert good.accuracy_drop_points <= DEFAULT_MAX_ACCURACY_DROP
    with pytest.raises(ValidationError, match=r"INT8 accuracy drop \d+\.\d+ points > allowed 1 "):
        quantize_artifact(art, module, calib, test, Int8Options(samples=1), out_dir=tmp_path)
    assert not (tmp_path / "mnist1d-cnn-int8-dynamic.onnx").exists()
    failed = tmp_path / "mnist1d-cnn-int8-dynamic.failed.onnx"
    assert failed.is_file()
    m = json.loads((tmp_path / "mnist1d-cnn-int8-dynamic.failed.onnx.json").read_text())
    assert m["validation"]["status"] == "failed" and m["validation"]["passed"] is False
    assert m["validation"]["accuracy_drop_points"] == pytest.approx(loose.accuracy_drop_points)
    from deploykit.errors import ArtifactError
    from deploykit.export.onnx import load_onnx_artifact

    with pytest.raises(ArtifactError):
        load_onnx_artifact(failed)


def test_calibration_on_the_evaluation_data_is_refused(fp32, tmp_path: Path) -> None:
    module, art, calib, test = fp32
    with pytest.raises(InvalidInput, match="is the evaluation data"):
        quantize_artifact(art, module, test, test, out_dir=tmp_path)
    mixed = calib.subset(100)
    from deploykit.data.base import LabelledData

    overlapping = LabelledData("mnist1d", "test+train", torch.cat([test.x, mixed.x[:7]]),
                               torch.cat([test.y, mixed.y[:7]]), 10, "", "")
    assert check_overlap(mixed, overlapping) == 7
    with pytest.raises(InvalidInput, match="shares 7 of 1007 samples"):
        quantize_artifact(art, module, mixed, overlapping, out_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written
    forced = quantize_artifact(art, module, test, test, Int8Options(samples=64, allow_overlap=True, max_accuracy_drop=100),
                               out_dir=tmp_path)
    assert "forced" in forced.artifact.manifest["validation"]["validated"]


def test_random_inputs_and_bad_options_are_refused(fp32, tmp_path: Path) -> None:
    module, art, _calib, test = fp32
    with pytest.raises(InvalidInput, match="never random"):
        quantize_artifact(art, module, torch.randn(64, 1, 40), test, out_dir=tmp_path)  # type: ignore[arg-type]
    for kw, msg in [({"max_accuracy_drop": -0.5}, "percentage points"), ({"method": "kl"}, "unknown calibration"),
                    ({"samples": 0}, "at least one sample"), ({"max_accuracy_drop": float("nan")}, "percentage points")]:
        with pytest.raises(InvalidInput, match=msg):
            Int8Options(**kw)


def test_random_weights_give_an_inconclusive_verdict(data_cache: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    module, spec = create_model("mnist1d-cnn", device="cpu")
    art = export_module(module, spec, out_dir=tmp_path)
    calib, test = calibration_splits("mnist1d", spec, cache_dir=data_cache)
    res = quantize_artifact(art, module, calib, test.subset(200), Int8Options(samples=64, max_accuracy_drop=100),
                            trained=False)
    assert res.verdict == "inconclusive" and res.artifact.manifest["validation"]["passed"] is None
    assert res.artifact.path.name == "mnist1d-cnn-int8.onnx"  # fixed batch 1: calibrated one sample at a time
    assert res.calibration["batch"] == 1 and res.calibration["samples"] == 64
    assert np.isfinite(res.accuracy_drop_points)


# ------------------------------------------------------------------------------------------------ CLI
def _export(*args: str):
    from typer.testing import CliRunner

    from deploykit.cli.app import app

    return CliRunner().invoke(app, ["export", "mnist1d-cnn", "--format", "onnx", *args])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--int8",), "--int8 needs real calibration data"),
        (("--calib-data", "mnist1d"), "--calib-data quantize to INT8: add --int8"),
        (("--int8", "--calib-data", "mnist1d", "--max-accuracy-drop", "-1"), "percentage points"),
        (("--int8", "--calib-data", "mnist1d", "--calib-method", "kl"), "unknown calibration method"),
        (("--int8", "--calib-data", "nowhere.npy"), "unsupported data file|not found"),
    ],
)
def test_cli_refuses_int8_without_real_data_in_one_line(args, message, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    if "nowhere.npy" in args:
        np.save(tmp_path / "nowhere.npy", np.zeros((4, 1, 40), np.float32))
    res = _export(*args, "-o", str(tmp_path / "out"))
    assert res.exit_code == 2, res.output
    import re

    assert re.search(message, res.output) and len(res.output.strip().splitlines()) == 1, res.output
    assert not (tmp_path / "out").exists()


def test_cli_int8_passes_and_fails_the_gate(trained_m1d: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = _export("--weights", str(trained_m1d), "--int8", "--calib-data", "mnist1d", "--calib-samples", "256",
                  "--dynamic-batch", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert "INT8" in res.output and "validation passed" in res.output and "quantized Conv x3, Gemm x1" in res.output
    m = json.loads((out / "mnist1d-cnn-int8-dynamic.onnx.json").read_text())
    assert m["quantization"]["samples"] == 256 and m["validation"]["status"] == "passed"
    before = (out / "mnist1d-cnn-int8-dynamic.onnx").read_bytes()
    res = _export("--weights", str(trained_m1d), "--int8", "--calib-data", "mnist1d", "--calib-samples", "1",
                  "--dynamic-batch", "-o", str(out))
    assert res.exit_code == 1, res.output
    assert "INT8 accuracy drop" in res.output and "allowed 1" in res.output
    assert (out / "mnist1d-cnn-int8-dynamic.failed.onnx").is_file()
    assert (out / "mnist1d-cnn-int8-dynamic.onnx").read_bytes() == before  # the earlier good file is not destroyed


def test_evaluate_has_int8_and_dynamic_rows(trained_m1d: Path, data_cache: Path) -> None:
    from deploykit.evaluate import evaluate_model

    ev = evaluate_model("mnist1d-cnn", "mnist1d", weights=trained_m1d, precisions=["int8", "int8-dynamic"], tensorrt=False,
                        cache_dir=data_cache, limit=300)
    assert [r.label for r in ev.rows] == ["eager fp32", "onnx int8", "onnx int8-dynamic"]
    static, dynamic = ev.row("onnx int8"), ev.row("onnx int8-dynamic")
    assert static.status == dynamic.status == "ok"
    assert any("calibration on 512 samples of mnist1d (train[:512]" in n for n in static.notes)
    assert any("QLinearConv x3" in n for n in static.notes)
    assert any("dynamic quantization" in n for n in dynamic.notes)
    for r in (static, dynamic):
        assert r.metrics is not None and r.metrics.samples == 300 and r.metrics.agreement > 0.8
        assert r.metrics.max_abs_error > 0  # quantized: not bit-equal to fp32
    assert ev.data["split"] == "test[:300]"


def test_bench_int8_on_ort_carries_the_accuracy_delta(trained_m1d: Path, tmp_path: Path) -> None:
    from deploykit.bench.spec import BenchSpec
    from deploykit.bench.sweep import run_bench
    from deploykit.bench.timing import TimingOptions

    with pytest.raises(InvalidInput, match="never calibrates on random data"):
        BenchSpec(models=("mnist1d-cnn",), precisions=("int8",))
    spec = BenchSpec(models=("mnist1d-cnn",), backends=("eager", "ort"), precisions=("fp32", "int8"), batches=(4,),
                     weights=str(trained_m1d), calib_data="mnist1d", cache_dir=str(tmp_path), threads=1,
                     timing=TimingOptions(iterations=5, repeats=3, warmup_seconds=0.5, cell_seconds=1.0))
    res = run_bench(spec)
    cells = {(c.backend, c.precision): c for c in res.cells}
    assert cells[("eager", "int8")].status == "skipped" and "Q/DQ" in (cells[("eager", "int8")].reason or "")
    q = cells[("ort", "int8")]
    assert q.status == "ok" and q.median_ms is not None and q.speedup_vs_eager is not None  # vs eager fp32
    assert q.correct  # real test inputs, within the int8 tolerance of eager fp32
    i = q.info
    assert i["calibration"]["split"] == "train[:512]" and i["evaluation"]["split"] == "test"
    assert i["accuracy_drop_points"] == pytest.approx((i["fp32_top1"] - i["int8_top1"]) * 100)
    assert i["int8_validation"] == "passed" and 0.8 < i["int8_agreement"] <= 1.0


def test_tensorrt_takes_the_qdq_graph_strongly_typed(fp32, tmp_path: Path, monkeypatch) -> None:
    """Written blind (no TensorRT here): the fake TensorRT 11 records the build of deploykit's own Q/DQ graph."""
    from fakes.fake_tensorrt import install_fake_tensorrt

    from deploykit.export.tensorrt import build_engine, inspect_onnx

    module, art, calib, test = fp32
    res = quantize_artifact(art, module, calib, test, Int8Options(samples=64, max_accuracy_drop=100), out_dir=tmp_path)
    info = inspect_onnx(res.artifact)
    assert info.has_qdq and info.graph_tag == "int8"
    monkeypatch.setenv("DEPLOYKIT_CACHE_DIR", str(tmp_path / "cache"))
    fake = install_fake_tensorrt(monkeypatch, "11.1.0.5")
    eng = build_engine(res.artifact, precision="int8", validate=False, out_path=tmp_path / "m.engine")
    assert eng.manifest["precision"]["path"] == "strong-typing"
    assert not any("set_flag" in c and "INT8" in c for c in fake.calls)
    q = eng.manifest["precision"]["quantization"]
    assert q["method"] == "minmax" and q["samples"] == 64 and q["sha256"] == res.artifact.manifest["sha256"]


def test_evaluate_skips_int8_when_nothing_is_held_out(trained_m1d: Path, tmp_path: Path) -> None:
    """A single-set .npz is evaluated whole: its 80% calibration part (about 160 samples) overlaps it, so int8 is skipped, not faked."""
    from deploykit.data import load_data
    from deploykit.evaluate import evaluate_model

    test = load_data("mnist1d", (1, 40), num_classes=10).test
    f = tmp_path / "one.npz"
    np.savez(f, x=test.x[:200].numpy(), y=test.y[:200].numpy())
    ev = evaluate_model("mnist1d-cnn", str(f), weights=trained_m1d, precisions=["int8"], tensorrt=False)
    row = ev.row("onnx int8")
    assert row.status == "skipped" and "of 200 samples with the evaluated data" in row.reason
