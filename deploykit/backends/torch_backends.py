"""PyTorch-native runners: eager, eager channels-last, CUDA-graph replay of eager, and ``torch.compile``.

Each runner owns its ``nn.Module`` (give it a copy if you keep using yours): ``activate`` moves it to the
device and precision (and memory format), ``infer`` runs a batch, ``deactivate`` moves it back to the CPU and
releases what was captured or compiled. All of them enqueue their GPU work on torch's *current* stream
(``enqueues_on_current_stream``), so CUDA events recorded on that stream time them exactly.

``prepare_input(x)`` stages an input the way the runner wants it (device, dtype, channels-last layout, the
CUDA graph's static buffer) once, outside any timing: a deployment receives its input in the layout it asks
for, as it receives it on the device (host↔device copies are outside timings too).

>>> import torch
>>> from deploykit.models import create_model
>>> model, spec = create_model("resnet18", device="cpu", image_size=32, num_classes=10)
>>> with EagerRunner(model, "cpu") as r:
...     r.infer(torch.zeros(spec.batch_shape(2))).shape
torch.Size([2, 10])
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from deploykit.backends.base import Runner
from deploykit.errors import BackendUnavailable, InvalidInput
from deploykit.precision import TORCH_PRECISIONS, Precision

#: Compile modes accepted by :class:`CompileRunner` (``torch.compile``'s own names).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

def torch_dtype(precision: str | Precision | torch.dtype) -> torch.dtype:
    """``"fp32" | "fp16" | "bf16"`` (a :class:`~deploykit.precision.Precision`, or a torch dtype) -> the torch dtype."""
    if isinstance(precision, torch.dtype):
        return precision
    return Precision.parse(precision, allowed=TORCH_PRECISIONS).torch_dtype


def default_compile_mode(device: str | torch.device) -> str:
    """The fastest mode that is reliable: ``max-autotune`` on CUDA (Triton autotuning + CUDA graphs),
    ``default`` on the CPU (where autotuning buys little and costs minutes)."""
    return "max-autotune" if torch.device(device).type == "cuda" else "default"


def first_tensor(out: Any) -> torch.Tensor:
    """The output tensor of a forward pass (the first one when the model returns a tuple, list or dict)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        for o in out:
            if isinstance(o, torch.Tensor):
                return o
    raise TypeError(f"model returned {type(out).__name__}, not a tensor")


