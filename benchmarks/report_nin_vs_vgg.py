"""Generate reports/nin_vs_vgg.md and reports/figs/nin_vs_vgg-*.png: NiN against VGG-11 / VGG-16 (ImageNet forms
and the d2l Fashion-MNIST forms) — where the parameters, the activation memory and the roofline time go — from
deploykit's public API (profile, memory model, roofline, compare, MemTracker reference, plots).

    python benchmarks/report_nin_vs_vgg.py --out reports

Everything except the MemTracker ground truth runs on the meta device (seconds). The ground truth builds the
real models on the CPU with random weights and runs an inference forward and two Adam training steps each
(about 3 minutes on 2 cores; ``--no-reference`` skips it and leaves that section out).
"""

from __future__ import annotations

import argparse
import datetime
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from deploykit._env import environment
from deploykit._io import atomic_write_text
from deploykit.models import create_model
from deploykit.profile import (
    get_device,
    inference_memory,
    memtracker_reference,
    profile_model,
    roofline,
    training_memory,
)
from deploykit.profile.compare import CompareOptions, Stage, compare_models, model_stages
from deploykit.profile.findings import is_fully_connected
from deploykit.profile.memory import InferenceMemory, TrainingMemory
from deploykit.profile.roofline import RooflineProfile
from deploykit.profile.types import LayerProfile, ModelProfile
from deploykit.report.compare import compare_markdown
from deploykit.report.plots import plot_layers, plot_roofline
from deploykit.report.profile_tables import fmt_bytes, fmt_count

IMAGENET = ("nin", "vgg11", "vgg16")
D2L = ("d2l-nin", "d2l-vgg11")
MODELS = IMAGENET + D2L
BATCHES = (1, 64, 256)
DEVICES = ("h100", "rtx3050-laptop")
ROOF_DTYPE = "fp16"  # the roofline sections: inference as deployed (TensorRT / autocast fp16)
MEM_DTYPE = "fp32"  # the memory sections: training in fp32, comparable with MemTracker on the CPU
OPTIMIZER = "adam"
#: (model, batch) pairs measured with MemTracker on real CPU tensors (2 cores, 24 GiB: vgg16 at batch 8 takes
#: about a minute and 3 GB; batch 64 would take ~10 minutes and is left out).
REFERENCE = (("nin", 1), ("d2l-nin", 1), ("vgg11", 1), ("vgg16", 1), ("d2l-vgg11", 1), ("nin", 16), ("vgg16", 8))
FIGS = "figs"


# --- small helpers ---------------------------------------------------------------------------------------


def table(head: Sequence[str], rows: Sequence[Sequence[Any]], right_from: int = 1, align_spec: str = "") -> list[str]:
    """A GitHub markdown table; columns from ``right_from`` on are right-aligned, or as ``align_spec`` says
    (one ``l`` or ``r`` per column)."""
    spec = align_spec or "".join("l" if i < right_from else "r" for i in range(len(head)))
    align = ["---" if c == "l" else "---:" for c in spec]
    out = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return [*out, ""]


def pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f}"


def kernel(module: nn.Module, row: LayerProfile) -> str:
    """``3×3`` for a Conv2d row, ``FC`` for a Linear row, '' otherwise."""
    if row.kind != "module":
        return ""
    m = module.get_submodule(row.module)
    if isinstance(m, nn.Conv2d):
        return "×".join(str(k) for k in m.kernel_size)
    return "FC" if isinstance(m, nn.Linear) else ""


def stage_of(stages: Sequence[Stage]) -> dict[str, Stage]:
    return {name: s for s in stages for name in s.layers}


def stage_sum(prof: ModelProfile, stage: Stage, attr: str) -> int:
    return sum(getattr(prof.layer(n), attr) for n in stage.layers)


def mem_bound_share(roof: RooflineProfile, names: Sequence[str]) -> tuple[float, float]:
    """(roofline time of ``names`` in seconds, fraction of it in memory-bound rows)."""
    by = roof.by_name()
    t = sum(by[n].time_s for n in names)
    mem = sum(by[n].time_s for n in names if by[n].bound == "memory")
    return t, (mem / t if t else 0.0)


# --- sections ---------------------------------------------------------------------------------------------


def section_overview(lines: list[str]) -> None:
    c = compare_models(list(MODELS), CompareOptions(batch_size=1, dtype=MEM_DTYPE, gpu="h100", optimizer=OPTIMIZER))
    lines += [
        "## Overview: `deploykit compare`",
        "",
        "The same numbers as `deploykit compare nin vgg11 vgg16 d2l-nin d2l-vgg11 --format markdown` "
        "(batch 1, fp32, memory modelled for the CUDA caching allocator, H100 roofline). The d2l forms take "
        "1×224×224 Fashion-MNIST images upsampled to 224 and have 10 classes; the ImageNet forms take "
        "3×224×224 and have 1000.",
        "",
        compare_markdown(c),
    ]


