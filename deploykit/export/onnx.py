"""PyTorch module -> validated ONNX file with a manifest.

Exporter: ``torch.onnx.export(..., dynamo=True)`` (``torch.export`` based; the default since torch 2.9, the
TorchScript exporter is deprecated). It exports every registered model on torch 2.14. With ``exporter="auto"``
a model the dynamo exporter cannot export (or whose graph fails ``onnx.checker``) is exported with the TorchScript
exporter instead, and the manifest records which one ran and why (``exporter.name``, ``exporter.fallback_reason``).

Files, in ``out_dir`` (default ``deploykit-out/``)::

    <model>[-fp16][-b<N>|-dynamic].onnx        the graph with its weights embedded (one self-contained file)
    <model>[-fp16][-b<N>|-dynamic].onnx.json   the manifest (see :func:`export_module`)

``-b<N>`` appears for a fixed batch other than 1, ``-dynamic`` for a dynamic batch; an import-path model
``pkg.mod:Net`` is named ``pkg.mod-Net``. Weights are embedded (``external_data=False``): one file, one sha256,
one atomic rename. Protobuf limits such a file to 2 GB; a bigger model raises :class:`ExportError`.

Precision: ``fp32``, or ``fp16`` = the module converted with ``.half()`` before export, so weights,
activations, the input and the output are all fp16 (feed it fp16 tensors; TensorRT builds a strongly typed fp16
engine from it).

Writing is atomic: the graph goes to a hidden temporary file in ``out_dir``, is checked and validated there, and
only then renamed to its name, followed by its manifest. A graph that fails validation is never given the valid
name: it is kept as ``<stem>.failed.onnx`` (with a ``.failed.onnx.json`` manifest saying so) for inspection, and
:func:`load_onnx_artifact` refuses it.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deploykit._io import check_output_dir, make_temporary, write_temporary
from deploykit._io import sha256_file as sha256_file
from deploykit.backends.ort import cuda_provider_available, fp16_coverage
from deploykit.errors import BackendUnavailable, InvalidInput
from deploykit.export.artifact import (
    MANIFEST_SCHEMA,
    MANIFEST_VERSION,
    OnnxArtifact,
    load_onnx_artifact,
    manifest_path_for,
    publish_graph,
)
from deploykit.export.onnx_graph import INPUT_NAME as INPUT_NAME
from deploykit.export.onnx_graph import export_serialised, output_names
from deploykit.export.validate import (
    TOLERANCES,
    Tolerance,
    as_outputs,
    describe_failure,
    validate_onnx,
    validation_scope,
)
from deploykit.models import ModelSpec, create_model, run_with_layer_context
from deploykit.models.inputs import InputSpec
from deploykit.models.shapes import fmt_shape

__all__ = [
    "EXPORTERS",
    "MANIFEST_SCHEMA",
    "MANIFEST_VERSION",
    "PRECISIONS",
    "TOLERANCES",
    "OnnxArtifact",
    "Tolerance",
    "artifact_stem",
    "export_module",
    "export_onnx",
    "load_onnx_artifact",
    "manifest_path_for",
    "publish_graph",
]

PRECISIONS = ("fp32", "fp16")
EXPORTERS = ("auto", "dynamo", "torchscript")
DEFAULT_OUT_DIR = "deploykit-out"
#: Example batch for a dynamic-batch export: torch.export specialises sizes 0 and 1, so trace with 2.
_DYNAMIC_EXAMPLE_BATCH = 2


def artifact_stem(
    model_name: str, precision: str = "fp32", batch_size: int = 1, dynamic_batch: bool = False
) -> str:
    """The file stem for an export: ``resnet18``, ``resnet18-fp16``, ``resnet18-b8``, ``resnet18-fp16-dynamic``."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", model_name).strip("-.") or "model"
    if precision != "fp32":
        stem += f"-{precision}"
    if dynamic_batch:
        stem += "-dynamic"
    elif batch_size != 1:
        stem += f"-b{batch_size}"
    return stem


