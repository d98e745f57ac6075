"""Profile results: frozen, unit-named, JSON round-trippable. Nothing here is rounded."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from deploykit.errors import ArtifactError
from deploykit.precision import Precision

PROFILE_SCHEMA = "deploykit.profile"
PROFILE_SCHEMA_VERSION = 1

#: Bytes per element of each ``--dtype`` (from :class:`deploykit.precision.Precision`). ``tf32`` stores fp32 and
#: computes on TF32 tensor cores.
DTYPE_BYTES: Mapping[str, int] = {p.value: p.element_bytes for p in Precision}


Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerProfile:
    """One row: a leaf module call, or a functional op called inside a non-leaf module's ``forward``.

    Attributes:
        name: unique row name: the module path (``features.0``), or ``<module path>/<function>`` for a
            functional call (``b3.0/cat``); a second call of the same module gets ``#2``.
        module: the enclosing module path ('' for the root module).
        op: the module class (``Conv2d``) or the function called (``relu``, ``cat``, ``add_``).
        kind: ``"module"`` or ``"function"`` (``"onnx"`` for rows from an ONNX graph).
        input_shapes, output_shapes: shapes of the tensors going in and coming out.
        params: parameters first used by this row (a shared module's parameters count once).
        macs: multiply-accumulates of convolution / linear / matmul work.
        flops: every floating-point operation: 2 per MAC plus bias, element-wise, normalisation and
            pooling work (formulas in :mod:`deploykit.profile.formulas`).
        param_bytes: ``params`` at the profile's dtype.
        act_bytes: bytes of output this row newly allocates (0 for views and in-place ops).
        traffic_bytes: DRAM bytes moved if each kernel reads its inputs (activations, weights, buffers)
            and writes its outputs once: the unfused per-kernel model.
        aten_ops: the ATen operators this row dispatched, in order (views included).
        unsupported: ATen operators with no FLOP formula (their FLOPs are missing, never silently zero).
        members: for a row aggregated by :func:`aggregate_layers`, the names of the rows it merges.
        fvcore_flops, flop_counter_flops: the same row as fvcore's ``FlopCountAnalysis`` and torch's
            ``FlopCounterMode`` count it (:mod:`deploykit.profile.conventions`); ``None`` where not computed
            (ONNX rows).
    """

    name: str
    module: str
    op: str
    kind: str
    input_shapes: tuple[Shape, ...]
    output_shapes: tuple[Shape, ...]
    params: int
    macs: int
    flops: int
    param_bytes: int
    act_bytes: int
    traffic_bytes: int
    aten_ops: tuple[str, ...] = ()
    unsupported: tuple[str, ...] = ()
    members: tuple[str, ...] = ()
    fvcore_flops: int | None = None
    flop_counter_flops: int | None = None

    @property
    def depth(self) -> int:
        """Nesting depth of the enclosing module (root = 0, ``features`` = 1, ``features.0`` = 2)."""
        return 0 if not self.module else self.module.count(".") + 1

    @property
    def intensity(self) -> float | None:
        """Arithmetic intensity in FLOP per byte of traffic; ``None`` when the row moves no data."""
        return self.flops / self.traffic_bytes if self.traffic_bytes else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shapes"] = [list(s) for s in self.input_shapes]
        d["output_shapes"] = [list(s) for s in self.output_shapes]
        d["aten_ops"] = list(self.aten_ops)
        d["unsupported"] = list(self.unsupported)
        d["members"] = list(self.members)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LayerProfile:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["input_shapes"] = tuple(tuple(s) for s in d["input_shapes"])
        kw["output_shapes"] = tuple(tuple(s) for s in d["output_shapes"])
        kw["aten_ops"] = tuple(d.get("aten_ops", ()))
        kw["unsupported"] = tuple(d.get("unsupported", ()))
        kw["members"] = tuple(d.get("members", ()))
        return cls(**kw)


@dataclass(frozen=True)
class ModelProfile:
    """Per-layer costs of one model at one input shape and dtype. Pure data; see ``report`` to render.

    ``unused_params`` counts parameters that no executed row used (e.g. a head skipped in eval mode), so
    ``total_params`` always equals ``sum(p.numel() for p in model.parameters())``.

    ``op_categories`` gives every operator that ran (ATen operators, or ONNX op types) its category (see
    :data:`deploykit.profile.formulas.CATEGORIES`: ``"matmul"``, ``"view"``, ``"no arithmetic"``,
    ``"unsupported"``, ...). ``notes`` are one-line facts the reader must know (the model was built or traced
    on the CPU, with which input).
    """

    model: str
    input_shape: Shape
    dtype: str
    layers: tuple[LayerProfile, ...]
    unused_params: int = 0
    module_types: Mapping[str, str] = field(default_factory=dict)
    spec: Mapping[str, Any] = field(default_factory=dict)
    source: str = "pytorch"
    op_categories: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def batch_size(self) -> int:
        return self.input_shape[0]

    @property
    def bytes_per_element(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.layers) + self.unused_params

    @property
    def total_param_bytes(self) -> int:
        return self.total_params * self.bytes_per_element

    @property
    def total_macs(self) -> int:
        return sum(r.macs for r in self.layers)

    @property
    def total_flops(self) -> int:
        return sum(r.flops for r in self.layers)

    @property
    def total_act_bytes(self) -> int:
        """Sum of all rows' newly allocated outputs: *not* a peak (see the memory model for that)."""
        return sum(r.act_bytes for r in self.layers)

    @property
    def total_traffic_bytes(self) -> int:
        return sum(r.traffic_bytes for r in self.layers)

    def convention_flops(self, convention: str) -> int | None:
        """Total FLOPs as ``convention`` counts them: ``"deploykit"`` (:attr:`total_flops`), ``"fvcore"`` or
        ``"flop-counter"`` (:mod:`deploykit.profile.conventions`); ``None`` when the rows do not carry it."""
        if convention == "deploykit":
            return self.total_flops
        attr = {"fvcore": "fvcore_flops", "flop-counter": "flop_counter_flops"}.get(convention)
        if attr is None:
            raise ValueError(f"unknown convention {convention!r}")
        values = [getattr(r, attr) for r in self.layers]
        return None if any(v is None for v in values) else sum(values)

    @property
    def unsupported_ops(self) -> tuple[str, ...]:
        """Sorted ATen operators that ran without a FLOP formula anywhere in the model."""
        return tuple(sorted({op for r in self.layers for op in r.unsupported}))

    def layer(self, name: str) -> LayerProfile:
        """The row called ``name``; ``KeyError`` if there is none."""
        for r in self.layers:
            if r.name == name:
                return r
        raise KeyError(name)

    def totals(self) -> dict[str, int]:
        return {
            "params": self.total_params,
            "param_bytes": self.total_param_bytes,
            "macs": self.total_macs,
            "flops": self.total_flops,
            "act_bytes": self.total_act_bytes,
            "traffic_bytes": self.total_traffic_bytes,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": PROFILE_SCHEMA,
            "schema_version": PROFILE_SCHEMA_VERSION,
            "model": self.model,
            "source": self.source,
            "spec": dict(self.spec),
            "input_shape": list(self.input_shape),
            "dtype": self.dtype,
            "unused_params": self.unused_params,
            "module_types": dict(self.module_types),
            "totals": self.totals(),
            "unsupported_ops": list(self.unsupported_ops),
            "op_categories": dict(self.op_categories),
            "conventions": {c: self.convention_flops(c) for c in ("fvcore", "flop-counter")},
            "notes": list(self.notes),
            "layers": [r.to_dict() for r in self.layers],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelProfile:
        if d.get("schema") != PROFILE_SCHEMA or d.get("schema_version") != PROFILE_SCHEMA_VERSION:
            raise ArtifactError(
                f"not a deploykit profile of schema version {PROFILE_SCHEMA_VERSION}: "
                f"got schema={d.get('schema')!r} version={d.get('schema_version')!r}"
            )
        return cls(
            model=d["model"],
            input_shape=tuple(d["input_shape"]),
            dtype=d["dtype"],
            layers=tuple(LayerProfile.from_dict(r) for r in d["layers"]),
            unused_params=int(d.get("unused_params", 0)),
            module_types=dict(d.get("module_types", {})),
            spec=dict(d.get("spec", {})),
            source=d.get("source", "pytorch"),
            op_categories=dict(d.get("op_categories", {})),
            notes=tuple(d.get("notes", ())),
        )


def aggregate_layers(profile: ModelProfile, depth: int) -> tuple[LayerProfile, ...]:
    """Rows merged by module path truncated to ``depth`` components (torchinfo's ``depth``).

    Rows at or above ``depth`` stay as they are; consecutive rows under the same truncated path become one
    row named after that module, with summed costs, the first row's inputs and the last row's outputs.
    """
    if depth < 0:
        raise ValueError("depth must be >= 0")
    out: list[LayerProfile] = []
    group: list[LayerProfile] = []
    key: str | None = None

    def flush() -> None:
        if not group:
            return
        if len(group) == 1 and (group[0].module == key and group[0].kind == "module"):
            out.append(group[0])
        else:
            out.append(_merge(key or "", group, profile.module_types.get(key or "", "Module")))
        group.clear()

    for row in profile.layers:
        parts = row.module.split(".") if row.module else []
        k = ".".join(parts[:depth]) if len(parts) > depth or (len(parts) == depth and row.kind == "function") else None
        if k is None:
            flush()
            key = None
            out.append(row)
            continue
        if k != key:
            flush()
            key = k
        group.append(row)
    flush()
    return tuple(out)


def _merge(name: str, rows: Sequence[LayerProfile], op: str) -> LayerProfile:
    return LayerProfile(
        name=name or "(root)",
        module=name,
        op=op,
        kind="module",
        input_shapes=rows[0].input_shapes,
        output_shapes=rows[-1].output_shapes,
        params=sum(r.params for r in rows),
        macs=sum(r.macs for r in rows),
        flops=sum(r.flops for r in rows),
        param_bytes=sum(r.param_bytes for r in rows),
        act_bytes=sum(r.act_bytes for r in rows),
        traffic_bytes=sum(r.traffic_bytes for r in rows),
        aten_ops=tuple(op for r in rows for op in r.aten_ops),
        unsupported=tuple(sorted({op for r in rows for op in r.unsupported})),
        members=tuple(r.name for r in rows),
        fvcore_flops=_sum_or_none(r.fvcore_flops for r in rows),
        flop_counter_flops=_sum_or_none(r.flop_counter_flops for r in rows),
    )


def _sum_or_none(values: Iterable[int | None]) -> int | None:
    vals = list(values)
    return None if any(v is None for v in vals) else sum(v for v in vals if v is not None)