def section_params(lines: list[str], profs: dict[str, ModelProfile], head: list[str]) -> None:
    rows = []
    nin_total = {"nin": profs["nin"].total_params, "d2l-nin": profs["d2l-nin"].total_params}
    for name in ("vgg11", "vgg16", "d2l-vgg11"):
        p = profs[name]
        fc1 = next(r for r in p.layers if is_fully_connected(r))
        partner = "nin" if name in IMAGENET else "d2l-nin"
        shape = f"{fc1.input_shapes[0][1]:,} → {fc1.output_shapes[0][1]:,}"
        rows.append([name, f"`{fc1.name}` ({shape})", f"{fc1.params:,}", partner, f"{nin_total[partner]:,}",
                     f"{fc1.params / nin_total[partner]:.1f}×"])
    lines += ["## 1. Parameters: VGG's first fully connected layer against all of NiN", ""]
    lines += table(["VGG", "first FC layer (in → out features)", "its parameters", "NiN", "all of NiN's "
                    "parameters", "ratio"], rows, align_spec="llrlrr")
    share_rows = []
    for name in MODELS:
        p = profs[name]
        fc_rows = [r for r in p.layers if is_fully_connected(r)]
        fc = sum(r.params for r in fc_rows)
        fc_macs = sum(r.macs for r in fc_rows)
        share_rows.append([name, f"{p.total_params:,}", f"{fc:,}", pct(fc / p.total_params),
                           fmt_count(p.total_macs), pct(fc_macs / p.total_macs)])
    lines += ["Where the parameters are, and what the same layers cost in compute:", ""]
    lines += table(["model", "parameters", "in FC layers", "FC share of params", "MACs (batch 1)",
                    "FC share of MACs"], share_rows)
    v16, nin = profs["vgg16"], profs["nin"]
    fc16 = next(r for r in v16.layers if is_fully_connected(r))
    head.append(
        f"- **Parameters.** VGG-16's first fully connected layer alone (`{fc16.name}`, 25,088 → 4,096) has "
        f"{fc16.params:,} parameters, {fc16.params / nin.total_params:.1f}× all of NiN ({nin.total_params:,}); "
        f"fully connected layers hold {pct(_fc_share(v16))} of VGG-16's parameters and "
        f"none of NiN's. They do only {pct(_fc_mac_share(v16))} of VGG-16's MACs."
    )


def _fc_share(p: ModelProfile) -> float:
    return sum(r.params for r in p.layers if is_fully_connected(r)) / p.total_params


def _fc_mac_share(p: ModelProfile) -> float:
    return sum(r.macs for r in p.layers if is_fully_connected(r)) / p.total_macs


