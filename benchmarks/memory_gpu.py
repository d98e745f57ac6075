"""Predicted vs measured memory for the model zoo: the CUDA caching allocator's peak, or MemTracker on the CPU.

On a CUDA machine, from the project root (one device call each; the whole zoo does not fit one 10-minute call):

    python benchmarks/memory_gpu.py --exclude 'densenet*' --tag a --out "$OUT"   # 22 models, ~5 min
    python benchmarks/memory_gpu.py --models 'densenet*' --tag b --out "$OUT"    # the 4 DenseNets
    python benchmarks/memory_gpu.py --models resnet50,vgg16,densenet121 --batch-sizes 64 --dtypes fp32 \
        --memtracker --tag tensors --out "$OUT"                                # where do the gaps come from

then, with the parts fetched: ``python benchmarks/memory_gpu.py --merge a.json b.json --out reports``.

and on the CPU (MemTracker is the measurement there; CPU allocators keep no peak statistics):

    python benchmarks/memory_gpu.py --device cpu --batch-sizes 1 --dtypes fp32 --out benchmarks/results

What is measured, per model x dtype x batch size (fp16/bf16 by ``.to(dtype)`` of the model and the input):

* ``inference``: the model (``eval()``) and the input are moved to the GPU and two warm-up forwards run
  (cuDNN's algorithm choice, the cuBLAS workspace); then ``reset_peak_memory_stats()``, ``base =
  memory_allocated()``, one forward under ``no_grad``; **measured = max_memory_allocated() - base**: the
  activation peak, with the weights, the input and the persistent workspaces subtracted. Predicted:
  ``inference_memory(..., target="cuda").peak_bytes``.
* ``train:<optimizer>``: model (``train()``), optimizer with PyTorch's CUDA default (``foreach``), a first
  step creates the optimizer state; ``zero_grad(set_to_none=True)``; then ``base = memory_allocated()``
  (parameters, buffers, optimizer state, input, targets, workspaces) and one step (forward, cross-entropy,
  backward, ``step()``, ``zero_grad``); **measured = max_memory_allocated() - base**. Predicted:
  ``training_memory(..., target="cuda").peak_above_resident_bytes``.
* ``tensors`` (with ``--memtracker``; slow: Python work per operator): the same run under PyTorch's
  ``MemTracker`` (tensor storages, 512-byte rounded; cuDNN and cuBLAS workspaces are not tensors).
  ``measured - tensors`` is memory that is not a tensor: workspaces.
* resident (inference only): ``memory_allocated()`` after moving the model and creating the input, vs the
  predicted parameters + buffers + input in 512-byte blocks.

The allocator runs with ``expandable_segments:True`` unless ``--allocator default``: the stock allocator
hands out a cached block up to 1 MiB larger than the request without splitting it and counts it whole, so
its peak carries a batch-size-dependent overcount that no tensor-level model predicts.

Writes ``memory-<device>[-<tag>].json`` (device name and versions from ``deploykit._env.environment()``)
and ``.md`` (the error table) to ``--out`` (default: ``$OUT``, else ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import fnmatch
import gc
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

SCHEMA = "deploykit.memory-check"
SCHEMA_VERSION = 1
DEFAULT_OPTIMIZERS = ("sgd-momentum", "adam")
TARGET_PCT = 10.0


@dataclass(frozen=True)
class Config:
    """One run of the script: which cells, on which device, with which allocator settings."""

    models: tuple[str, ...]
    batch_sizes: tuple[int, ...] = (1, 64)
    dtypes: tuple[str, ...] = ("fp32", "fp16")
    optimizers: tuple[str, ...] = DEFAULT_OPTIMIZERS
    device: str = "cuda"
    allocator: str = "expandable"
    memtracker: bool = False
    cudnn_workspace_cap_mib: int | None = None
    out: Path = Path("benchmarks/results")
    tag: str = ""


@dataclass(frozen=True)
class Check:
    """One predicted-vs-measured pair. ``kind`` is ``inference`` or ``train:<optimizer>``; byte counts are
    ``None`` where not measured, and ``failure`` says why a cell has no numbers (out of memory, ...)."""

    model: str
    dtype: str
    batch_size: int
    kind: str
    predicted_bytes: int | None = None
    measured_bytes: int | None = None
    tensor_bytes: int | None = None
    predicted_resident_bytes: int | None = None
    measured_resident_bytes: int | None = None
    predicted_where: str = ""
    failure: str | None = None

    @property
    def error_pct(self) -> float | None:
        """``(predicted - measured) / measured`` in percent; ``None`` without both numbers."""
        if self.predicted_bytes is None or not self.measured_bytes:
            return None
        return (self.predicted_bytes - self.measured_bytes) / self.measured_bytes * 100.0

    @property
    def non_tensor_bytes(self) -> int | None:
        """Measured peak minus MemTracker's tensor-level peak: workspaces and other non-tensor allocations."""
        if self.measured_bytes is None or self.tensor_bytes is None:
            return None
        return self.measured_bytes - self.tensor_bytes

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["error_pct"] = self.error_pct
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Check:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


