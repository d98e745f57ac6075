"""Every registered model exports to ONNX and validates in ONNX Runtime: one dynamic-batch graph per model
(validated at batches 1 and 3, then run at batch 2 through the runner), and a fixed batch-1 graph for a few models
(the file name, the fixed input shape and the loader).

Inputs are shrunk where the model allows it (ImageNet-size models at the smallest of 64/96/128/160 pixels their
pooling stack accepts): the graph and the weights are the same, only the validation runs are cheaper. The dynamo
export dominates the cost (2-40 s per graph on two cores). By default the sweep takes one model per family;
``pytest --full-zoo`` (nightly) takes every registered model (see ``tests/zoo_selection.py``).
"""

from __future__ import annotations

import pytest
import torch
from zoo_selection import zoo_params

from deploykit.backends.ort import OrtRunner
from deploykit.errors import ShapeError
from deploykit.export.onnx import export_module, load_onnx_artifact
from deploykit.models import create_model, get_model_spec, run_with_layer_context
from deploykit.profile import profile_model
from deploykit.profile.onnx_graph import profile_onnx
from deploykit.profile.onnx_reconcile import reconcile_params

#: Models that also get a fixed batch-1 export (the static-shape path is the same code for every model).
STATIC_CHECK = {"lenet", "mnist1d-cnn", "resnet18"}


def small_image_size(name: str) -> int | None:
    """The smallest of 64/96/128/160 pixels the model takes (checked on the meta device), else its own size."""
    spec = get_model_spec(name)
    if "image_size" not in spec.overridable or len(spec.input_shape) != 3 or min(spec.input_shape[1:]) <= 160:
        return None
    for size in (64, 96, 128, 160):
        try:
            model, s = create_model(name, image_size=size)  # meta device: shapes only
            run_with_layer_context(model, torch.zeros(s.batch_shape(1), device="meta"), name)
        except ShapeError:
            continue
        return size
    return None


@pytest.mark.parametrize("name", zoo_params())
def test_every_model_exports_and_validates(name: str, tmp_path) -> None:
    torch.manual_seed(0)
    module, spec = create_model(name, device="cpu", image_size=small_image_size(name))

    dyn = export_module(
        module, spec, out_dir=tmp_path, dynamic_batch=True, validate_batches=(1, 3), device="cpu"
    )
    m = dyn.manifest
    v = m["validation"]
    # Random weights: an output that hardly depends on the input (d2l-googlenet: 9e-6 of its magnitude) cannot be
    # checked and must say so; every other model must pass.
    weak = min(s for s in v["input_sensitivity"].values() if s is not None) < 1e-3
    assert v["status"] == "passed" or (v["status"] == "inconclusive" and weak), v
    assert [r["batch_size"] for r in m["validation"]["runs"]] == [1, 3]
    assert m["inputs"][0]["shape"] == ["batch", *spec.input_shape]
    assert m["outputs"][0]["shape"][0] == "batch"
    assert dyn.path.name == f"{name}-dynamic.onnx"
    assert m["exporter"]["name"] in ("dynamo", "torchscript")
    if m["exporter"]["name"] == "torchscript":
        assert m["exporter"]["fallback_reason"], "a fallback must say why dynamo failed"

    # Independent of the validator: a batch size it never saw, through the runner, against eager.
    x = torch.randn(spec.batch_shape(2))
    with torch.inference_mode():
        ref = module(x)
    with OrtRunner(dyn.path) as runner:
        got = runner.infer(x)
    scale = float(ref.abs().max())
    assert float((got - ref).abs().max()) <= 1e-4 * scale + 1e-12

    # The ONNX profile of the exported file agrees with the PyTorch profile (issue 4): MACs exactly; parameters
    # exactly once the exporter's value-dependent rewrites are accounted for (see deploykit.profile.onnx_graph).
    size = small_image_size(name)
    torch_prof = profile_model(name, batch_size=2, image_size=size)
    onnx_prof = profile_onnx(dyn.path, batch_size=2)
    assert onnx_prof.total_macs == torch_prof.total_macs
    assert onnx_prof.unsupported_ops == ()
    if m["exporter"]["name"] == "dynamo":  # TorchScript renames initializers: no per-parameter accounting
        rec = reconcile_params(module, dyn.path)
        assert rec.torch_params == torch_prof.total_params
        assert rec.onnx_params == onnx_prof.total_params
        assert rec.not_exported == torch_prof.unused_params
        assert rec.folded_batchnorm == onnx_prof.spec["initializers"]["folded_batchnorm"]
        assert rec.onnx_only == onnx_prof.spec["initializers"]["fused_bias"]
        assert onnx_prof.total_params == (
            torch_prof.total_params - rec.folded_batchnorm - rec.zero_bias_dropped - rec.deduplicated
            - rec.not_exported + rec.onnx_only
        )

    if name not in STATIC_CHECK:
        return
    static = export_module(module, spec, out_dir=tmp_path, batch_size=1, validate_batches=(1, 1), device="cpu")
    assert static.manifest["validation"]["status"] == v["status"]
    assert static.manifest["inputs"][0]["shape"] == [1, *spec.input_shape]
    assert static.path.name == f"{name}.onnx"
    assert load_onnx_artifact(static.path).manifest == static.manifest
    assert profile_onnx(static.path).total_macs == profile_model(name, image_size=size).total_macs
