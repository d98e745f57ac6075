"""The TensorRT runner: an engine built by :func:`deploykit.export.tensorrt.build_engine` -> :class:`TensorRTRunner`.

``tensorrt`` is imported only in ``activate``. Before an engine is deserialized its manifest is checked against
this machine's GPU and TensorRT version (see :mod:`deploykit.backends.tensorrt.manifest`). The binding and
enqueue code is :class:`~deploykit.backends.tensorrt.executor.EngineExecutor`.

>>> with TensorRTRunner("out/resnet18-fp16.engine") as r:      # doctest: +SKIP
...     y = r.infer(r.prepare_input(torch.randn(8, 3, 224, 224)))
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from deploykit.backends.base import Runner
from deploykit.errors import ArtifactError, BackendUnavailable, InvalidInput


class TensorRTRunner(Runner):
    """Runs a TensorRT engine on torch CUDA tensors (no pycuda, no host copies).

    ``infer(x)`` takes a contiguous tensor on the runner's device in the engine's input dtype
    (:meth:`prepare_input` converts once, outside timing) with a batch inside the engine's profile, and returns
    the first output. Work runs with ``execute_async_v3`` on the runner's own non-default stream
    (``runner.stream``), which waits for the caller's current stream before and is waited on by it after: CUDA
    events recorded on the caller's stream bracket the engine exactly (``enqueues_on_current_stream``).

    With ``cuda_graph=True`` the enqueue is captured once per input shape into a ``torch.cuda.CUDAGraph``
    (after one plain enqueue, as the TensorRT performance guide asks, so deferred shape work happens outside the
    capture) and replayed; inputs are copied into a static buffer unless ``x`` is that buffer (what
    :meth:`prepare_input` returns), and the returned tensor is the static output, overwritten by the next call.
    """

    name = "trt"
    #: The enqueue is ordered after / before the caller's current stream (wait_stream both sides).
    enqueues_on_current_stream = True

    def __init__(self, engine_path: str | os.PathLike[str], device: str = "cuda", *, cuda_graph: bool = False) -> None:
        super().__init__(device)
        if self.device.type != "cuda":
            raise InvalidInput(f"TensorRT engines run on a CUDA device, not {self.device}")
        self.engine_path = Path(engine_path)
        self.cuda_graph = cuda_graph
        self.executor: Any = None
        self.manifest: dict[str, Any] = {}
        self._graph: Any = None
        self._graph_key: tuple[Any, ...] | None = None
        self._static_in: torch.Tensor | None = None
        self._static_out: list[torch.Tensor] = []
        self.info.update({"engine": os.fspath(self.engine_path), "cuda_graphs": cuda_graph})

    # -- lifecycle
    def _activate(self) -> None:
        from deploykit.backends.tensorrt.executor import load_engine

        if not torch.cuda.is_available():
            raise BackendUnavailable("the TensorRT runner needs a CUDA GPU and none is available")
        self.executor, self.manifest = load_engine(self.engine_path, str(self.device))
        self.device = self.executor.device
        prec = self.manifest.get("precision", {})
        self.info.update(
            {
                "tensorrt": self.manifest.get("tensorrt", {}).get("version"),
                "precision": prec.get("requested"),
                "precision_path": prec.get("path"),
                "profile": self.manifest.get("profile"),
                "input_dtype": str(self.input_dtype).replace("torch.", ""),
            }
        )

    def _deactivate(self) -> None:
        self._graph = self._static_in = None
        self._static_out = []
        self._graph_key = None
        self.executor = None  # drops context, engine and runtime (pybind objects free on refcount)

    @property
    def input_dtype(self) -> torch.dtype:
        """The dtype the engine's (first) input takes: ``torch.float16`` for an fp16 ONNX, else usually float32."""
        self._require_active()
        dtype: torch.dtype = self.executor.inputs[0].dtype
        return dtype

    @property
    def stream(self) -> torch.cuda.Stream:
        """The non-default stream TensorRT work is enqueued on."""
        self._require_active()
        s: torch.cuda.Stream = self.executor.stream
        return s

    def _require_active(self) -> None:
        if self.executor is None:
            raise InvalidInput("activate the TensorRT runner first (use it as a context manager)")

    # -- inference
    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` on the runner's device, in the engine's input dtype, contiguous (done once, outside timing).

        With ``cuda_graph=True`` the graph for ``x``'s shape is captured here and the static input buffer is
        returned (filled with ``x``), so a timed ``infer`` does no copy.
        """
        self._require_active()
        x = x.to(device=self.device, dtype=self.input_dtype).contiguous()
        if self.cuda_graph:
            self._ensure_graph(x)
            assert self._static_in is not None
            self._static_in.copy_(x)
            return self._static_in
        return x

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        self._require_active()
        if not self.cuda_graph:
            out: torch.Tensor = self.executor.run([x], reuse_outputs=False)[0]
            return out
        self._ensure_graph(x)
        assert self._static_in is not None
        if x.data_ptr() != self._static_in.data_ptr():
            self._static_in.copy_(x)
        caller = torch.cuda.current_stream(self.device)
        stream = self.executor.stream
        stream.wait_stream(caller)
        with torch.cuda.stream(stream):
            self._graph.replay()
        caller.wait_stream(stream)
        return self._static_out[0]

    def _ensure_graph(self, x: torch.Tensor) -> None:
        key = (tuple(x.shape), x.dtype)
        if self._graph_key == key:
            return
        ex = self.executor
        self._graph = None
        static_in = x.detach().clone()
        # Fixed addresses: bind the static buffers once; outputs are kept by the executor's cache.
        static_out = ex.bind([static_in], reuse_outputs=True)
        ex.enqueue()  # one plain enqueue first: TensorRT does deferred per-shape work on the first enqueue
        torch.cuda.current_stream(self.device).synchronize()
        graph = torch.cuda.CUDAGraph()
        # torch.cuda.graph(g, stream=s) captures the work enqueued on s; execute_async_v3 is the only call inside
        # (same pattern as Torch-TensorRT's _PythonTorchTensorRTModule CUDA-graph path).
        with torch.cuda.graph(graph, stream=ex.stream):
            ok = ex.context.execute_async_v3(ex.stream.cuda_stream)
        if not ok:
            raise ArtifactError(f"{ex.name}: execute_async_v3 failed during CUDA-graph capture")
        self._graph, self._static_in, self._static_out, self._graph_key = graph, static_in, static_out, key