@dataclass
class Cell:
    model: str
    dtype: str
    batch_size: int
    kinds: tuple[str, ...] = field(default_factory=tuple)


def select_models(patterns: Sequence[str], exclude: Sequence[str], available: Sequence[str]) -> tuple[str, ...]:
    """Registered names matching any of ``patterns`` (shell-style) and none of ``exclude``, in zoo order."""
    chosen = [n for n in available if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    unknown = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in available)]
    if unknown:
        raise SystemExit(f"no model matches {', '.join(unknown)}")
    return tuple(n for n in chosen if not any(fnmatch.fnmatchcase(n, p) for p in exclude))


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def parse_args(argv: Sequence[str] | None = None, available: Sequence[str] | None = None) -> tuple[Config, list[Path]]:
    """The :class:`Config` (and the files to ``--merge``) from the command line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="*", help="comma-separated names or patterns (default: the zoo)")
    ap.add_argument("--exclude", default="", help="comma-separated names or patterns to leave out")
    ap.add_argument("--batch-sizes", default="1,64")
    ap.add_argument("--dtypes", default="fp32,fp16")
    ap.add_argument("--optimizers", default=",".join(DEFAULT_OPTIMIZERS), help="'' for inference only")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--allocator", default="expandable", choices=("expandable", "default"))
    ap.add_argument("--memtracker", action="store_true", help="add the tensor-level MemTracker column (slow)")
    ap.add_argument("--tag", default="", help="suffix of the output file names (one per part of the zoo)")
    ap.add_argument("--cudnn-workspace-cap-mib", type=int, default=None, help="sets CUDNN_CONV_WSCAP_DBG")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "benchmarks/results"))
    ap.add_argument("--merge", nargs="+", type=Path, default=[], help="merge result files instead of measuring")
    a = ap.parse_args(argv)
    if available is None:
        from deploykit.models import list_models

        available = list_models()
    try:
        sizes = tuple(int(b) for b in _split(a.batch_sizes))
    except ValueError:
        ap.error(f"bad --batch-sizes {a.batch_sizes!r}")
    dtypes = tuple(_split(a.dtypes))
    bad = [d for d in dtypes if d not in ("fp32", "fp16", "bf16")]
    if bad or not sizes or any(b <= 0 for b in sizes):
        ap.error("--dtypes takes fp32, fp16, bf16; --batch-sizes positive integers")
    config = Config(
        models=select_models(_split(a.models), _split(a.exclude), available),
        batch_sizes=sizes,
        dtypes=dtypes,
        optimizers=tuple(_split(a.optimizers)),
        device=a.device,
        allocator=a.allocator,
        memtracker=a.memtracker and a.device == "cuda",
        cudnn_workspace_cap_mib=a.cudnn_workspace_cap_mib,
        out=a.out,
        tag=a.tag,
    )
    return config, list(a.merge)


def cells(config: Config) -> list[Cell]:
    """Every (model, dtype, batch size) with the kinds measured for it, in run order."""
    kinds = ("inference", *(f"train:{o}" for o in config.optimizers))
    return [Cell(m, d, b, kinds) for m in config.models for d in config.dtypes for b in config.batch_sizes]


def allocator_env(config: Config) -> dict[str, str]:
    """Environment variables to set before CUDA initialises (the allocator reads them once)."""
    env: dict[str, str] = {}
    if config.device == "cuda" and config.allocator == "expandable":
        # PYTORCH_ALLOC_CONF is the newer name; older releases read only PYTORCH_CUDA_ALLOC_CONF
        env["PYTORCH_CUDA_ALLOC_CONF"] = env["PYTORCH_ALLOC_CONF"] = "expandable_segments:True"
    if config.cudnn_workspace_cap_mib is not None:
        env["CUDNN_CONV_WSCAP_DBG"] = str(config.cudnn_workspace_cap_mib)
    return env


# --- predictions (meta device, no GPU) ---------------------------------------------------------------------


def predict(cell: Cell, kind: str, target: str) -> tuple[int, int | None, str]:
    """``(predicted bytes, predicted resident bytes or None, where the peak is)`` for one kind of a cell."""
    from deploykit.profile import inference_memory, training_memory

    if kind == "inference":
        m = inference_memory(cell.model, batch_size=cell.batch_size, dtype=cell.dtype, target=target)
        return m.peak_bytes, m.resident_bytes, m.peak_layer
    optimizer = kind.split(":", 1)[1]
    t = training_memory(cell.model, batch_size=cell.batch_size, dtype=cell.dtype, optimizer=optimizer, target=target)
    return t.peak_above_resident_bytes, None, f"{t.peak_phase}: {t.peak_where}"


# --- measurements --------------------------------------------------------------------------------------------

_TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def _clean() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def measure_cuda(cell: Cell, kind: str) -> tuple[int, int | None]:
    """``(measured bytes, measured resident bytes or None)`` from the CUDA allocator statistics."""
    import torch

    from deploykit.models import create_model
    from deploykit.profile.memory import make_optimizer, train_step

    dtype = getattr(torch, _TORCH_DTYPES[cell.dtype])
    _clean()
    start = torch.cuda.memory_allocated()
    model, spec = create_model(cell.model, device="cpu")
    model = model.to(dtype=dtype)
    model = model.to("cuda").train(kind != "inference")
    x = torch.randn(spec.batch_shape(cell.batch_size), dtype=dtype, device="cuda")
    torch.cuda.synchronize()
    resident = torch.cuda.memory_allocated() - start
    try:
        if kind == "inference":
            with torch.no_grad():
                for _ in range(2):
                    model(x)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            with torch.no_grad():
                out = model(x)
            torch.cuda.synchronize()
            measured = torch.cuda.max_memory_allocated() - base
            del out
            return measured, resident
        target = torch.zeros(cell.batch_size, dtype=torch.long, device="cuda")
        opt = make_optimizer(kind.split(":", 1)[1], model.parameters())  # PyTorch's default: foreach on CUDA
        train_step(model, opt, x, target)  # optimizer state, cuBLAS workspace of the backward thread
        torch.cuda.synchronize()
        gc.collect()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        train_step(model, opt, x, target)
        torch.cuda.synchronize()
        measured = torch.cuda.max_memory_allocated() - base
        del opt, target
        return measured, None
    finally:
        del model, x
        _clean()


def measure_memtracker(cell: Cell, optimizers: Sequence[str], device: str) -> dict[str, int]:
    """MemTracker's number for every kind of ``cell`` on ``device`` (one real run per optimizer)."""
    from deploykit.profile import memtracker_reference

    out: dict[str, int] = {}
    for opt in optimizers or (None,):
        ref = memtracker_reference(cell.model, batch_size=cell.batch_size, dtype=cell.dtype, device=device, optimizer=opt)
        out.setdefault("inference", ref.inference_peak_bytes)
        if opt is not None:
            out[f"train:{opt}"] = ref.training_peak_above_resident_bytes
        _clean()
    return out


