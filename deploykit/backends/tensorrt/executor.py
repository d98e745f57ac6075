"""A deserialized engine bound to torch CUDA tensors: :class:`EngineExecutor` and :func:`load_engine`.

The one place in deploykit that binds tensors and enqueues TensorRT work; the runner, the per-layer profiler and
the post-build validation all use it. Nothing here has run against a real TensorRT: the calls are written against
the TensorRT 10.x/11.x Python API and cited where they are made.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploykit.backends.tensorrt import runtime as _rt
from deploykit.backends.tensorrt.inspector import parse_engine_information
from deploykit.backends.tensorrt.manifest import load_engine_manifest
from deploykit.backends.tensorrt.runtime import import_tensorrt
from deploykit.errors import ArtifactError, InvalidInput, ShapeError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ProfileShape:
    """The min / opt / max shape of one input in the optimization profile."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Sequence[int]]) -> ProfileShape:
        return cls(tuple(d["min"]), tuple(d["opt"]), tuple(d["max"]))

_TRT_TO_TORCH = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
    "FP8": "float8_e4m3fn",
}

def trt_dtype_name(trt_dtype: Any) -> str:
    """``trt.DataType.HALF`` -> ``"HALF"`` (pybind11 enums have ``.name``; ``str`` gives ``"DataType.HALF"``)."""
    name = getattr(trt_dtype, "name", None)
    return str(name if name is not None else trt_dtype).split(".")[-1].upper()

def torch_dtype_for(trt_dtype: Any) -> torch.dtype:
    """The torch dtype for a ``trt.DataType`` (FLOAT, HALF, BF16, INT8, UINT8, INT32, INT64, BOOL, FP8).

    Members per the ``tensorrt.DataType`` page of the 10.x Python API docs (BF16/INT64/FP8/INT4 added in 9.x-10.0);
    INT4/FP4 have no torch dtype and raise :class:`ArtifactError`.
    """
    import torch

    name = trt_dtype_name(trt_dtype)
    if name not in _TRT_TO_TORCH:
        raise ArtifactError(f"TensorRT data type {name} has no torch equivalent; deploykit cannot bind it")
    dtype: torch.dtype = getattr(torch, _TRT_TO_TORCH[name])
    return dtype

def _make_logger(trt: Any) -> Any:
    """A ``trt.ILogger`` that keeps warnings and errors so failures can quote them.

    API: subclassing ``trt.ILogger`` with ``log(severity, msg)`` and calling ``trt.ILogger.__init__`` — TensorRT
    8.x-11.x Python API ("Logger" docs); same pattern as Polygraphy's backend/trt/util.py ``get_trt_logger``.
    """

    class _KeepingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[tuple[str, str]] = []

        def log(self, severity: Any, msg: str) -> None:
            sev = trt_dtype_name(severity)
            if sev in ("INTERNAL_ERROR", "ERROR", "WARNING"):
                self.messages.append((sev, str(msg)))

        def errors(self) -> list[str]:
            return [m for s, m in self.messages if s in ("INTERNAL_ERROR", "ERROR")]

    return _KeepingLogger()

@dataclass(frozen=True)
class IOTensor:
    """One engine input or output: its name, whether it is an input, torch dtype and engine shape (-1 = dynamic)."""

    name: str
    is_input: bool
    dtype: Any
    shape: tuple[int, ...]
    profile: ProfileShape | None

