"""TensorRT runner, engine inspector info and per-layer engine timing (deploykit.backends.tensorrt).

Tests driven by ``tests/fakes/fake_tensorrt.py`` use a FAKE TensorRT: they check deploykit's control flow
(profiler wiring, warm-up discarding, inspector parsing for both JSON schemas) and verify nothing about TensorRT.
Real TensorRT tests are marked ``trt`` and skip without TensorRT and a CUDA GPU.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from fakes.fake_tensorrt import install_fake_tensorrt, make_tiny_onnx

from deploykit.backends.tensorrt import (
    EngineLayerTimes,
    LayerTime,
    TensorRTRunner,
    _shapes_for,
    engine_layer_info,
    engine_layer_times,
    summarize_layer_samples,
)
from deploykit.errors import ArtifactError, BackendUnavailable, InvalidInput
from deploykit.export.tensorrt import IOTensor, ProfileShape, build_engine


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOYKIT_CACHE_DIR", str(tmp_path / "cache"))


# ============================================================================ logic without TensorRT (real)
def test_runner_needs_a_cuda_device():
    with pytest.raises(InvalidInput, match="CUDA device"):
        TensorRTRunner("m.engine", device="cpu")


def test_runner_without_cuda_is_unavailable(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    r = TensorRTRunner("m.engine")
    assert (r.name, r.info["cuda_graphs"], r.is_active) == ("trt", False, False)
    with pytest.raises(BackendUnavailable, match="CUDA GPU"):
        r.activate()
    with pytest.raises(InvalidInput, match="activate"):
        r.infer(torch.zeros(1))


def test_summarize_layer_samples_closed_form():
    samples = {"b": [3.0, 1.0, 2.0], "a": [0.5, 0.5, 2.0]}
    info = {"layers": [{"name": "a", "type": "CaskConvolution", "precision": "fp16", "tactic": "t1",
                        "onnx_nodes": ["/conv/Conv"]}]}
    rows = summarize_layer_samples(samples, ["a", "b"], info)
    assert [r.name for r in rows] == ["a", "b"]
    a, b = rows
    assert (a.median_ms, a.mean_ms, a.min_ms, a.max_ms) == (0.5, 1.0, 0.5, 2.0)
    assert (b.median_ms, b.mean_ms) == (2.0, 2.0)
    assert (a.layer_type, a.precision, a.tactic, a.onnx_nodes) == ("CaskConvolution", "fp16", "t1", ("/conv/Conv",))
    assert b.layer_type is None and b.onnx_nodes == ()
    assert LayerTime.from_dict(json.loads(json.dumps(a.to_dict()))) == a


def test_shapes_for_batch_sizes():
    dyn = ProfileShape((1, 3, 8, 8), (4, 3, 8, 8), (8, 3, 8, 8))
    Ex = SimpleNamespace(inputs=[IOTensor("x", True, torch.float32, (-1, 3, 8, 8), dyn)])

    assert _shapes_for(Ex, None) == {"x": (4, 3, 8, 8)}
    assert _shapes_for(Ex, 8) == {"x": (8, 3, 8, 8)}
    with pytest.raises(InvalidInput, match="positive integer"):
        _shapes_for(Ex, 0)

    fixed = (2, 3, 8, 8)
    Fixed = SimpleNamespace(inputs=[IOTensor("x", True, torch.float32, fixed, ProfileShape(fixed, fixed, fixed))])

    with pytest.raises(InvalidInput, match="fixed batch of 2"):
        _shapes_for(Fixed, 4)


def test_layer_times_record_round_trip_and_schema():
    lt = LayerTime("conv", 0.2, 0.25, 0.1, 0.5, (0.1, 0.2, 0.5), "CaskConvolution", "fp16", "t", ("/c",))
    rec = EngineLayerTimes("m.engine", 1, 3, 1, (lt,), 0.2, "10.13.0.35", "fp16", {"schema": "10.x"}, {"python": "3"}, "now")
    d = json.loads(json.dumps(rec.to_dict()))
    assert EngineLayerTimes.from_dict(d) == rec
    with pytest.raises(ArtifactError, match="schema"):
        EngineLayerTimes.from_dict({**d, "schema": "x"})
    with pytest.raises(ArtifactError, match="newer"):
        EngineLayerTimes.from_dict({**d, "schema_version": 99})


# ======================================================== FAKE TensorRT: profiler wiring and inspector schemas
@pytest.mark.parametrize("version", ["10.13.0.35", "11.1.0.5"])
def test_fake_engine_layer_info_both_schemas(tmp_path, monkeypatch, version):
    install_fake_tensorrt(monkeypatch, version)
    art = build_engine(make_tiny_onnx(tmp_path / "t.onnx"), validate=False, max_batch=4)
    info = engine_layer_info(art.path, batch_size=2, device="cpu")
    assert info["schema"] == ("11.x" if version.startswith("11") else "10.x")
    assert info["tensorrt"] == version
    assert [x["name"] for x in info["io_tensors"]] == ["input", "logits"]
    conv = next(layer for layer in info["layers"] if layer["name"] == "conv1 + relu")
    assert conv["onnx_nodes"] == ["/conv1/Conv", "/relu/Relu"] and conv["precision"] == "fp32"
    assert info["precision_counts"] == {"fp32": 3}
    assert "raw" in info


def test_fake_engine_layer_times(tmp_path, monkeypatch):
    fake = install_fake_tensorrt(monkeypatch)
    art = build_engine(make_tiny_onnx(tmp_path / "t.onnx"), validate=False, max_batch=4)
    fake.calls.clear()
    rec = engine_layer_times(art.path, batch_size=4, runs=7, warmup_runs=2, device="cpu")
    assert fake.calls.count("context.execute_async_v3(0)") == 9
    assert [lt.name for lt in rec.layers] == ["conv1 + relu", "pool", "fc"]
    assert [len(lt.samples_ms) for lt in rec.layers] == [7, 7, 7]  # warm-up runs discarded
    assert [lt.median_ms for lt in rec.layers] == pytest.approx([0.1, 0.2, 0.3])
    assert rec.total_median_ms == pytest.approx(0.6)
    assert rec.layers[0].tactic == "sm90_xmma_fprop_fake" and rec.layers[2].onnx_nodes == ("/fc/Gemm",)
    assert (rec.batch_size, rec.runs, rec.tensorrt_version, rec.precision) == (4, 7, "10.13.0.35", "fp32")
    assert "raw" not in rec.engine_info
    assert EngineLayerTimes.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec
    with pytest.raises(InvalidInput, match="runs"):
        engine_layer_times(art.path, runs=0, device="cpu")


# ===================================================================== real TensorRT (skipped without it)
@pytest.fixture(scope="module")
def real_fp16_engine(tmp_path_factory):
    from deploykit.models import create_model

    tmp = tmp_path_factory.mktemp("trt")
    model, spec = create_model("resnet18", device="cpu", image_size=64, num_classes=10)
    half = _Half(model)
    path = tmp / "resnet18-fp16.onnx"
    torch.onnx.export(half, (torch.randn(spec.batch_shape(2)).half(),), path, dynamo=True, external_data=False,
                      dynamic_shapes=({0: torch.export.Dim("batch")},))
    art = build_engine(path, precision="fp16", max_batch=8, reference_model=model)
    return art, model, spec


class _Half(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        import copy

        self.m = copy.deepcopy(m).half()

    def forward(self, x):
        return self.m(x)


@pytest.mark.trt
def test_trt_runner_matches_eager_and_cuda_graph_matches_runner(real_fp16_engine):
    art, model, spec = real_fp16_engine
    x = torch.randn(spec.batch_shape(4))
    ref = model.cuda().float()(x.cuda()).float()
    with TensorRTRunner(art.path) as r:
        assert r.input_dtype is torch.float16
        y = r.infer(r.prepare_input(x)).float()
    torch.testing.assert_close(y, ref, atol=5e-2, rtol=5e-2)
    with TensorRTRunner(art.path, cuda_graph=True) as g:
        xin = g.prepare_input(x)
        yg = g.infer(xin).float().clone()
        yg2 = g.infer(xin).float()
    torch.testing.assert_close(yg, y)
    torch.testing.assert_close(yg2, y)


@pytest.mark.trt
def test_trt_layer_times_and_info(real_fp16_engine):
    art, _, _ = real_fp16_engine
    rec = engine_layer_times(art.path, batch_size=2, runs=5)
    assert rec.layers and all(len(lt.samples_ms) == 5 for lt in rec.layers)
    assert all(lt.median_ms >= 0 for lt in rec.layers)
    info = engine_layer_info(art.path)
    assert info["schema"] in ("10.x", "11.x") and info["layers_touching"].get("fp16", 0) > 0