def _check_args(precision: str, batch_size: int, opset: int | None, exporter: str) -> None:
    if precision not in PRECISIONS:
        raise InvalidInput(
            f"ONNX export precision must be one of {', '.join(PRECISIONS)}, got {precision!r} "
            "(bf16 and int8 are TensorRT build precisions made from the fp32 graph)"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInput(f"batch size must be a positive integer, got {batch_size!r}")
    if exporter not in EXPORTERS:
        raise InvalidInput(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    if opset is not None:
        import onnx

        newest = onnx.defs.onnx_opset_version()
        if isinstance(opset, bool) or not isinstance(opset, int) or not 7 <= opset <= newest:
            raise InvalidInput(
                f"opset must be an integer from 7 to {newest} (this onnx package), got {opset!r}"
            )


def _resolve_device(device: str | torch.device | None) -> tuple[torch.device, list[str]]:
    """The validation device and warnings: ``None`` picks CUDA when both torch and onnxruntime can use it."""
    notes: list[str] = []
    if device is None:
        if torch.cuda.is_available():
            if cuda_provider_available():
                return torch.device("cuda"), notes
            notes.append(
                "a CUDA device is present but onnxruntime has no CUDA provider: validated on the CPU provider "
                "(install onnxruntime-gpu to validate on the GPU)"
            )
        return torch.device("cpu"), notes
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidInput(f"bad device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise InvalidInput(f"validation runs on cpu or cuda, not {dev}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable(f"--device {device} asked for, but torch sees no CUDA GPU on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise BackendUnavailable(f"--device {device} asked for, but torch sees {torch.cuda.device_count()} CUDA GPU(s)")
    return dev, notes


# ------------------------------------------------------------------------------------- steps of export_module
def _check_request(
    module: nn.Module,
    spec: ModelSpec,
    precision: str,
    batch_size: int,
    dynamic_batch: bool,
    opset: int | None,
    exporter: str,
    validate_batches: Sequence[int] | None,
    out_dir: str | Path,
    data: Any,
    name: str | None,
) -> None:
    """Refuse bad arguments, a weightless module, an unusable output folder or data the model cannot take
    (:class:`InvalidInput` / :class:`ArtifactError`, one line), all before minutes of exporting."""
    _check_args(precision, batch_size, opset, exporter)
    if any(p.is_meta for p in module.parameters()):
        raise InvalidInput("the module has no weights (built on the meta device); build it on cpu to export")
    if validate_batches is not None and (not validate_batches or any(int(b) < 1 for b in validate_batches)):
        raise InvalidInput(f"validation batch sizes must be positive, got {list(validate_batches)}")
    if (
        validate_batches is not None
        and not dynamic_batch
        and any(int(b) != batch_size for b in validate_batches)
    ):
        raise InvalidInput(
            f"a fixed-batch graph takes batches of {batch_size} only, got {list(validate_batches)}"
        )
    check_output_dir(out_dir)  # before minutes of exporting
    if data is not None:
        from deploykit.data import check_for_model

        check_for_model(data, spec.input_shape, spec.num_classes, name or spec.name)


def _prepare_example(
    module: nn.Module, spec: ModelSpec, inputs: InputSpec | None, seed: int, example_batch: int, model_name: str
) -> tuple[nn.Module, InputSpec, torch.Tensor, list[str]]:
    """The module in eval mode on the CPU (a copy when it is elsewhere), its resolved input spec and an example
    batch, and the output names (it runs the example once eagerly: a wrong input shape is reported with the
    layer it breaks)."""
    # The export runs on the CPU (weights are copied into the graph; tracing computes nothing).
    module = module.eval()
    params = list(module.parameters())
    cpu_module = module if not params or params[0].device.type == "cpu" else copy.deepcopy(module).to("cpu")
    in_spec = replace((inputs or InputSpec()).resolve(cpu_module), seed=seed)
    example = in_spec.sample(spec.batch_shape(example_batch))
    probe = run_with_layer_context(cpu_module, example, model_name)  # ShapeError names the layer
    return cpu_module, in_spec, example, output_names(len(as_outputs(probe)))


def _write_graph(tmp: Path, blob: bytes, final: Path) -> None:
    """Write ``blob`` to the temporary file ``tmp`` (a normal file's mode, fsynced); a failure is one
    :class:`ArtifactError` line naming ``final``."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; an artifact is a normal file
    write_temporary(tmp, blob, final)


def _validate_graph(
    tmp: Path,
    cpu_module: nn.Module,
    spec: ModelSpec,
    in_spec: InputSpec,
    *,
    precision: str,
    batches: list[int],
    device: torch.device,
    seed: int,
    tolerances: Mapping[str, Tolerance] | None,
    notes: list[str],
    data: Any,
    fixed_batch: int | None,
) -> dict[str, Any]:
    """The numerical validation of the graph at ``tmp`` against the eager module on ``device``, with what it
    validated and did not in words (and the fp16 coverage of an fp16 graph)."""
    ref_module = cpu_module if device.type == "cpu" else copy.deepcopy(cpu_module).to(device)
    validation = validate_onnx(
        tmp,
        ref_module,
        sample_shape=spec.input_shape,
        precision=precision,
        batch_sizes=batches,
        device=device,
        seed=seed,
        tolerances=tolerances,
        reference_desc=f"eager PyTorch fp32 on {device}" + (" (TF32 off)" if device.type == "cuda" else ""),
        warnings=notes,
        input_range=(in_spec.low, in_spec.high) if in_spec.low is not None and in_spec.high is not None else None,
        data=data,
        fixed_batch=fixed_batch,
    )
    del ref_module
    coverage = fp16_coverage(tmp, device) if precision == "fp16" else None
    validation["validated"], validation["not_validated"] = validation_scope(
        precision, device, batches, coverage, data=data
    )
    if coverage is not None:
        validation["fp16_coverage"] = coverage
    return validation


# -------------------------------------------------------------------------------------------------- public
def export_module(
    module: nn.Module,
    spec: ModelSpec,
    *,
    out_dir: str | Path = DEFAULT_OUT_DIR,
    precision: str = "fp32",
    batch_size: int = 1,
    dynamic_batch: bool = False,
    opset: int | None = None,
    validate: bool = True,
    device: str | torch.device | None = None,
    exporter: str = "auto",
    validate_batches: Sequence[int] | None = None,
    validation_seed: int = 0,
    tolerances: Mapping[str, Tolerance] | None = None,
    name: str | None = None,
    model_info: Mapping[str, Any] | None = None,
    inputs: InputSpec | None = None,
    data: Any = None,
) -> OnnxArtifact:
    """Export ``module`` (taking ``spec.input_shape`` samples) to ONNX, check it, validate it, write it atomically.

    Args:
        module: the model, with real weights (not on ``meta``); it is not modified (fp16 exports a copy).
        spec: its :class:`~deploykit.models.ModelSpec` (name, per-sample input shape).
        out_dir: output folder (created).
        precision: ``"fp32"`` or ``"fp16"`` (weights, activations, input and output in fp16).
        batch_size: the fixed batch of the graph (ignored with ``dynamic_batch``).
        dynamic_batch: make dimension 0 of the input and outputs symbolic (``"batch"``).
        opset: ONNX opset; ``None`` lets the exporter choose (torch 2.14: 20) and the manifest records it.
        validate: run the numerical validation (``onnx.checker`` always runs).
        device: where ONNX Runtime and the eager reference run; ``None``: CUDA when torch and onnxruntime-gpu
            can use it, else the CPU.
        exporter: ``"auto"`` (dynamo, TorchScript if dynamo fails), ``"dynamo"`` or ``"torchscript"``.
        validate_batches: batch sizes of the random validation batches; default three batches of
            ``batch_size`` (fixed batch) or of 1, 2 and 3 (dynamic batch).
        validation_seed: seed of the random validation inputs.
        tolerances: per-precision :class:`Tolerance` overriding :data:`TOLERANCES`.
        name: the model name in the file name and manifest (default ``spec.name``).
        model_info: extra facts about the model for the manifest (overrides, weight seed).
        inputs: the input's element type and value range (token ids: ``InputSpec("int64", 0, vocab)``; the
            range defaults to the model's ``nn.Embedding`` size); default float32.
        data: a :class:`~deploykit.data.LabelledData` split (checked against the model here): validate on its
            samples instead of random inputs, and record accuracy and top-1 agreement beside the tensor errors.

    Returns the :class:`OnnxArtifact`; its manifest's ``validation.status`` is ``passed`` or ``inconclusive``
    (the check could not have seen a 1% error in the input-dependent part of the output: ``reason`` says why;
    ``passed`` is then ``None``). Raises :class:`ExportError` when no exporter produces a graph that
    ``onnx.checker`` accepts, :class:`ValidationError` (with the reason) when the validation *failed* (the graph
    is kept as ``<stem>.failed.onnx``), :class:`BackendUnavailable` when ``device="cuda"`` cannot be used.

    The manifest (``<file>.json``) holds: ``schema``/``schema_version``, ``file``, ``sha256``, ``bytes``,
    ``model`` (name, spec, overrides, weight seed), ``inputs``/``outputs`` (name, shape with ``"batch"`` for a
    dynamic batch, dtype), ``batch``, ``opset``, ``precision``, ``exporter``, ``checker``, ``validation`` (see
    :func:`deploykit.export.validate.validate_onnx`, plus ``validated``/``not_validated`` in words and the
    ``fp16_coverage`` of an fp16 graph) and ``environment`` (package versions, CPU, GPU).

    >>> model, spec = create_model("lenet", device="cpu")                        # doctest: +SKIP
    >>> art = export_module(model, spec, out_dir="out")                           # doctest: +SKIP
    >>> art.path.name, art.manifest["validation"]["passed"]                       # doctest: +SKIP
    ('lenet.onnx', True)
    """
    _check_request(module, spec, precision, batch_size, dynamic_batch, opset, exporter, validate_batches, out_dir,
                   data, name)
    val_device, notes = _resolve_device(device) if validate else (torch.device("cpu"), [])
    model_name = name or spec.name
    stem = artifact_stem(model_name, precision, batch_size, dynamic_batch)
    final = Path(out_dir) / f"{stem}.onnx"
    failed = Path(out_dir) / f"{stem}.failed.onnx"
    batches = (
        [int(b) for b in validate_batches]
        if validate_batches
        else ([1, 2, 3] if dynamic_batch else [batch_size] * 3)
    )
    cpu_module, in_spec, example, names = _prepare_example(
        module, spec, inputs, validation_seed, _DYNAMIC_EXAMPLE_BATCH if dynamic_batch else batch_size, model_name
    )
    blob, graph = export_serialised(cpu_module, example, names, precision, dynamic_batch, opset, exporter)

    tmp = make_temporary(final, ".onnx")  # ArtifactError (one line) when the folder cannot be made or written
    try:
        _write_graph(tmp, blob, final)
        digest, size = hashlib.sha256(blob).hexdigest(), len(blob)
        del blob
        validation: dict[str, Any] = {"status": "skipped", "passed": None}
        if validate:
            validation = _validate_graph(
                tmp, cpu_module, spec, in_spec, precision=precision, batches=batches, device=val_device,
                seed=validation_seed, tolerances=tolerances, notes=notes, data=data,
                fixed_batch=None if dynamic_batch else batch_size,
            )
        manifest = _manifest(
            file=final.name,
            sha256=digest,
            size=size,
            spec=spec,
            model_name=model_name,
            model_info={**dict(model_info or {}), **({"inputs": in_spec.to_dict()} if in_spec.is_integer else {})},
            inputs=graph.inputs,
            outputs=graph.outputs,
            dynamic=dynamic_batch,
            batch_size=batch_size,
            opset=graph.opset,
            precision=precision,
            exporter=graph.exporter,
            validation=validation,
            device=val_device,
        )
        failure = None
        if validation.get("status") == "failed":
            failure = (f"{model_name} {precision}: validation failed: {describe_failure(validation)}. "
                       f"{final} was not written; the failing graph is kept as {failed} for inspection")
        publish_graph(tmp, final, failed, manifest, failure=failure)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return OnnxArtifact(final, manifest_path_for(final), manifest)


def _manifest(
    *,
    file: str,
    sha256: str,
    size: int,
    spec: ModelSpec,
    model_name: str,
    model_info: Mapping[str, Any] | None,
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    dynamic: bool,
    batch_size: int,
    opset: int,
    precision: str,
    exporter: dict[str, Any],
    validation: dict[str, Any],
    device: torch.device,
) -> dict[str, Any]:
    from deploykit._env import environment

    return {
        "schema": MANIFEST_SCHEMA,
        "schema_version": MANIFEST_VERSION,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "file": file,
        "sha256": sha256,
        "bytes": size,
        "external_data": False,
        "model": {"name": model_name, "spec": spec.to_dict(), **dict(model_info or {})},
        # the exact weights in the graph: source and sha256 of the file, or None for a random initialisation
        "weights": spec.weights.to_dict() if spec.weights is not None else None,
        "inputs": inputs,
        "outputs": outputs,
        "batch": {"dynamic": dynamic, "size": None if dynamic else batch_size},
        "sample_shape": fmt_shape(spec.input_shape),
        "opset": opset,
        "precision": precision,
        "io_dtype": "float16" if precision == "fp16" else "float32",
        "exporter": exporter,
        "checker": {"full_check": True, "passed": True},
        "validation": validation,
        "environment": environment(str(device)),
    }


def export_onnx(
    model: str,
    *,
    out_dir: str | Path = DEFAULT_OUT_DIR,
    precision: str = "fp32",
    batch_size: int = 1,
    dynamic_batch: bool = False,
    opset: int | None = None,
    validate: bool = True,
    device: str | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    image_size: int | Sequence[int] | str | None = None,
    input_shape: Sequence[int] | str | None = None,
    exporter: str = "auto",
    seed: int | None = None,
    validate_batches: Sequence[int] | None = None,
    tolerances: Mapping[str, Tolerance] | None = None,
    inputs: InputSpec | None = None,
    weights: str | os.PathLike[str] | None = None,
    data: Any = None,
    data_limit: int | None = None,
) -> OnnxArtifact:
    """Build registered model ``model`` (or ``pkg.mod:Net``) on the CPU and export it with :func:`export_module`.

    ``weights``: a safetensors / PyTorch file or a torchvision weight name, loaded strictly
    (:func:`~deploykit.models.weights.load_weights`); the manifest records its source and sha256. Without it the
    weights are freshly initialised (no download) from torch's global RNG; ``seed`` seeds it first (and is
    recorded), ``None`` uses its current state (seed it yourself to get the same weights as another module).
    ``data``: ``"mnist1d"``, ``"digits"``, an ``.npz`` file, an image folder or a
    :class:`~deploykit.data.LabelledData`: validate on its test split (the first ``data_limit`` samples).
    The other arguments are :func:`export_module`'s; the overrides are :func:`~deploykit.models.create_model`'s.

    >>> art = export_onnx("resnet18", precision="fp16", out_dir="deploykit-out", seed=0)   # doctest: +SKIP
    >>> art.path                                                                          # doctest: +SKIP
    PosixPath('deploykit-out/resnet18-fp16.onnx')
    """
    overrides: dict[str, Any] = {
        "num_classes": num_classes,
        "in_channels": in_channels,
        "image_size": image_size,
        "input_shape": input_shape,
    }
    _check_args(precision, batch_size, opset, exporter)
    with torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext():
        if seed is not None:
            torch.manual_seed(seed)
        module, spec = create_model(model, device="cpu", weights=weights, **overrides)
    test = load_test_split(data, spec, name=model, limit=data_limit) if data is not None else None
    given = {
        k: (list(v) if isinstance(v, (tuple, list)) else v) for k, v in overrides.items() if v is not None
    }
    return export_module(
        module,
        spec,
        out_dir=out_dir,
        precision=precision,
        batch_size=batch_size,
        dynamic_batch=dynamic_batch,
        opset=opset,
        validate=validate,
        device=device,
        exporter=exporter,
        validate_batches=validate_batches,
        tolerances=tolerances,
        name=model,
        model_info={"overrides": given, "weight_seed": None if weights is not None else seed},
        inputs=inputs,
        data=test,
    )


def load_test_split(data: Any, spec: ModelSpec, *, name: str | None = None, limit: int | None = None) -> Any:
    """The test split of ``data`` (a name, a path or a :class:`~deploykit.data.LabelledData`) for a model of
    ``spec``, checked against it (one :class:`InvalidInput` line for data the model cannot take)."""
    from deploykit.data import LabelledData, check_for_model, load_data

    if isinstance(data, LabelledData):
        test = data.subset(limit) if limit else data
        check_for_model(test, spec.input_shape, spec.num_classes, name or spec.name)
        return test
    return load_data(data, spec.input_shape, num_classes=spec.num_classes, model_name=name or spec.name,
                     limit=limit).test
