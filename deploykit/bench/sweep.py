"""Run a :class:`~deploykit.bench.spec.BenchSpec`: every model × batch × precision × backend, one cell at a time.

Per model the weights are built once on the CPU from ``spec.seed``; per batch one input is drawn (seeded) and
the reference output computed by eager fp32 on the bench device in true fp32 (TF32 off: the whole sweep runs
in :func:`deploykit.backends.math_mode.true_fp32`, recorded as the regime's ``fp32_math``). Per cell:

1. the backend factory makes a runner (export / engine build from the cache when possible) and it is
   activated -- ``prepare_s``;
2. the input is staged once (device, dtype, layout, static buffer) -- outside timing, like host↔device
   transfers (``transfers_included`` is false);
3. the first call is timed on its own (``first_call_ms``: lazy init, algorithm search, ``torch.compile``);
4. the output of the next call is compared with the reference (``max_abs_error``, ``max_rel_error``, ``correct``);
5. warm-up until stable, then ``repeats`` × ``iterations`` timed calls (:mod:`deploykit.bench.timing`);
6. device memory (:class:`MemoryProbe`): the steady-state peak of the timed calls (``peak_mem_bytes``, peak
   statistics reset after the warm-up, baseline read after the factory) and the one-time setup peak up to the
   end of the warm-up (``setup_peak_mem_bytes``: algorithm search and autotuning workspaces); the torch
   allocator's peaks for runners that allocate only through torch, else the growth of device memory in use,
   which sees ONNX Runtime's and TensorRT's own allocations. Then the runner is released and the allocator
   emptied.

A missing backend is a *skipped* cell, an out-of-memory an *oom* cell, any other failure an *error* cell; the
sweep goes on. ``speedup_vs_eager`` is filled in at the end.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from deploykit._env import device_name, environment
from deploykit.backends.base import Runner
from deploykit.backends.math_mode import fp32_math_record, true_fp32
from deploykit.backends.torch_backends import default_compile_mode, first_tensor
from deploykit.bench.cache import BenchCache
from deploykit.bench.cells import CellContext, Factory, Prepared, factory_for
from deploykit.bench.results import BenchResult, CellResult, add_speedups
from deploykit.bench.spec import INT8_BACKENDS, BenchSpec
from deploykit.bench.timing import CudaEventTimer, HostTimer, Timer, time_cell, time_first_call
from deploykit.errors import BackendUnavailable, DeploykitError, InvalidInput
from deploykit.models import create_model
from deploykit.precision import Precision


def output_tolerance(precision: str | Precision, device_type: str) -> float:
    """The ``max_rel_error`` a backend may have at ``precision`` on ``device_type`` and still be correct.

    The precision's own validation tolerance (:attr:`deploykit.precision.Precision.tolerance`, the one the ONNX
    export and the TensorRT build are validated with), on every device: fp32 is true fp32 on every backend (the
    sweep turns TF32 off in torch, ONNX Runtime sessions ask for ``use_tf32=0``, TensorRT engines clear the TF32
    flag: :mod:`deploykit.backends.math_mode`); TF32 alone would be 5e-4 to 1e-3 of the output scale.
    """
    del device_type  # the same table on every device (kept in the signature for callers)
    return Precision.parse(precision).tolerance.rtol


@dataclass(frozen=True)
class CellEvent:
    """Progress report: ``cell`` is ``None`` when the cell starts and the result when it is done."""

    index: int
    total: int
    model: str
    backend: str
    precision: str
    batch: int
    cell: CellResult | None = None


ProgressFn = Callable[[CellEvent], None]


def resolve_device(device: str) -> torch.device:
    """``"cpu"``/``"cuda"``/``"cuda:N"`` -> ``torch.device``; raises :class:`BackendUnavailable` without CUDA."""
    from deploykit.bench.spec import device_type

    if device_type(device) == "cuda":
        if not torch.cuda.is_available():
            raise BackendUnavailable("--device cuda: no CUDA device is available here (use --device cpu)")
        dev = torch.device(device)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InvalidInput(f"{device}: only {torch.cuda.device_count()} CUDA device(s) here")
        return torch.device("cuda", dev.index if dev.index is not None else torch.cuda.current_device())
    return torch.device("cpu")


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-memory failure (torch, cuDNN, ONNX Runtime or TensorRT wording)."""
    oom_type = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    if isinstance(exc, oom_type):
        return True
    text = str(exc).lower()
    return any(s in text for s in ("out of memory", "failed to allocate memory", "cudnn_status_alloc_failed"))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(exc, DeploykitError):
        return first or type(exc).__name__
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