def section_compute(lines: list[str], profs: dict[str, ModelProfile], modules: dict[str, nn.Module],
                    head: list[str], checks: list[str]) -> None:
    lines += ["## 2. Compute: which layer does the work", ""]
    rows = []
    for name in MODELS:
        p = profs[name]
        top = max(p.layers, key=lambda r: r.flops)
        stages = model_stages(p)
        st = stage_of(stages)[top.name]
        big = max(stages, key=lambda s: stage_sum(p, s, "flops"))
        rows.append([name, fmt_count(p.total_flops), f"`{top.name}` {kernel(modules[name], top)} conv, "
                     f"{fmt_count(top.flops)} = {pct(top.flops / p.total_flops)}", st.label,
                     f"{big.label}: {pct(stage_sum(p, big, 'flops') / p.total_flops)}"])
    lines += table(["model", "FLOPs (batch 1)", "compute bottleneck by FLOPs", "in", "busiest stage"], rows,
                   align_spec="lrlll")
    # NiN: 1x1 vs kxk convolutions
    nin, mod = profs["nin"], modules["nin"]
    one = [r for r in nin.layers if kernel(mod, r) == "1×1"]
    kxk = [r for r in nin.layers if kernel(mod, r) not in ("", "1×1", "FC")]
    p16 = profile_model("nin", dtype=ROOF_DTYPE)
    r16 = roofline(p16, get_device("h100"))
    t_one, _ = mem_bound_share(r16, [r.name for r in one])
    t_kxk, _ = mem_bound_share(r16, [r.name for r in kxk])
    n_mem_one = sum(1 for r in one if r16.by_name()[r.name].bound == "memory")
    m_one, m_kxk = sum(r.macs for r in one), sum(r.macs for r in kxk)
    v16 = profs["vgg16"]
    big_maps = sum(stage_sum(v16, st, "flops") for st in model_stages(v16) if st.resolution and st.resolution[0] >= 56)
    lines += [
        f"NiN's {len(one)} 1×1 convolutions do {fmt_count(m_one)} MACs = {pct(m_one / nin.total_macs)} of the "
        f"model; its {len(kxk)} k×k convolutions do {fmt_count(m_kxk)} = {pct(m_kxk / nin.total_macs)}. On the "
        f"H100 {ROOF_DTYPE} roofline at batch 1 the 1×1 convolutions take {pct(t_one / r16.floor_s)} of the "
        f"floor and the k×k ones {pct(t_kxk / r16.floor_s)} (the rest is ReLU and pooling): the 1×1 layers' "
        f"share of the time is larger than their share of the MACs because {n_mem_one} of the {len(one)} are "
        "memory-bound there — they read and write a whole activation map for little arithmetic (section 5).",
        "",
        "NiN against VGG: NiN's {:.1f}× fewer MACs than VGG-16 ({:.1f}× fewer than VGG-11) do not come from "
        "dropping the fully connected layers — they were {} of VGG-16's MACs — but from convolving smaller maps "
        "throughout: after its 11×11 stride-4 first convolution NiN works at 54×54, 26×26, 12×12 and 5×5, VGG at "
        "224×224 down to 14×14. VGG-16's stages at 56×56 and above alone do {} FLOPs, {:.1f}× all of NiN's "
        "{}.".format(
            profs["vgg16"].total_macs / nin.total_macs, profs["vgg11"].total_macs / nin.total_macs,
            pct(_fc_mac_share(profs["vgg16"])), fmt_count(big_maps), big_maps / nin.total_flops,
            fmt_count(nin.total_flops)),
        "",
        "**Measured time per layer: not measured.** No GPU was available to the session that generated this "
        "report, so the compute bottleneck by measured time is not known here. On a CUDA machine, "
        "`deploykit profile nin --measure --dtype fp16 --gpu h100` (and the same for `vgg11`, `vgg16`, "
        "`d2l-nin`, `d2l-vgg11`; add `-b 64` for the batched case) times every layer with torch.profiler and "
        "prints it next to the roofline floor; `deploykit compare nin vgg11 vgg16 --measure --dtype fp16` "
        "gives the end-to-end latencies side by side.",
        "",
    ]
    tops = []
    for name in MODELS:
        p = profs[name]
        top = max(p.layers, key=lambda r: r.flops)
        ties = sum(1 for r in p.layers if r.macs == top.macs)
        st = stage_of(model_stages(p))[top.name]
        tops.append(f"{name} `{top.name}` ({kernel(modules[name], top)}, {st.label}"
                    + (f"; {ties - 1} more layer{'s have' if ties > 2 else ' has'} the same MACs" if ties > 1 else "")
                    + ")")
    head.append(
        f"- **Compute.** NiN does {profs['vgg16'].total_macs / nin.total_macs:.1f}× fewer MACs than VGG-16, "
        f"but not because it has no FC layers (they are {pct(_fc_mac_share(profs['vgg16']))} of VGG-16's MACs): "
        "its convolutions run on smaller maps (54×54 after a stride-4 first layer, against VGG's 224×224). "
        "The compute bottleneck by FLOPs is a k×k "
        "convolution in every model: " + "; ".join(tops) + ". By measured time: not measured (no GPU)."
    )
    checks.append(
        f"- *\"1×1 convolutions are cheap, so NiN is fast.\"* NiN's 1×1 layers do {pct(m_one / nin.total_macs)} of "
        f"its MACs but take {pct(t_one / r16.floor_s)} of its H100 {ROOF_DTYPE} roofline floor at batch 1, and "
        f"{n_mem_one} of the {len(one)} are memory-bound there: cheap in MACs, not in bytes. NiN's low floor comes "
        "from doing less work overall (fewer FLOPs and bytes on smaller maps), not from the 1×1 layers being fast."
    )
    checks.append(
        f"- *\"NiN saves compute as well as parameters.\"* Against VGG it does ({profs['vgg16'].total_macs / nin.total_macs:.1f}× "
        f"fewer MACs than VGG-16), but for a different reason: the FC layers that hold {pct(_fc_share(v16))} of "
        f"VGG-16's parameters do {pct(_fc_mac_share(v16))} of its MACs, so dropping them saves parameters and "
        "almost no compute; the compute saving comes from the smaller maps."
    )


def _memory(name: str) -> tuple[tuple[InferenceMemory, ...], tuple[TrainingMemory, ...]]:
    inf = tuple(inference_memory(name, batch_size=b, dtype=MEM_DTYPE, target="cuda") for b in BATCHES)
    tr = tuple(training_memory(name, batch_size=b, dtype=MEM_DTYPE, optimizer=OPTIMIZER, target="cuda")
               for b in BATCHES)
    return inf, tr


