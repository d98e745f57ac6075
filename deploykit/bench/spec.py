"""What a benchmark sweep measures: :class:`BenchSpec` (one frozen options object) and suite files.

A suite file (``benchmarks/suites/*.json``) holds the same fields as :class:`BenchSpec`::

    {"name": "gpu-ci", "models": ["resnet18"], "backends": ["eager", "cuda-graph"], "precisions": ["fp16"],
     "batches": [1, 64], "device": "cuda", "timing": {"iterations": 50, "repeats": 7}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from deploykit.backends.registry import backend_names
from deploykit.bench.timing import TimingOptions
from deploykit.errors import InvalidInput, first_line
from deploykit.precision import TORCH_PRECISIONS, Precision

#: The built-in backend names (:mod:`deploykit.backends.registry`, read again wherever a spec is checked, so a
#: backend registered later counts too), in the order a sweep runs them (eager first: the speedup reference).
BACKENDS = backend_names()
#: int8: the Q/DQ ONNX graph of :mod:`deploykit.export.int8` (ort and trt backends only; needs ``calib_data``).
PRECISIONS = Precision.names(*TORCH_PRECISIONS, Precision.INT8)
#: Backends that run an int8 cell (a Q/DQ graph); the others skip it.
INT8_BACKENDS = ("ort", "trt")

#: What ``deploykit bench`` runs when no ``--backend`` / ``--precision`` / ``--batch`` is given.
DEFAULTS: dict[str, dict[str, Any]] = {
    "cuda": {"backends": BACKENDS, "precisions": ("fp32", "fp16"), "batches": (1, 64)},
    "cpu": {"backends": ("eager", "ort"), "precisions": ("fp32",), "batches": (1,)},
}


def default_cpu_threads() -> int:
    """Threads ``deploykit bench`` gives torch and ONNX Runtime on the CPU when ``--threads`` is not given: half
    the cores this process may use, at most 4 (1 on a 2-core machine). The other half is left to the rest of
    the machine, whose load otherwise shows up in the timings as noise (on a 2-core CI runner, ONNX Runtime's
    default of one thread per core measured 39% noise and eager a p99 of 30x its median)."""
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(4, cores // 2))


def device_type(device: str) -> str:
    """``"cuda:1"`` -> ``"cuda"``; only ``cpu`` and ``cuda[:N]`` are accepted."""
    d = device.strip().lower()
    if d == "cpu":
        return "cpu"
    if d == "cuda" or (d.startswith("cuda:") and d[5:].isdigit()):
        return "cuda"
    raise InvalidInput(f"unknown device {device!r}; use cpu, cuda or cuda:N")


@dataclass(frozen=True)
class BenchSpec:
    """A sweep: every model × batch × precision × backend is one cell.

    ``timing`` says how hard each cell is measured; ``compile_mode`` is ``torch.compile``'s mode (``None``: the
    fastest reliable one for the device, see :func:`deploykit.backends.torch_backends.default_compile_mode`);
    ``num_classes`` / ``in_channels`` / ``image_size`` / ``input_shape`` are model overrides applied to every
    model; ``seed`` fixes the weights and inputs; ``cache_dir`` holds ONNX exports, engines and the Inductor
    cache (default :func:`deploykit.bench.cache.default_cache_dir`); ``threads`` sets the CPU threads of torch
    and ONNX Runtime (``None``: their defaults; on a shared machine 1 avoids thread-barrier stalls).
    ``weights``: the model's trained weights (a safetensors / torch file or a torchvision name) instead of
    ``seed``'s random ones; one model per sweep then (a weights file fits one architecture).
    ``calib_data`` (needed by int8 cells) is a :mod:`deploykit.data` source: int8 cells are calibrated on its train
    split and their accuracy against fp32 is measured on its test split (``info`` of the cell:
    ``accuracy_drop_points``...), and every cell of the sweep then runs on real test inputs instead of random ones.
    """

    models: tuple[str, ...]
    backends: tuple[str, ...] = ("eager", "ort")
    precisions: tuple[str, ...] = ("fp32",)
    batches: tuple[int, ...] = (1,)
    device: str = "cpu"
    timing: TimingOptions = field(default_factory=TimingOptions)
    compile_mode: str | None = None
    num_classes: int | None = None
    in_channels: int | None = None
    image_size: int | None = None
    input_shape: str | None = None
    seed: int = 0
    cache_dir: str | None = None
    threads: int | None = None
    name: str | None = None
    weights: str | None = None
    calib_data: str | None = None

    def __post_init__(self) -> None:
        if not self.models:
            raise InvalidInput("give at least one model")
        device_type(self.device)
        for label, values, allowed in (
            ("backend", self.backends, backend_names()),
            ("precision", self.precisions, PRECISIONS),
        ):
            if not values:
                raise InvalidInput(f"give at least one {label}")
            bad = [v for v in values if v not in allowed]
            if bad:
                raise InvalidInput(f"unknown {label}(s) {', '.join(bad)}; use {', '.join(allowed)}")
        if "int8" in self.precisions and self.calib_data is None:
            raise InvalidInput(
                "--precision int8 needs real calibration data: --calib-data mnist1d | digits | FILE.npz | FOLDER "
                "(deploykit never calibrates on random data)"
            )
        if self.calib_data is not None and "int8" not in self.precisions:
            raise InvalidInput("--calib-data calibrates int8 cells: add int8 to --precision")
        if self.threads is not None and (isinstance(self.threads, bool) or int(self.threads) < 1):
            raise InvalidInput("threads must be a positive integer")
        if self.weights is not None and len(set(self.models)) != 1:
            raise InvalidInput(
                f"--weights fit one model; this sweep has {len(set(self.models))} ({', '.join(self.models)}): "
                "bench one model at a time with its weights"
            )
        if not self.batches or any(int(b) <= 0 for b in self.batches):
            raise InvalidInput("batch sizes must be positive integers")
        if self.compile_mode is not None:
            from deploykit.backends.torch_backends import COMPILE_MODES

            if self.compile_mode not in COMPILE_MODES:
                raise InvalidInput(
                    f"unknown compile mode {self.compile_mode!r}; use {', '.join(COMPILE_MODES)}"
                )
        # Run order: the registry's, duplicates dropped (eager first, the speedup reference).
        object.__setattr__(self, "backends", tuple(b for b in backend_names() if b in self.backends))
        object.__setattr__(self, "precisions", tuple(dict.fromkeys(self.precisions)))
        object.__setattr__(self, "batches", tuple(dict.fromkeys(int(b) for b in self.batches)))
        object.__setattr__(self, "models", tuple(dict.fromkeys(self.models)))

    @property
    def n_cells(self) -> int:
        return len(self.models) * len(self.backends) * len(self.precisions) * len(self.batches)

    @property
    def overrides(self) -> dict[str, Any]:
        """The model overrides that are set, as keyword arguments for ``create_model``."""
        o = {
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "image_size": self.image_size,
            "input_shape": self.input_shape,
        }
        return {k: v for k, v in o.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            d[f.name] = (
                v.to_dict() if isinstance(v, TimingOptions) else (list(v) if isinstance(v, tuple) else v)
            )
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BenchSpec:
        """Build from a suite / ``to_dict`` mapping; unknown keys raise :class:`InvalidInput`."""
        known = {f.name for f in fields(cls)} | {"description"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InvalidInput(
                f"unknown suite field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}"
            )
        kw = {k: v for k, v in d.items() if k != "description"}
        for k in ("models", "backends", "precisions", "batches"):
            if k in kw:
                if isinstance(kw[k], str) or not isinstance(kw[k], list):
                    raise InvalidInput(f"suite field {k!r} must be a list")
                kw[k] = tuple(kw[k])
        if "timing" in kw:
            t = kw["timing"]
            if not isinstance(t, dict):
                raise InvalidInput("suite field 'timing' must be an object")
            allowed = {f.name for f in fields(TimingOptions)}
            bad = sorted(set(t) - allowed)
            if bad:
                raise InvalidInput(
                    f"unknown timing option(s) {', '.join(bad)}; allowed: {', '.join(sorted(allowed))}"
                )
            try:
                kw["timing"] = TimingOptions(**t)
            except (TypeError, ValueError) as exc:
                raise InvalidInput(f"bad suite timing: {first_line(exc)}") from None
        if "models" not in kw:
            raise InvalidInput("a suite must list its models")
        try:
            return cls(**kw)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"bad suite: {first_line(exc)}") from None

    def with_overrides(self, **changes: Any) -> BenchSpec:
        """A copy with the given fields replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def bench_spec(
    suite: BenchSpec | None,
    *,
    models: tuple[str, ...] | None = None,
    device: str | None = None,
    timing: dict[str, Any] | None = None,
    **changes: Any,
) -> BenchSpec:
    """The sweep a command asks for: its values over the suite's, the suite's over the device defaults.

    ``device`` defaults to the suite's, else ``cuda`` when available; without a suite the backends, precisions
    and batches default to :data:`DEFAULTS` for that device. ``timing`` holds :class:`TimingOptions` fields and
    ``changes`` :class:`BenchSpec` fields; ``None`` values are not given (:meth:`BenchSpec.with_overrides`).
    """
    if device is None:
        if suite is not None:
            device = suite.device
        else:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
    if suite is None:
        if not models:
            raise InvalidInput("give at least one MODEL (or --suite FILE)")
        defaults = dict(DEFAULTS[device_type(device)])
        if device_type(device) == "cuda":  # every backend registered now (BACKENDS is the list at import time)
            defaults["backends"] = backend_names()
        suite = BenchSpec(models=tuple(models), device=device, **defaults)
    tim = replace(suite.timing, **{k: v for k, v in (timing or {}).items() if v is not None})
    return suite.with_overrides(models=tuple(models) if models else None, device=device, timing=tim, **changes)


def load_suite(path: str | Path) -> BenchSpec:
    """Read a suite JSON file (see the module docstring) into a :class:`BenchSpec`."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"cannot read suite {p}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"suite {p} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"suite {p} is not UTF-8 text (byte {exc.start})") from None
    except RecursionError:
        raise InvalidInput(f"suite {p} is not a suite (JSON nested too deeply)") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"suite {p} must be a JSON object")
    data.setdefault("name", p.stem)
    return BenchSpec.from_dict(data)
