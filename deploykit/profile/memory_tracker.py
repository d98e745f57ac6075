"""The liveness tracker behind the memory model: every storage allocated on the meta device, when it dies, and the peak."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from deploykit.profile.formulas import discarded_outputs

_aten = torch.ops.aten

_BATCH_NORM = frozenset((_aten.native_batch_norm, _aten._native_batch_norm_legit, _aten._native_batch_norm_legit_no_training))

def round_up(nbytes: int, granularity_bytes: int) -> int:
    """``nbytes`` rounded up to a multiple of ``granularity_bytes``; 0 stays 0 (nothing is allocated)."""
    if nbytes <= 0:
        return 0
    return -(-nbytes // granularity_bytes) * granularity_bytes

class _Entry:
    __slots__ = ("category", "lean", "nbytes", "ref")

    def __init__(self, nbytes: int, category: str, lean: bool) -> None:
        self.nbytes = nbytes
        self.category = category
        self.lean = lean
        self.ref: Any = None

class _Event:
    """One row's scope: live bytes when it opened, its own peak and allocations."""

    __slots__ = ("alloc", "enter", "label", "peak")

    def __init__(self, label: str, live: int) -> None:
        self.label = label
        self.enter = live
        self.peak = live
        self.alloc = 0

class _Tracker(TorchDispatchMode):
    """Live bytes of every storage allocated on ``device_type`` while the mode is active."""

    def __init__(self, device_type: str, elem_bytes: int, granularity_bytes: int) -> None:
        super().__init__()
        self.device_type = device_type
        self.elem_bytes = elem_bytes
        self.granularity_bytes = granularity_bytes
        self.entries: dict[int, _Entry] = {}
        self.live = 0
        self.live_lean = 0
        self.by_category: dict[str, int] = {}
        self.category = "activations"
        self.phase = "forward"
        self.where = ""
        self.peak = 0
        self.peak_lean = 0
        self.peak_phase = ""
        self.peak_where = ""
        self.peak_categories: dict[str, int] = {}
        self.events: list[_Event] = []
        self.current: _Event | None = None
        self.phase_peaks: dict[str, int] = {"forward": 0}
        self.where_peaks: dict[str, int] = {}

    def set_phase(self, phase: str, category: str, where: str = "") -> None:
        """Start a phase: new allocations get ``category``; the phase's peak starts at the live total."""
        self.phase, self.category, self.where = phase, category, where
        self.phase_peaks[phase] = max(self.phase_peaks.get(phase, 0), self.live)

    def set_where(self, where: str) -> None:
        """The backward entered the nodes of row ``where`` (a saved tensor of that row was unpacked)."""
        self.where = where
        self.where_peaks[where] = max(self.where_peaks.get(where, 0), self.live)

    # bytes of one storage at the modelled dtype and granularity
    def storage_bytes(self, t: torch.Tensor) -> int:
        n = int(t.untyped_storage().nbytes())
        if t.is_floating_point():
            n = n // t.element_size() * self.elem_bytes
        return round_up(n, self.granularity_bytes)

    def __torch_dispatch__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.observe(func, args, kwargs, out)
        return out

    def observe(self, func: Any, args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> None:
        outs, _ = tree_flatten(out)
        if not any(isinstance(t, torch.Tensor) for t in outs):
            return
        ins, _ = tree_flatten((args, kwargs))
        in_keys = {t.untyped_storage()._cdata for t in ins if isinstance(t, torch.Tensor)}
        lean_skip = discarded_outputs(func, args, kwargs)
        # Outside training, BatchNorm's saved statistics are empty tensors on the CPU and with cuDNN; the meta
        # kernel gives them C elements each. They are not counted.
        empty = lean_skip if func.overloadpacket in _BATCH_NORM else ()
        for i, t in enumerate(outs):
            if not isinstance(t, torch.Tensor) or t.device.type != self.device_type or i in empty:
                continue
            st = t.untyped_storage()
            key = st._cdata
            if key in in_keys or key in self.entries:
                continue
            self.add(st, key, self.storage_bytes(t), lean=i not in lean_skip)

    def add(self, st: torch.UntypedStorage, key: int, nbytes: int, *, lean: bool = True) -> None:
        entry = _Entry(nbytes, self.category, lean)
        entry.ref = weakref.ref(st, self._freer(key))
        self.entries[key] = entry
        self.live += nbytes
        self.by_category[entry.category] = self.by_category.get(entry.category, 0) + nbytes
        if lean:
            self.live_lean += nbytes
            self.peak_lean = max(self.peak_lean, self.live_lean)
        if self.current is not None:
            self.current.alloc += nbytes
            self.current.peak = max(self.current.peak, self.live)
        self.phase_peaks[self.phase] = max(self.phase_peaks.get(self.phase, 0), self.live)
        if self.phase == "backward":
            self.where_peaks[self.where] = max(self.where_peaks.get(self.where, 0), self.live)
        if self.live > self.peak:
            self.peak = self.live
            self.peak_phase = self.phase
            self.peak_where = self.current.label if self.current is not None else self.where
            self.peak_categories = dict(self.by_category)

    def _freer(self, key: int) -> Callable[[Any], None]:
        def free(_: Any) -> None:
            entry = self.entries.pop(key, None)
            if entry is None:
                return
            self.live -= entry.nbytes
            self.by_category[entry.category] -= entry.nbytes
            if entry.lean:
                self.live_lean -= entry.nbytes

        return free

    def reclassify(self, t: torch.Tensor | None, category: str) -> None:
        if t is None:
            return
        entry = self.entries.get(t.untyped_storage()._cdata)
        if entry is None or entry.category == category:
            return
        self.by_category[entry.category] -= entry.nbytes
        self.by_category[category] = self.by_category.get(category, 0) + entry.nbytes
        entry.category = category

    @contextlib.contextmanager
    def row_scope(self, label: str) -> Iterator[None]:
        """The ``row_scope`` handed to ``profile_module``: one event per row."""
        event = _Event(label, self.live)
        self.events.append(event)
        self.current = event
        try:
            yield
        finally:
            self.current = None

    def stop(self) -> None:
        """Drop every weak reference (their callbacks never fire again)."""
        self.entries.clear()

class _FusedDropout(TorchFunctionMode):
    """``F.dropout`` in training as CUDA runs it: PyTorch's ``at::dropout`` takes the fused
    ``native_dropout`` kernel (output + bool mask) for CUDA inputs; on CPU and meta it builds a noise tensor
    of the input's dtype instead. In-place dropout takes the noise path on every device."""

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is F.dropout or func is torch.dropout:
            names = ("input", "p", "training", "inplace") if func is F.dropout else ("input", "p", "train")
            bound = dict(zip(names, args, strict=False)) | kwargs
            x, p = bound["input"], float(bound.get("p", 0.5))
            train = bool(bound.get("training", bound.get("train", True)))
            if train and not bound.get("inplace", False) and 0.0 < p < 1.0 and x.numel() > 0:
                return torch.native_dropout(x, p, True)[0]
        return func(*args, **kwargs)