def section_memory(lines: list[str], profs: dict[str, ModelProfile], head: list[str], checks: list[str]) -> None:
    lines += [
        "## 3. Activation memory per stage: which layer is the memory hog",
        "",
        f"Modelled on the meta device for the CUDA caching allocator (512-byte blocks), {MEM_DTYPE}. A stage is "
        "the run of layers at one spatial resolution, closed by its pooling layer (`deploykit.profile.compare."
        "model_stages`). **Inference peak** = the highest live activation total while the stage's layers run "
        "(tensor liveness: what is still referenced, including the stage's input), not the sum of its outputs. "
        "**Saved** = activations the stage's layers save for backward in a training step (each storage once). "
        "MB = 10^6 bytes.",
        "",
    ]
    early_share: dict[str, float] = {}
    peak_stages: dict[str, set[str]] = {}
    act_share: dict[str, tuple[float, ...]] = {}
    fc_saved: dict[str, float] = {}
    for name in MODELS:
        p = profs[name]
        inf, tr = _memory(name)
        stages = model_stages(p)
        rows = []
        for s in stages:
            cells: list[Any] = [s.label]
            for m in inf:
                by = {r.name: r for r in m.layers}
                cells.append(mb(max((by[n].peak_bytes for n in s.layers if n in by), default=0)))
            for t in tr:
                by = {r.name: r for r in t.layers}
                saved = sum(by[n].saved_bytes for n in s.layers if n in by)
                cells.append(f"{mb(saved)} ({pct(saved / t.saved_bytes)})")
            rows.append(cells)
        lines += [f"### {name}", ""]
        lines += table(["stage", *(f"inference peak, b{b}" for b in BATCHES),
                        *(f"saved, b{b} (share)" for b in BATCHES)], rows)
        big = tr[-1]
        hog_saved = max(big.layers, key=lambda r: r.saved_bytes)
        hog_alloc = max(inf[-1].layers, key=lambda r: r.alloc_bytes)
        fc_names = {r.name for r in p.layers if is_fully_connected(r)}
        fc_part = sum(r.saved_bytes for r in big.layers if r.name in fc_names) / big.saved_bytes
        fc_saved[name] = fc_part
        early_share[name] = sum(r.saved_bytes for r in big.layers if r.name in stages[0].layers) / big.saved_bytes
        lines += [
            "- Inference activation peak during "
            + ", ".join(f"`{m.peak_layer}` at b{m.batch_size}" for m in inf)
            + f" ({stage_of(stages)[inf[-1].peak_layer].label}): {mb(inf[-1].peak_bytes)} MB at b{BATCHES[-1]}. "
            f"Largest single output: `{hog_alloc.name}` ({p.layer(hog_alloc.name).op}, "
            f"{'×'.join(map(str, p.layer(hog_alloc.name).output_shapes[0][1:]))}), {mb(hog_alloc.alloc_bytes)} MB "
            f"at b{BATCHES[-1]}.",
            f"- Training memory hog: the {'×'.join(map(str, p.layer(hog_saved.name).output_shapes[0][1:]))} map "
            f"saved by `{hog_saved.name}` ({p.layer(hog_saved.name).op}; each storage is charged to the first "
            f"layer that saves it): {mb(hog_saved.saved_bytes)} MB = {pct(hog_saved.saved_bytes / big.saved_bytes)} "
            f"of all saved activations at b{BATCHES[-1]}; stage 1 saves {pct(early_share[name])}, the fully "
            f"connected layers {pct(fc_part)}.",
        ]
        tl = []
        for t in tr:
            b = t.peak_breakdown
            tl.append(f"b{t.batch_size}: {mb(t.peak_bytes)} MB in the {t.peak_phase} (`{t.peak_where}`), of which "
                      f"weights + {OPTIMIZER} state {mb(b.get('params', 0) + b.get('optimizer_state', 0))} MB, "
                      f"gradients {mb(b.get('gradients', 0))} MB, activations {mb(b.get('activations', 0))} MB")
        lines += [f"- Training-step peak ({OPTIMIZER}): " + "; ".join(tl) + ".", ""]
        peak_stages[name] = {stage_of(stages)[m.peak_layer].name for m in inf}
        act_share[name] = tuple(t.peak_breakdown.get("activations", 0) / t.peak_bytes for t in tr)
    v16 = profs["vgg16"]
    saved_b1 = training_memory("vgg16", batch_size=1, dtype=MEM_DTYPE, optimizer=OPTIMIZER).saved_bytes
    checks.append(
        f"- *\"VGG's memory goes to its fully connected layers.\"* For weights, yes: {pct(_fc_share(v16))} of "
        "VGG-16's parameters — and so of its gradients and Adam state — are in FC layers, and at batch 1 those "
        "dominate a training step. For activations, no: the FC layers save "
        f"{pct(fc_saved['vgg16'])} of VGG-16's activations for backward, stage 1 (224×224) {pct(early_share['vgg16'])}; "
        f"activations are {pct(act_share['vgg16'][1])} of the training peak at batch {BATCHES[1]} and "
        f"{pct(act_share['vgg16'][2])} at batch {BATCHES[2]}."
    )
    lines += [
        "Reading: at batch 1 a VGG training step is dominated by its weights, gradients and Adam state — "
        f"batch-independent, and {pct(_fc_share(v16))} of VGG-16's parameters sit in the fully connected layers; "
        f"activations are {pct(act_share['vgg16'][0])} of VGG-16's training peak at batch 1, "
        f"{pct(act_share['vgg16'][1])} at batch {BATCHES[1]} and {pct(act_share['vgg16'][2])} at batch "
        f"{BATCHES[2]} (at batch 1 the peak is in the optimizer step, after the {mb(saved_b1)} MB of saved "
        "activations were freed). Those activations sit in the early high-resolution convolutions: stage 1 alone saves "
        f"{pct(early_share['vgg16'])} of VGG-16's activations, the fully connected layers "
        f"{pct(fc_saved['vgg16'])} (the shares do not depend on the batch). The inference activation peak is "
        + ("in stage 1 for every model at every batch size." if all(v == {"stage 1"} for v in peak_stages.values())
           else "in " + "; ".join(f"{k}: {', '.join(sorted(v))}" for k, v in peak_stages.items()) + "."),
        "",
    ]
    head.append(
        f"- **Memory.** Activation memory goes to the early high-resolution convolutions, not the FC layers: "
        f"VGG-16's stage 1 (224×224) saves {pct(early_share['vgg16'])} of its activations for backward at batch "
        f"{BATCHES[-1]}, its FC layers {pct(fc_saved['vgg16'])}. What the FC layers do cost is weight memory "
        "(parameters, gradients, Adam state: 4 copies), which is what dominates a VGG training step at batch 1."
    )