def _failure(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:200]


def run_cell(cell: Cell, config: Config) -> list[Check]:
    """Predict and measure every kind of one cell; a failure becomes a :class:`Check` with ``failure``."""
    checks: list[Check] = []
    tensors: dict[str, int] = {}
    tensor_failure = None
    if config.device == "cpu" or config.memtracker:
        try:
            tensors = measure_memtracker(cell, config.optimizers, config.device)
        except Exception as exc:  # a measurement failure is reported in the table, not raised
            tensor_failure = _failure(exc)
    for kind in cell.kinds:
        base: dict[str, Any] = {"model": cell.model, "dtype": cell.dtype, "batch_size": cell.batch_size, "kind": kind}
        try:
            predicted, resident, where = predict(cell, kind, config.device)
        except Exception as exc:
            checks.append(Check(**base, failure=f"prediction: {_failure(exc)}"))
            continue
        measured: int | None
        measured_resident = None
        failure = None
        if config.device == "cpu":
            measured = tensors.get(kind)
            failure = tensor_failure
        else:
            try:
                measured, measured_resident = measure_cuda(cell, kind)
            except Exception as exc:
                measured, failure = None, _failure(exc)
                _clean()
        checks.append(
            Check(
                **base,
                predicted_bytes=predicted,
                measured_bytes=measured,
                tensor_bytes=tensors.get(kind) if config.device == "cuda" else None,
                predicted_resident_bytes=resident,
                measured_resident_bytes=measured_resident,
                predicted_where=where,
                failure=failure,
            )
        )
    return checks


