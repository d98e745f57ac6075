"""ONNX export: manifest content, fp16 graphs, exporter fallback, validation failures, atomic files, loading."""

from __future__ import annotations

import hashlib
import json
import math

import onnx
import pytest
import torch
from torch import nn

from deploykit.errors import ArtifactError, ExportError, InvalidInput, ShapeError, ValidationError
from deploykit.export import (
    TOLERANCES,
    OnnxArtifact,
    Tolerance,
    export_module,
    export_onnx,
    load_onnx_artifact,
)
from deploykit.export.onnx import MANIFEST_SCHEMA, MANIFEST_VERSION, artifact_stem, manifest_path_for
from deploykit.export.validate import compare_outputs, input_sensitivity
from deploykit.models import ModelSpec


def _spec(name: str, shape: tuple[int, ...] = (1, 8, 8), classes: int = 4) -> ModelSpec:
    return ModelSpec(name=name, family="test", source="tests", input_shape=shape, num_classes=classes)


class SmallNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


class ExportDiffers(SmallNet):
    """Computes something else while being exported: stands in for an exporter that mistranslates a layer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        if torch.compiler.is_exporting() or torch.jit.is_tracing():
            y = y * 1.01
        return y


class DataDependent(SmallNet):
    """Branches on a tensor value: torch.export cannot trace it, TorchScript's tracer records the taken branch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.abs().sum() >= 0:  # always true; data-dependent all the same
            return super().forward(x)
        return -super().forward(x)


def _net(cls: type[nn.Module] = SmallNet) -> nn.Module:
    torch.manual_seed(0)
    return cls().eval()


def _visible(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------------------ pure functions
def test_compare_outputs_closed_form() -> None:
    a = torch.tensor([[1.0, 2.0, 3.5]])
    e = torch.tensor([[1.0, -2.0 + 4.0, 3.0]])
    rec = compare_outputs(a, e, Tolerance(atol=0.0, rtol=0.2))  # allowed 0.2 * 3 = 0.6
    assert rec == {
        "max_abs_error": 0.5,
        "max_rel_error": 0.5 / 3.0,
        "ref_max_abs": 3.0,
        "finite": True,
        "passed": True,
        "top1_agreement": 1.0,  # both rows pick class 2
    }
    assert compare_outputs(a, e, Tolerance(atol=0.0, rtol=0.1))["passed"] is False  # allowed 0.3
    swapped = torch.tensor([[1.0, 3.0], [3.0, 1.0]])
    assert compare_outputs(swapped, swapped.flip(1), Tolerance(10.0, 0.0))["top1_agreement"] == 0.0
    assert compare_outputs(a, e, Tolerance(atol=0.2, rtol=0.1))["passed"] is True  # allowed 0.5


def test_compare_outputs_non_finite_and_zero_reference() -> None:
    nan = compare_outputs(torch.tensor([1.0, math.nan]), torch.tensor([1.0, 1.0]), Tolerance(1.0, 1.0))
    assert nan["finite"] is False and nan["passed"] is False and nan["max_abs_error"] == math.inf
    zero = compare_outputs(torch.zeros(3), torch.zeros(3), Tolerance(0.0, 0.0))
    assert zero["passed"] is True and zero["max_rel_error"] == 0.0
    off = compare_outputs(torch.full((3,), 1e-3), torch.zeros(3), Tolerance(1e-4, 0.5))
    assert off["passed"] is False and off["max_rel_error"] == math.inf
    with pytest.raises(ValidationError, match="shape"):
        compare_outputs(torch.zeros(2, 3), torch.zeros(3, 2), Tolerance(0, 0))


def test_input_sensitivity_closed_form() -> None:
    # samples [1, 2] and [3, 2]: mean [2, 2], largest deviation 1, largest magnitude 3
    assert input_sensitivity([torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 2.0]])]) == pytest.approx(1 / 3)
    assert input_sensitivity([torch.tensor([[1.0, 2.0]])]) is None


def test_artifact_stem() -> None:
    assert artifact_stem("resnet18") == "resnet18"
    assert artifact_stem("resnet18", "fp16") == "resnet18-fp16"
    assert artifact_stem("resnet18", "fp32", 8) == "resnet18-b8"
    assert artifact_stem("resnet18", "fp16", 8, dynamic_batch=True) == "resnet18-fp16-dynamic"
    assert artifact_stem("pkg.mod:Net") == "pkg.mod-Net"


