"""TensorRT engine building (deploykit.export.tensorrt).

Three kinds of tests, kept apart:
* logic that needs no TensorRT (arguments, ONNX facts, profile shapes, precision selection per version, INT8
  refusal, timing-cache keys, manifest compatibility, inspector parsing, output comparison) — real tests, CI;
* the build/run call order and the 10.x/11.x branches driven through ``tests/fakes/fake_tensorrt.py`` — a FAKE
  TensorRT: these check deploykit's own control flow only and verify nothing about TensorRT;
* real TensorRT builds, marked ``trt`` (skipped without TensorRT and a CUDA GPU).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from fakes.fake_tensorrt import fake_reference, install_fake_tensorrt, make_tiny_onnx

import deploykit.export.tensorrt as dt
from deploykit.errors import (
    ArtifactError,
    BackendUnavailable,
    ExportError,
    InvalidInput,
    ShapeError,
    ValidationError,
)
from deploykit.export.tensorrt import (
    INSTALL_HINT,
    PrecisionPlan,
    ProfileShape,
    TensorSpec,
    build_engine,
    check_engine_compatibility,
    derive_profile_shapes,
    dtype_from_format,
    engine_manifest_path,
    inspect_onnx,
    load_engine_manifest,
    parse_engine_information,
    parse_trt_version,
    select_precision_plan,
    timing_cache_key,
    torch_dtype_for,
    verify_engine_precision,
)


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOYKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def fp32_onnx(tmp_path):
    return make_tiny_onnx(tmp_path / "tiny.onnx")


@pytest.fixture
def fp16_onnx(tmp_path):
    return make_tiny_onnx(tmp_path / "tiny-fp16.onnx", dtype="float16")


class FakeModel(torch.nn.Module):
    """The eager reference for the fake engine (computes what the fake engine computes)."""

    def forward(self, x):
        return fake_reference(x)


# ============================================================================ logic without TensorRT (real)
def test_parse_trt_version():
    assert parse_trt_version("10.13.0.35") == (10, 13, 0)
    assert parse_trt_version("11.1") == (11, 1, 0)
    with pytest.raises(InvalidInput):
        parse_trt_version("ten")


def test_inspect_onnx_reads_graph_facts(fp32_onnx, fp16_onnx, tmp_path):
    a = inspect_onnx(fp32_onnx)
    assert a.inputs == (TensorSpec("input", ("N", 3, 8, 8), "float32"),)
    assert a.outputs == (TensorSpec("logits", ("N", 4), "float32"),)
    assert (a.precision, a.has_qdq, a.graph_tag) == ("fp32", False, "fp32")
    assert len(a.sha256) == 64
    b = inspect_onnx(str(fp16_onnx))
    assert (b.precision, b.inputs[0].dtype) == ("fp16", "float16")
    q = inspect_onnx(make_tiny_onnx(tmp_path / "q.onnx", qdq=True, batch=2))
    assert (q.has_qdq, q.graph_tag, q.inputs[0].dims) == (True, "int8", (2, 3, 8, 8))


def test_inspect_onnx_errors(tmp_path):
    with pytest.raises(ArtifactError, match="not found"):
        inspect_onnx(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a protobuf at all\xff" * 10)
    with pytest.raises(ArtifactError, match="cannot read"):
        inspect_onnx(bad)
    with pytest.raises(InvalidInput):
        inspect_onnx(42)


def test_profile_shapes_dynamic_defaults_and_options():
    x = [TensorSpec("x", ("batch", 3, 224, 224), "float32")]
    s = derive_profile_shapes(x)["x"]
    assert (s.min, s.opt, s.max) == ((1, 3, 224, 224), (8, 3, 224, 224), (32, 3, 224, 224))
    s = derive_profile_shapes(x, min_batch=2, opt_batch=4, max_batch=6)["x"]
    assert (s.min[0], s.opt[0], s.max[0]) == (2, 4, 6)
    s = derive_profile_shapes(x, max_batch=4)["x"]  # opt default 8 is clamped into [min, max]
    assert (s.min[0], s.opt[0], s.max[0]) == (1, 4, 4)
    s = derive_profile_shapes(x, opt_batch=64)["x"]  # max grows to hold opt
    assert (s.min[0], s.opt[0], s.max[0]) == (1, 64, 64)
    s = derive_profile_shapes(x, min_batch=16)["x"]
    assert (s.min[0], s.opt[0], s.max[0]) == (16, 16, 32)


def test_profile_shapes_refusals():
    x = [TensorSpec("x", ("batch", 3, 224, 224), "float32")]
    with pytest.raises(InvalidInput, match="min <= opt <= max"):
        derive_profile_shapes(x, min_batch=8, max_batch=4)
    with pytest.raises(InvalidInput, match="min <= opt <= max"):
        derive_profile_shapes(x, opt_batch=2, min_batch=4)
    for bad in (0, -1, 2.5, True, "4"):
        with pytest.raises(InvalidInput, match="positive integer"):
            derive_profile_shapes(x, max_batch=bad)
    with pytest.raises(InvalidInput, match="dynamic dimension 2"):
        derive_profile_shapes([TensorSpec("x", ("b", 3, "h", 224), "float32")])
    with pytest.raises(InvalidInput, match="scalar"):
        derive_profile_shapes([TensorSpec("x", (), "float32")])


def test_profile_shapes_fixed_batch():
    x = [TensorSpec("x", (4, 3, 32, 32), "float32")]
    s = derive_profile_shapes(x)["x"]
    assert s.min == s.opt == s.max == (4, 3, 32, 32)
    assert derive_profile_shapes(x, min_batch=4, max_batch=4)["x"].max == (4, 3, 32, 32)
    with pytest.raises(InvalidInput, match=r"fixed batch of 4.*max_batch=8.*--dynamic-batch"):
        derive_profile_shapes(x, max_batch=8)


@pytest.mark.parametrize("version", ["10.0.1", "10.8.0.43", "10.11.0", "10.12.0.36", "10.16.1", "11.0.0", "11.1.0.5"])
def test_precision_plan_strongly_typed_graph_routes(version):
    major = int(version.split(".")[0])
    p = select_precision_plan("fp16", version, onnx_precision="fp16", has_qdq=False)
    assert (p.path, p.strongly_typed, p.builder_flags, p.expect) == ("strong-typing", True, (), "fp16")
    p = select_precision_plan("bf16", version, onnx_precision="bf16", has_qdq=False)
    assert (p.path, p.builder_flags, p.expect) == ("strong-typing", (), "bf16")
    p = select_precision_plan("fp32", version, onnx_precision="fp32", has_qdq=False)
    assert (p.path, p.builder_flags, p.expect) == ("strong-typing", (), None)
    p = select_precision_plan("int8", version, onnx_precision="fp32", has_qdq=True)
    assert (p.path, p.strongly_typed, p.builder_flags, p.expect) == ("strong-typing", True, (), "int8")
    assert p.tensorrt_version[0] == major


@pytest.mark.parametrize(("version", "legacy"), [("10.0.1", True), ("10.8.0", True), ("10.11.9", True),
                                                 ("10.12.0", False), ("10.16.1", False), ("11.0.0", False)])
def test_precision_plan_fp16_from_fp32_graph_is_gated_on_version(version, legacy):
    if legacy:
        p = select_precision_plan("fp16", version, onnx_precision="fp32", has_qdq=False)
        assert (p.path, p.strongly_typed, p.builder_flags, p.expect) == ("weak-typing", False, ("FP16",), "fp16")
        p = select_precision_plan("bf16", version, onnx_precision="fp32", has_qdq=False)
        assert p.builder_flags == ("BF16",)
    else:
        expected = "removed in 11.0" if version.startswith("11") else "deprecated since TensorRT 10.12"
        with pytest.raises(InvalidInput, match=expected) as e:
            select_precision_plan("fp16", version, onnx_precision="fp32", has_qdq=False)
        assert "deploykit export MODEL --fp16" in str(e.value)
        with pytest.raises(InvalidInput, match="does not export yet") as e:
            select_precision_plan("bf16", version, onnx_precision="fp32", has_qdq=False)


def test_precision_plan_int8_routes():
    # one route on every version: a Q/DQ graph, strongly typed, no builder flag; no calibrator route anywhere
    for v in ("10.5.0", "10.16.0", "11.1.0"):
        with pytest.raises(InvalidInput, match=r"explicitly quantized \(Q/DQ\) ONNX.*--int8 --calib-data"):
            select_precision_plan("int8", v, onnx_precision="fp32", has_qdq=False)
        p = select_precision_plan("int8", v, onnx_precision="fp32", has_qdq=True)
        assert (p.path, p.strongly_typed, p.builder_flags, p.expect) == ("strong-typing", True, (), "int8")


def test_precision_plan_refusals():
    with pytest.raises(InvalidInput, match="unknown precision"):
        select_precision_plan("fp64", "10.13", onnx_precision="fp32", has_qdq=False)
    with pytest.raises(InvalidInput, match="graph is fp16"):
        select_precision_plan("fp32", "10.13", onnx_precision="fp16", has_qdq=False)
    with pytest.raises(InvalidInput, match="Q/DQ"):
        select_precision_plan("fp16", "11.1", onnx_precision="fp32", has_qdq=True)
    with pytest.raises(InvalidInput, match="cannot be built as bf16"):
        select_precision_plan("bf16", "11.1", onnx_precision="fp16", has_qdq=False)
    with pytest.raises(BackendUnavailable, match="too old"):
        select_precision_plan("fp32", "8.6.1", onnx_precision="fp32", has_qdq=False)
    assert select_precision_plan("FP16", (11, 1), onnx_precision="fp16", has_qdq=False).requested == "fp16"


def test_timing_cache_key_and_path(monkeypatch, tmp_path):
    key = timing_cache_key(gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0", cuda_version="13.0",
                           tensorrt_version="10.13.0.35")
    assert key == "NVIDIA_H100_80GB_HBM3-sm90-cuda13.0-trt10.13.0.35"
    other = timing_cache_key(gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0", cuda_version="13.0",
                             tensorrt_version="11.1.0.5")
    assert other != key
    assert timing_cache_key(gpu_name="A/B C", compute_capability="8.6", cuda_version=None, tensorrt_version="10.0") == \
        "A_B_C-sm86-cudaunknown-trt10.0"
    monkeypatch.setenv("DEPLOYKIT_CACHE_DIR", str(tmp_path / "c"))
    assert dt.default_timing_cache_path(key) == tmp_path / "c" / "tensorrt" / f"timing-{key}.cache"
    monkeypatch.delenv("DEPLOYKIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert dt.default_cache_dir() == tmp_path / "x" / "deploykit"


def _manifest(trt="10.13.0.35", gpu="NVIDIA H100 80GB HBM3", cc="9.0"):
    return {"engine_file": "m.engine", "tensorrt": {"version": trt}, "gpu": {"name": gpu, "compute_capability": cc}}


def test_engine_compatibility_names_both_sides():
    check_engine_compatibility(_manifest(), tensorrt_version="10.13.0.35", gpu_name="NVIDIA H100 80GB HBM3",
                               compute_capability="9.0")
    with pytest.raises(ArtifactError) as e:
        check_engine_compatibility(_manifest(), tensorrt_version="11.1.0.5", gpu_name="NVIDIA H100 80GB HBM3",
                                   compute_capability="9.0")
    assert "TensorRT 10.13.0.35" in str(e.value) and "TensorRT 11.1.0.5" in str(e.value)
    with pytest.raises(ArtifactError) as e:
        check_engine_compatibility(_manifest(), tensorrt_version="10.13.0.35", gpu_name="NVIDIA A100-SXM4-80GB",
                                   compute_capability="8.0")
    msg = str(e.value)
    assert "NVIDIA H100 80GB HBM3 (compute capability 9.0)" in msg and "NVIDIA A100-SXM4-80GB (compute capability 8.0)" in msg
    with pytest.raises(ArtifactError, match=r"TensorRT 10.13.0.36"):  # a different build number is a different version
        check_engine_compatibility(_manifest(), tensorrt_version="10.13.0.36", gpu_name="NVIDIA H100 80GB HBM3",
                                   compute_capability="9.0")
    with pytest.raises(ArtifactError, match="NVIDIA H100 PCIe"):  # same compute capability, another GPU model
        check_engine_compatibility(_manifest(), tensorrt_version="10.13.0.35", gpu_name="NVIDIA H100 PCIe",
                                   compute_capability="9.0")


def test_load_engine_manifest_file_checks(tmp_path):
    engine = tmp_path / "m.engine"
    with pytest.raises(ArtifactError, match="no manifest"):
        load_engine_manifest(engine, check=False)
    engine.write_bytes(b"plan")
    m = engine_manifest_path(engine)
    assert m.name == "m.engine.json"
    m.write_text("{not json")
    with pytest.raises(ArtifactError, match="cannot read"):
        load_engine_manifest(engine, check=False)
    m.write_text(json.dumps({"schema": "something-else"}))
    with pytest.raises(ArtifactError, match="not a deploykit TensorRT engine manifest"):
        load_engine_manifest(m, check=False)
    good = {"schema": dt.MANIFEST_SCHEMA, "schema_version": 1, "engine_bytes": 4,
            "engine_sha256": hashlib.sha256(b"plan").hexdigest(), **_manifest()}
    m.write_text(json.dumps({**good, "schema_version": 99}))
    with pytest.raises(ArtifactError, match="schema version 99"):
        load_engine_manifest(engine, check=False)
    m.write_text(json.dumps(good))
    assert load_engine_manifest(engine, check=False)["tensorrt"]["version"] == "10.13.0.35"
    engine.write_bytes(b"plaN")  # same size, other content
    with pytest.raises(ArtifactError, match="does not match its manifest"):
        load_engine_manifest(m, check=False)
    engine.unlink()
    with pytest.raises(ArtifactError, match="missing"):
        load_engine_manifest(m, check=False)


def test_load_engine_manifest_check_without_tensorrt(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    engine_manifest_path(engine).write_text(json.dumps(
        {"schema": dt.MANIFEST_SCHEMA, "schema_version": 1, "engine_bytes": 4,
         "engine_sha256": hashlib.sha256(b"plan").hexdigest(), **_manifest()}))
    with pytest.raises(BackendUnavailable, match=r"pip install 'deploykit\[tensorrt\]'"):
        load_engine_manifest(engine)


def test_build_without_tensorrt_fails_cleanly_after_checking_arguments(fp32_onnx, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(BackendUnavailable) as e:
        build_engine(fp32_onnx, precision="fp32")
    assert INSTALL_HINT in str(e.value)
    assert not list(Path(fp32_onnx).parent.glob("*.engine*"))
    # argument errors are reported first, without TensorRT
    with pytest.raises(InvalidInput, match="unknown precision"):
        build_engine(fp32_onnx, precision="int4")
    with pytest.raises(InvalidInput, match="never calibrates on random data"):
        build_engine(fp32_onnx, precision="int8")
    with pytest.raises(InvalidInput, match="opt_level"):
        build_engine(fp32_onnx, opt_level=7)
    with pytest.raises(InvalidInput, match="workspace_bytes"):
        build_engine(fp32_onnx, workspace_bytes=0)
    with pytest.raises(InvalidInput, match="min <= opt <= max"):
        build_engine(fp32_onnx, min_batch=4, max_batch=2)


def test_importing_the_module_needs_neither_tensorrt_nor_torch():
    import subprocess

    code = "import sys, deploykit.export.tensorrt; print('tensorrt' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_tensorrt_status_without_tensorrt(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert dt.tensorrt_status() == f"TensorRT is not installed ({INSTALL_HINT})"


def test_dtype_from_format_strings():
    cases = {
        "Row major linear FP16 format": "fp16",
        "Half": "fp16",
        "Float": "fp32",
        "Row major linear FP32 format (kLINEAR)": "fp32",
        "Thirty-two wide channel vectorized row major Int8 format.": "int8",
        "Row major linear UInt8 format": "uint8",  # was "int8": "uint8" contains "int8"
        "UINT8": "uint8",
        "BF16": "bf16",
        "Row major linear BFloat16 format": "bf16",
        "Bool": "bool",
        "N/A due to dynamic shapes": None,
    }
    for text, want in cases.items():
        assert dtype_from_format(text) == want, text


INSPECTOR_10 = {
    "Layers": [
        {"Name": "Reformatting CopyNode for Input Tensor 0 to conv1", "LayerType": "Reformat",
         "Inputs": [{"Name": "x", "Dimensions": [1, 3, 224, 224], "Format/Datatype": "Row major linear FP32 format"}],
         "Outputs": [{"Name": "r", "Dimensions": [1, 3, 224, 224], "Format/Datatype": "Row major linear FP16 format"}]},
        {"Name": "conv1 + relu", "LayerType": "CaskConvolution", "TacticName": "sm90_xmma_fprop",
         "Metadata": "[ONNX Layer: /conv1/Conv]\x1f[ONNX Layer: /relu/Relu]",
         "Inputs": [{"Name": "r", "Dimensions": [1, 3, 224, 224], "Format/Datatype": "Row major linear FP16 format"}],
         "Outputs": [{"Name": "c", "Dimensions": [1, 64, 112, 112], "Format/Datatype": "Channel major FP16 format"}]},
        {"Name": "fc", "LayerType": "CaskGemm", "TacticValue": "0x0000000000000007",
         "Inputs": [{"Name": "c", "Format/Datatype": "Half"}], "Outputs": [{"Name": "y", "Format/Datatype": "Float"}]},
    ],
    "Bindings": ["x", "y"],
}

INSPECTOR_11 = {
    "Layers": [
        {"Name": "conv1 + relu", "LayerType": "CaskConvolution", "TacticName": "t",
         "Inputs": [{"Name": "x", "Dimensions": [1, 3, 224, 224], "Format": "Row major linear FP16 format (kLINEAR)",
                     "DataType": "Half"}],
         "Outputs": [{"Name": "c", "Dimensions": [1, 64], "Format": "Row major linear FP16 format (kLINEAR)",
                      "DataType": "Half"}]},
    ],
    "I/O Tensors": [
        {"Name": "x", "IOMode": "Input", "DataType": "Half", "Dimensions": [-1, 3, 224, 224], "Location": "Device",
         "IsShapeInferenceIO": False, "ProfileInfo": [{"MinShape": [1, 3, 224, 224], "OptShape": [8, 3, 224, 224],
                                                        "MaxShape": [32, 3, 224, 224]}]},
        {"Name": "c", "IOMode": "Output", "DataType": "Half", "Dimensions": [-1, 64], "Location": "Device"},
    ],
}


def test_parse_engine_information_10x():
    p = parse_engine_information(json.dumps(INSPECTOR_10))
    assert p["schema"] == "10.x"
    assert [t["name"] for t in p["io_tensors"]] == ["x", "y"]
    assert (p["num_layers"], p["compute_layers"]) == (3, 2)
    conv = p["layers"][1]
    assert conv["onnx_nodes"] == ["/conv1/Conv", "/relu/Relu"]
    assert (conv["precision"], conv["tactic"], conv["outputs"][0]["dims"]) == ("fp16", "sm90_xmma_fprop", [1, 64, 112, 112])
    assert p["layers"][2]["tactic"] == "0x0000000000000007"
    assert p["precision_counts"] == {"fp16": 1, "fp32": 1}  # fc's output is fp32; the Reformat is not counted
    assert p["layers_touching"] == {"fp16": 2, "fp32": 1}


def test_parse_engine_information_11x_and_names_only():
    p = parse_engine_information(INSPECTOR_11)
    assert p["schema"] == "11.x"
    assert p["io_tensors"][0]["mode"] == "Input" and p["io_tensors"][0]["dtype"] == "fp16"
    assert p["layers"][0]["inputs"][0]["format"] == "Row major linear FP16 format (kLINEAR)"
    assert p["precision_counts"] == {"fp16": 1}
    names = parse_engine_information({"Layers": ["a", "b"], "Bindings": ["x"]})
    assert [layer["name"] for layer in names["layers"]] == ["a", "b"] and names["compute_layers"] == 0
    with pytest.raises(ArtifactError):
        parse_engine_information("not json")


def _plan(expect, requested="fp16"):
    return PrecisionPlan(requested, "strong-typing", True, (), expect, (10, 13, 0), "")


def test_verify_engine_precision_catches_silent_fp32():
    obs = verify_engine_precision(_plan("fp16"), parse_engine_information(INSPECTOR_10))
    assert obs["expected_share"] == 1.0  # both compute layers touch fp16
    all_fp32 = json.loads(json.dumps(INSPECTOR_10).replace("FP16", "FP32").replace("Half", "Float"))
    with pytest.raises(ExportError, match="asked for fp16 but the built engine has no fp16 layer"):
        verify_engine_precision(_plan("fp16"), parse_engine_information(all_fp32))
    unknown = json.loads(json.dumps(INSPECTOR_10).replace("Row major linear FP16 format", "N/A due to dynamic shapes")
                         .replace("Channel major FP16 format", "N/A").replace("Half", "N/A").replace("Float", "N/A"))
    with pytest.raises(ExportError, match="cannot verify"):
        verify_engine_precision(_plan("fp16"), parse_engine_information(unknown))
    assert verify_engine_precision(_plan(None, "fp32"), parse_engine_information(all_fp32))["expected"] is None


def test_torch_dtype_for_trt_dtypes():
    from fakes.fake_tensorrt import FakeTensorRT

    f = FakeTensorRT()
    assert torch_dtype_for(f.DataType.FLOAT) is torch.float32
    assert torch_dtype_for(f.DataType.HALF) is torch.float16
    assert torch_dtype_for(f.DataType.BF16) is torch.bfloat16
    assert torch_dtype_for(f.DataType.INT64) is torch.int64
    assert torch_dtype_for("DataType.INT8") is torch.int8
    assert torch_dtype_for("DataType.UINT8") is torch.uint8
    with pytest.raises(ArtifactError, match="INT4"):
        torch_dtype_for("DataType.INT4")


def test_engines_are_validated_with_the_onnx_export_tolerances():
    from deploykit.export.validate import TOLERANCES

    for precision in ("fp32", "fp16", "bf16", "int8"):
        assert dt.validation_tolerance(precision) == TOLERANCES[precision]


def test_onnxruntime_reference_computes_the_onnx_graph(fp32_onnx):
    import onnx
    from onnx import numpy_helper

    ref, name = dt._reference_fn(inspect_onnx(fp32_onnx), None, "cpu")
    assert name == "onnxruntime:CPUExecutionProvider"
    x = torch.randn(2, 3, 8, 8)
    (y,) = ref(x)
    w = torch.from_numpy(numpy_helper.to_array(onnx.load(str(fp32_onnx)).graph.initializer[0]).copy())
    expected = torch.nn.functional.conv2d(x, w, padding=1).mean(dim=(2, 3))
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)


def test_default_engine_path(fp32_onnx, fp16_onnx):
    assert dt._default_engine_path(inspect_onnx(fp16_onnx), "fp16").name == "tiny-fp16.engine"
    assert dt._default_engine_path(inspect_onnx(fp32_onnx), "fp32").name == "tiny.engine"
    assert dt._default_engine_path(inspect_onnx(fp32_onnx), "int8").name == "tiny-int8.engine"


def test_profile_shape_round_trip():
    s = ProfileShape((1, 3), (8, 3), (32, 3))
    assert ProfileShape.from_dict(json.loads(json.dumps(s.to_dict()))) == s


# ==================================================== FAKE TensorRT: deploykit's call order and version branches
def _calls_matching(fake, prefix):
    return [c for c in fake.calls if c.startswith(prefix)]


def test_fake_build_fp16_strongly_typed_10x(fp16_onnx, monkeypatch):
    fake = install_fake_tensorrt(monkeypatch, "10.13.0.35")
    art = build_engine(fp16_onnx, precision="fp16", max_batch=4, workspace_bytes=1 << 30, opt_level=4,
                       reference_model=FakeModel())
    # call order: Builder -> create_network(STRONGLY_TYPED) -> parser -> config -> profile -> cache -> build
    order = [c.split("(")[0] for c in fake.calls if not c.startswith("ILogger")]
    want = ["Builder", "Builder.create_network", "OnnxParser", "OnnxParser.parse_from_file",
            "Builder.create_builder_config", "config.set_memory_pool_limit", "config.clear_flag",
            "config.add_optimization_profile", "config.create_timing_cache", "config.set_timing_cache",
            "Builder.build_serialized_network"]
    assert order[: len(want)] == want
    assert "Builder.create_network(2)" in fake.calls  # 1 << int(STRONGLY_TYPED)
    assert not _calls_matching(fake, "config.set_flag")  # no precision flag on a strongly typed network
    assert "config.clear_flag(TF32)" in fake.calls
    # the inspector is asked only after input shapes were set on its context
    inspect_at = fake.calls.index("EngineInspector.get_engine_information")
    assert any(c.startswith("context.set_input_shape(input, (4,") for c in fake.calls[:inspect_at])
    m = art.manifest
    assert art.path.name == "tiny-fp16.engine" and art.path.is_file()
    assert art.manifest_path == engine_manifest_path(art.path)
    assert json.loads(art.manifest_path.read_text()) == json.loads(json.dumps(m))
    assert m["precision"]["path"] == "strong-typing" and m["precision"]["builder_flags"] == []
    assert m["precision"]["observed"]["expected_share"] == 1.0
    assert m["tensorrt"] == {"version": "10.13.0.35", "major": 10, "minor": 13}
    assert m["gpu"]["name"] == "Fake GPU" and m["gpu"]["compute_capability"] == "9.0"
    assert m["profile"] == {"input": {"min": [1, 3, 8, 8], "opt": [4, 3, 8, 8], "max": [4, 3, 8, 8]}}
    assert m["source_onnx"]["sha256"] == inspect_onnx(fp16_onnx).sha256
    assert m["layers"]["schema"] == "10.x"
    assert m["builder"]["workspace_bytes"] == 1 << 30 and m["builder"]["optimization_level"] == 4
    assert m["io"]["inputs"] == [{"name": "input", "dtype": "float16", "shape": [-1, 3, 8, 8]}]
    v = m["validation"]
    assert v["passed"] and v["reference"] == "eager-pytorch" and v["batches"] == [1, 4]
    assert v["max_abs_error"] < 0.1  # fp16 rounding of sums of ~192 normal values
    assert load_engine_manifest(art.path)["engine_sha256"] == m["engine_sha256"]


class MathRecordingModel(FakeModel):
    """The fake engine's reference, noting the fp32 math torch is set to when it runs (in a class-level list:
    the builder runs a deep copy)."""

    seen: ClassVar[list[dict[str, str]]] = []

    def forward(self, x):
        from deploykit.backends.math_mode import torch_fp32_math

        self.seen.append(torch_fp32_math())
        return super().forward(x)


@pytest.mark.parametrize("version", ["10.13.0.35", "11.1.0.5"])
def test_fake_fp32_engine_and_its_reference_are_true_fp32(fp32_onnx, monkeypatch, version):
    # TF32 flag cleared on the engine; the eager reference runs with TF32 off (cuDNN convolutions default to TF32
    # in torch 2.14); the manifest says which fp32 it was. A tf32 build is judged at a TF32-sized tolerance.
    fake = install_fake_tensorrt(monkeypatch, version)
    ref = MathRecordingModel()
    monkeypatch.setattr(MathRecordingModel, "seen", [])
    art = build_engine(fp32_onnx, precision="fp32", reference_model=ref)
    assert "config.clear_flag(TF32)" in fake.calls
    assert ref.seen and all(s == {"matmul": "ieee", "conv": "ieee", "rnn": "ieee"} for s in ref.seen)
    m = art.manifest
    assert m["fp32_math"] == "ieee" and m["precision"]["tf32"] is False
    assert m["validation"]["fp32_math"]["engine"] == "ieee"
    assert m["validation"]["fp32_math"]["policy"] == "ieee"  # (the fake engine runs on the CPU: no torch flags)
    assert m["validation"]["tolerance"]["rtol"] == 1e-4
    fake.calls.clear()
    art = build_engine(fp32_onnx, precision="fp32", reference_model=FakeModel(), tf32=True,
                       out_path=Path(fp32_onnx).with_name("tiny-tf32.engine"))
    assert "config.clear_flag(TF32)" not in fake.calls
    assert art.manifest["fp32_math"] == "tf32" and art.manifest["validation"]["tolerance"]["rtol"] == 1e-2


def test_fake_build_fp16_on_11x_uses_no_precision_flag(fp16_onnx, monkeypatch):
    fake = install_fake_tensorrt(monkeypatch, "11.1.0.5")
    assert not hasattr(fake.BuilderFlag, "FP16")  # as in 11.x: would raise if deploykit asked for it
    art = build_engine(fp16_onnx, precision="fp16", reference_model=FakeModel())
    assert art.manifest["layers"]["schema"] == "11.x"
    assert art.manifest["precision"]["path"] == "strong-typing"
    assert art.manifest["profile"]["input"]["max"] == [32, 3, 8, 8]


def test_fake_build_fp16_legacy_weak_typing_on_10_8(fp32_onnx, monkeypatch):
    fake = install_fake_tensorrt(monkeypatch, "10.8.0.43")
    art = build_engine(fp32_onnx, precision="fp16", reference_model=FakeModel())
    assert "Builder.create_network(0)" in fake.calls
    assert "config.set_flag(FP16)" in fake.calls
    assert art.manifest["precision"]["path"] == "weak-typing"
    assert art.path.name == "tiny-fp16.engine"


def test_fake_fp16_from_fp32_graph_refused_on_10_13_before_building(fp32_onnx, monkeypatch):
    fake = install_fake_tensorrt(monkeypatch, "10.13.0.35")
    with pytest.raises(InvalidInput, match=r"deprecated since TensorRT 10.12"):
        build_engine(fp32_onnx, precision="fp16")
    assert not _calls_matching(fake, "Builder")


def test_fake_silent_fp32_fails_and_writes_nothing(fp16_onnx, monkeypatch):
    install_fake_tensorrt(monkeypatch, "10.13.0.35", silent_fp32=True)
    with pytest.raises(ExportError, match="silently built it in another precision"):
        build_engine(fp16_onnx, precision="fp16", reference_model=FakeModel())
    assert not list(Path(fp16_onnx).parent.glob("*.engine*"))


def test_fake_parser_errors_name_the_node(fp32_onnx, monkeypatch):
    install_fake_tensorrt(monkeypatch, parse_error=True)
    with pytest.raises(ExportError, match=r"node '/layer1/conv/Conv' \(Conv\): unsupported attribute"):
        build_engine(fp32_onnx)


def test_fake_failed_build_leaves_no_engine(fp32_onnx, monkeypatch):
    install_fake_tensorrt(monkeypatch, build_returns_none=True)
    with pytest.raises(ExportError, match="could not build"):
        build_engine(fp32_onnx)
    assert not list(Path(fp32_onnx).parent.glob("*.engine*"))


def test_fake_validation_failure_writes_nothing(fp32_onnx, monkeypatch):
    install_fake_tensorrt(monkeypatch, wrong_output=True)
    with pytest.raises(ValidationError, match=r"disagrees with the reference.*max abs error 1"):
        build_engine(fp32_onnx, reference_model=FakeModel())
    assert not list(Path(fp32_onnx).parent.glob("*.engine*"))
    art = build_engine(fp32_onnx, validate=False)  # opting out is recorded
    assert art.manifest["validation"] == {"skipped": "validate=False"}


def test_fake_validation_falls_back_to_onnxruntime_reference(fp32_onnx, monkeypatch):
    install_fake_tensorrt(monkeypatch)  # the fake engine does not compute the ONNX graph, so ORT must disagree
    with pytest.raises(ValidationError, match=r"reference \(onnxruntime:CPUExecutionProvider\)"):
        build_engine(fp32_onnx)


def test_fake_timing_cache_is_persisted_and_reused(fp32_onnx, monkeypatch, tmp_path):
    install_fake_tensorrt(monkeypatch)
    a = build_engine(fp32_onnx, validate=False)
    tc = a.manifest["builder"]["timing_cache"]
    assert tc["status"] == "created" and tc["key"] == "Fake_GPU-sm90-cuda13.0-trt10.13.0.35"
    assert Path(tc["path"]) == tmp_path / "cache" / "tensorrt" / f"timing-{tc['key']}.cache"
    b = build_engine(fp32_onnx, validate=False)
    assert b.manifest["builder"]["timing_cache"]["status"] == "reused"
    assert b.manifest["builder"]["timing_cache"]["loaded_bytes"] > 0
    own = tmp_path / "my.cache"
    c = build_engine(fp32_onnx, validate=False, timing_cache=own, out_path=tmp_path / "x" / "y.engine")
    assert own.is_file() and c.path == tmp_path / "x" / "y.engine" and c.path.is_file()


def test_fake_int8_engine_from_a_qdq_graph_on_10x_and_11x(fp32_onnx, monkeypatch, tmp_path):
    q = make_tiny_onnx(tmp_path / "q.onnx", qdq=True)
    for version in ("10.13.0.35", "11.1.0.5"):
        fake = install_fake_tensorrt(monkeypatch, version)
        with pytest.raises(InvalidInput, match="explicitly quantized"):
            build_engine(fp32_onnx, precision="int8")
        assert not _calls_matching(fake, "Builder")  # refused before TensorRT is touched
        art = build_engine(q, precision="int8", validate=False, out_path=tmp_path / f"{version}.engine")
        assert art.manifest["precision"]["path"] == "strong-typing" and art.manifest["source_onnx"]["qdq"] is True
        assert "config.set_flag(INT8)" not in fake.calls and not any("calibrat" in c for c in fake.calls)
        # an INT8 engine is checked against ONNX Runtime running the same Q/DQ graph, never against eager fp32
        # (the fake engine computes something else, so that reference must disagree)
        with pytest.raises(ValidationError, match=r"reference \(onnxruntime:CPUExecutionProvider\)"):
            build_engine(q, precision="int8", reference_model=FakeModel(), out_path=tmp_path / "v.engine")


def test_fake_engine_from_other_version_is_refused(fp32_onnx, monkeypatch):
    install_fake_tensorrt(monkeypatch, "10.13.0.35")
    art = build_engine(fp32_onnx, validate=False)
    install_fake_tensorrt(monkeypatch, "11.1.0.5")
    with pytest.raises(ArtifactError, match=r"TensorRT 10.13.0.35 and this machine has TensorRT 11.1.0.5"):
        dt.load_engine(art.path, "cpu")


def test_fake_executor_binds_and_runs(fp32_onnx, monkeypatch):
    fake = install_fake_tensorrt(monkeypatch)
    art = build_engine(fp32_onnx, validate=False, max_batch=8)
    ex, _ = dt.load_engine(art.path, "cpu")
    fake.calls.clear()
    x = torch.randn(3, 3, 8, 8)
    (y,) = ex.run([x])
    torch.testing.assert_close(y, fake_reference(x), rtol=1e-5, atol=1e-4)
    shape_i = fake.calls.index("context.set_input_shape(input, (3, 3, 8, 8))")
    out_i = fake.calls.index("context.get_tensor_shape(logits)")
    addr_i = fake.calls.index("context.set_tensor_address(logits)")
    exec_i = fake.calls.index("context.execute_async_v3(0)")
    assert shape_i < out_i < addr_i < exec_i
    with pytest.raises(ShapeError, match="outside the engine's profile"):
        ex.run([torch.randn(9, 3, 8, 8)])
    with pytest.raises(InvalidInput, match="float16"):
        ex.run([x.half()])


# ===================================================================== real TensorRT (skipped without it)
@pytest.mark.trt
def test_trt_build_fp32_and_fp16_resnet18_validates(tmp_path):
    from deploykit.models import create_model

    model, spec = create_model("resnet18", device="cpu", image_size=64, num_classes=10)
    x = torch.randn(spec.batch_shape(2))
    fp32 = tmp_path / "resnet18.onnx"
    torch.onnx.export(model, (x,), fp32, dynamo=True, external_data=False,
                      dynamic_shapes=({0: torch.export.Dim("batch")},))
    art = build_engine(fp32, precision="fp32", max_batch=8, reference_model=model)
    assert art.manifest["validation"]["passed"]

    half = _Half(model)
    fp16 = tmp_path / "resnet18-fp16.onnx"
    torch.onnx.export(half, (x.half(),), fp16, dynamo=True, external_data=False,
                      dynamic_shapes=({0: torch.export.Dim("batch")},))
    art16 = build_engine(fp16, precision="fp16", max_batch=8, reference_model=model)
    assert art16.manifest["precision"]["observed"]["layers_touching"].get("fp16", 0) > 0
    assert art16.manifest["validation"]["passed"]


class _Half(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        import copy

        self.m = copy.deepcopy(m).half()

    def forward(self, x):
        return self.m(x)


class ZeroModel(torch.nn.Module):
    """A reference whose output is zero for every input (a zero-initialised head)."""

    def forward(self, x):
        return fake_reference(x) * 0.0


def test_fake_engine_verdicts_are_the_onnx_exports(fp32_onnx, monkeypatch):
    # passed: the fake engine computes its reference, on at least three samples
    install_fake_tensorrt(monkeypatch)
    art = build_engine(fp32_onnx, reference_model=FakeModel())
    v = art.manifest["validation"]
    assert v["status"] == "passed" and v["passed"] is True and sum(v["batches"]) >= 3
    assert v["verdict"]["outputs"][0]["dep_error"] < 1e-3
    # failed: the engine's output is not zero where the (zero) reference is
    with pytest.raises(ValidationError, match="disagrees with the reference"):
        build_engine(fp32_onnx, reference_model=ZeroModel(), out_path=Path(fp32_onnx).with_name("zero.engine"))
    assert not Path(fp32_onnx).with_name("zero.engine").exists()