# --- output ------------------------------------------------------------------------------------------------------


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.2f}"


def _pct(p: float | None) -> str:
    if p is None:
        return "-"
    return "0 (exact)" if p == 0 else f"{p:+.2f}%"


def settings(config: Config) -> dict[str, Any]:
    return {
        "device": config.device,
        "allocator": config.allocator,
        "allocator_env": allocator_env(config),
        "memtracker": config.memtracker,
        "cudnn_workspace_cap_mib": config.cudnn_workspace_cap_mib,
        "batch_sizes": list(config.batch_sizes),
        "dtypes": list(config.dtypes),
        "optimizers": list(config.optimizers),
        "target_pct": TARGET_PCT,
    }


def document(checks: Sequence[Check], env: dict[str, Any], setting: dict[str, Any]) -> dict[str, Any]:
    """The JSON document: schema, environment, settings, checks."""
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "env": env,
        "settings": setting,
        "checks": [c.to_dict() for c in checks],
    }


def load(path: Path) -> tuple[list[Check], dict[str, Any], dict[str, Any]]:
    d = json.loads(path.read_text())
    if d.get("schema") != SCHEMA or d.get("schema_version") != SCHEMA_VERSION:
        raise SystemExit(f"{path}: not a {SCHEMA} v{SCHEMA_VERSION} file")
    return [Check.from_dict(c) for c in d["checks"]], d["env"], d["settings"]


def merge(paths: Sequence[Path]) -> tuple[list[Check], dict[str, Any], dict[str, Any]]:
    """Checks of several result files of the same device and torch version, in file order."""
    from deploykit._env import device_name

    checks: list[Check] = []
    env: dict[str, Any] = {}
    setting: dict[str, Any] = {}
    for p in paths:
        c, e, s = load(p)
        if env and (device_name(e), e.get("torch")) != (device_name(env), env.get("torch")):
            raise SystemExit(f"{p}: measured on {device_name(e)} / torch {e.get('torch')}, not {device_name(env)}")
        env, setting = env or e, setting or s
        checks.extend(c)
    return checks, env, setting


