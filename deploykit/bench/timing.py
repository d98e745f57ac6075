"""All of deploykit's timing: timers, warm-up until stable, repeats, and the statistics derived from them.

Nothing else in deploykit reads a clock to measure a backend. Three timers:

* :class:`HostTimer` -- ``time.perf_counter_ns`` around each call; for CPU work, which is synchronous.
* :class:`CudaEventTimer` -- a pair of CUDA events recorded **on the stream that does the work** around each
  call (eager kernels, a CUDA-graph replay, a TensorRT enqueue); the host never waits inside a repeat, so
  host overhead shows up only when the GPU starves for work, which is exactly the launch-bound cost.
* :class:`HostTimer` with ``sync`` -- for GPU backends that run on a stream torch cannot see (an ONNX Runtime
  session with its own stream): the device is synchronized before and after each call and the host clock
  read around it. The result is an upper bound (it includes one synchronization); the method is recorded.

A cell is measured as ``R`` repeats of ``n`` samples each (raw samples kept). The statistic is the median of
the repeat medians; the noise figure is IQR/median across the repeat medians (across raw samples when fewer
than three repeats were taken). A cell is *noisy* above 10% and *unusable* above 25%
(see ``docs``/README: the regression rule of ``deploykit check`` builds on these numbers).
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

#: Noise (IQR/median) above which a cell is flagged noisy.
NOISY = 0.10
#: Noise above which a cell is unusable for comparisons.
UNUSABLE = 0.25


# ----------------------------------------------------------------------------------------------- statistics
def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values`` with linear interpolation (numpy's default method).

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
    2.5
    """
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    frac = pos - lo
    return s[lo] + (s[hi] - s[lo]) * frac


def median(values: Sequence[float]) -> float:
    """The median (50th percentile, interpolated)."""
    return percentile(values, 50.0)


def iqr_over_median(values: Sequence[float]) -> float:
    """Interquartile range divided by the median: the dispersion figure torch.utils.benchmark warns on."""
    med = median(values)
    if med <= 0.0:
        return math.inf
    return (percentile(values, 75.0) - percentile(values, 25.0)) / med