class EngineExecutor:
    """A deserialized engine and one execution context that run torch CUDA tensors (no pycuda).

    The one place in deploykit that binds tensors and enqueues TensorRT work; :class:`deploykit.backends.tensorrt.
    TensorRTRunner` and the post-build validation both use it. Work is enqueued with ``execute_async_v3`` on a
    **non-default** ``torch.cuda.Stream`` (``self.stream``; on the legacy default stream TensorRT synchronizes
    the device), which first waits for the caller's current stream and is then waited on by it, so CUDA events
    recorded on the caller's stream bracket the engine's work exactly.

    Call order per run, identical on 10.x and 11.x (Python API "IExecutionContext"; Polygraphy
    backend/trt/runner.py ``_infer_impl_v3``; Torch-TensorRT runtime/_PythonTorchTensorRTModule.py):
    ``set_input_shape`` for each input -> ``get_tensor_shape`` for each output -> ``set_tensor_address`` for all
    -> ``execute_async_v3(stream.cuda_stream)``.
    """

    def __init__(self, trt: Any, engine_bytes: bytes, device: str | Any = "cuda", *, name: str = "engine") -> None:
        import torch

        self.trt = trt
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())  # x.device is always indexed
        self.name = name
        self.logger = _make_logger(trt)
        # trt.Runtime(logger).deserialize_cuda_engine(bytes) -> ICudaEngine | None (None on a version / device
        # mismatch or corrupt plan). TensorRT 8.x-11.x; checked: 11.x Python migration guide examples, Polygraphy
        # backend/trt/loader.py EngineFromBytes.
        self.runtime = trt.Runtime(self.logger)
        with _rt.device_guard(self.device):
            self.engine = self.runtime.deserialize_cuda_engine(engine_bytes)
            if self.engine is None:
                errs = "; ".join(self.logger.errors()[-3:]) or "no message"
                raise ArtifactError(
                    f"TensorRT could not deserialize {name} ({errs}); an engine runs only with the TensorRT version "
                    "and GPU it was built for"
                )
            # ICudaEngine.create_execution_context() -> IExecutionContext | None. 8.x-11.x (Python API "ICudaEngine").
            self.context = self.engine.create_execution_context()
        if self.context is None:
            raise ArtifactError(f"TensorRT could not create an execution context for {name} (out of GPU memory?)")
        self.io = self._read_io()
        self.inputs = [t for t in self.io if t.is_input]
        self.outputs = [t for t in self.io if not t.is_input]
        self.stream = _rt.new_stream(self.device)
        self._out_cache: dict[str, torch.Tensor] = {}

    def _read_io(self) -> list[IOTensor]:
        trt, engine = self.trt, self.engine
        io = []
        # num_io_tensors / get_tensor_name / get_tensor_mode / get_tensor_dtype / get_tensor_shape /
        # get_tensor_profile_shape(name, profile_index): the name-based I/O API, TensorRT 8.5+ and the only one
        # in 10.x/11.x (Python API "ICudaEngine"; 8.x->10.x Python migration appendix).
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            shape = tuple(int(d) for d in engine.get_tensor_shape(name))
            profile = None
            if is_input:
                mn, op, mx = engine.get_tensor_profile_shape(name, 0)
                profile = ProfileShape(tuple(int(d) for d in mn), tuple(int(d) for d in op), tuple(int(d) for d in mx))
            io.append(IOTensor(name, is_input, torch_dtype_for(engine.get_tensor_dtype(name)), shape, profile))
        if not any(t.is_input for t in io) or all(t.is_input for t in io):
            raise ArtifactError(f"{self.name} has no inputs or no outputs")
        return io

    # -- binding
    def check_input(self, spec: IOTensor, x: Any) -> None:
        """Raise :class:`ShapeError` / :class:`InvalidInput` when ``x`` cannot be bound to input ``spec``."""
        if x.device != self.device:
            raise InvalidInput(f"{self.name}: input {spec.name!r} is on {x.device}, the engine runs on {self.device}")
        if x.dtype != spec.dtype:
            raise InvalidInput(
                f"{self.name}: input {spec.name!r} is {x.dtype}, the engine takes {spec.dtype} "
                "(use runner.prepare_input to convert once, outside timing)"
            )
        shape = tuple(x.shape)
        if len(shape) != len(spec.shape):
            raise ShapeError(f"{self.name}: input {spec.name!r} takes {len(spec.shape)}-D tensors, got shape {shape}")
        if spec.profile is not None:
            lo, hi = spec.profile.min, spec.profile.max
            if any(s < a or s > b for s, a, b in zip(shape, lo, hi, strict=True)):
                raise ShapeError(
                    f"{self.name}: input {spec.name!r} shape {shape} is outside the engine's profile "
                    f"(min {lo}, max {hi}); rebuild with --min-batch/--max-batch"
                )

    def bind(self, inputs: Sequence[Any], *, reuse_outputs: bool = True) -> list[Any]:
        """Set input shapes and all tensor addresses for ``inputs``; return the output tensors to be written."""
        import torch

        if len(inputs) != len(self.inputs):
            raise InvalidInput(f"{self.name} takes {len(self.inputs)} input(s), got {len(inputs)}")
        ctx = self.context
        for spec, x in zip(self.inputs, inputs, strict=True):
            self.check_input(spec, x)
            # set_input_shape(name, shape) -> bool: must precede get_tensor_shape of outputs. 8.5+/10.x/11.x.
            if not ctx.set_input_shape(spec.name, tuple(x.shape)):
                raise ShapeError(f"{self.name}: TensorRT refused shape {tuple(x.shape)} for input {spec.name!r}")
        outs = []
        for spec in self.outputs:
            shape = tuple(int(d) for d in ctx.get_tensor_shape(spec.name))
            if any(d < 0 for d in shape):
                raise ArtifactError(f"{self.name}: output {spec.name!r} has a data-dependent shape {shape}; not supported")
            out = self._out_cache.get(spec.name) if reuse_outputs else None
            if out is None or tuple(out.shape) != shape:
                out = torch.empty(shape, dtype=spec.dtype, device=self.device)
                if reuse_outputs:
                    self._out_cache[spec.name] = out
            outs.append(out)
        # set_tensor_address(name, int pointer) -> bool; torch tensors give data_ptr(). 8.5+/10.x/11.x.
        for spec, t in [*zip(self.inputs, inputs, strict=True), *zip(self.outputs, outs, strict=True)]:
            if not t.is_contiguous():
                raise InvalidInput(f"{self.name}: tensor {spec.name!r} must be contiguous")
            if not ctx.set_tensor_address(spec.name, int(t.data_ptr())):
                raise ArtifactError(f"{self.name}: TensorRT refused the address of tensor {spec.name!r}")
        return outs

    def enqueue(self) -> None:
        """``execute_async_v3`` on ``self.stream`` with the stream waits on both sides (shapes/addresses bound)."""
        caller = _rt.current_stream(self.device)
        self.stream.wait_stream(caller)
        # execute_async_v3(stream_handle: int) -> bool. TensorRT 8.5+, the only enqueue in 10.x/11.x
        # (execute_async_v2 removed in 10.0: 8.x->10.x Python migration appendix). torch.cuda.Stream.cuda_stream is
        # the raw cudaStream_t as an int (used the same way by Torch-TensorRT's Python runtime).
        ok = self.context.execute_async_v3(self.stream.cuda_stream)
        caller.wait_stream(self.stream)
        if not ok:
            errs = "; ".join(self.logger.errors()[-3:]) or "no message"
            raise ArtifactError(f"{self.name}: TensorRT execute_async_v3 failed ({errs})")

    def run(self, inputs: Sequence[Any], *, reuse_outputs: bool = False) -> list[Any]:
        """Bind ``inputs`` and run once; returns the outputs (fresh tensors unless ``reuse_outputs``)."""
        outs = self.bind(inputs, reuse_outputs=reuse_outputs)
        self.enqueue()
        for x in inputs:  # inputs were read on self.stream: keep the allocator from reusing them too early
            if x.is_cuda:
                x.record_stream(self.stream)
        return outs

    def engine_information(self, input_shapes: Mapping[str, Sequence[int]] | None = None) -> dict[str, Any]:
        """The engine inspector's JSON, parsed (:func:`parse_engine_information`), with the raw JSON under ``raw``.

        Input shapes (default: each profile's opt shape) are set on the context first, so the inspector can
        report concrete dims and formats for a dynamic engine. API: ``ICudaEngine.create_engine_inspector()``,
        ``EngineInspector.execution_context`` (attribute name in the 10.x/11.x Python API and Polygraphy
        backend/trt/util.py; 8.x called it ``context``), ``get_engine_information(trt.LayerInformationFormat.JSON)``
        — TensorRT 8.2+/10.x/11.x ("Engine Inspector", TensorRT 10.16 developer guide, engine-tools page).
        """
        for spec in self.inputs:
            shape = tuple(input_shapes[spec.name]) if input_shapes and spec.name in input_shapes else (
                spec.profile.opt if spec.profile else spec.shape
            )
            if not self.context.set_input_shape(spec.name, shape):
                raise ShapeError(f"{self.name}: TensorRT refused shape {shape} for input {spec.name!r}")
        inspector = self.engine.create_engine_inspector()
        inspector.execution_context = self.context
        raw = inspector.get_engine_information(self.trt.LayerInformationFormat.JSON)
        parsed = parse_engine_information(raw)
        parsed["raw"] = json.loads(raw) if isinstance(raw, str) else raw
        return parsed

def load_engine(path: str | os.PathLike[str], device: str = "cuda", *, check: bool = True) -> tuple[EngineExecutor, dict[str, Any]]:
    """Load an engine built by :func:`build_engine`: verify its manifest, then deserialize it on ``device``."""
    manifest = load_engine_manifest(path, check=check, device=device)
    p = Path(path)
    engine_path = p.with_name(p.name[: -len(".json")]) if p.suffix == ".json" else p
    trt = import_tensorrt()
    dev = _rt.current_gpu(device).device  # "cuda" -> "cuda:N": tensors are compared against an indexed device
    return EngineExecutor(trt, engine_path.read_bytes(), dev, name=engine_path.name), manifest