def markdown(checks: Sequence[Check], env: dict[str, Any], setting: dict[str, Any]) -> str:
    """The error table: one summary row per model (worst cell), then every cell."""
    from deploykit._env import device_name

    cpu = setting.get("device") == "cpu"
    measured_by = "MemTracker on real CPU tensors" if cpu else "torch.cuda.max_memory_allocated()"
    allocator = "" if cpu else f"; allocator: {setting.get('allocator')} {setting.get('allocator_env') or ''}".rstrip()
    lines = [
        f"# Memory model vs {measured_by}",
        "",
        f"Device: {device_name(env)}; torch {env.get('torch')}, Python {env.get('python')}{allocator}",
        "",
        "Error = (predicted - measured) / measured. Inference: activation peak (weights, buffers and input "
        f"{'' if cpu else 'and persistent workspaces '}subtracted). Training: one steady-state step's peak above "
        "what was allocated before it (parameters, buffers, optimizer state, batch). MiB = 2^20 bytes.",
        "",
    ]
    numbered = [c for c in checks if c.error_pct is not None]
    within = sum(1 for c in numbered if abs(c.error_pct or 0.0) <= setting.get("target_pct", TARGET_PCT))
    lines += [f"Within {setting.get('target_pct', TARGET_PCT):g}%: {within} of {len(numbered)} cells; "
              f"{sum(1 for c in checks if c.failure)} cells failed.", ""]
    lines += ["| model | cells | worst error | worst cell |", "|---|---:|---:|---|"]
    models = list(dict.fromkeys(c.model for c in checks))
    for m in models:
        mine = [c for c in numbered if c.model == m]
        if not mine:
            lines.append(f"| {m} | 0 | - | failed |")
            continue
        worst = max(mine, key=lambda c: abs(c.error_pct or 0.0))
        lines.append(f"| {m} | {len(mine)} | {_pct(worst.error_pct)} | {worst.kind} {worst.dtype} b{worst.batch_size} |")
    lines += [
        "",
        "| model | dtype | batch | kind | predicted MiB | measured MiB | error | tensors MiB | non-tensor MiB | peak at |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for c in checks:
        where = c.failure or c.predicted_where
        lines.append(
            f"| {c.model} | {c.dtype} | {c.batch_size} | {c.kind} | {_mib(c.predicted_bytes)} | {_mib(c.measured_bytes)} "
            f"| {_pct(c.error_pct)} | {_mib(c.tensor_bytes)} | {_mib(c.non_tensor_bytes)} | {where} |"
        )
    resident = [c for c in checks if c.measured_resident_bytes is not None]
    if resident:
        exact = sum(1 for c in resident if c.measured_resident_bytes == c.predicted_resident_bytes)
        lines += ["", f"Resident (weights + buffers + input, 512-byte blocks): predicted = measured in {exact} of {len(resident)} cells."]
    return "\n".join(lines) + "\n"


def write(
    checks: Sequence[Check], env: dict[str, Any], setting: dict[str, Any], out: Path, tag: str = ""
) -> tuple[Path, Path]:
    """Write ``memory-<device slug>[-<tag>].json`` and ``.md`` under ``out`` atomically; return both paths."""
    from deploykit._env import device_name
    from deploykit._io import atomic_write_json, atomic_write_text
    from deploykit.bench.cache import slug

    stem = f"memory-{slug(device_name(env))}" + (f"-{slug(tag)}" if tag else "")
    j = atomic_write_json(out / f"{stem}.json", document(checks, env, setting))
    m = atomic_write_text(out / f"{stem}.md", markdown(checks, env, setting))
    return j, m


def main(argv: Sequence[str] | None = None) -> int:
    config, merging = parse_args(argv)
    if merging:
        for p in write(*merge(merging), config.out, config.tag):
            print(p)
        return 0
    os.environ.update(allocator_env(config))  # before CUDA initialises: the allocator reads it once
    import torch

    from deploykit._env import environment

    if config.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: use --device cpu for the MemTracker comparison", file=sys.stderr)
        return 3
    torch.backends.cudnn.benchmark = False
    env = environment(config.device)
    setting = settings(config)
    if config.device == "cuda":
        setting["cudnn"] = torch.backends.cudnn.version()
    checks: list[Check] = []
    t0 = time.perf_counter()
    for cell in cells(config):
        checks.extend(run_cell(cell, config))
        write(checks, env, setting, config.out, config.tag)  # after every cell: a timed-out run keeps what it measured
        last = checks[-len(cell.kinds):]
        errs = ", ".join(f"{c.kind} {_pct(c.error_pct)}" if not c.failure else f"{c.kind} FAILED" for c in last)
        print(f"[{time.perf_counter() - t0:6.0f}s] {cell.model} {cell.dtype} b{cell.batch_size}: {errs}", flush=True)
    for p in write(checks, env, setting, config.out, config.tag):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
