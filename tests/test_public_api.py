"""The public surface: ``deploykit.__all__`` is pinned, every name resolves, and importing is cheap."""

from __future__ import annotations

import subprocess
import sys

import deploykit

PUBLIC = [
    "ArtifactError", "BackendUnavailable", "BenchResult", "BenchSpec", "CellResult", "DeploykitError",
    "ExportError", "InvalidInput", "ModelNotFound", "ModelProfile", "ModelSpec", "OnnxArtifact", "Runner",
    "ShapeError", "TimingOptions", "ValidationError", "compare_models", "compare_results", "create_model", "export_onnx",
    "get_device", "get_model_spec", "list_models", "load_results", "memory_report", "profile_model", "profile_onnx", "register_model",
    "roofline", "run_bench",
    "Evaluation", "LabelledData", "TrainOptions", "TrainResult", "WeightsRecord", "evaluate_model", "evaluate_onnx",
    "load_data", "load_weights", "save_weights", "train_model",
]


def test_all_is_pinned_and_sorted() -> None:
    assert deploykit.__all__ == sorted(PUBLIC)


def test_every_public_name_resolves() -> None:
    for name in deploykit.__all__:
        assert getattr(deploykit, name) is not None


def test_import_and_help_do_not_load_heavy_packages() -> None:
    code = (
        "import sys, deploykit, deploykit.cli.app as a; "
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'tensorrt', 'matplotlib', 'fvcore') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_a_lazy_export_named_like_its_submodule_stays_the_function() -> None:
    """Importing ``deploykit.profile.roofline`` (the module) must not turn ``deploykit.profile.roofline`` into it."""
    import subprocess
    import sys

    code = ("import deploykit.profile.roofline\nfrom deploykit.profile import roofline\n"
            "import types\nassert not isinstance(roofline, types.ModuleType), roofline\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