@contextlib.contextmanager
def _sweep_settings(device: torch.device, threads: int | None) -> Iterator[dict[str, Any]]:
    """The measurement regime, set for the sweep and restored afterwards: torch's CPU threads (when given) and,
    on CUDA, cuDNN autotuning on (every backend's warm-up pays its algorithm search) and true fp32 (TF32 off for
    the reference and every torch cell; recorded as ``fp32_math``)."""
    regime: dict[str, Any] = {
        "device_type": device.type,
        "transfers_included": False,
        "input_staged_once": True,
    }
    old_threads = torch.get_num_threads()
    old_benchmark = torch.backends.cudnn.benchmark
    with contextlib.ExitStack() as stack:
        try:
            if threads is not None:
                torch.set_num_threads(threads)
            regime["cpu_threads"] = torch.get_num_threads()
            regime["ort_threads"] = threads if threads is not None and device.type == "cpu" else "default"
            if device.type == "cuda":
                # The selected GPU is the current one for the whole sweep: libraries that use the current device
                # (TensorRT's execution context, CUDA-graph capture, Inductor) work on the one being measured.
                stack.enter_context(torch.cuda.device(device))
                torch.backends.cudnn.benchmark = True
                stack.enter_context(true_fp32())
                regime["cudnn_benchmark"] = True
            regime["fp32_math"] = fp32_math_record(device)
            yield regime
        finally:
            torch.set_num_threads(old_threads)
            torch.backends.cudnn.benchmark = old_benchmark


