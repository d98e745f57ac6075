"""False alarms and detection of paired A/B timing (deploykit.bench.paired), measured in separate processes.

Usage::

    python benchmarks/paired_false_alarms.py --runs 20 [--model resnet18] [--pairs 15] \
        [--out benchmarks/results/paired-false-alarms-cpu]

Each run is its own process (so it sees between-process drift: other load, clocks, memory placement). In it the
eager fp32 model (one thread, batch 1) is the baseline A, and three candidates are timed interleaved with it:
the same model (identical code: any "regression" is a false alarm), and the same model followed by a busy wait
of 15% and 30% of the duration of its own forward pass, measured inline (an injected slowdown of exactly that
fraction, whatever the load at that moment). :func:`deploykit.bench.paired.paired_verdict` judges each at the
default tolerance of 10%.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

SLOWDOWNS = {"identical": 0.0, "+15%": 0.15, "+30%": 0.30}


def one_run(model_name: str, pairs: int) -> dict:
    import torch

    from deploykit.bench.paired import paired_ratios, paired_verdict
    from deploykit.models import create_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, spec = create_model(model_name, device="cpu")
    model.eval()
    x = torch.randn(spec.batch_shape(1))

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    def slowed(fraction: float):
        def fn() -> None:
            t0 = time.perf_counter()
            forward()
            end = time.perf_counter() + (time.perf_counter() - t0) * fraction
            while time.perf_counter() < end:  # busy, like slower code would be
                pass
        return fn

    candidates = {name: (forward if f == 0 else slowed(f)) for name, f in SLOWDOWNS.items()}
    ratios = paired_ratios(forward, candidates, pairs=pairs)
    return {name: {"ratios": r, **paired_verdict(r).to_dict()} for name, r in ratios.items()}


_LINE = re.compile(r"(identical|\+15%|\+30%) (\w+) x([0-9.]+) \[([0-9.]+), ([0-9.]+)\]")


def _parse_log(path: Path) -> list[dict]:
    """The runs printed as ``run N: identical unchanged x1.029 [0.837, 1.210], +15% ...``."""
    runs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("run "):
            runs.append({m[0]: {"ratios": None, "status": m[1], "ratio": float(m[2]), "ci_low": float(m[3]),
                                "ci_high": float(m[4])} for m in _LINE.findall(line)})
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--pairs", type=int, default=15)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/paired-false-alarms-cpu"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--from-log", type=Path,
                    help="summarise the per-run lines a previous invocation printed (no per-pair ratios)")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(one_run(args.model, args.pairs)))
        return 0
    from deploykit._env import device_name, environment
    from deploykit._io import atomic_write_json, atomic_write_text

    runs = [] if args.from_log is None else _parse_log(args.from_log)
    for i in range(args.runs if args.from_log is None else 0):
        out = subprocess.run([sys.executable, __file__, "--child", "--model", args.model, "--pairs", str(args.pairs)],
                             check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
        v = runs[-1]
        print(f"run {i + 1}: " + ", ".join(f"{k} {v[k]['status']} x{v[k]['ratio']:.3f} [{v[k]['ci_low']:.3f}, "
                                           f"{v[k]['ci_high']:.3f}]" for k in SLOWDOWNS), flush=True)
    summary = {}
    for k in SLOWDOWNS:
        statuses = [r[k]["status"] for r in runs]
        summary[k] = {
            "regressions": statuses.count("regression"),
            "runs": len(runs),
            "median_ratio_min": min(r[k]["ratio"] for r in runs),
            "median_ratio_max": max(r[k]["ratio"] for r in runs),
        }
    doc = {"model": args.model, "device": device_name(environment("cpu")), "pairs": args.pairs, "tolerance": 0.10,
           "summary": summary, "runs": runs}
    lines = [
        f"# Paired A/B timing on identical code: false alarms and detection ({doc['device']})",
        "",
        f"{len(runs)} separate processes; in each, {args.model} eager fp32 (1 thread, batch 1) is timed "
        f"{args.pairs} times interleaved (order reversed every round) with itself and with itself slowed by 15% "
        "and 30% (a busy wait of that fraction of its own forward pass). Verdict: median of the pair ratios "
        "above 1.10 with its 95% interval above 1 = regression.",
        "",
        "| candidate | runs called a regression | median ratio, min-max over runs |",
        "|---|---|---|",
    ]
    for k, s in summary.items():
        lines.append(f"| {k} | {s['regressions']} / {s['runs']} | {s['median_ratio_min']:.3f} - "
                     f"{s['median_ratio_max']:.3f} |")
    lines += ["", f"Command: `python benchmarks/paired_false_alarms.py --runs {len(runs)} --model {args.model} "
              f"--pairs {args.pairs}`", ""]
    text = "\n".join(lines)
    atomic_write_json(args.out.with_suffix(".json"), doc)
    atomic_write_text(args.out.with_suffix(".md"), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