def test_tolerance_table() -> None:
    # no absolute floor: a floor can be larger than a whole (random-init, 1e-14) output and pass anything
    assert all(t.atol == 0.0 for t in TOLERANCES.values())
    assert TOLERANCES["fp32"].rtol == 1e-4 and TOLERANCES["fp16"].rtol == 1e-2
    assert TOLERANCES["fp32"].dep_rtol == TOLERANCES["fp16"].dep_rtol == 5e-3  # a 1% error there fails
    assert TOLERANCES["fp16"].allowed(2.0) == pytest.approx(2e-2) and TOLERANCES["fp16"].allowed(0.0) == 0.0
    assert TOLERANCES["fp16"].normal_min == pytest.approx(2.0**-14)


# ------------------------------------------------------------------------------------------------ manifest
def test_manifest_content(tmp_path) -> None:
    art = export_onnx("lenet", out_dir=tmp_path, seed=0, device="cpu")
    assert isinstance(art, OnnxArtifact)
    assert art.path == tmp_path / "lenet.onnx" and art.manifest_path == tmp_path / "lenet.onnx.json"
    m = art.manifest
    assert json.loads(art.manifest_path.read_text()) == m
    data = art.path.read_bytes()
    assert m["schema"] == MANIFEST_SCHEMA and m["schema_version"] == MANIFEST_VERSION
    assert m["file"] == "lenet.onnx"
    assert m["sha256"] == hashlib.sha256(data).hexdigest() and m["bytes"] == len(data)
    assert m["external_data"] is False and not list(tmp_path.glob("*.data"))
    assert m["model"]["name"] == "lenet" and m["model"]["weight_seed"] == 0
    assert m["model"]["spec"]["input_shape"] == [1, 28, 28] and m["model"]["spec"]["num_classes"] == 10
    assert m["inputs"] == [{"name": "input", "shape": [1, 1, 28, 28], "dtype": "float32"}]
    assert m["outputs"] == [{"name": "output", "shape": [1, 10], "dtype": "float32"}]
    assert m["batch"] == {"dynamic": False, "size": 1}
    assert m["precision"] == "fp32" and m["io_dtype"] == "float32"
    proto = onnx.load(str(art.path))
    assert m["opset"] == next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    assert m["exporter"]["name"] == "dynamo" and m["exporter"]["fallback_reason"] is None
    assert m["checker"] == {"full_check": True, "passed": True}
    env = m["environment"]
    assert env["torch"] == torch.__version__ and env["onnx"] == onnx.__version__ and env["onnxruntime"]
    v = m["validation"]
    assert v["passed"] is True and v["status"] == "passed"
    assert v["provider"] == "CPUExecutionProvider" and v["device"] == "cpu"
    assert v["tolerance"] == TOLERANCES["fp32"].to_dict() and v["reason"] and v["advice"] == ""
    assert m["weights"] is None  # random initialisation (weight_seed says which)
    assert v["inputs"] == {"kind": "random", "seed": 0, "batch_sizes": [1, 1, 1]} and v["accuracy"] is None
    assert v["batch_sizes"] == [1, 1, 1] and len(v["runs"]) == 3
    worst = max(o["max_abs_error"] for r in v["runs"] for o in r["outputs"])
    assert v["max_abs_error"] == worst and 0 <= worst <= 1e-4 * max(
        o["ref_max_abs"] for r in v["runs"] for o in r["outputs"]
    )
    assert v["not_validated"] == [] and len(v["validated"]) == 2
    # What is in the file is what the manifest says: the fixed batch, the names, the embedded weights.
    assert [i.name for i in proto.graph.input] == ["input"] and len(proto.graph.initializer) > 0


def test_same_seed_same_file_and_dynamic_batch_names(tmp_path) -> None:
    a = export_onnx("mnist1d-cnn", out_dir=tmp_path / "a", seed=3, device="cpu", validate_batches=(1,))
    b = export_onnx("mnist1d-cnn", out_dir=tmp_path / "b", seed=3, device="cpu", validate_batches=(1,))
    assert a.manifest["sha256"] == b.manifest["sha256"]
    d = export_onnx("mnist1d-cnn", out_dir=tmp_path, seed=3, device="cpu", dynamic_batch=True)
    assert d.path.name == "mnist1d-cnn-dynamic.onnx"
    assert d.manifest["batch"] == {"dynamic": True, "size": None}
    assert d.manifest["validation"]["batch_sizes"] == [1, 2, 3]
    assert d.manifest["inputs"][0]["shape"] == ["batch", 1, 40]


