"""The timing module: statistics against closed forms, timers with injected clocks, warm-up and sample budget logic."""

from __future__ import annotations

import gc
import math
import statistics
from collections.abc import Callable, Iterator

import pytest

from deploykit.bench.timing import (
    NOISY,
    UNUSABLE,
    HostTimer,
    TimingOptions,
    TimingStats,
    WarmupReport,
    iqr_over_median,
    measure,
    median,
    percentile,
    samples_per_repeat,
    time_cell,
    time_first_call,
    warm_up,
)
from deploykit.errors import InvalidInput


# ------------------------------------------------------------------------------------------------ statistics
@pytest.mark.parametrize(
    ("q", "expected"),
    # sorted [1, 2, 3, 4]: position (n-1)q/100 = 3q/100, linear interpolation between neighbours
    [(0, 1.0), (25, 1.75), (50, 2.5), (75, 3.25), (90, 3.7), (100, 4.0)],
)
def test_percentile_linear_interpolation(q: float, expected: float) -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], q) == pytest.approx(expected, abs=1e-12)


def test_percentile_edge_cases() -> None:
    assert percentile([7.0], 99) == 7.0
    assert median([5.0, 1.0, 3.0]) == 3.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_iqr_over_median_closed_form() -> None:
    # p75 - p25 = 3.25 - 1.75 = 1.5, median 2.5 -> 0.6
    assert iqr_over_median([1.0, 2.0, 3.0, 4.0]) == pytest.approx(0.6)
    assert iqr_over_median([2.0, 2.0, 2.0]) == 0.0
    assert iqr_over_median([0.0, 0.0]) == math.inf


def test_stats_from_repeats_closed_form() -> None:
    repeats = [[1.0, 2.0, 3.0], [2.0, 3.0, 4.0], [3.0, 4.0, 5.0], [10.0, 10.0, 10.0], [1.0, 1.0, 1.0]]
    s = TimingStats.from_repeats(repeats)
    # repeat medians 2, 3, 4, 10, 1 -> sorted 1 2 3 4 10: median 3, p25 2, p75 4 -> noise 2/3
    assert s.repeat_medians_ms == (2.0, 3.0, 4.0, 10.0, 1.0)
    assert s.median_ms == 3.0
    assert s.noise == pytest.approx(2.0 / 3.0)
    assert s.noise_basis == "repeats"
    pooled = [v for r in repeats for v in r]
    assert s.mean_ms == pytest.approx(60.0 / 15.0)
    assert s.std_ms == pytest.approx(statistics.stdev(pooled))
    assert s.cv == pytest.approx(statistics.stdev(pooled) / 4.0)
    assert (s.min_ms, s.max_ms) == (1.0, 10.0)
    # pooled sorted: 1 1 1 1 2 2 3 3 3 4 4 5 10 10 10; p90 at position 12.6 -> 10; p99 -> 10
    assert s.p90_ms == pytest.approx(10.0)
    assert s.p99_ms == pytest.approx(10.0)
    assert (s.n_repeats, s.n_samples) == (5, 3)
    assert s.unusable and s.noisy


def test_stats_noise_thresholds() -> None:
    # repeat medians 0.9 .. 1.1: IQR 0.95..1.05 = 0.1 around median 1.0 -> noise 0.1: not noisy (> 10% is)
    s = TimingStats.from_repeats([[0.9], [0.95], [1.0], [1.05], [1.1]])
    assert s.noise == pytest.approx(0.1)
    assert not s.unusable
    wide = TimingStats.from_repeats([[0.8], [0.85], [1.0], [1.15], [1.2]])  # IQR 0.3 -> 30%
    assert wide.noise == pytest.approx(0.3)
    assert wide.noisy and wide.unusable
    assert NOISY == 0.10 and UNUSABLE == 0.25


def test_stats_fewer_than_three_repeats_use_samples() -> None:
    s = TimingStats.from_repeats([[1.0, 2.0, 3.0, 4.0]])
    assert s.noise_basis == "samples"
    assert s.noise == pytest.approx(0.6)
    assert s.std_ms == pytest.approx(statistics.stdev([1.0, 2.0, 3.0, 4.0]))
    one = TimingStats.from_repeats([[2.5]])
    assert (one.median_ms, one.std_ms, one.noise) == (2.5, 0.0, 0.0)
    with pytest.raises(ValueError):
        TimingStats.from_repeats([])
    with pytest.raises(ValueError):
        TimingStats.from_repeats([[1.0], []])


def test_stats_round_trip_recomputes_from_raw_samples() -> None:
    s = TimingStats.from_repeats([[1.5, 1.25], [1.0, 2.0], [3.0, 0.5]])
    d = s.to_dict()
    d["median_ms"] = 999.0  # derived figures are not trusted on load
    back = TimingStats.from_dict(d)
    assert back == s


# ----------------------------------------------------------------------------------------------------- timers
def _clock(values: list[int]) -> Callable[[], int]:
    it: Iterator[int] = iter(values)
    return lambda: next(it)


def test_host_timer_uses_its_clock_per_call() -> None:
    calls: list[int] = []
    t = HostTimer(clock=_clock([0, 1_000_000, 5_000_000, 7_500_000]))
    out = t.time(lambda: calls.append(1), 2)
    assert out == [1.0, 2.5]
    assert len(calls) == 2
    assert t.method == "perf_counter_ns"


