"""Real sweeps on the CPU with the tiny zoo models; fakes only for what this machine cannot produce on demand
(an out-of-memory device, a backend that computes the wrong thing, one that crashes)."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from deploykit.backends.torch_backends import EagerRunner
from deploykit.bench import BenchResult, BenchSpec, TimingOptions, load_results, run_bench
from deploykit.bench.cells import CellContext, Prepared
from deploykit.bench.results import add_speedups
from deploykit.bench.spec import load_suite
from deploykit.bench.sweep import MemoryProbe, _sweep_settings, compare_outputs, is_oom, output_tolerance
from deploykit.bench.timing import HostTimer, time_cell
from deploykit.errors import BackendUnavailable, InvalidInput, ModelNotFound

FAST = TimingOptions(
    iterations=5, repeats=3, warmup_iters=2, warmup_window=2, warmup_seconds=0.5, cell_seconds=5
)


def spec(**kw: object) -> BenchSpec:
    # one thread: other processes on a shared CPU stall multi-threaded barriers (10x slower, bimodal)
    base: dict[str, object] = {
        "models": ("lenet",),
        "backends": ("eager",),
        "device": "cpu",
        "timing": FAST,
        "threads": 1,
    }
    base.update(kw)
    return BenchSpec(**base)  # type: ignore[arg-type,unused-ignore]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-cache")


def test_cpu_sweep_eager_and_channels_last(cache_dir: Path) -> None:
    events: list[tuple[int, str, bool]] = []
    r = run_bench(
        spec(
            backends=("channels-last", "eager", "cuda-graph", "trt"), batches=(1, 4), cache_dir=str(cache_dir)
        ),
        progress=lambda e: events.append((e.index, e.backend, e.cell is not None)),
    )
    assert len(r.cells) == 8
    # eager runs first (the speedup reference) whatever order was asked for
    assert [c.backend for c in r.cells[:4]] == ["eager", "channels-last", "cuda-graph", "trt"]
    assert events[:2] == [(1, "eager", False), (1, "eager", True)]
    assert len(events) == 16
    for batch in (1, 4):
        eager = r.cell("lenet", "eager", "fp32", batch)
        assert eager is not None and eager.ok
        # eager fp32 is the reference computation itself: bit-identical
        assert eager.max_abs_error == 0.0 and eager.correct is True
        assert eager.speedup_vs_eager == 1.0
        assert eager.throughput_sps == pytest.approx(batch * 1000.0 / eager.median_ms)
        assert eager.timing is not None and eager.timing.n_repeats == 3
        assert (
            eager.timer == "perf_counter_ns"
            and eager.cuda_graphs is False
            and eager.transfers_included is False
        )
        assert eager.top1_agreement == 1.0
        cl = r.cell("lenet", "channels-last", "fp32", batch)
        assert cl is not None and cl.ok and cl.correct is True
        assert cl.max_rel_error is not None and cl.max_rel_error < 1e-5
        assert cl.speedup_vs_eager == pytest.approx(eager.median_ms / cl.median_ms)
        graph = r.cell("lenet", "cuda-graph", "fp32", batch)
        assert graph is not None and (graph.status, graph.reason) == (
            "skipped",
            "cuda-graph needs a CUDA device",
        )
        trt = r.cell("lenet", "trt", "fp32", batch)
        assert trt is not None and (trt.status, trt.reason) == ("skipped", "trt needs a CUDA device")
    assert r.device.startswith("cpu:")
    assert r.regime["transfers_included"] is False and r.regime["device_type"] == "cpu"
    assert r.environment["torch"] == torch.__version__


def test_results_round_trip_through_json(tmp_path: Path) -> None:
    r = run_bench(spec(precisions=("fp32", "bf16")))
    path = r.save(tmp_path / "r.json")
    back = load_results(path)
    assert isinstance(back, BenchResult)
    assert back.to_dict() == json.loads(path.read_text())
    assert [c.key for c in back.cells] == [c.key for c in r.cells]
    for a, b in zip(back.cells, r.cells, strict=True):
        assert a.timing == b.timing  # raw samples kept, statistics recomputed identically
        assert a.max_rel_error == b.max_rel_error
    bf16 = back.cell("lenet", "eager", "bf16", 1)
    assert bf16 is not None and bf16.correct is True
    assert 0 < (bf16.max_rel_error or 0) <= output_tolerance("bf16", "cpu")
    assert back.spec["timing"]["repeats"] == 3


def test_mnist1d_has_no_channels_last(cache_dir: Path) -> None:
    r = run_bench(
        spec(models=("mnist1d-cnn",), backends=("eager", "channels-last"), cache_dir=str(cache_dir))
    )
    cl = r.cell("mnist1d-cnn", "channels-last", "fp32", 1)
    assert cl is not None and cl.status == "skipped"
    assert cl.reason == "channels-last needs a 4-D (N, C, H, W) input; mnist1d-cnn takes 3-D"
    assert r.cells[0].ok


# -------------------------------------------------------------------------------------------- fakes (tests only)
class FakeWrongRunner(EagerRunner):
    """A fake backend that is fast and wrong: eager output plus one."""

    name = "fake-wrong"

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        return super().infer(x) + 1.0


def fake_wrong_factory(ctx: CellContext) -> Prepared:
    return Prepared(FakeWrongRunner(copy.deepcopy(ctx.module), ctx.device), torch.float32)


def fake_oom_factory(ctx: CellContext) -> Prepared:
    """Stands in for a device that runs out of memory (none can be exhausted on demand on this machine)."""
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def fake_crash_factory(ctx: CellContext) -> Prepared:
    raise RuntimeError("backend exploded\nsecond line of the traceback text")


def fake_missing_factory(ctx: CellContext) -> Prepared:
    raise BackendUnavailable("fake: not installed here (pip install fake)")


def test_wrong_oom_crash_and_missing_cells_do_not_stop_the_sweep() -> None:
    factories = {
        "channels-last": fake_wrong_factory,
        "cuda-graph": fake_oom_factory,
        "compile": fake_crash_factory,
        "ort": fake_missing_factory,
    }
    r = run_bench(
        spec(backends=("eager", "channels-last", "cuda-graph", "compile", "ort"), batches=(1, 2)),
        factories=factories,
    )
    assert len(r.cells) == 10
    for batch in (1, 2):
        wrong = r.cell("lenet", "channels-last", "fp32", batch)
        assert wrong is not None and wrong.ok and wrong.correct is False
        assert wrong.max_abs_error == pytest.approx(1.0, abs=1e-5)
        oom = r.cell("lenet", "cuda-graph", "fp32", batch)
        assert oom is not None and oom.status == "oom"
        assert oom.reason == "OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB"
        crash = r.cell("lenet", "compile", "fp32", batch)
        assert crash is not None and (crash.status, crash.reason) == (
            "error",
            "RuntimeError: backend exploded",
        )
        missing = r.cell("lenet", "ort", "fp32", batch)
        assert (
            missing is not None
            and missing.status == "skipped"
            and "pip install fake" in (missing.reason or "")
        )
        eager = r.cell("lenet", "eager", "fp32", batch)
        assert eager is not None and eager.ok  # the sweep went on after every failure


def test_wrong_backend_is_never_the_fastest() -> None:
    from deploykit.report.bench import fastest_correct

    r = run_bench(spec(backends=("eager", "channels-last")), factories={"channels-last": fake_wrong_factory})
    assert fastest_correct(r)[("lenet", "fp32", 1)].backend == "eager"


# ------------------------------------------------------------------------------------------------ pieces
def test_compare_outputs_closed_form() -> None:
    ref = torch.tensor([[1.0, -4.0, 2.0], [0.5, 0.0, 3.0]])
    out = ref.clone()
    out[0, 2] += 0.04  # max abs 0.04, max |ref| 4 -> rel 0.01
    out[1, 0] += 0.01
    got = compare_outputs(out, ref, 0.02)
    assert got["max_abs_error"] == pytest.approx(0.04)
    assert got["max_rel_error"] == pytest.approx(0.01)
    assert got["correct"] is True
    assert got["top1_agreement"] == 1.0
    assert compare_outputs(out, ref, 0.005)["correct"] is False
    swapped = torch.tensor([[1.0, -4.0, 0.9], [3.0, 0.0, 0.5]])  # argmax changes in both rows
    assert compare_outputs(swapped, ref, 1.0)["top1_agreement"] == 0.0
    nan = compare_outputs(torch.full_like(ref, float("nan")), ref, 1.0)
    assert nan["correct"] is False
    shape = compare_outputs(torch.zeros(2, 4), ref, 1.0)
    assert shape["correct"] is False and "output shape" in shape["mismatch"]


def test_output_tolerances_are_the_validation_tolerances() -> None:
    from deploykit.export.validate import TOLERANCES

    assert output_tolerance("fp32", "cpu") == TOLERANCES["fp32"].rtol == 1e-4
    # true fp32 on CUDA too (TF32 off everywhere), so the export's fp32 tolerance applies
    assert output_tolerance("fp32", "cuda") == 1e-4
    assert output_tolerance("fp16", "cuda") == TOLERANCES["fp16"].rtol == 1e-2
    assert output_tolerance("bf16", "cpu") == TOLERANCES["bf16"].rtol == 8e-2
    with pytest.raises(InvalidInput, match="unknown precision 'fp8'"):
        output_tolerance("fp8", "cpu")


def test_is_oom_recognises_each_library() -> None:
    assert is_oom(torch.OutOfMemoryError("x"))
    assert is_oom(RuntimeError("CUDA error: out of memory"))
    assert is_oom(
        RuntimeError(
            "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory for requested buffer"
        )
    )
    assert is_oom(RuntimeError("CUDNN_STATUS_ALLOC_FAILED"))
    assert not is_oom(RuntimeError("shape mismatch"))


def test_add_speedups_uses_same_precision_and_batch() -> None:
    from deploykit.bench.results import CellResult
    from deploykit.bench.timing import TimingStats

    def c(backend: str, ms: float, prec: str = "fp16", batch: int = 1) -> CellResult:
        return CellResult("m", backend, prec, batch, timing=TimingStats.from_repeats([[ms]]))

    stale = replace(c("compile", 1.0, "fp32"), speedup_vs_eager=9.0)  # no fp32 eager: the old figure goes
    cells = add_speedups(
        [c("eager", 2.0), c("compile", 0.5), stale, c("eager", 4.0, batch=8), c("ort", 1.0, batch=8)]
    )
    assert [x.speedup_vs_eager for x in cells] == [1.0, 4.0, None, 1.0, 4.0]


def test_spec_validation_and_defaults() -> None:
    s = BenchSpec(models=("lenet", "lenet"), backends=("ort", "eager", "ort"), batches=(8, 1, 8))
    assert s.models == ("lenet",) and s.backends == ("eager", "ort") and s.batches == (8, 1)
    assert s.n_cells == 4
    with pytest.raises(InvalidInput, match="unknown backend"):
        BenchSpec(models=("lenet",), backends=("tvm",))
    with pytest.raises(InvalidInput, match="unknown precision"):
        BenchSpec(models=("lenet",), precisions=("fp8",))
    with pytest.raises(InvalidInput, match="batch sizes"):
        BenchSpec(models=("lenet",), batches=(0,))
    with pytest.raises(InvalidInput, match="unknown device"):
        BenchSpec(models=("lenet",), device="tpu")
    with pytest.raises(InvalidInput, match="compile mode"):
        BenchSpec(models=("lenet",), compile_mode="fast")
    with pytest.raises(ModelNotFound):
        run_bench(spec(models=("lenett",)))


def test_cuda_device_without_cuda_is_unavailable() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(BackendUnavailable, match="no CUDA device"):
        run_bench(spec(device="cuda"))


def test_suite_files(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    for suite in sorted((repo / "benchmarks" / "suites").glob("*.json")):
        s = load_suite(suite)
        assert s.name == suite.stem
        assert s.timing.repeats >= 5  # the regression rule needs R >= 5
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"models": ["lenet"], "batchez": [1]}))
    with pytest.raises(InvalidInput, match="unknown suite field"):
        load_suite(p)
    p.write_text(json.dumps({"models": ["lenet"], "timing": {"iters": 3}}))
    with pytest.raises(InvalidInput, match="unknown timing option"):
        load_suite(p)
    p.write_text("[1, 2")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        load_suite(p)


# ------------------------------------------------------------------------------------------- ONNX Runtime
def test_ort_cpu_cell_is_correct_and_its_export_is_cached(tmp_path: Path) -> None:
    s = spec(backends=("eager", "ort"), batches=(2,), cache_dir=str(tmp_path))
    first = run_bench(s)
    ort = first.cell("lenet", "ort", "fp32", 2)
    assert ort is not None and ort.ok, ort and ort.reason
    assert ort.correct is True and (ort.max_rel_error or 0) < 1e-4
    assert ort.cache_hit is False
    second = run_bench(s)
    ort2 = second.cell("lenet", "ort", "fp32", 2)
    assert ort2 is not None and ort2.ok and ort2.cache_hit is True
    assert (ort2.prepare_s or 0) < (ort.prepare_s or 0)  # no export the second time


# ---------------------------------------------------------------------------------------------------- slow
@pytest.mark.slow
def test_compile_cell_reuses_the_inductor_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    s = spec(backends=("compile",), cache_dir=str(tmp_path))
    first = run_bench(s).cells[0]
    second = run_bench(s).cells[0]
    assert first.ok and second.ok, (first.reason, second.reason)
    assert first.correct and second.correct
    assert first.cache_hit is False and second.cache_hit is True
    assert first.info["inductor_cache_dir"] == str(tmp_path / "inductor")
    assert (tmp_path / "inductor").is_dir()
    assert (second.first_call_ms or 0) < (first.first_call_ms or 0)


# ------------------------------------------------------------------------------------------------------ GPU
@pytest.mark.gpu
def test_gpu_sweep_torch_backends(tmp_path: Path) -> None:
    r = run_bench(
        spec(
            device="cuda",
            backends=("eager", "channels-last", "cuda-graph"),
            precisions=("fp32", "fp16"),
            batches=(1, 8),
            cache_dir=str(tmp_path),
        )
    )
    for c in r.cells:
        assert c.ok and c.correct, (c.key, c.reason, c.max_rel_error)
        assert c.timer == "cuda-events"
        assert c.peak_mem_bytes is not None and c.peak_mem_bytes > 0
        assert (c.peak_mem_method or "").startswith("torch-allocator-peak")
        assert c.setup_peak_mem_bytes is not None and c.setup_peak_mem_bytes >= c.peak_mem_bytes
        assert c.cuda_graphs is (c.backend == "cuda-graph")
    assert r.regime["cudnn_benchmark"] is True
    assert r.regime["fp32_math"]["torch"] == {"matmul": "ieee", "conv": "ieee", "rnn": "ieee"}
    assert r.environment["gpu"]["name"] == r.device


@pytest.mark.gpu
def test_gpu_out_of_memory_is_caught_and_the_sweep_goes_on() -> None:
    def hog(ctx: CellContext) -> Prepared:
        free, _ = torch.cuda.mem_get_info()
        torch.empty(int(free * 4), dtype=torch.uint8, device=ctx.device)  # a real CUDA OOM
        raise AssertionError("unreachable")

    r = run_bench(
        spec(device="cuda", backends=("eager", "compile"), batches=(1, 2)), factories={"compile": hog}
    )
    assert [c.status for c in r.cells] == ["ok", "oom", "ok", "oom"]
    assert "out of memory" in (r.cells[1].reason or "").lower()


def test_threads_are_set_for_the_sweep_and_restored() -> None:
    before = torch.get_num_threads()
    r = run_bench(spec(threads=1))
    assert r.regime["cpu_threads"] == 1 and r.regime["ort_threads"] == 1
    assert torch.get_num_threads() == before
    with pytest.raises(InvalidInput, match="threads"):
        spec(threads=0)


def test_checkpoint_keeps_the_cells_measured_so_far(tmp_path: Path) -> None:
    seen: list[int] = []
    path = tmp_path / "partial.json"

    def progress(ev: object) -> None:
        # after cell 1 finished, the checkpoint holds exactly that cell
        if getattr(ev, "cell", None) is not None:
            seen.append(len(load_results(path).cells))

    r = run_bench(spec(batches=(1, 2)), progress=progress, checkpoint=path)
    assert seen == [1, 2]
    assert [c.key for c in load_results(path).cells] == [c.key for c in r.cells]


# ------------------------------------------------------------------------------------- memory, fp32 math
class FakeDevice:
    """A device's memory as torch.cuda reports it: the allocator's current and peak bytes, and the device's
    bytes in use (allocator reservations plus a library's own allocations)."""

    def __init__(self) -> None:
        self.alloc = self.peak = self.other = 0

    def malloc(self, n: int) -> None:
        self.alloc += n
        self.peak = max(self.peak, self.alloc)

    def free(self, n: int) -> None:
        self.alloc -= n

    def reset(self) -> None:
        self.peak = self.alloc

    def probe(self, torch_allocator: bool) -> MemoryProbe:
        return MemoryProbe(torch_allocator, lambda: self.alloc, lambda: self.peak, self.reset,
                           lambda: self.alloc + self.other)


def test_steady_state_peak_excludes_autotuning_workspaces() -> None:
    # torch runner: 100 MB weights, a 1 GB cuDNN benchmark workspace during the first call / warm-up,
    # then 30 MB of activations per steady-state call.
    dev = FakeDevice()
    dev.malloc(7)  # something the process already holds
    p = dev.probe(torch_allocator=True)
    p.before_factory()
    p.after_factory()  # the torch factories only copy the module on the CPU
    dev.malloc(100)  # activate: weights
    p.sample()
    dev.malloc(1000)  # algorithm search
    dev.free(1000)
    p.sample()
    dev.malloc(30)
    dev.free(30)
    p.after_warmup()
    dev.malloc(30)  # timed calls
    dev.free(30)
    steady, setup, method = p.result()
    assert steady == 130  # weights + activations; the old reading (peak since before the factory) was 1130
    assert setup == 1100
    assert method.startswith("torch-allocator-peak")


def test_device_used_baseline_is_read_after_the_factory() -> None:
    # ONNX Runtime / TensorRT: the factory's build leaves 500 MB in use (say, a cached builder); the session
    # then holds 200 MB, and its first call grows an arena by 50 MB for good.
    dev = FakeDevice()
    p = dev.probe(torch_allocator=False)
    p.before_factory()
    dev.other += 500
    p.after_factory()
    dev.other += 200
    p.sample()
    dev.other += 50
    p.sample()
    p.after_warmup()
    steady, setup, method = p.result()
    assert steady == 250  # the old baseline (read before the export and build) gave 750
    assert setup == 750
    assert method.startswith("device-used-growth")


def test_time_cell_calls_after_warmup_between_warm_up_and_timed_calls() -> None:
    calls: list[str] = []
    opts = TimingOptions(iterations=3, repeats=2, warmup_iters=2, warmup_window=2, warmup_seconds=0.0)
    _, warm = time_cell(lambda: calls.append("call"), HostTimer(), opts, after_warmup=lambda: calls.append("reset"))
    assert calls.index("reset") == warm.iterations
    assert calls[calls.index("reset") + 1 :].count("call") >= 6  # the timed calls come after it


def test_cuda_sweep_runs_in_true_fp32_on_the_selected_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    # Flags only: this runs without a GPU (torch.cuda.device is recorded, not entered). The cuDNN convolutions
    # default to TF32 in torch 2.14.
    import contextlib

    from deploykit.backends.math_mode import torch_fp32_math

    made_current: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "device", lambda d: made_current.append(d) or contextlib.nullcontext())
    before = torch_fp32_math()
    with _sweep_settings(torch.device("cuda", 1), None) as regime:
        assert made_current == [torch.device("cuda", 1)]
        assert torch_fp32_math() == {"matmul": "ieee", "conv": "ieee", "rnn": "ieee"}
        assert regime["fp32_math"]["policy"] == "ieee"
        assert regime["fp32_math"]["torch"] == {"matmul": "ieee", "conv": "ieee", "rnn": "ieee"}
        assert regime["fp32_math"]["onnxruntime_cuda"] == {"use_tf32": "0"}
    assert torch_fp32_math() == before