def test_fp16_graph_is_fp16_throughout(tmp_path) -> None:
    art = export_module(_net(), _spec("small"), out_dir=tmp_path, precision="fp16", device="cpu")
    m = art.manifest
    assert art.path.name == "small-fp16.onnx"
    assert m["precision"] == "fp16" and m["io_dtype"] == "float16"
    assert m["inputs"][0]["dtype"] == "float16" and m["outputs"][0]["dtype"] == "float16"
    proto = onnx.load(str(art.path))
    floats = [
        t
        for t in proto.graph.initializer
        if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    ]
    assert floats and all(t.data_type == onnx.TensorProto.FLOAT16 for t in floats)
    v = m["validation"]
    assert v["passed"] is True and v["tolerance"] == TOLERANCES["fp16"].to_dict()
    cov = v["fp16_coverage"]
    assert cov["float_nodes"] == cov["fp16_nodes"] + cov["fp32_nodes"] > 0
    # The manifest says exactly what the CPU provider did not run in fp16 (ORT 1.32 CPU: every node).
    if cov["fp32_nodes"]:
        assert any(f"{cov['fp32_nodes']} of {cov['float_nodes']}" in line for line in v["not_validated"])
    else:
        assert v["not_validated"] == []
    # fp16 rounding shows in the error: well above fp32 round-off, well inside the fp16 tolerance.
    assert 1e-5 < v["max_rel_error"] < 1e-2


# ------------------------------------------------------------------------------------------ the exporters
def test_fallback_to_torchscript_is_recorded(tmp_path) -> None:
    art = export_module(
        _net(DataDependent),
        _spec("datadep"),
        out_dir=tmp_path,
        dynamic_batch=True,
        validate_batches=(1, 3),
        device="cpu",
    )
    ex = art.manifest["exporter"]
    assert ex["name"] == "torchscript"
    assert ex["fallback_reason"].startswith("export failed:") and "data-dependent" in ex["fallback_reason"]
    assert art.manifest["validation"]["passed"] is True
    assert art.manifest["inputs"][0]["shape"][0] == "batch"


def test_forced_dynamo_failure_is_an_export_error(tmp_path) -> None:
    with pytest.raises(ExportError, match="dynamo: export failed"):
        export_module(
            _net(DataDependent), _spec("datadep"), out_dir=tmp_path, exporter="dynamo", device="cpu"
        )
    assert _visible(tmp_path) == []


def test_torchscript_exporter_on_request(tmp_path) -> None:
    art = export_module(
        _net(), _spec("small"), out_dir=tmp_path, exporter="torchscript", device="cpu", validate_batches=(1, 1)
    )
    assert (
        art.manifest["exporter"]["name"] == "torchscript"
        and art.manifest["exporter"]["fallback_reason"] is None
    )
    assert art.manifest["validation"]["passed"] is True


# -------------------------------------------------------------------------------------- failing validation
def test_validation_failure_leaves_no_valid_looking_file(tmp_path) -> None:
    good = export_module(_net(), _spec("net"), out_dir=tmp_path, device="cpu", validate_batches=(1, 1))
    before = good.path.read_bytes()
    with pytest.raises(ValidationError) as err:
        export_module(_net(ExportDiffers), _spec("net"), out_dir=tmp_path, device="cpu")
    msg = str(err.value)
    assert "0.01 of max |ref|" in msg and "was not written" in msg and "net.failed.onnx" in msg
    # The valid artifact of the earlier export is untouched and still loads; the failure is named as such.
    assert good.path.read_bytes() == before
    assert load_onnx_artifact(good.path).manifest["sha256"] == good.manifest["sha256"]
    assert _visible(tmp_path) == ["net.failed.onnx", "net.failed.onnx.json", "net.onnx", "net.onnx.json"]
    failed = json.loads((tmp_path / "net.failed.onnx.json").read_text())
    assert failed["validation"]["passed"] is False and failed["file"] == "net.failed.onnx"
    assert all(not r["passed"] for r in failed["validation"]["runs"])
    assert failed["validation"]["max_rel_error"] == pytest.approx(0.01, rel=1e-3)
    with pytest.raises(ArtifactError, match="failed validation"):
        load_onnx_artifact(tmp_path / "net.failed.onnx")
    # A later successful export of the same name clears the failed pair.
    export_module(_net(), _spec("net"), out_dir=tmp_path, device="cpu", validate_batches=(1,))
    assert _visible(tmp_path) == ["net.onnx", "net.onnx.json"]