def _real_input(x: torch.Tensor, batch: int) -> torch.Tensor:
    """The first ``batch`` samples of real data (repeated when there are fewer)."""
    reps = -(-batch // x.shape[0])
    return x.repeat(reps, *([1] * (x.dim() - 1)))[:batch].contiguous().float()


def _make_input(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=torch.float32)


def _probe(module: torch.nn.Module, shape: tuple[int, ...], model_name: str) -> None:
    """One CPU forward pass on a batch of 1 before any cell: a model that raises (:class:`ShapeError` naming the
    layer), needs other inputs or returns no tensor is one :class:`InvalidInput` line, not a traceback."""
    from deploykit.models import run_with_layer_context

    out = run_with_layer_context(module, _make_input(shape, 0), model_name)
    try:
        first_tensor(out)
    except TypeError as exc:
        raise InvalidInput(f"{model_name[:100]}: {exc}; the bench needs a model whose forward returns a tensor") from None


def _reference(module: torch.nn.Module, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Eager fp32 output in true fp32 (TF32 off), on ``device`` (on the CPU if the device runs out of memory)."""

    def run(dev: torch.device) -> torch.Tensor:
        m = module.to(dev)
        try:
            with torch.inference_mode():
                return first_tensor(m(x.to(dev))).float().cpu().clone()
        finally:
            module.to("cpu")

    if device.type != "cuda":
        return run(device)
    with true_fp32():
        try:
            return run(device)
        except Exception as exc:
            if not is_oom(exc):
                raise
            _free(device)
            return run(torch.device("cpu"))
        finally:
            _free(device)


def compare_outputs(out: torch.Tensor, ref: torch.Tensor, tolerance: float) -> dict[str, Any]:
    """``max_abs_error``, ``max_rel_error`` (= max abs error / max |ref|), ``correct`` and top-1 agreement.

    The rule is :func:`deploykit.export.validate.compare_outputs` with ``rtol=tolerance``; a shape mismatch
    marks the cell wrong instead of raising, so the sweep goes on.
    """
    from deploykit.errors import ValidationError
    from deploykit.export.validate import compare_outputs as compare
    from deploykit.precision import Tolerance

    try:
        rec = compare(out, ref, Tolerance(atol=0.0, rtol=tolerance))
    except ValidationError:
        return {
            "max_abs_error": None,
            "max_rel_error": None,
            "correct": False,
            "top1_agreement": None,
            "mismatch": f"output shape {tuple(out.shape)} != eager {tuple(ref.shape)}",
        }
    return {
        "max_abs_error": rec["max_abs_error"],
        "max_rel_error": rec["max_rel_error"],
        "correct": rec["passed"],
        "top1_agreement": rec["top1_agreement"],
    }


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def _device_used(device: torch.device) -> int:
    free, total = torch.cuda.mem_get_info(device)
    return int(total - free)


@dataclass
class MemoryProbe:
    """Device-memory bookkeeping of one CUDA cell: steady-state peak and one-time setup peak.

    :func:`run_cell` calls, in this order: :meth:`before_factory` (baseline of the setup peak, peak statistics
    reset), :meth:`after_factory` (baseline of the steady state: what the export / engine build left is not the
    runner's), :meth:`sample` after activation and after the first call, :meth:`after_warmup` (the setup peak is
    read -- cuDNN benchmark / max-autotune workspaces, first-call allocations -- and the peak statistics reset),
    and :meth:`result` after the timed calls. With ``torch_allocator`` (the runner allocates only through torch's
    caching allocator) peaks are the allocator's; otherwise the growth of device memory in use, which sees ONNX
    Runtime's and TensorRT's own allocations but only at the moments it is sampled. The readers are passed in
    (``torch.cuda`` functions for ``device`` by :meth:`for_device`), so the protocol is testable without a GPU.
    """

    torch_allocator: bool
    allocated: Callable[[], int]
    max_allocated: Callable[[], int]
    reset_peak: Callable[[], object]
    used: Callable[[], int]
    _alloc0: int = 0
    _used0: int = 0
    _alloc_base: int = 0
    _used_base: int = 0
    _samples: list[int] = field(default_factory=list)
    setup_peak: int | None = None

    @classmethod
    def for_device(cls, device: torch.device, torch_allocator: bool) -> MemoryProbe:
        return cls(
            torch_allocator=torch_allocator,
            allocated=lambda: int(torch.cuda.memory_allocated(device)),
            max_allocated=lambda: int(torch.cuda.max_memory_allocated(device)),
            reset_peak=lambda: torch.cuda.reset_peak_memory_stats(device),
            used=lambda: _device_used(device),
        )

    def before_factory(self) -> None:
        self.reset_peak()
        self._alloc0, self._used0 = self.allocated(), self.used()
        self._samples = []

    def after_factory(self) -> None:
        self._alloc_base, self._used_base = self.allocated(), self.used()

    def sample(self) -> None:
        if not self.torch_allocator:
            self._samples.append(self.used())

    def after_warmup(self) -> None:
        if self.torch_allocator:
            self.setup_peak = max(0, self.max_allocated() - self._alloc0)
        else:
            self.sample()
            self.setup_peak = max(0, max(self._samples) - self._used0)
        self.reset_peak()

    def result(self) -> tuple[int, int | None, str]:
        """``(steady-state peak bytes, setup peak bytes, method)``."""
        if self.torch_allocator:
            steady = max(0, self.max_allocated() - self._alloc_base)
            return steady, self.setup_peak, "torch-allocator-peak (steady state: after warm-up, from after the factory)"
        steady = max(0, self.used() - self._used_base)
        return steady, self.setup_peak, "device-used-growth (steady state: after the timed calls, from after the factory)"


def timer_for(runner: Runner) -> tuple[Timer, Callable[[], object] | None]:
    """The timer for ``runner`` and the device synchronization for one-off wall-clock timings.

    CPU: host clock. CUDA: events on torch's current stream for runners whose work is ordered on it
    (``enqueues_on_current_stream``: the torch runners, TensorRT), else on the runner's own ``stream``;
    otherwise (a library on a stream torch cannot see) the host clock with the device synchronized around
    every call.
    """
    dev = runner.device
    if dev.type != "cuda":
        return HostTimer(), None

    def sync() -> None:
        torch.cuda.synchronize(dev)

    if getattr(runner, "enqueues_on_current_stream", False):
        return CudaEventTimer(torch.cuda.current_stream(dev)), sync
    stream = getattr(runner, "stream", None)
    if isinstance(stream, torch.cuda.Stream):
        return CudaEventTimer(stream), sync
    return HostTimer(sync=sync), sync


@dataclass
class _Measured:
    """What :func:`_measure` found for one activated runner."""

    timer: Timer
    first_ms: float
    tolerance: Any
    accuracy: dict[str, Any]
    stats: Any
    warmup: Any
    peak: int | None = None
    setup_peak: int | None = None
    peak_method: str | None = None


def _activate(runner: Runner, probe: MemoryProbe | None, device: torch.device) -> None:
    """Close the memory probe's factory phase (its kind fixed by the runner) and activate ``runner``."""
    if probe is not None:
        torch.cuda.synchronize(device)
        probe.torch_allocator = bool(getattr(runner, "allocates_through_torch", False))
        probe.after_factory()
    runner.activate()
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _staged_input(runner: Runner, x32: torch.Tensor, dtype: torch.dtype, device: torch.device) -> Any:
    """The input batch on ``device`` in ``dtype``, staged by the runner when it stages its inputs."""
    x = x32.to(device=device, dtype=dtype)
    stage = getattr(runner, "prepare_input", None)
    if callable(stage):
        x = stage(x)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return x


def _measure(
    runner: Runner, x: Any, ref: torch.Tensor, ctx: CellContext, spec: BenchSpec, probe: MemoryProbe | None
) -> _Measured:
    """Time the first call, compare one output with ``ref``, then warm up and time the cell; with a memory
    probe, sample it around the first call and after the warm-up."""
    device = ctx.device
    timer, sync = timer_for(runner)

    def call() -> object:
        return runner.infer(x)

    if probe is not None:
        probe.sample()
    first_ms = time_first_call(call, sync=sync)
    if probe is not None:
        probe.sample()
    out = first_tensor(runner.infer(x)).detach().float().cpu().clone()
    tol = output_tolerance(ctx.precision, device.type)
    acc = compare_outputs(out, ref, tol)
    del out

    def after_warmup() -> None:
        if probe is not None:
            torch.cuda.synchronize(device)
            probe.after_warmup()

    stats, warm = time_cell(call, timer, spec.timing, after_warmup=after_warmup)
    measured = _Measured(timer, first_ms, tol, acc, stats, warm)
    if probe is not None:
        torch.cuda.synchronize(device)
        measured.peak, measured.setup_peak, measured.peak_method = probe.result()
    return measured


def _ok_result(
    base: dict[str, Any], ctx: CellContext, prepared: Prepared, runner: Runner, prepare_s: float, m: _Measured
) -> CellResult:
    """The :class:`CellResult` of a measured cell."""
    info = {**prepared.info, **runner.info}
    if ctx.notes:
        info["notes"] = list(ctx.notes)
    if "mismatch" in m.accuracy:
        info["mismatch"] = m.accuracy["mismatch"]
    return CellResult(
        **base,
        status="ok",
        timing=m.stats,
        warmup=m.warmup,
        timer=m.timer.method,
        first_call_ms=m.first_ms,
        prepare_s=prepare_s,
        cache_hit=_cache_hit(prepared.cache_hit, info),
        peak_mem_bytes=m.peak,
        peak_mem_method=m.peak_method,
        setup_peak_mem_bytes=m.setup_peak,
        max_abs_error=m.accuracy["max_abs_error"],
        max_rel_error=m.accuracy["max_rel_error"],
        tolerance=m.tolerance,
        correct=m.accuracy["correct"],
        top1_agreement=m.accuracy["top1_agreement"],
        cuda_graphs=bool(info.get("cuda_graphs", False)),
        transfers_included=False,
        info=_jsonable(info),
    )


def run_cell(
    ctx: CellContext, backend: str, factory: Factory, x32: torch.Tensor, ref: torch.Tensor, spec: BenchSpec
) -> CellResult:
    """Measure one cell (see the module docstring); never raises except on ``KeyboardInterrupt``."""
    base: dict[str, Any] = {
        "model": ctx.model_name,
        "backend": backend,
        "precision": ctx.precision,
        "batch": ctx.batch,
    }
    device = ctx.device
    _free(device)
    probe: MemoryProbe | None = None
    runner: Runner | None = None
    try:
        t0 = time.perf_counter()
        if device.type == "cuda":
            probe = MemoryProbe.for_device(device, torch_allocator=True)  # kind fixed once the runner exists
            probe.before_factory()
        prepared = factory(ctx)
        runner = prepared.runner
        _activate(runner, probe, device)
        prepare_s = time.perf_counter() - t0
        x = _staged_input(runner, x32, prepared.input_dtype, device)
        return _ok_result(base, ctx, prepared, runner, prepare_s, _measure(runner, x, ref, ctx, spec, probe))
    except (BackendUnavailable, ImportError) as exc:
        return CellResult(**base, status="skipped", reason=_one_line(exc))
    except Exception as exc:
        status = "oom" if is_oom(exc) else "error"
        return CellResult(**base, status=status, reason=_one_line(exc))
    finally:
        if runner is not None:
            with contextlib.suppress(Exception):
                runner.deactivate()
        runner = None
        _free(device)


def _cache_hit(prepared_hit: bool | None, info: dict[str, Any]) -> bool | None:
    if prepared_hit is not None:
        return prepared_hit
    if "fxgraph_cache_hits" in info:
        return bool(info["fxgraph_cache_hits"])
    return None


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if v is None or isinstance(v, (bool, int, float, str)):
            out[k] = v
        elif isinstance(v, (list, tuple)):
            out[k] = [x if isinstance(x, (bool, int, float, str)) or x is None else str(x) for x in v]
        elif isinstance(v, dict):
            out[k] = _jsonable(v)
        else:
            out[k] = str(v)
    return out


def _run_or_skip(
    ctx: CellContext, backend: str, factory: Factory | None, x32: torch.Tensor, ref: torch.Tensor, spec: BenchSpec
) -> CellResult:
    """:func:`run_cell`, or a skipped cell for an unknown backend or an int8 cell on a backend without it."""
    if factory is None:
        return CellResult(
            ctx.model_name,
            backend,
            ctx.precision,
            ctx.batch,
            status="skipped",
            reason=f"no backend named {backend!r}",
        )
    if ctx.precision == "int8" and backend not in INT8_BACKENDS:
        return CellResult(
            ctx.model_name, backend, ctx.precision, ctx.batch, status="skipped",
            reason=f"int8 is a Q/DQ ONNX graph: it runs on {' and '.join(INT8_BACKENDS)}",
        )
    return run_cell(ctx, backend, factory, x32, ref, spec)


def run_bench(
    spec: BenchSpec,
    *,
    progress: ProgressFn | None = None,
    factories: dict[str, Factory] | None = None,
    checkpoint: str | Path | None = None,
) -> BenchResult:
    """Run every cell of ``spec`` and return the :class:`BenchResult` (not saved; see :meth:`BenchResult.save`).

    ``progress`` is called when each cell starts and ends. ``factories`` replaces or adds backend factories by
    name (tests use it to stand in for hardware this machine lacks). With ``checkpoint`` the result so far is
    written there (atomically) after every cell, so a sweep cut short by a time limit keeps what it measured.

    >>> from deploykit.bench import BenchSpec, TimingOptions, run_bench
    >>> result = run_bench(BenchSpec(models=("lenet",), backends=("eager",),
    ...                              timing=TimingOptions(iterations=5, repeats=3)))   # doctest: +SKIP
    >>> result.cells[0].median_ms                                                       # doctest: +SKIP
    0.21
    """
    device = resolve_device(spec.device)
    table = {b: (factories or {}).get(b) or factory_for(b) for b in spec.backends}
    cache = BenchCache.at(spec.cache_dir)
    # Validate every model before the first (possibly long) cell runs.
    specs = {name: create_model(name, device="meta", weights=spec.weights, **spec.overrides)[1] for name in spec.models}
    env = environment(str(device))
    compile_mode = spec.compile_mode or default_compile_mode(device)
    total = spec.n_cells
    cells: list[CellResult] = []

    def finish(done: list[CellResult], regime: dict[str, Any]) -> BenchResult:
        return BenchResult(
            cells=tuple(add_speedups(done)),
            device=device_name(env),
            environment=env,
            regime={**regime, "compile_mode": compile_mode, "reference": "eager fp32 (true fp32: TF32 off), same input",
                    # the weights every cell ran (source, sha256), or None for seeded random ones
                    "weights": {n: (s.weights.to_dict() if s.weights else None) for n, s in specs.items()}},
            spec=spec.to_dict(),
            created_utc=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )

    index = 0
    with _sweep_settings(device, spec.threads) as regime:
        for model_name in spec.models:
            torch.manual_seed(spec.seed)
            module, mspec = create_model(model_name, device="cpu", weights=spec.weights, **spec.overrides)
            splits = None
            if spec.calib_data is not None:
                from deploykit.export.int8 import calibration_splits

                splits = calibration_splits(spec.calib_data, mspec)
            _probe(module, specs[model_name].batch_shape(1), model_name)
            for batch in spec.batches:
                x32 = (_make_input(specs[model_name].batch_shape(batch), spec.seed + batch) if splits is None
                       else _real_input(splits[1].x, batch))
                ref = _reference(module, x32, device)
                for precision in spec.precisions:
                    ctx = CellContext(
                        model_name=model_name,
                        spec=mspec,
                        module=module,
                        precision=precision,
                        batch=batch,
                        device=device,
                        cache=cache,
                        seed=spec.seed,
                        compile_mode=compile_mode,
                        overrides=dict(spec.overrides),
                        threads=spec.threads,
                        calibration=splits,
                        trained=spec.weights is not None,
                    )
                    for backend in spec.backends:
                        index += 1
                        if progress:
                            progress(CellEvent(index, total, model_name, backend, precision, batch))
                        cell = _run_or_skip(ctx, backend, table.get(backend), x32, ref, spec)
                        cells.append(cell)
                        if checkpoint is not None:
                            finish(cells, regime).save(checkpoint)
                        if progress:
                            progress(CellEvent(index, total, model_name, backend, precision, batch, cell))
            del module
            _free(device)
    return finish(cells, regime)
