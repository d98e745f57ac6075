"""ONNX Runtime backend: an ONNX file -> :class:`OrtRunner` (CPU provider, or CUDA provider with io-binding).

On CUDA the runner binds torch tensors by address (``bind_input`` / ``bind_output`` with ``data_ptr()``): inputs
and outputs stay on the GPU, nothing is copied to or from the host inside :meth:`OrtRunner.infer`. ONNX Runtime
runs its kernels on the runner's own non-default torch stream (``user_compute_stream``; ONNX Runtime ignores a
handle of 0, the legacy default stream), without synchronizing at the end of a run
(``disable_synchronize_execution_providers``); the stream is ordered after the caller's current stream before the
run and the current stream after it, exactly as for any torch kernel, so CUDA events on :attr:`OrtRunner.stream`
time the work.

``cuda_graph=True`` turns on ONNX Runtime's CUDA-graph capture (``enable_cuda_graph``): inputs are copied
(device to device) into one fixed input buffer, outputs land in fixed buffers; the input shape is then fixed for
the runner's life. ONNX Runtime refuses the capture when some node runs on the CPU provider.

This module owns everything deploykit does with ONNX Runtime: importing it (after torch, so onnxruntime-gpu
loads the CUDA and cuDNN libraries torch ships), sessions checked to really use the provider asked for, dtype
mapping, the fp16-coverage count of a session's partitioned graph, and the runner. CUDA needs
onnxruntime-gpu, which replaces the CPU-only onnxruntime package (``pip install 'deploykit[gpu]'``, see the
comment in pyproject.toml); without it activation raises :class:`BackendUnavailable` saying so.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deploykit.backends.base import Runner
from deploykit.backends.math_mode import FP32_MATH, ort_cuda_options
from deploykit.errors import ArtifactError, BackendUnavailable, InvalidInput, ValidationError, first_line

#: How onnxruntime-gpu is installed: it ships the same ``onnxruntime`` module and must replace the CPU package.
ORT_GPU_HINT = (
    "pip uninstall -y onnxruntime onnxruntime-gpu && pip install 'deploykit[gpu]' "
    "(onnxruntime-gpu provides the same `onnxruntime` module and replaces the CPU-only package)"
)

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


# ---------------------------------------------------------------------------------------------- onnxruntime
def import_onnxruntime() -> Any:
    """Import onnxruntime after torch (so onnxruntime-gpu finds torch's CUDA/cuDNN libraries)."""
    import torch  # noqa: F401  (the import order is the point)

    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendUnavailable("onnxruntime is not installed: pip install onnxruntime") from None
    return ort


def _preload_cuda_libraries(ort: Any) -> None:
    # onnxruntime >= 1.21: load CUDA/cuDNN from the nvidia pip packages (torch's); a no-op when torch already did.
    preload = getattr(ort, "preload_dlls", None)
    if callable(preload):
        with contextlib.suppress(Exception):
            preload(cuda=True, cudnn=True, msvc=False)


def cuda_provider_available() -> bool:
    """Whether the installed onnxruntime has the CUDA execution provider (onnxruntime-gpu)."""
    return CUDA_PROVIDER in import_onnxruntime().get_available_providers()


def require_cuda_provider(what: str = "ONNX Runtime on CUDA") -> Any:
    """onnxruntime with a usable CUDA provider and a CUDA device, else :class:`BackendUnavailable` saying why."""
    if not torch.cuda.is_available():
        raise BackendUnavailable(f"{what}: no CUDA device is available")
    ort = import_onnxruntime()
    if CUDA_PROVIDER not in ort.get_available_providers():
        raise BackendUnavailable(
            f"{what}: the installed onnxruntime {ort.__version__} has no CUDA provider (CPU-only package); "
            f"install onnxruntime-gpu: {ORT_GPU_HINT}"
        )
    _preload_cuda_libraries(ort)
    return ort


def make_session(
    path: str | os.PathLike[str],
    device: torch.device,
    *,
    cuda_options: Mapping[str, Any] | None = None,
    threads: int | None = None,
    optimization: str = "all",
    optimized_model_path: str | os.PathLike[str] | None = None,
) -> Any:
    """An ``InferenceSession`` for ``path`` on ``device`` ("cpu" or "cuda[:i]"), checked to really use CUDA.

    ``optimization`` is ``"all"`` (ONNX Runtime's default) or ``"none"``. A session that was asked for the CUDA
    provider and silently fell back to the CPU (missing CUDA libraries) raises :class:`BackendUnavailable`.
    Every CUDA session computes fp32 nodes in true fp32 (``use_tf32=0``, :mod:`deploykit.backends.math_mode`)
    unless ``cuda_options`` says otherwise, on the device's own index (the current device for a bare "cuda").
    """
    if device.type == "cuda":
        ort = require_cuda_provider()
        index = device.index if device.index is not None else torch.cuda.current_device()
        opts = {
            "device_id": str(index),
            **ort_cuda_options(),
            **{k: str(v) for k, v in (cuda_options or {}).items()},
        }
        providers: list[Any] = [(CUDA_PROVIDER, opts), CPU_PROVIDER]
    elif device.type == "cpu":
        ort = import_onnxruntime()
        providers = [CPU_PROVIDER]
    else:
        raise InvalidInput(f"ONNX Runtime runs on cpu or cuda, not {device}")
    so = ort.SessionOptions()
    so.log_severity_level = 3  # errors only; the warnings that matter become exceptions or records
    if threads is not None:
        if threads < 1:
            raise InvalidInput(f"threads must be positive, got {threads}")
        so.intra_op_num_threads = threads
    if optimization == "none":
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    elif optimization != "all":
        raise InvalidInput(f"optimization must be 'all' or 'none', got {optimization!r}")
    if optimized_model_path is not None:
        so.optimized_model_filepath = os.fspath(optimized_model_path)
    try:
        sess = ort.InferenceSession(os.fspath(path), sess_options=so, providers=providers)
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        first = first_line(exc)
        raise ValidationError(f"ONNX Runtime cannot load {path}: {first}") from None
    if device.type == "cuda" and CUDA_PROVIDER not in sess.get_providers():
        raise BackendUnavailable(
            f"ONNX Runtime could not start its CUDA provider for {path} (CUDA/cuDNN libraries not found?); "
            'import torch before onnxruntime, or check `python -c "import onnxruntime; onnxruntime.preload_dlls()"`'
        )
    return sess


def ort_dtype_to_torch(type_str: str) -> torch.dtype:
    """``"tensor(float16)"`` -> ``torch.float16``."""
    table = {
        "tensor(float)": torch.float32,
        "tensor(float16)": torch.float16,
        "tensor(bfloat16)": torch.bfloat16,
        "tensor(double)": torch.float64,
        "tensor(int64)": torch.int64,
        "tensor(int32)": torch.int32,
        "tensor(int8)": torch.int8,
        "tensor(uint8)": torch.uint8,
        "tensor(bool)": torch.bool,
    }
    if type_str not in table:
        raise InvalidInput(f"unsupported ONNX tensor type {type_str}")
    return table[type_str]


# --------------------------------------------------------------------------------------------- fp16 coverage
_FLOAT_TYPES = {1: "float32", 10: "float16", 16: "bfloat16", 11: "float64"}


def fp16_coverage(path: str | os.PathLike[str], device: torch.device) -> dict[str, Any]:
    """Which nodes of an fp16 graph ONNX Runtime really runs in fp16 on ``device``.

    ONNX Runtime's ``InsertCastTransformer`` wraps nodes that have no fp16 kernel on their provider in Casts to
    fp32 and back (the CPU provider has almost none). The session's partitioned graph is saved with graph
    optimizations off (so nodes are not fused away), its types inferred, and every non-Cast node counted as fp16
    (all float inputs fp16) or fp32 (some float input cast to fp32).
    """
    import onnx

    with tempfile.TemporaryDirectory(prefix="deploykit-ort-") as tmp:
        saved = Path(tmp) / "partitioned.onnx"
        make_session(path, device, optimization="none", optimized_model_path=saved)
        model = onnx.load(os.fspath(saved))
    with contextlib.suppress(Exception):
        model = onnx.shape_inference.infer_shapes(model)
    types: dict[str, int] = {}
    for vi in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        types[vi.name] = vi.type.tensor_type.elem_type
    for t in model.graph.initializer:
        types[t.name] = t.data_type
    for node in model.graph.node:  # Cast's output type is its "to" attribute, when inference left it out
        if node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to":
                    types.setdefault(node.output[0], attr.i)
    fp16_nodes = 0
    fp32_ops: Counter[str] = Counter()
    unknown = 0
    inserted = 0
    for node in model.graph.node:
        if node.op_type == "Cast":
            if node.name.startswith("InsertedPrecisionFreeCast") or "InsertedCast" in node.name:
                inserted += 1
            continue
        float_in = [types.get(i) for i in node.input if i and types.get(i) in _FLOAT_TYPES]
        if not float_in:
            if any(i and i not in types for i in node.input):
                unknown += 1
            continue
        if all(t == 10 for t in float_in):
            fp16_nodes += 1
        else:
            fp32_ops[node.op_type] += 1
    total = fp16_nodes + sum(fp32_ops.values())
    return {
        "provider": CUDA_PROVIDER if device.type == "cuda" else CPU_PROVIDER,
        "float_nodes": total,
        "fp16_nodes": fp16_nodes,
        "fp32_nodes": sum(fp32_ops.values()),
        "fp32_op_types": dict(sorted(fp32_ops.items())),
        "inserted_casts": inserted,
        "untyped_nodes": unknown,
    }



#: Element types for io-binding: numpy types, and for bfloat16 (numpy has none) the ONNX enum value, which
#: ``IOBinding.bind_input`` / ``bind_output`` accept in its place (``onnx.TensorProto.BFLOAT16 == 16``).
_ELEMENT_TYPES: dict[torch.dtype, type | int] = {
    torch.float32: np.float32,
    torch.float16: np.float16,
    torch.bfloat16: 16,
    torch.float64: np.float64,
    torch.int64: np.int64,
    torch.int32: np.int32,
    torch.int8: np.int8,
    torch.uint8: np.uint8,
    torch.bool: np.bool_,
}


def element_type(dtype: torch.dtype) -> type | int:
    """The io-binding element type of a torch dtype; :class:`InvalidInput` for one ONNX Runtime cannot bind."""
    try:
        return _ELEMENT_TYPES[dtype]
    except KeyError:
        raise InvalidInput(f"ort: cannot bind a {str(dtype).replace('torch.', '')} tensor") from None


class OrtRunner(Runner):
    """Run an ONNX file in ONNX Runtime on the CPU or on a CUDA GPU.

    Args:
        path: the ``.onnx`` file (a deploykit export or any single-input ONNX file).
        device: ``"cpu"`` (CPU provider) or ``"cuda[:i]"`` (CUDA provider; needs onnxruntime-gpu).
        io_binding: bind input and output buffers by address (always on CUDA: it is what keeps host copies
            out; on the CPU it avoids ONNX Runtime's output allocation).
        cuda_graph: capture a CUDA graph on the first call and replay it (CUDA only; fixed input shape).
        threads: intra-op threads of the CPU provider (``None``: ONNX Runtime's default, one per core).

    ``infer(x)`` takes a contiguous tensor on ``device`` in the graph's input dtype (``prepare_input`` converts
    one, outside any timing) and returns the first output on ``device``; ``infer_all`` returns all outputs.
    With ``cuda_graph`` the returned tensor is the runner's fixed output buffer, overwritten by the next call.

    >>> with OrtRunner("deploykit-out/resnet18.onnx") as r:      # doctest: +SKIP
    ...     y = r.infer(torch.randn(1, 3, 224, 224))
    """

    name = "ort"

    def __init__(
        self,
        path: str | os.PathLike[str],
        device: str | torch.device = "cpu",
        *,
        io_binding: bool = True,
        cuda_graph: bool = False,
        threads: int | None = None,
    ) -> None:
        super().__init__(device)
        if self.device.type not in ("cpu", "cuda"):
            raise InvalidInput(f"ort runs on cpu or cuda, not {self.device}")
        if cuda_graph and self.device.type != "cuda":
            raise InvalidInput("ort: CUDA graphs need a CUDA device (device='cuda')")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise InvalidInput(f"ort: threads must be a positive integer, got {threads!r}")
        self.path = Path(path)
        self.io_binding = io_binding or self.device.type == "cuda"
        self.cuda_graph = cuda_graph
        self.threads = threads
        #: The torch stream ONNX Runtime computes on (CUDA only, after ``activate``).
        self.stream: Any = None
        self._sess: Any = None
        self._binding: Any = None
        self._run_options: Any = None
        self._in_name = ""
        self._in_dims: list[Any] = []
        self.input_dtype = torch.float32
        self._out: list[tuple[str, torch.dtype, list[Any]]] = []
        self._shape_cache: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
        self._graph_in: torch.Tensor | None = None
        self._graph_out: list[torch.Tensor] = []
        self.info.update(
            {
                "onnx": str(self.path),
                "io_binding": self.io_binding,
                "cuda_graphs": cuda_graph,
                "threads": threads,
            }
        )

    # ------------------------------------------------------------------------------------------ lifecycle
    def _activate(self) -> None:
        if not self.path.is_file():
            raise ArtifactError(f"ONNX file not found: {self.path}")
        ort = import_onnxruntime()
        if self.device.type == "cuda":
            require_cuda_provider("ort on CUDA")
            if self.device.index is None:
                self.device = torch.device("cuda", torch.cuda.current_device())
            self.stream = torch.cuda.Stream(self.device)
            options = self.cuda_provider_options(int(self.stream.cuda_stream))
            self._sess = make_session(self.path, self.device, cuda_options=options, threads=self.threads)
            self._run_options = ort.RunOptions()
            # Keep the run asynchronous like a torch kernel; ordering is done with the streams.
            self._run_options.add_run_config_entry("disable_synchronize_execution_providers", "1")
        else:
            self._sess = make_session(self.path, self.device, threads=self.threads)
        inputs = self._sess.get_inputs()
        if len(inputs) != 1:
            raise InvalidInput(
                f"ort: {self.path} has {len(inputs)} inputs; the runner takes single-input models"
            )
        self._in_name = inputs[0].name
        self._in_dims = list(inputs[0].shape)
        self.input_dtype = ort_dtype_to_torch(inputs[0].type)
        self._out = [(o.name, ort_dtype_to_torch(o.type), list(o.shape)) for o in self._sess.get_outputs()]
        self._binding = self._sess.io_binding() if self.io_binding else None
        self.info.update(
            {
                "provider": self._sess.get_providers()[0],
                "providers": list(self._sess.get_providers()),
                "onnxruntime": ort.__version__,
                "input_dtype": str(self.input_dtype).replace("torch.", ""),
                "user_compute_stream": self.device.type == "cuda",
                "fp32_math": FP32_MATH,
            }
        )

    def _deactivate(self) -> None:
        if self.stream is not None:
            self.stream.synchronize()
        self._sess = self._binding = self._run_options = None
        self._graph_in, self._graph_out = None, []
        self._shape_cache.clear()
        self.stream = None

    def cuda_provider_options(self, stream_handle: int) -> dict[str, str]:
        """The CUDA provider options of this runner's session: its torch stream, CUDA graphs as asked, and
        true fp32 (``use_tf32=0``: the CUDA provider defaults to TF32; see :mod:`deploykit.backends.math_mode`)."""
        if not stream_handle:
            raise InvalidInput("ort: ONNX Runtime ignores stream handle 0 (the legacy default stream)")
        return {
            "user_compute_stream": str(stream_handle),
            "has_user_compute_stream": "1",
            "enable_cuda_graph": "1" if self.cuda_graph else "0",
            **ort_cuda_options(),
        }

    def __enter__(self) -> OrtRunner:  # narrower than Runner's, so `with OrtRunner(...) as r` keeps its type
        self.activate()
        return self

    # ---------------------------------------------------------------------------------------------- calls
    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` on this runner's device, in the graph's input dtype, contiguous (call outside timing)."""
        return x.to(device=self.device, dtype=self.input_dtype).contiguous()

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """Run one batch; returns the first output on ``self.device``."""
        return self.infer_all(x)[0]

    def infer_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Run one batch; returns every output, in the graph's order, on ``self.device``."""
        if self._sess is None:
            raise InvalidInput("ort: call activate() (or use the runner as a context manager) before infer()")
        self._check_input(x)
        if self._binding is None:
            if x.dtype == torch.bfloat16:  # numpy has no bfloat16: only io-binding can pass one
                raise InvalidInput(f"ort: {self.path.name} takes a bfloat16 input; use io_binding=True")
            outs = self._sess.run(None, {self._in_name: x.numpy()})
            return [torch.from_numpy(o) for o in outs]
        if self.cuda_graph:
            return self._infer_graph(x)
        shapes = self._output_shapes(x)
        outs = [
            torch.empty(s, dtype=dt, device=self.device)
            for s, (_, dt, _) in zip(shapes, self._out, strict=True)
        ]
        self._bind(x, outs)
        self._run(x, outs)
        return outs

    # ------------------------------------------------------------------------------------------- internals
    def _check_input(self, x: torch.Tensor) -> None:
        if x.device.type != self.device.type or (
            self.device.index is not None and x.device.index != self.device.index
        ):
            raise InvalidInput(
                f"ort: input is on {x.device}, the runner on {self.device} (use prepare_input)"
            )
        if x.dtype != self.input_dtype:
            raise InvalidInput(
                f"ort: {self.path.name} takes {str(self.input_dtype).replace('torch.', '')} input, got "
                f"{str(x.dtype).replace('torch.', '')} (use prepare_input)"
            )
        if not x.is_contiguous():
            raise InvalidInput("ort: the input must be contiguous (use prepare_input)")
        if len(x.shape) != len(self._in_dims) or any(
            isinstance(d, int) and d != s for d, s in zip(self._in_dims, x.shape, strict=True)
        ):
            want = "x".join(str(d) for d in self._in_dims)
            raise InvalidInput(f"ort: {self.path.name} takes input {want}, got {'x'.join(map(str, x.shape))}")

    def _device_args(self) -> tuple[str, int]:
        return ("cuda", int(self.device.index or 0)) if self.device.type == "cuda" else ("cpu", 0)

    def _bind(self, x: torch.Tensor, outs: list[torch.Tensor]) -> None:
        kind, index = self._device_args()
        b = self._binding
        b.bind_input(self._in_name, kind, index, element_type(x.dtype), list(x.shape), x.data_ptr())
        for (name, _, _), o in zip(self._out, outs, strict=True):
            b.bind_output(name, kind, index, element_type(o.dtype), list(o.shape), o.data_ptr())

    def _run(self, x: torch.Tensor, outs: list[torch.Tensor]) -> None:
        if self.stream is None:
            self._sess.run_with_iobinding(self._binding)
            return
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)  # x was produced on the caller's stream
        self._sess.run_with_iobinding(self._binding, self._run_options)
        current.wait_stream(self.stream)  # consumers of the outputs come after ONNX Runtime's kernels
        # The caching allocator must not hand these buffers out again before the runner's stream is done.
        x.record_stream(self.stream)
        for o in outs:
            o.record_stream(self.stream)

    def _output_shapes(self, x: torch.Tensor) -> list[tuple[int, ...]]:
        key = tuple(x.shape)
        if key in self._shape_cache:
            return self._shape_cache[key]
        symbols = {d: s for d, s in zip(self._in_dims, key, strict=True) if isinstance(d, str)}
        shapes: list[tuple[int, ...]] | None = []
        for _, _, dims in self._out:
            if all(isinstance(d, int) or (isinstance(d, str) and d in symbols) for d in dims):
                shapes.append(tuple(d if isinstance(d, int) else symbols[d] for d in dims))  # type: ignore[union-attr]
            else:
                shapes = None
                break
        if shapes is None:
            shapes = self._probe_shapes(x)
        self._shape_cache[key] = shapes
        return shapes

    def _probe_shapes(self, x: torch.Tensor) -> list[tuple[int, ...]]:
        # Output sizes the graph does not state: one run with ONNX Runtime allocating the outputs on the device.
        kind, index = self._device_args()
        b = self._sess.io_binding()
        b.bind_input(self._in_name, kind, index, element_type(x.dtype), list(x.shape), x.data_ptr())
        for name, _, _ in self._out:
            b.bind_output(name, kind, index)
        if self.stream is not None:
            self.stream.wait_stream(torch.cuda.current_stream(self.device))
        self._sess.run_with_iobinding(b)
        return [tuple(int(d) for d in v.shape()) for v in b.get_outputs()]

    def _infer_graph(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self._graph_in is None:
            self._graph_in = torch.empty_like(x)
            shapes = self._output_shapes(x)
            self._graph_out = [
                torch.empty(s, dtype=dt, device=self.device)
                for s, (_, dt, _) in zip(shapes, self._out, strict=True)
            ]
            self._bind(self._graph_in, self._graph_out)
        elif tuple(x.shape) != tuple(self._graph_in.shape):
            raise InvalidInput(
                f"ort: the CUDA graph was captured for input {'x'.join(map(str, self._graph_in.shape))}; "
                f"got {'x'.join(map(str, x.shape))} (use another runner per shape)"
            )
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream):
            self._graph_in.copy_(x)  # device to device, on the runner's stream
        x.record_stream(self.stream)
        try:
            self._sess.run_with_iobinding(self._binding, self._run_options)
        except Exception as exc:  # capture fails when a node runs outside the CUDA provider
            first = first_line(exc)
            raise BackendUnavailable(
                f"ort: CUDA graph capture failed for {self.path.name}: {first}"
            ) from None
        current.wait_stream(self.stream)
        return self._graph_out


__all__ = [
    "CPU_PROVIDER",
    "CUDA_PROVIDER",
    "ORT_GPU_HINT",
    "OrtRunner",
    "cuda_provider_available",
    "fp16_coverage",
    "import_onnxruntime",
    "make_session",
    "ort_dtype_to_torch",
    "require_cuda_provider",
]