def test_injected_zero_tolerance_fails(tmp_path) -> None:
    # An fp16 graph's outputs are rounded to fp16, so they cannot equal eager fp32: a zero tolerance must fail.
    with pytest.raises(ValidationError, match="allowed: rtol 0"):
        export_module(
            _net(),
            _spec("tight"),
            out_dir=tmp_path,
            device="cpu",
            precision="fp16",
            tolerances={"fp16": Tolerance(atol=0.0, rtol=0.0)},
            validate_batches=(4, 4, 4),
            batch_size=4,
        )
    assert not (tmp_path / "tight-fp16-b4.onnx").exists()
    assert (tmp_path / "tight-fp16-b4.failed.onnx").exists()


# ------------------------------------------------------------------------------------------ loading, args
def test_load_rejects_modified_and_orphaned_files(tmp_path) -> None:
    art = export_module(_net(), _spec("net"), out_dir=tmp_path, device="cpu", validate_batches=(1,))
    assert load_onnx_artifact(art.manifest_path).path == art.path  # the manifest's path works too
    data = bytearray(art.path.read_bytes())
    data[-1] ^= 0xFF
    art.path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        load_onnx_artifact(art.path)
    manifest_path_for(art.path).unlink()
    with pytest.raises(ArtifactError, match="no manifest"):
        load_onnx_artifact(art.path)
    with pytest.raises(ArtifactError, match="not found"):
        load_onnx_artifact(tmp_path / "missing.onnx")


def test_load_rejects_a_newer_schema(tmp_path) -> None:
    art = export_module(_net(), _spec("net"), out_dir=tmp_path, device="cpu", validate_batches=(1,))
    m = dict(art.manifest, schema_version=MANIFEST_VERSION + 1)
    art.manifest_path.write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="schema version"):
        load_onnx_artifact(art.path)


def test_bad_arguments(tmp_path) -> None:
    with pytest.raises(InvalidInput, match="bf16"):
        export_module(_net(), _spec("x"), out_dir=tmp_path, precision="bf16")
    with pytest.raises(InvalidInput, match="opset"):
        export_module(_net(), _spec("x"), out_dir=tmp_path, opset=99)
    with pytest.raises(InvalidInput, match="batch size"):
        export_module(_net(), _spec("x"), out_dir=tmp_path, batch_size=0)
    with pytest.raises(InvalidInput, match="exporter"):
        export_module(_net(), _spec("x"), out_dir=tmp_path, exporter="jit")
    with pytest.raises(InvalidInput, match="fixed-batch"):
        export_module(_net(), _spec("x"), out_dir=tmp_path, validate_batches=(2,))
    with pytest.raises(ShapeError, match="cannot take input"):
        export_module(_net(), _spec("x", shape=(1, 2, 2)), out_dir=tmp_path)
    meta_model = SmallNet().to("meta")
    with pytest.raises(InvalidInput, match="meta"):
        export_module(meta_model, _spec("x"), out_dir=tmp_path)
    assert not tmp_path.exists() or _visible(tmp_path) == []


class Huge(SmallNet):
    """Outputs around 1e6: representable in fp32, beyond fp16's largest value (65504)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * 1e6


def test_fp16_overflow_is_named(tmp_path) -> None:
    with pytest.raises(ValidationError, match=r"non-finite values.*the fp16 graph overflows"):
        export_module(_net(Huge), _spec("huge"), out_dir=tmp_path, precision="fp16", device="cpu")
    # the same model is fine in fp32
    art = export_module(_net(Huge), _spec("huge"), out_dir=tmp_path, device="cpu", validate_batches=(1, 1))
    assert art.manifest["validation"]["passed"] is True


class Tiny(SmallNet):
    """Outputs around 1e-9 (like random-init mobilenet_v3_large's logits): fp16 flushes them to zero."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * 1e-9


def test_fp16_underflow_is_named(tmp_path) -> None:
    with pytest.raises(ValidationError, match=r"the output is all zeros.*the fp16 graph underflows"):
        export_module(_net(Tiny), _spec("tiny"), out_dir=tmp_path, precision="fp16", device="cpu")
    # fp32 validation is relative to the output's scale, so 1e-9 outputs are checked as strictly as any
    art = export_module(_net(Tiny), _spec("tiny"), out_dir=tmp_path, device="cpu", validate_batches=(1, 1))
    assert art.manifest["validation"]["passed"] is True
    assert art.manifest["validation"]["max_rel_error"] < 1e-4
