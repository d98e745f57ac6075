"""False alarms and detection of `deploykit check`, measured on identical reruns.

Usage::

    python benchmarks/false_alarms.py RUN.json RUN.json ... [--out benchmarks/results/false-alarms-cpu]

RUN files are `deploykit bench` results of the *same* command on unchanged code, each from its own process
(e.g. 24 runs of ``deploykit bench resnet18 --device cpu --threads 1 --repeats 5 --backend eager,ort``).
Each run in turn is the current one and is checked, with :func:`deploykit.bench.regression.compare_results`
at the default tolerance, against a baseline made of the N runs before it (cyclically; N = 1 is the plain
one-file check). A *false alarm* is a cell called a regression on unchanged code. Detection: the current
run's samples are scaled by 1 + s (an injected slowdown of s) and the fraction of cells called a regression
is counted; the smallest slowdown caught in every comparison is reported.

Writes ``<out>.json`` and ``<out>.md``; prints the markdown.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from deploykit._io import atomic_write_json, atomic_write_text
from deploykit.bench.regression import DEFAULT_TOLERANCE, compare_results
from deploykit.bench.results import BenchResult, load_results
from deploykit.bench.timing import TimingStats

SLOWDOWNS = (0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.40, 0.50)


def scaled(result: BenchResult, factor: float) -> BenchResult:
    cells = tuple(
        replace(c, timing=TimingStats.from_repeats([[v * factor for v in r] for r in c.timing.repeats_ms]))
        if c.ok and c.timing is not None else c
        for c in result.cells
    )
    return replace(result, cells=cells)


def evaluate(runs: list[BenchResult], n_base: int) -> dict:
    k = len(runs)
    false_alarms, comparisons, thresholds, changes = 0, 0, [], []
    caught = {s: 0 for s in SLOWDOWNS}
    worst: dict = {}
    for i in range(k):
        bases = [runs[(i - j) % k] for j in range(1, n_base + 1)]
        rep = compare_results(runs[i], bases, tolerance=DEFAULT_TOLERANCE)
        timed = [c for c in rep.comparisons if c.change is not None]
        comparisons += len(timed)
        for c in timed:
            thresholds.append(c.threshold)
            changes.append(c.change)
            if c.status == "regression":
                false_alarms += 1
            margin = c.change - c.threshold
            if not worst or margin > worst["margin"]:
                worst = {"margin": margin, "run": i + 1, "cell": f"{c.model}/{c.backend}", "change": c.change,
                         "threshold": c.threshold}
        for s in SLOWDOWNS:
            srep = compare_results(scaled(runs[i], 1 + s), bases, tolerance=DEFAULT_TOLERANCE)
            caught[s] += sum(1 for c in srep.comparisons if c.status == "regression")
    smallest = next((s for s in SLOWDOWNS if caught[s] == comparisons), None)
    return {
        "baseline_runs": n_base,
        "comparisons": comparisons,
        "false_alarms": false_alarms,
        "false_alarm_rate": false_alarms / comparisons,
        "caught": {f"{int(s * 100)}%": caught[s] / comparisons for s in SLOWDOWNS},
        "smallest_slowdown_always_caught": smallest,
        "threshold_min": min(thresholds),
        "threshold_median": sorted(thresholds)[len(thresholds) // 2],
        "threshold_max": max(thresholds),
        "largest_change_on_identical_code": max(changes),
        "closest_call": worst,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/false-alarms-cpu"))
    ap.add_argument("--baseline-runs", default="1,3,5", help="pool sizes to evaluate")
    args = ap.parse_args(argv)
    runs = [load_results(p) for p in args.runs]
    rows = [evaluate(runs, int(n)) for n in args.baseline_runs.split(",")]
    cells = sorted({f"{c.model}/{c.backend}/{c.precision}/b{c.batch}" for c in runs[0].cells})
    medians = {
        cell: [c.median_ms for r in runs for c in r.cells if f"{c.model}/{c.backend}/{c.precision}/b{c.batch}" == cell]
        for cell in cells
    }
    doc = {
        "runs": [str(p) for p in args.runs],
        "device": runs[0].device,
        "spec": runs[0].spec,
        "tolerance": DEFAULT_TOLERANCE,
        "cells": cells,
        "run_medians_ms": medians,
        "results": rows,
    }
    lines = [
        f"# `deploykit check` on identical code: false alarms and detection ({runs[0].device})",
        "",
        f"{len(runs)} runs of the same command on unchanged code, one process each; cells {', '.join(cells)}.",
        "Each run is checked against a baseline made of the N runs before it (default tolerance "
        f"{DEFAULT_TOLERANCE:.0%}); injected slowdowns scale the current run's samples.",
        "",
        "Run-to-run spread of the cell medians (ms): "
        + "; ".join(f"{k} {min(v):.1f}-{max(v):.1f} (max/min {max(v) / min(v) - 1:+.1%})" for k, v in medians.items()),
        "",
        "| baseline runs | comparisons | false alarms | " + " | ".join(f"{int(s * 100)}% caught" for s in SLOWDOWNS)
        + " | smallest always caught | threshold min/median/max | largest change on identical code |",
        "|---|---|---|" + "---|" * len(SLOWDOWNS) + "---|---|---|",
    ]
    for r in rows:
        sm = r["smallest_slowdown_always_caught"]
        lines.append(
            f"| {r['baseline_runs']} | {r['comparisons']} | {r['false_alarms']} ({r['false_alarm_rate']:.1%}) | "
            + " | ".join(f"{v:.0%}" for v in r["caught"].values())
            + f" | {'-' if sm is None else f'{sm:.0%}'} | {r['threshold_min']:.1%} / {r['threshold_median']:.1%} / "
            f"{r['threshold_max']:.1%} | {r['largest_change_on_identical_code']:+.1%} |"
        )
    lines += ["", "Command: `python benchmarks/false_alarms.py " + " ".join(str(p) for p in args.runs[:2])
              + " ...`", ""]
    text = "\n".join(lines)
    atomic_write_json(args.out.with_suffix(".json"), doc)
    atomic_write_text(args.out.with_suffix(".md"), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