@dataclass(frozen=True)
class TimingStats:
    """The timing of one cell: raw samples per repeat and what is derived from them (all in milliseconds).

    ``median_ms`` is the median of the per-repeat medians; ``p90_ms``, ``p99_ms``, ``mean_ms``, ``std_ms``
    (sample standard deviation), ``min_ms`` and ``max_ms`` are over all raw samples pooled; ``cv`` is
    ``std_ms / mean_ms``; ``noise`` is IQR/median of the repeat medians (``noise_basis == "repeats"``) or, with
    fewer than three repeats, of the raw samples (``"samples"``).
    """

    repeats_ms: tuple[tuple[float, ...], ...]
    median_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    cv: float
    noise: float
    noise_basis: str

    @classmethod
    def from_repeats(cls, repeats: Sequence[Sequence[float]]) -> TimingStats:
        """Derive the statistics from ``R`` repeats of raw samples (milliseconds)."""
        reps = tuple(tuple(float(v) for v in r) for r in repeats)
        if not reps or any(len(r) == 0 for r in reps):
            raise ValueError("timing needs at least one repeat with at least one sample")
        pooled = [v for r in reps for v in r]
        rep_medians = [median(r) for r in reps]
        n = len(pooled)
        mean = sum(pooled) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in pooled) / (n - 1)) if n > 1 else 0.0
        if len(reps) >= 3:
            noise, basis = iqr_over_median(rep_medians), "repeats"
        else:
            noise, basis = iqr_over_median(pooled), "samples"
        return cls(
            repeats_ms=reps,
            median_ms=median(rep_medians),
            p90_ms=percentile(pooled, 90.0),
            p99_ms=percentile(pooled, 99.0),
            mean_ms=mean,
            std_ms=std,
            min_ms=min(pooled),
            max_ms=max(pooled),
            cv=std / mean if mean > 0 else math.inf,
            noise=noise,
            noise_basis=basis,
        )

    @property
    def n_repeats(self) -> int:
        return len(self.repeats_ms)

    @property
    def n_samples(self) -> int:
        """Samples per repeat (the first repeat's count; all repeats take the same number)."""
        return len(self.repeats_ms[0])

    @property
    def repeat_medians_ms(self) -> tuple[float, ...]:
        return tuple(median(r) for r in self.repeats_ms)

    @property
    def noisy(self) -> bool:
        return self.noise > NOISY

    @property
    def unusable(self) -> bool:
        return self.noise > UNUSABLE

    def to_dict(self) -> dict[str, Any]:
        return {
            "median_ms": self.median_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "mean_ms": self.mean_ms,
            "std_ms": self.std_ms,
            "min_ms": self.min_ms,
            "max_ms": self.max_ms,
            "cv": self.cv,
            "noise": self.noise,
            "noise_basis": self.noise_basis,
            "n_repeats": self.n_repeats,
            "n_samples": self.n_samples,
            "repeats_ms": [list(r) for r in self.repeats_ms],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TimingStats:
        """Rebuild from :meth:`to_dict` output; the derived figures are recomputed from the raw samples."""
        return cls.from_repeats(d["repeats_ms"])


# ------------------------------------------------------------------------------------------------- timers
class Timer(Protocol):
    """Times ``n`` consecutive calls of ``fn`` and returns one duration in milliseconds per call."""

    method: str

    def time(self, fn: Callable[[], object], n: int) -> list[float]: ...


class HostTimer:
    """Host clock (``perf_counter_ns``) around each call; with ``sync`` the device is synchronized on both sides.

    ``clock`` is injectable for tests (a function returning nanoseconds).
    """

    def __init__(
        self,
        *,
        sync: Callable[[], object] | None = None,
        clock: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        self.sync = sync
        self.clock = clock
        self.method = "perf_counter_ns+sync" if sync is not None else "perf_counter_ns"

    def time(self, fn: Callable[[], object], n: int) -> list[float]:
        out: list[float] = []
        clock, sync = self.clock, self.sync
        for _ in range(n):
            if sync is not None:
                sync()
            t0 = clock()
            fn()
            if sync is not None:
                sync()
            out.append((clock() - t0) / 1e6)
        return out


class CudaEventTimer:
    """CUDA events recorded on ``stream`` around each call; one synchronization at the end of the batch of calls.

    The work must be enqueued on ``stream``: calls run under ``torch.cuda.stream(stream)`` so torch kernels
    and graph replays go there; a backend with its own stream (TensorRT) must be given that stream.
    """

    method = "cuda-events"

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def time(self, fn: Callable[[], object], n: int) -> list[float]:
        import torch

        starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        with torch.cuda.stream(self.stream):
            for start, end in zip(starts, ends, strict=True):
                start.record(self.stream)
                fn()
                end.record(self.stream)
        ends[-1].synchronize()
        return [float(s.elapsed_time(e)) for s, e in zip(starts, ends, strict=True)]


def time_first_call(fn: Callable[[], object], *, sync: Callable[[], object] | None = None) -> float:
    """Wall-clock milliseconds of one call (synchronized when ``sync`` is given).

    Used for the first call of a cell, which pays lazy initialisation, cuDNN/ORT algorithm search and
    ``torch.compile`` compilation: reported separately, never mixed into the latency samples.
    """
    if sync is not None:
        sync()
    t0 = time.perf_counter_ns()
    fn()
    if sync is not None:
        sync()
    return (time.perf_counter_ns() - t0) / 1e6


# ------------------------------------------------------------------------------------------ warm-up, cells
@dataclass(frozen=True)
class TimingOptions:
    """How hard to measure one cell.

    ``iterations`` samples per repeat (at most; see ``cell_seconds``), ``repeats`` repeats; warm-up runs at
    least ``warmup_iters`` calls, then windows of ``warmup_window`` calls until two consecutive window medians
    agree within ``warmup_rel_tol`` or ``warmup_seconds`` have passed. ``cell_seconds`` caps the timed part:
    when ``repeats × iterations`` calls would take longer (judged from the warm-up), fewer samples per repeat
    are taken, never fewer than ``min_iterations``.
    """

    iterations: int = 50
    repeats: int = 7
    warmup_iters: int = 10
    warmup_window: int = 5
    warmup_rel_tol: float = 0.05
    warmup_seconds: float = 10.0
    cell_seconds: float = 30.0
    min_iterations: int = 5

    def __post_init__(self) -> None:
        from deploykit.errors import InvalidInput

        if self.iterations < 1 or self.repeats < 1 or self.min_iterations < 1:
            raise InvalidInput("iterations, repeats and min_iterations must be at least 1")
        if self.warmup_iters < 1 or self.warmup_window < 1:
            raise InvalidInput("warm-up needs at least one iteration and a window of at least one call")
        if self.warmup_seconds < 0 or self.cell_seconds <= 0 or self.warmup_rel_tol <= 0:
            raise InvalidInput("warm-up seconds must be >= 0, cell seconds and the warm-up tolerance > 0")

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class WarmupReport:
    """What the warm-up did: calls made, seconds spent, whether it reached a stable window, last window median."""

    iterations: int
    seconds: float
    stable: bool
    last_window_ms: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def warm_up(
    fn: Callable[[], object],
    timer: Timer,
    opts: TimingOptions,
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> WarmupReport:
    """Call ``fn`` until its latency is stable: two consecutive window medians within ``warmup_rel_tol``."""
    t0 = clock()
    first = timer.time(fn, opts.warmup_iters)
    iters = opts.warmup_iters
    prev = median(first[-opts.warmup_window :])
    stable = False
    while clock() - t0 < opts.warmup_seconds:
        window = timer.time(fn, opts.warmup_window)
        iters += opts.warmup_window
        cur = median(window)
        if prev > 0 and abs(cur / prev - 1.0) <= opts.warmup_rel_tol:
            prev, stable = cur, True
            break
        prev = cur
    return WarmupReport(iterations=iters, seconds=clock() - t0, stable=stable, last_window_ms=prev)


def samples_per_repeat(estimate_ms: float, opts: TimingOptions) -> int:
    """How many samples per repeat fit ``opts.cell_seconds`` given one call takes about ``estimate_ms``.

    >>> samples_per_repeat(100.0, TimingOptions(iterations=50, repeats=5, cell_seconds=10.0))
    20
    """
    if estimate_ms <= 0:
        return opts.iterations
    fit = int(opts.cell_seconds * 1000.0 / (estimate_ms * opts.repeats))
    return max(opts.min_iterations, min(opts.iterations, fit))


def measure(fn: Callable[[], object], timer: Timer, *, iterations: int, repeats: int) -> TimingStats:
    """``repeats`` × ``iterations`` timed calls of ``fn`` (garbage collection paused), as :class:`TimingStats`."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        reps = [timer.time(fn, iterations) for _ in range(repeats)]
    finally:
        if was_enabled:
            gc.enable()
    return TimingStats.from_repeats(reps)


def time_cell(
    fn: Callable[[], object],
    timer: Timer,
    opts: TimingOptions,
    *,
    after_warmup: Callable[[], object] | None = None,
) -> tuple[TimingStats, WarmupReport]:
    """Warm ``fn`` up until stable, then measure it: the whole timing protocol of one benchmark cell.

    ``after_warmup`` is called between the warm-up and the timed calls (the sweep resets the peak-memory
    statistics there, so that the peak it reports is the steady state's, not the algorithm search's).
    """
    report = warm_up(fn, timer, opts)
    if after_warmup is not None:
        after_warmup()
    n = samples_per_repeat(report.last_window_ms, opts)
    return measure(fn, timer, iterations=n, repeats=opts.repeats), report
