"""Export: module -> artifact on disk (ONNX file, TensorRT engine) with a manifest and numerical validation.

>>> from deploykit.export import export_onnx
>>> art = export_onnx("resnet18", precision="fp16")     # doctest: +SKIP
>>> art.path, art.manifest["validation"]["max_abs_error"]  # doctest: +SKIP

Names load on first use, so ``import deploykit.export.tensorrt`` does not import the ONNX exporter.
"""

from __future__ import annotations

from deploykit._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Int8Options": "deploykit.export.int8",
    "OnnxArtifact": "deploykit.export.onnx",
    "TOLERANCES": "deploykit.export.validate",
    "Tolerance": "deploykit.export.validate",
    "export_module": "deploykit.export.onnx",
    "export_onnx": "deploykit.export.onnx",
    "load_onnx_artifact": "deploykit.export.onnx",
    "quantize_artifact": "deploykit.export.int8",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