def test_host_timer_synchronizes_around_each_call() -> None:
    events: list[str] = []
    t = HostTimer(sync=lambda: events.append("sync"), clock=_clock([0, 2_000_000]))
    t.time(lambda: events.append("call"), 1)
    assert events == ["sync", "call", "sync"]
    assert t.method == "perf_counter_ns+sync"


def test_time_first_call_is_wall_clock_ms() -> None:
    events: list[str] = []
    ms = time_first_call(lambda: events.append("call"), sync=lambda: events.append("sync"))
    assert events == ["sync", "call", "sync"]
    assert 0.0 <= ms < 1000.0


class ScriptedTimer:
    """A fake timer returning scripted latencies; counts the calls it makes (the function is really called)."""

    method = "scripted"

    def __init__(self, latencies: list[float]) -> None:
        self.latencies = list(latencies)
        self.calls = 0

    def time(self, fn: Callable[[], object], n: int) -> list[float]:
        out = []
        for _ in range(n):
            fn()
            self.calls += 1
            out.append(self.latencies.pop(0) if self.latencies else 1.0)
        return out


def test_warm_up_stops_when_two_windows_agree() -> None:
    # 10 minimum calls (slow, then settling), windows of 5: window medians 2.0 then 1.02 then 1.0 -> stable
    lat = [50.0, 9.0, 5.0, 3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0] + [1.02] * 5 + [1.0] * 5 + [9.9] * 50
    timer = ScriptedTimer(lat)
    opts = TimingOptions(warmup_iters=10, warmup_window=5, warmup_rel_tol=0.05, warmup_seconds=60)
    rep = warm_up(lambda: None, timer, opts)
    assert rep.stable
    assert rep.iterations == 20 == timer.calls
    assert rep.last_window_ms == 1.0


def test_warm_up_gives_up_after_its_time_budget() -> None:
    timer = ScriptedTimer([float(i % 2 + 1) * 10 for i in range(1000)])  # alternates 10 / 20 -> never stable
    ticks = iter(range(100))
    opts = TimingOptions(warmup_iters=4, warmup_window=1, warmup_seconds=3.0)
    rep = warm_up(lambda: None, timer, opts, clock=lambda: float(next(ticks)))
    # clock: start 0; checks at 1, 2 (windows run), 3 stops -> 4 + 2 calls
    assert not rep.stable
    assert rep.iterations == 6
    assert isinstance(rep, WarmupReport)


@pytest.mark.parametrize(
    ("estimate_ms", "expected"),
    [
        (100.0, 20),  # 10 s / (100 ms x 5 repeats) = 20
        (1.0, 50),  # capped at iterations
        (10_000.0, 5),  # floored at min_iterations
        (0.0, 50),
    ],
)
def test_samples_per_repeat_budget(estimate_ms: float, expected: int) -> None:
    opts = TimingOptions(iterations=50, repeats=5, cell_seconds=10.0, min_iterations=5)
    assert samples_per_repeat(estimate_ms, opts) == expected


def test_measure_runs_repeats_and_restores_gc() -> None:
    timer = ScriptedTimer([float(v) for v in range(1, 13)])
    assert gc.isenabled()
    s = measure(lambda: None, timer, iterations=4, repeats=3)
    assert gc.isenabled()
    assert s.repeats_ms == ((1.0, 2.0, 3.0, 4.0), (5.0, 6.0, 7.0, 8.0), (9.0, 10.0, 11.0, 12.0))
    assert s.median_ms == 6.5


def test_time_cell_sizes_repeats_from_warm_up() -> None:
    # steady 100 ms -> warm-up is stable after the first window; budget 10 s / (100 ms x 5) = 20 samples
    timer = ScriptedTimer([100.0] * 1000)
    opts = TimingOptions(iterations=50, repeats=5, cell_seconds=10.0, warmup_iters=3, warmup_window=3)
    stats, rep = time_cell(lambda: None, timer, opts)
    assert rep.iterations == 6
    assert (stats.n_repeats, stats.n_samples) == (5, 20)
    assert timer.calls == 6 + 100


def test_timing_options_validate() -> None:
    with pytest.raises(InvalidInput):
        TimingOptions(iterations=0)
    with pytest.raises(InvalidInput):
        TimingOptions(warmup_window=0)
    with pytest.raises(InvalidInput):
        TimingOptions(cell_seconds=0)
    assert TimingOptions().to_dict()["repeats"] == 7


# ------------------------------------------------------------------------------------------------------ GPU
@pytest.mark.gpu
def test_cuda_event_timer_measures_device_time() -> None:
    import torch

    from deploykit.bench.timing import CudaEventTimer

    stream = torch.cuda.current_stream()
    timer = CudaEventTimer(stream)
    cycles = (
        20_000_000  # torch.cuda._sleep spins the GPU for a number of clock cycles; the host returns at once
    )
    timer.time(lambda: torch.cuda._sleep(cycles), 3)  # warm-up
    one = median(timer.time(lambda: torch.cuda._sleep(cycles), 5))
    two = median(timer.time(lambda: torch.cuda._sleep(2 * cycles), 5))
    assert one > 1.0  # milliseconds of GPU work, not the microseconds the host spends launching it
    assert two / one == pytest.approx(2.0, rel=0.15)
    host = HostTimer()  # no synchronization: it only sees the launch (the anti-example this module avoids)
    launch = median(host.time(lambda: torch.cuda._sleep(cycles), 5))
    torch.cuda.synchronize()
    assert launch < one / 5
