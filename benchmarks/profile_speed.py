"""Profile time of deploykit (meta tensors) against fvcore (JIT trace + real forward) over the zoo.

deploykit: ``profile_model(name, batch_size=b)``, which builds the model on the meta device and profiles it.
fvcore: ``FlopCountAnalysis(model, x).total()`` on an already built CPU model (model construction and weight
init are *not* charged to fvcore). Both single-threaded, medians of 3 runs. Writes JSON (+ a markdown table).

    python benchmarks/profile_speed.py --out benchmarks/results [--batch 1] [--models resnet18,vgg19]

Target (issue 2): vgg19 at batch 256 profiles in about a second on one CPU core.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
import warnings
from pathlib import Path


def _median_s(fn, runs: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--models", default="")
    ap.add_argument("--skip-fvcore", action="store_true")
    args = ap.parse_args()

    import torch
    from fvcore.nn import FlopCountAnalysis

    from deploykit._env import environment
    from deploykit._io import atomic_write_json, atomic_write_text
    from deploykit.models import create_model, list_models
    from deploykit.profile import profile_model

    torch.set_num_threads(1)
    names = [n for n in args.models.split(",") if n] or list_models()
    rows = []
    for name in names:
        ours = _median_s(lambda name=name: profile_model(name, batch_size=args.batch))
        vgg_256 = _median_s(lambda name=name: profile_model(name, batch_size=256), runs=1) if name == "vgg19" else None
        fv = None
        if not args.skip_fvcore:
            model, spec = create_model(name, device="cpu")
            x = torch.randn(spec.batch_shape(args.batch))

            def run_fvcore(model=model, x=x) -> None:  # type: ignore[no-untyped-def]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    a = FlopCountAnalysis(model, x)
                    a.unsupported_ops_warnings(False)
                    a.uncalled_modules_warnings(False)
                    a.total()

            with torch.no_grad():
                fv = _median_s(run_fvcore)
            del model, x
        rows.append({"model": name, "deploykit_s": ours, "fvcore_s": fv, "deploykit_b256_s": vgg_256})
        print(f"{name:20s} deploykit {ours:7.3f} s   fvcore {fv if fv is None else round(fv, 3)} s")
    doc = {
        "schema": "deploykit.profile-speed",
        "schema_version": 1,
        "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "batch_size": args.batch,
        "threads": 1,
        "environment": environment("cpu"),
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "profile-speed-cpu.json", doc)
    lines = ["| model | deploykit s | fvcore s | speed-up |", "|---|---|---|---|"]
    for r in rows:
        fvs = f"{r['fvcore_s']:.3f}" if r["fvcore_s"] is not None else "-"
        sp = f"{r['fvcore_s'] / r['deploykit_s']:.1f}x" if r["fvcore_s"] else "-"
        lines.append(f"| {r['model']} | {r['deploykit_s']:.3f} | {fvs} | {sp} |")
    b256 = next((r["deploykit_b256_s"] for r in rows if r["deploykit_b256_s"] is not None), None)
    if b256 is not None:
        lines.append(f"\nvgg19 at batch 256 (deploykit, one core): {b256:.3f} s")
    atomic_write_text(args.out / "profile-speed-cpu.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
