"""Generate reports/int8.md (+ .json): INT8 post-training quantization of models trained here on real data.

* ``mnist1d-cnn`` trained on MNIST-1D (the authors' recipe, seed 0) and ``lenet`` trained on scikit-learn's digits
  (as in reports/deployment_accuracy.md), exported to ONNX fp32 (dynamic batch), quantized to a Q/DQ INT8 ONNX
  with :func:`deploykit.export.int8.quantize_artifact` for each calibration method (minmax, entropy, percentile),
  calibrated on at most 512 samples of the **train** split and validated on the **test** split against eager
  fp32: top-1, accuracy drop (gate: 1.0 point), top-1 agreement, logit errors, size on disk.
* The broken calibration the tests use: minmax on ONE sample (measured, not assumed).
* ONNX Runtime's dynamic quantization, for comparison (no calibration data; not a TensorRT graph).
* ``resnet18`` (random weights: no trained weights offline), calibrated on digits resized to 3x224x224: top-1
  agreement with fp32 (accuracy is meaningless for random weights) and the CPU latency at batch 1 and 16.
* Latency: ONNX Runtime CPU provider, one intra-op thread, the process pinned to one core, fp32 and INT8 timed in
  the same run (deploykit.bench.timing: warm-up until stable, median of repeat medians); which nodes ONNX Runtime
  runs as int8 kernels after its graph optimisations.

Exits 1 when a trained model's INT8 (any method, 512 samples) misses the 1.0-point gate.

    python benchmarks/report_int8.py [--out reports] [--work deploykit-out/int8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from deploykit._env import environment
from deploykit.backends.ort import OrtRunner
from deploykit.bench.timing import HostTimer, TimingOptions, time_cell
from deploykit.errors import ValidationError
from deploykit.evaluate import logit_metrics
from deploykit.export import export_module
from deploykit.export.int8 import (
    CALIBRATION_METHODS,
    DEFAULT_MAX_ACCURACY_DROP,
    Int8Options,
    calibration_splits,
    ort_int8_kernels,
    quantize_artifact,
    quantize_dynamic_onnx,
)
from deploykit.models import create_model
from deploykit.train import TrainOptions, train_model

SAMPLES = 512
RESNET_SAMPLES = 128
BATCHES = (1, 16)
TIMING = TimingOptions(iterations=30, repeats=5, warmup_seconds=3.0, cell_seconds=8.0)
# The recipes of benchmarks/report_accuracy.py.
TRAINED = {
    "mnist1d-cnn": ("mnist1d", TrainOptions(epochs=200, batch_size=100, optimizer="adam", lr=1e-2, threads=1)),
    "lenet": ("digits", TrainOptions(epochs=30, batch_size=64, optimizer="adam", lr=1e-3, threads=1)),
}


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f}%"


def _latency(path: Path, shape: tuple[int, ...], batch: int) -> dict[str, float]:
    x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0))
    with OrtRunner(path, "cpu", threads=1) as r:
        xi = r.prepare_input(x)
        stats, _ = time_cell(lambda: r.infer(xi), HostTimer(), TIMING)
    return {"median_ms": stats.median_ms, "p90_ms": stats.p90_ms, "noise": stats.noise,
            "throughput_per_s": batch / stats.median_ms * 1e3}


def _onnx_metrics(path: Path, test: Any, ref: torch.Tensor) -> dict[str, Any]:
    from deploykit.evaluate import _run_onnx

    logits, _ = _run_onnx(path, test, torch.device("cpu"), 256)
    return logit_metrics(logits, test.y, ref).__dict__


def _run_onnx_logits(path: Path, test: Any) -> torch.Tensor:
    from deploykit.evaluate import _run_onnx

    return _run_onnx(path, test, torch.device("cpu"), 256)[0]


def _quantize(art: Any, module: Any, calib: Any, test: Any, method: str, samples: int, work: Path,
              trained: bool = True) -> dict[str, Any]:
    t0 = time.perf_counter()
    out = work / f"{method}-{samples}"
    try:
        res = quantize_artifact(art, module, calib, test, Int8Options(method=method, samples=samples),
                                out_dir=out, trained=trained)
        m, path = res.artifact.manifest, res.artifact.path
    except ValidationError as exc:
        path = next(out.glob("*.failed.onnx"))
        m = json.loads(path.with_name(path.name + ".json").read_text())
        m["error"] = str(exc)
    v = m["validation"]
    return {
        "method": method, "samples": m["quantization"]["samples"], "verdict": v["status"], "path": str(path),
        "bytes": m["bytes"], "fp32_top1": v["fp32_top1"], "int8": v["int8"], "drop_points": v["accuracy_drop_points"],
        "seconds": time.perf_counter() - t0, "ops": m["quantization"]["ops"]["quantized_ops"],
        "float_ops": m["quantization"]["ops"]["float_ops"], "data_sha256": m["quantization"]["data"]["sha256"],
    }


def _model(name: str, work: Path) -> dict[str, Any]:
    data, opts = TRAINED.get(name, ("digits", None))
    work.mkdir(parents=True, exist_ok=True)
    trained = opts is not None
    if trained:
        w = work / f"{name}.safetensors"
        tr = train_model(name, data, opts, output=w)
        print(f"{name}: trained, test top-1 {_pct(tr.test_top1)}", flush=True)
        module, spec = create_model(name, device="cpu", weights=w)
    else:
        torch.manual_seed(0)
        module, spec = create_model(name, device="cpu")  # 3x224x224
    art = export_module(module, spec, out_dir=work, dynamic_batch=True, name=name)
    calib, test = calibration_splits(data, spec)
    methods = list(CALIBRATION_METHODS) if trained else ["minmax"]
    samples = SAMPLES if trained else RESNET_SAMPLES
    rows = []
    for method in methods:
        rows.append(_quantize(art, module, calib, test, method, samples, work, trained))
        r = rows[-1]
        print(f"{name} {method} {r['samples']}: {r['verdict']}, drop {r['drop_points']:.2f} points, agreement "
              f"{_pct(r['int8']['agreement'])} ({r['seconds']:.1f} s)", flush=True)
    broken = _quantize(art, module, calib, test, "minmax", 1, work, trained) if trained else None
    if broken:
        print(f"{name} minmax 1 sample: {broken['verdict']}, drop {broken['drop_points']:.2f} points", flush=True)
    from deploykit.evaluate import _eager_logits

    ref = _eager_logits(module, test, torch.device("cpu"), 64)
    int8_logits = _run_onnx_logits(Path(rows[0]["path"]), test)
    classes = {"fp32": int(ref.argmax(1).unique().numel()), "int8": int(int8_logits.argmax(1).unique().numel())}
    dyn_path = work / f"{name}-dynamic-quant.onnx"
    quantize_dynamic_onnx(art.path, dyn_path)
    dynamic = {"path": str(dyn_path), "bytes": dyn_path.stat().st_size, **_onnx_metrics(dyn_path, test, ref)}
    int8_path = Path(rows[0]["path"])
    latency = {}
    for b in BATCHES:
        latency[b] = {
            "fp32": _latency(art.path, spec.input_shape, b),
            "int8": _latency(int8_path, spec.input_shape, b),
            "dynamic": _latency(dyn_path, spec.input_shape, b),
        }
        lb = latency[b]
        print(f"{name} b{b}: fp32 {lb['fp32']['median_ms']:.3f} ms, int8 {lb['int8']['median_ms']:.3f} ms, "
              f"dynamic {lb['dynamic']['median_ms']:.3f} ms", flush=True)
    return {
        "model": name, "data": data, "trained": trained, "input_shape": list(spec.input_shape),
        "num_classes": spec.num_classes,
        "fp32": {"path": str(art.path), "bytes": art.manifest["bytes"], "top1": rows[0]["fp32_top1"]},
        "calibration_split": f"{calib.name} {calib.split} ({len(calib)} samples, sha256 {calib.sha256[:12]})",
        "evaluation_split": f"{test.name} {test.split} ({len(test)} samples, sha256 {test.sha256[:12]})",
        "int8": rows, "broken": broken, "distinct_predicted_classes": classes, "dynamic": dynamic, "latency": latency,
        "kernels": {"int8": ort_int8_kernels(int8_path), "fp32": ort_int8_kernels(art.path),
                    "dynamic": ort_int8_kernels(dyn_path)},
    }


def _speed(lat: dict[str, Any], kind: str) -> str:
    f, q = lat["fp32"]["median_ms"], lat[kind]["median_ms"]
    return f"{f / q:.2f}x faster" if q < f else f"{q / f:.2f}x slower"


def _markdown(results: list[dict[str, Any]], env: dict[str, Any], load: tuple[float, float]) -> str:
    lines = [
        "# INT8 post-training quantization: accuracy cost and CPU speed",
        "",
        "Generated by `python benchmarks/report_int8.py` (no number here is typed in by hand). Q/DQ INT8 ONNX made by "
        "`deploykit.export.int8` (ONNX Runtime `quant_pre_process` + `quantize_static`, QDQ format, int8 weights per "
        "channel symmetric, int8 activations per tensor symmetric, zero point 0, fp32 bias: the graph TensorRT's "
        "explicit quantization takes), calibrated on the **train** split, validated on the disjoint **test** split "
        f"against eager PyTorch fp32. Gate: accuracy drop <= {DEFAULT_MAX_ACCURACY_DROP:g} point.",
        "",
        f"Machine: {env.get('cpu')} ({env.get('cpu_count')} cores, shared); onnxruntime {env.get('onnxruntime')}; "
        f"torch {env.get('torch')}. Latency: ONNX Runtime CPU provider, 1 intra-op thread, process pinned to one "
        f"core, fp32 and INT8 in the same run, median of {TIMING.repeats} repeat medians; load average before/after "
        f"{load[0]:.2f} / {load[1]:.2f} (the machine is shared: treat small differences as noise).",
        "",
    ]
    for r in results:
        lines += [f"## {r['model']} on {r['data']}" + ("" if r["trained"] else " (random weights)"), ""]
        lines += [f"Calibration: {r['calibration_split']}. Evaluation: {r['evaluation_split']}.", ""]
        if not r["trained"]:
            c = r["distinct_predicted_classes"]
            lines += [f"No trained weights are available offline: accuracy against the digit labels is meaningless "
                      f"and the verdict is *inconclusive*, never *passed*. On the {r['evaluation_split'].split(' (')[0]} "
                      f"images fp32 predicts {c['fp32']} distinct class(es) of {r['num_classes']} and INT8 "
                      f"{c['int8']}" + (": with one class for every input, top-1 agreement is trivially 100% and "
                                        "says nothing; the logit errors and the cosine of the logits are the figures "
                                        "that measure the quantization here." if c["fp32"] == 1 else "."), ""]
        lines += ["| artifact | calibration | top-1 | drop vs fp32 (points) | top-1 agreement | max abs logit error "
                  "| min cosine | size | verdict |", "|---|---|---|---|---|---|---|---|---|"]
        lines.append(f"| ONNX fp32 | — | {_pct(r['fp32']['top1'])} | — | — | — | — | {r['fp32']['bytes'] / 1e3:.1f} kB | — |")
        for q in [*r["int8"], *([r["broken"]] if r["broken"] else [])]:
            i = q["int8"]
            lines.append(
                f"| INT8 Q/DQ | {q['method']}, {q['samples']} sample{'s' if q['samples'] != 1 else ''} | "
                f"{_pct(i['top1'])} | {q['drop_points']:+.2f} | {_pct(i['agreement'])} | {i['max_abs_error']:.3g} | "
                f"{i['cosine_min']:.4f} | {q['bytes'] / 1e3:.1f} kB | {q['verdict']} |"
            )
        d = r["dynamic"]
        lines.append(
            f"| ORT dynamic quantization (comparison; not for TensorRT) | none (run-time ranges) | {_pct(d['top1'])} | "
            f"{(r['fp32']['top1'] - d['top1']) * 100:+.2f} | {_pct(d['agreement'])} | {d['max_abs_error']:.3g} | "
            f"{d['cosine_min']:.4f} | {d['bytes'] / 1e3:.1f} kB | — |"
        )
        q0 = r["int8"][0]
        lines += ["", f"Quantized nodes: {q0['ops']}; left in float: {q0['float_ops'] or 'none'}.", ""]
        lines += ["| batch | fp32 (noise) | INT8 Q/DQ (noise) | INT8 vs fp32 | ORT dynamic (noise) | dynamic vs fp32 |",
                  "|---|---|---|---|---|---|"]
        unusable = []
        for b, lat in r["latency"].items():
            cell = lambda k, lat=lat: f"{lat[k]['median_ms']:.3f} ms ({lat[k]['noise'] * 100:.0f}%)"  # noqa: E731
            lines.append(f"| {b} | {cell('fp32')} | {cell('int8')} | {_speed(lat, 'int8')} | {cell('dynamic')} | "
                         f"{_speed(lat, 'dynamic')} |")
            unusable += [f"{k} at batch {b}" for k in ("fp32", "int8", "dynamic") if lat[k]["noise"] > 0.25]
        lines += ["", "Noise = IQR / median of the repeat medians. "
                  + (f"Above 25% (unusable for a comparison): {', '.join(unusable)}; a ratio involving them is not "
                     "a measurement of the graphs." if unusable else "No cell is above 25%.")]
        k = r["kernels"]
        n_conv = q0["ops"].get("Conv", 0)
        fused = k["int8"]["int8_kernels"].get("QLinearConv", 0)
        if n_conv:
            lines += ["", f"Of the {n_conv} Conv nodes quantized in the graph, ONNX Runtime's CPU provider ran {fused} as "
                      f"QLinearConv (int8 arithmetic) and {k['int8']['float_compute_kernels'].get('Conv', 0)} as float "
                      "Conv between DequantizeLinear and QuantizeLinear (int8 storage, fp32 arithmetic, plus the "
                      "conversions)."]
        lines += [
            "",
            f"What ONNX Runtime's CPU provider runs after its optimisations — INT8 Q/DQ graph: int8 kernels "
            f"{k['int8']['int8_kernels']}, float compute {k['int8']['float_compute_kernels'] or 'none'}, other "
            f"{k['int8']['other']}; fp32 graph: {k['fp32']['float_compute_kernels']}; dynamic: int8 "
            f"{k['dynamic']['int8_kernels']}, other {k['dynamic']['other']}.",
            "",
        ]
    lines += [
        "## Reading the numbers",
        "",
        "- Symmetric int8 activations (what TensorRT requires) leave every ReLU as a float node between a "
        "DequantizeLinear and a QuantizeLinear in ONNX Runtime's optimised CPU graph (the `Relu` and Q/DQ counts "
        "under *other* above): each layer pays a dequantize / requantize round trip that the fp32 graph does not. "
        "TensorRT fuses Q/DQ pairs with the convolution and its activation (TensorRT developer guide, explicit "
        "quantization); that was not measured here (no GPU).",
        "- For tiny models, per-node overhead dominates: the Q/DQ graph has several times more nodes than the fp32 "
        "graph (compare the kernel lists above).",
        "",
        "## Commands",
        "",
        "```",
        "deploykit train mnist1d-cnn --data mnist1d --epochs 200 --batch-size 100 --lr 0.01 -o mnist1d-cnn.safetensors",
        "deploykit export mnist1d-cnn --weights mnist1d-cnn.safetensors --int8 --calib-data mnist1d --calib-method entropy",
        "deploykit train lenet --data digits --epochs 30 --batch-size 64 --lr 0.001 -o lenet.safetensors",
        "deploykit export lenet --weights lenet.safetensors --int8 --calib-data digits",
        "python benchmarks/report_int8.py",
        "```",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("reports"))
    ap.add_argument("--work", type=Path, default=Path("deploykit-out/int8"))
    ap.add_argument("--models", default="mnist1d-cnn,lenet,resnet18")
    ap.add_argument("--render", type=Path, help="only re-render the markdown from this JSON (no measurement)")
    args = ap.parse_args()
    if args.render is not None:
        d = json.loads(args.render.read_text())
        results = [{**r, "latency": {int(b): v for b, v in r["latency"].items()}} for r in d["results"]]
        (args.out / "int8.md").write_text(_markdown(results, d["environment"], tuple(d["load_average"])))
        print(f"wrote {args.out / 'int8.md'}")
        return 0
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    env = environment("cpu")
    results = [_model(m, args.work / m) for m in args.models.split(",")]
    load = (load_before[0], os.getloadavg()[0])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "int8.json").write_text(json.dumps({"environment": env, "load_average": load, "results": results},
                                                   indent=2, default=str) + "\n")
    (args.out / "int8.md").write_text(_markdown(results, env, load))
    print(f"wrote {args.out / 'int8.md'} and {args.out / 'int8.json'}")
    missed = [f"{r['model']} {q['method']}" for r in results if r["trained"] for q in r["int8"] if q["verdict"] != "passed"]
    if missed:
        print(f"INT8 missed the {DEFAULT_MAX_ACCURACY_DROP:g}-point gate: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