def section_roofline(lines: list[str], modules: dict[str, nn.Module], appendix: list[str], head: list[str]) -> None:
    devs = [get_device(d) for d in DEVICES]
    lines += [
        f"## 4. Arithmetic intensity and bound on the {' and '.join(d.name for d in devs)}",
        "",
        f"{ROOF_DTYPE} (how these models are deployed: TensorRT or autocast), unfused per-kernel traffic. "
        + " ".join(f"{d.key}: {d.bandwidth_gbs:g} GB/s, {d.peak_flops(ROOF_DTYPE, True) / 1e12:.1f} TFLOP/s "
                   f"tensor, ridge {d.ridge_point(ROOF_DTYPE):.0f} FLOP/B." for d in devs)
        + " A layer below the ridge is memory-bound. Per stage: intensity = the stage's FLOPs / its traffic; "
        "\"mem\" = share of the stage's roofline time in memory-bound layers. The full per-layer table is in "
        "the appendix.",
        "",
    ]
    for name in MODELS:
        rows = []
        p1 = profile_model(name, batch_size=1, dtype=ROOF_DTYPE)
        p64 = profile_model(name, batch_size=64, dtype=ROOF_DTYPE)
        r = {(d.key, b): roofline(p, d) for d in devs for b, p in ((1, p1), (64, p64))}
        for s in model_stages(p1):
            cells: list[Any] = [s.label, fmt_count(stage_sum(p1, s, "flops")), fmt_bytes(stage_sum(p1, s, "traffic_bytes"))]
            for b, p in ((1, p1), (64, p64)):
                cells.append(f"{stage_sum(p, s, 'flops') / stage_sum(p, s, 'traffic_bytes'):.0f}")
                for d in devs:
                    t, share = mem_bound_share(r[(d.key, b)], list(s.layers))
                    cells.append(f"{t * 1e6:,.{2 if t < 1e-5 else 1}f} µs, {share * 100:.0f}% mem")
            rows.append(cells)
        tot: list[Any] = ["**total**", fmt_count(p1.total_flops), fmt_bytes(p1.total_traffic_bytes)]
        for b, p in ((1, p1), (64, p64)):
            tot.append(f"{p.total_flops / p.total_traffic_bytes:.0f}")
            for d in devs:
                rr = r[(d.key, b)]
                tot.append(f"{rr.floor_s * 1e6:,.1f} µs, {rr.memory_bound_share * 100:.0f}% mem")
        rows.append(tot)
        lines += [f"### {name}", ""]
        lines += table(["stage", "FLOPs b1", "traffic b1", "FLOP/B b1", *(f"{d.key} b1" for d in devs),
                        "FLOP/B b64", *(f"{d.key} b64" for d in devs)], rows)
        # appendix: every layer with work
        mod = modules[name]
        arows = []
        by = {k: v.by_name() for k, v in r.items()}
        for row in p1.layers:
            if not row.traffic_bytes:
                continue
            r64 = p64.layer(row.name)
            arows.append([f"`{row.name}`", row.op, kernel(mod, row), "x".join(map(str, row.output_shapes[0][1:])),
                          fmt_count(row.flops), fmt_bytes(row.traffic_bytes), f"{row.intensity or 0:.1f}",
                          *(by[(d.key, 1)][row.name].bound for d in devs), f"{r64.intensity or 0:.1f}",
                          *(by[(d.key, 64)][row.name].bound for d in devs)])
        appendix += [f"### {name} ({ROOF_DTYPE})", ""]
        appendix += table(["layer", "op", "kernel", "output (C×H×W)", "FLOPs b1", "traffic b1", "FLOP/B b1",
                           *(f"{d.key} b1" for d in devs), "FLOP/B b64", *(f"{d.key} b64" for d in devs)],
                          arows, right_from=4)
    # summary across dtypes and batches
    rows = []
    for name in MODELS:
        cells = [name]
        for dt in ("fp32", "fp16"):
            for b in (1, 64):
                p = profile_model(name, batch_size=b, dtype=dt)
                for d in devs:
                    rr = roofline(p, d)
                    cells.append(f"{rr.floor_s * 1e3:.3f} ms / {rr.memory_bound_share * 100:.0f}%")
        rows.append(cells)
    lines += ["Roofline floor and memory-bound share of it, per dtype and batch (fp32 = no TF32):", ""]
    lines += table(["model", *(f"{dt} b{b} {d.key}" for dt in ("fp32", "fp16") for b in (1, 64) for d in devs)], rows)
    h, lap = get_device("h100"), get_device("rtx3050-laptop")
    nin1, v1 = profile_model("nin", dtype=ROOF_DTYPE), profile_model("vgg16", dtype=ROOF_DTYPE)
    rn, rv = roofline(nin1, h), roofline(v1, h)

    def conv_bounds(name: str, dev_key: str, batch: int) -> tuple[int, int]:
        p = profile_model(name, batch_size=batch, dtype=ROOF_DTYPE)
        by = roofline(p, get_device(dev_key)).by_name()
        convs = [r.name for r in p.layers if r.op == "Conv2d"]
        return sum(1 for n in convs if by[n].bound == "memory"), len(convs)

    def fc_bound(batch: int) -> str:
        out = set()
        for name in ("vgg11", "vgg16", "d2l-vgg11"):
            p = profile_model(name, batch_size=batch, dtype=ROOF_DTYPE)
            for d in devs:
                by = roofline(p, d).by_name()
                out |= {by[r.name].bound for r in p.layers if is_fully_connected(r)}
        return " / ".join(sorted(out))

    conv_text = "; ".join(
        f"{name} {conv_bounds(name, 'h100', 1)[0]} of {conv_bounds(name, 'h100', 1)[1]} on the H100, "
        f"{conv_bounds(name, 'rtx3050-laptop', 1)[0]} on the RTX 3050"
        for name in IMAGENET
    )
    head.append(
        f"- **Roofline.** At batch 1 {ROOF_DTYPE} on the H100 (ridge {h.ridge_point(ROOF_DTYPE):.0f} FLOP/B) "
        f"{rn.memory_bound_share * 100:.0f}% of NiN's floor and {rv.memory_bound_share * 100:.0f}% of VGG-16's is "
        f"in memory-bound layers; VGG-16's floor is {rv.floor_s / rn.floor_s:.1f}× NiN's for "
        f"{v1.total_flops / nin1.total_flops:.1f}× the FLOPs. Memory-bound convolutions at batch 1: {conv_text} "
        f"(RTX 3050 ridge {lap.ridge_point(ROOF_DTYPE):.0f} FLOP/B). VGG's FC layers are {fc_bound(1)}-bound on "
        f"both devices at batch 1 (matrix-vector products) and still {fc_bound(64)}-bound at batch 64."
    )