class EagerRunner(Runner):
    """Plain PyTorch eager execution under ``torch.inference_mode`` at the given precision."""

    name = "eager"
    #: GPU work goes to torch's current stream; time it with events on that stream.
    enqueues_on_current_stream = True
    #: Every device allocation goes through torch's caching allocator (its peak is the runner's peak memory).
    allocates_through_torch = True

    def __init__(
        self,
        model: nn.Module,
        device: str | torch.device = "cpu",
        *,
        precision: str | torch.dtype = "fp32",
        channels_last: bool = False,
    ) -> None:
        super().__init__(device)
        self.model = model
        self.dtype = torch_dtype(precision)
        self.channels_last = channels_last
        self.info.update(
            {
                "precision": str(self.dtype).replace("torch.", ""),
                "memory_format": "channels_last" if channels_last else "contiguous",
                "cuda_graphs": False,
            }
        )

    # -- placement
    def _check_device(self) -> None:
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable(f"{self.name}: no CUDA device is available")

    def _activate(self) -> None:
        self._check_device()
        self.model = self.model.eval().to(device=self.device, dtype=self.dtype)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def _deactivate(self) -> None:
        self.model = self.model.to("cpu")

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` on this runner's device, in its dtype and memory format (done once, outside timing)."""
        x = x.to(device=self.device, dtype=self.dtype)
        if self.channels_last:
            if x.dim() != 4:
                raise InvalidInput(
                    f"{self.name}: channels-last needs a 4-D (N, C, H, W) input, got {x.dim()}-D"
                )
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4 and not x.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return first_tensor(self.model(x))


class ChannelsLastRunner(EagerRunner):
    """Eager with weights and input in ``torch.channels_last`` (NHWC): the layout cuDNN's fast kernels use."""

    name = "channels-last"

    def __init__(
        self, model: nn.Module, device: str | torch.device = "cpu", *, precision: str | torch.dtype = "fp32"
    ) -> None:
        super().__init__(model, device, precision=precision, channels_last=True)


class CudaGraphRunner(EagerRunner):
    """Eager captured once into a CUDA graph and replayed: removes per-kernel launch overhead.

    The graph is captured on the first call for an input shape and dtype (after three warm-up passes on a
    side stream, which also run cuDNN's algorithm search when ``cudnn.benchmark`` is on). ``infer`` copies
    ``x`` into the static input buffer unless ``x`` *is* that buffer (see :meth:`prepare_input`) and returns
    the static output buffer: the result is overwritten by the next call, clone it to keep it.
    """

    name = "cuda-graph"

    def __init__(
        self,
        model: nn.Module,
        device: str | torch.device = "cuda",
        *,
        precision: str | torch.dtype = "fp32",
        channels_last: bool = False,
        warmup_passes: int = 3,
    ) -> None:
        super().__init__(model, device, precision=precision, channels_last=channels_last)
        self.warmup_passes = warmup_passes
        self._graph: Any = None
        self._key: tuple[Any, ...] | None = None
        self._static_in: torch.Tensor | None = None
        self._static_out: torch.Tensor | None = None
        self.info["cuda_graphs"] = True

    def _activate(self) -> None:
        if self.device.type != "cuda":
            raise BackendUnavailable("cuda-graph needs a CUDA device")
        super()._activate()

    def _deactivate(self) -> None:
        self._graph = self._static_in = self._static_out = None
        self._key = None
        super()._deactivate()

    def _capture(self, x: torch.Tensor) -> None:
        self._graph = self._static_in = self._static_out = None
        static_in = x.detach().clone()
        if self.channels_last and static_in.dim() == 4:
            static_in = static_in.contiguous(memory_format=torch.channels_last)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(self.warmup_passes):
                self.model(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # torch.cuda.graph captures on the *current* device's side stream: make it this runner's device.
        with torch.cuda.device(self.device), torch.no_grad(), torch.cuda.graph(graph):
            static_out = first_tensor(self.model(static_in))
        self._graph, self._static_in, self._static_out = graph, static_in, static_out
        self._key = (tuple(x.shape), x.dtype)

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """Capture for ``x``'s shape if needed, copy ``x`` into the static buffer once and return the buffer."""
        x = super().prepare_input(x)
        if self._key != (tuple(x.shape), x.dtype):
            self._capture(x)
        assert self._static_in is not None
        self._static_in.copy_(x)
        return self._static_in

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        if self._key != (tuple(x.shape), x.dtype):
            self._capture(x)
        assert self._static_in is not None and self._static_out is not None
        if x.data_ptr() != self._static_in.data_ptr():
            self._static_in.copy_(x)
        self._graph.replay()
        return self._static_out


class CompileRunner(EagerRunner):
    """``torch.compile(model, mode=...)`` (Inductor) with static shapes.

    Compilation happens in the first call (time it: that is the compile cost). The FX graph cache and the
    autotuning cache persist under ``cache_dir`` (``TORCHINDUCTOR_CACHE_DIR``), so a second run of the same
    cell loads the compiled kernels instead of compiling again; ``info["fxgraph_cache_hits"]`` counts hits.
    Dynamo's in-memory caches are reset on activation: a sweep compiles many instances of the same model
    class and would otherwise hit the recompile limit and silently fall back to eager.
    """

    name = "compile"

    def __init__(
        self,
        model: nn.Module,
        device: str | torch.device = "cpu",
        *,
        precision: str | torch.dtype = "fp32",
        mode: str | None = None,
        channels_last: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(model, device, precision=precision, channels_last=channels_last)
        self.mode = mode or default_compile_mode(self.device)
        if self.mode not in COMPILE_MODES:
            raise InvalidInput(f"unknown compile mode {self.mode!r}; use one of {', '.join(COMPILE_MODES)}")
        self.cache_dir = cache_dir
        self._compiled: Any = None
        self._first_call_done = False
        self._hits_before = 0
        self._graphs_before = 0
        self.uses_cudagraphs = self.device.type == "cuda" and self.mode in ("reduce-overhead", "max-autotune")
        self.info.update({"compile_mode": self.mode, "cuda_graphs": self.uses_cudagraphs})

    def _activate(self) -> None:
        super()._activate()
        import torch._dynamo
        import torch._inductor.config as inductor_config

        if self.cache_dir is not None:
            # Read by Inductor each time it resolves its cache folder (FX graph cache, autotuning, Triton).
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.fspath(self.cache_dir)
            self.info["inductor_cache_dir"] = os.fspath(self.cache_dir)
        inductor_config.fx_graph_cache = True
        torch._dynamo.reset()
        self._hits_before = _counter("inductor", "fxgraph_cache_hit")
        self._graphs_before = _counter("stats", "unique_graphs")
        self._compiled = torch.compile(self.model, mode=self.mode, dynamic=False)
        self._first_call_done = False

    def _deactivate(self) -> None:
        import torch._dynamo

        self._compiled = None
        torch._dynamo.reset()
        super()._deactivate()

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        if self.uses_cudagraphs:
            # Each call is a new inference step for CUDA-graph trees (frees the previous step's outputs).
            torch.compiler.cudagraph_mark_step_begin()
        with torch.no_grad():
            out = first_tensor(self._compiled(x))
        if not self._first_call_done:
            self._first_call_done = True
            self.info["fxgraph_cache_hits"] = _counter("inductor", "fxgraph_cache_hit") - self._hits_before
            self.info["graphs"] = _counter("stats", "unique_graphs") - self._graphs_before
        return out


def _counter(group: str, name: str) -> int:
    try:
        from torch._dynamo.utils import counters

        return int(counters[group][name])
    except Exception:  # counters are internal; never let bookkeeping break a run
        return 0