def section_nin_convs(lines: list[str], modules: dict[str, nn.Module]) -> None:
    devs = [get_device(d) for d in DEVICES]
    p1 = profile_model("nin", dtype=ROOF_DTYPE)
    p64 = profile_model("nin", batch_size=64, dtype=ROOF_DTYPE)
    r = {(d.key, b): roofline(p, d).by_name() for d in devs for b, p in ((1, p1), (64, p64))}
    mod = modules["nin"]
    rows = []
    for row in p1.layers:
        k = kernel(mod, row)
        if not k or k == "FC":
            continue
        c_in, c_out = row.input_shapes[0][1], row.output_shapes[0][1]
        hw = "×".join(map(str, row.output_shapes[0][2:]))
        cells: list[Any] = [f"`{row.name}`", k, f"{c_in}→{c_out} @ {hw}", fmt_count(row.macs), fmt_bytes(row.traffic_bytes),
                            f"{row.intensity or 0:.0f}"]
        cells += [r[(d.key, 1)][row.name].bound for d in devs]
        cells += [f"{p64.layer(row.name).intensity or 0:.0f}"] + [r[(d.key, 64)][row.name].bound for d in devs]
        t = r[("h100", 1)][row.name].time_s
        cells.append(f"{row.traffic_bytes / t / 1e9:,.0f}" if t else "")
        rows.append(cells)
    ones = [row.name for row in p1.layers if kernel(mod, row) == "1×1"]
    counts = {(d.key, b): sum(1 for n in ones if r[(d.key, b)][n].bound == "memory") for d in devs for b in (1, 64)}
    blocks = []
    for row in p1.layers:
        k = kernel(mod, row)
        if k and k not in ("1×1", "FC"):
            block = row.module.rsplit(".", 1)[0]
            peers = [p1.layer(n).intensity or 0 for n in ones if n.rsplit(".", 1)[0] == block]
            blocks.append(f"`{block}` {k} {row.intensity or 0:.0f} vs 1×1 "
                          + " / ".join(f"{x:.0f}" for x in peers) + " FLOP/B")
    last = ones[-1].rsplit(".", 1)[0]
    last_rows = [row.name for row in p1.layers if row.op == "Conv2d" and row.module.startswith(last + ".")]
    last_compute_b64 = all(r[(d.key, 64)][n].bound == "compute" for d in devs for n in last_rows)
    lines += [
        "## 5. NiN's 1×1 against its k×k convolutions: predicted intensity and bound",
        "",
        f"{ROOF_DTYPE}, unfused traffic (input + weights + output once). The last column is the bandwidth the "
        "H100 roofline implies at batch 1 (traffic / floor time: the full 3,350 GB/s for a memory-bound layer, "
        "less for a compute-bound one).",
        "",
    ]
    lines += table(["layer", "kernel", "channels @ output map", "MACs b1", "traffic b1", "FLOP/B b1",
                    *(f"{d.key} b1" for d in devs), "FLOP/B b64", *(f"{d.key} b64" for d in devs),
                    "implied GB/s (h100 b1)"], rows, right_from=3)
    lines += [
        "Per output pixel a k×k convolution does k² times the arithmetic of a 1×1 with the same channels while "
        "reading and writing maps of similar size, so within a NiN block the 1×1 layers sit at lower intensity "
        "— at batch 1: " + "; ".join(blocks) + ". "
        + " ".join(f"{d.key} (ridge {d.ridge_point(ROOF_DTYPE):.0f} FLOP/B): {counts[(d.key, 1)]} of {len(ones)} "
                   f"1×1 layers memory-bound at batch 1, {counts[(d.key, 64)]} at batch 64." for d in devs)
        + (f" In the last block (`{last}`: 5×5 maps, 1000 channels) weights dominate the traffic at batch 1 and "
           "the 3×3 layer is no more intense than the 1×1 ones; at batch 64 the weights are shared by 64 images "
           "and all three become compute-bound on both devices." if last_compute_b64 else ""),
        "",
        "**Measured achieved bandwidth: not measured.** No GPU was available in this session. On a CUDA "
        "machine, `deploykit profile nin --measure --dtype fp16 --gpu h100 -b 64` prints, per layer, the "
        "measured time, the achieved GB/s and TFLOP/s and their fraction of the device's measured copy "
        "bandwidth and matmul peak: compare the 1×1 rows (`net.*.2`, `net.*.4`) with the k×k rows (`net.*.0`).",
        "",
    ]


def section_reference(lines: list[str], head: list[str]) -> None:
    rows = []
    worst = 0.0
    worst_bytes = 0
    counters_explain = True
    for name, b in REFERENCE:
        t0 = time.perf_counter()
        ref = memtracker_reference(name, batch_size=b, dtype=MEM_DTYPE, device="cpu", optimizer=OPTIMIZER)
        secs = time.perf_counter() - t0
        inf = inference_memory(name, batch_size=b, dtype=MEM_DTYPE, target="cpu")
        tr = training_memory(name, batch_size=b, dtype=MEM_DTYPE, optimizer=OPTIMIZER, target="cpu")
        di = inf.peak_bytes - ref.inference_peak_bytes
        dt = tr.peak_bytes - ref.training_peak_bytes
        worst = max(worst, abs(di) / max(ref.inference_peak_bytes, 1), abs(dt) / max(ref.training_peak_bytes, 1))
        worst_bytes = max(worst_bytes, abs(di), abs(dt))
        tensors = len(list(create_model(name)[0].parameters()))
        counters_explain = counters_explain and di == 0 and -dt == 4 * tensors
        rows.append([name, b, f"{inf.peak_bytes:,}", f"{ref.inference_peak_bytes:,}", f"{di:+,}",
                     f"{tr.peak_bytes:,}", f"{ref.training_peak_bytes:,}", f"{dt:+,}", tensors, f"{secs:.0f} s"])
    lines += [
        "## 6. Memory model against PyTorch's MemTracker (ground truth on real CPU tensors)",
        "",
        f"Predicted: `inference_memory` / `training_memory` on the meta device with `target=\"cpu\"` (exact "
        f"bytes, for-loop Adam as PyTorch runs it on the CPU), {MEM_DTYPE}. Measured: `memtracker_reference` "
        "— `torch.distributed._tools.mem_tracker.MemTracker` around a real forward (eval, `no_grad`) and a "
        "real steady-state Adam step on the CPU with random weights. Inference = activation peak (parameters, "
        "buffers and input excluded); training = the step's peak of everything. Bytes.",
        "",
    ]
    lines += table(["model", "batch", "inference predicted", "MemTracker", "diff", "training predicted",
                    "MemTracker", "diff", "parameter tensors", "reference run time"], rows)
    lines += [
        f"Largest difference: {worst_bytes} bytes ({worst * 100:.5f}%). "
        + ("Inference peaks are identical; every training difference is exactly 4 bytes per parameter tensor: "
           "Adam's `step` counters, 0-d fp32 tensors that live on the CPU, which MemTracker counts and the "
           "model leaves out on purpose (on CUDA they are not device memory). " if counters_explain else "")
        + "The batch sizes are small because the reference "
        "computes for real on a 2-core CPU (VGG-16 at batch 8 takes about a minute and 3 GB); the meta-device "
        "model itself takes well under a second per model at batch 256.",
        "",
        "**GPU allocator comparison: not run.** `benchmarks/memory_gpu.py` compares the `target=\"cuda\"` "
        "model with `torch.cuda.max_memory_allocated()` on a real GPU; no GPU was available in this session, "
        "so the CUDA-side numbers in sections 3 and the overview are model predictions only.",
        "",
    ]
    head.append(f"- **Memory model.** Against MemTracker on real CPU tensors the predicted inference and "
                f"training peaks agree to within {worst_bytes} bytes ({worst * 100:.4f}%) for every model and batch "
                f"measured.")


def figures(out: Path) -> list[str]:
    figs = out / FIGS
    written = []
    for dev in DEVICES:
        pairs = []
        for name in IMAGENET:
            p = profile_model(name, dtype=ROOF_DTYPE)
            pairs.append((p, roofline(p, get_device(dev))))
        written.append(plot_roofline(pairs, figs / f"nin_vs_vgg-roofline-{dev}.png"))
    for name in MODELS:
        p = profile_model(name, dtype=ROOF_DTYPE)
        written.append(plot_layers(p, roofline(p, get_device("h100")), figs / f"nin_vs_vgg-{name}-layers.png"))
    return [f"{FIGS}/{w.name}" for w in written]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("reports"))
    ap.add_argument("--no-reference", action="store_true", help="skip the MemTracker ground truth (3 minutes)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    env = environment("cpu")
    profs = {n: profile_model(n, dtype=MEM_DTYPE) for n in MODELS}
    modules = {n: create_model(n)[0] for n in MODELS}
    head: list[str] = []
    body: list[str] = []
    appendix: list[str] = []
    section_overview(body)
    section_params(body, profs, head)
    checks: list[str] = []
    section_compute(body, profs, modules, head, checks)
    section_memory(body, profs, head, checks)
    section_roofline(body, modules, appendix, head)
    section_nin_convs(body, modules)
    if not args.no_reference:
        section_reference(body, head)
    figs = figures(args.out)
    devs = [get_device(d) for d in DEVICES]
    lines = [
        "# NiN against VGG: where the parameters, the memory and the time go",
        "",
        f"Generated by `python benchmarks/report_nin_vs_vgg.py --out reports` ({datetime.date.today().isoformat()}; "
        f"torch {env['torch']}, torchvision {env['torchvision']}, deploykit {env['deploykit']}, Python "
        f"{env['python']}, on {env['cpu']} with {env['cpu_count']} CPUs, no GPU). Every number is computed by "
        "deploykit's public API: `profile_model` (per-layer counts on the meta device), `roofline` with the "
        "device presets below, `inference_memory` / `training_memory` (tensor liveness on the meta device), "
        "`compare_models`, and `memtracker_reference` (PyTorch's MemTracker on real CPU tensors) for the ground "
        "truth. Models: `nin`, `vgg11`, `vgg16` (ImageNet, 3×224×224, 1000 classes) and `d2l-nin`, `d2l-vgg11` "
        "(d2l's Fashion-MNIST forms, 1×224×224, 10 classes).",
        "",
        "Conventions: MACs = multiply-accumulates of convolutions and linear layers; FLOPs = 2 per MAC + bias, "
        "ReLU and pooling work; traffic = bytes each kernel reads and writes once (unfused); FLOP/B = FLOPs / "
        "traffic; roofline floor = max(FLOPs / peak, traffic / bandwidth) per layer, summed. K/M/G = 10^3/6/9, "
        "MB = 10^6 bytes.",
        "",
        "Device presets (`deploykit.profile.devices`):",
        "",
    ]
    for d in devs:
        lines.append(f"- `{d.key}` — {d.name}: {d.bandwidth_gbs:g} GB/s; dense tensor fp16 "
                     f"{d.peak_flops('fp16', True) / 1e12:.1f}, fp32 {d.peak_flops('fp32', True) / 1e12:.1f} TFLOP/s; "
                     f"vector fp16 {d.peak_flops('fp16', False) / 1e12:.1f} TFLOP/s. Source: {d.source}.")
    lines += ["", "**Not measured in this session (no GPU):** per-layer and end-to-end time, achieved bandwidth, "
              "the CUDA allocator's real peak. Each section that needs them gives the command that fills them in.",
              "", "## Answers in short", "", *head, "",
              "Common explanations, checked against these numbers:", "", *checks, ""]
    lines += body
    lines += ["## Figures", ""]
    for f in figs:
        title = f.split("/")[-1].removesuffix(".png").replace("nin_vs_vgg-", "")
        lines += [f"![{title}]({f})", ""]
    lines += [
        f"The roofline charts show every layer of nin, vgg11 and vgg16 at batch 1, {ROOF_DTYPE} (point area = "
        "the layer's share of its model's floor); the layer charts show parameters, FLOPs, activation bytes and "
        "roofline time per layer (red = memory-bound on the H100).",
        "",
        "## Appendix: every layer's intensity and bound",
        "",
        "Rows with memory traffic (views left out). Bounds at batch 1 and 64 on both devices.",
        "",
        *appendix,
        "---",
        "",
        f"Regenerate: `python benchmarks/report_nin_vs_vgg.py --out reports` (took {time.perf_counter() - t0:.0f} s "
        f"here{', of which most is the MemTracker ground truth' if not args.no_reference else ''}). Versions: "
        f"torch {env['torch']}, torchvision {env['torchvision']}, deploykit {env['deploykit']}.",
        "",
    ]
    atomic_write_text(args.out / "nin_vs_vgg.md", "\n".join(lines))
    print(f"wrote {args.out / 'nin_vs_vgg.md'} and {len(figs)} figures in {args.out / FIGS}")


if __name__ == "__main__":
    main()
