"""Trained weights for a model: safetensors files, PyTorch state_dicts / checkpoints, torchvision weight names.

Sources, in order of preference:

* a **safetensors** file (``.safetensors``, or any file with a safetensors header): tensors only, no code can run
  while reading it;
* a **PyTorch** file written by ``torch.save``: read with ``torch.load(weights_only=True)`` only, so a file that
  holds anything but tensors and plain containers (a pickled ``nn.Module``, an object with code) is refused, never
  unpickled. A checkpoint's ``state_dict`` / ``model`` entry is unwrapped, and a ``module.`` (DataParallel /
  DistributedDataParallel) or ``_orig_mod.`` (``torch.compile``) prefix on every key is stripped;
* a **torchvision weight name** (``DEFAULT``, ``IMAGENET1K_V1`` or ``ResNet18_Weights.IMAGENET1K_V1``) for the
  torchvision zoo models: the file is found with torchvision's weights API (``get_model_weights``) in torch hub's
  cache (``$TORCH_HOME/hub/checkpoints``) or downloaded there, then read like any PyTorch file
  (``weights_only=True``; torchvision's own builders load these files with ``weights_only=False``).

Loading is strict by default: keys the model has and the file lacks, keys the file has and the model lacks, and
tensors whose shape differs are reported together in one :class:`~deploykit.errors.InvalidInput` line (the
first few of each and their counts). Non-finite weights are refused. On the ``meta`` device (profiling) the
weights are checked against the model (keys, shapes) and recorded but not materialised.

Every load returns a :class:`WeightsRecord` (source, format, sha256 of the file, counts) that manifests and
results embed, so an artifact names the exact weights it was made from.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deploykit.errors import ArtifactError, InvalidInput, first_line

__all__ = [
    "WEIGHT_FORMATS",
    "WeightsRecord",
    "is_torchvision_weights_name",
    "load_weights",
    "read_state_dict",
    "save_weights",
]

WEIGHT_FORMATS = ("safetensors", "torch", "torchvision")

#: Checkpoint entries that hold the model's state_dict (checked in this order).
_WRAPPER_KEYS = ("state_dict", "model")
#: Prefixes stripped when every key carries them: DataParallel / DDP wrappers and ``torch.compile``.
_PREFIXES = ("module.", "_orig_mod.")
_SHOW = 5  # keys listed per kind of mismatch
_TV_NAME = re.compile(r"^(?:[A-Za-z0-9]+_Weights\.)?[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class WeightsRecord:
    """What was loaded into a model: the identity of the weights, for manifests and results.

    ``source`` is the file as given (or ``ResNet18_Weights.IMAGENET1K_V1`` for a torchvision name, with the
    cached file in ``path``); ``sha256`` is the file's. ``tensors`` counts the tensors the file holds (after
    unwrapping), ``loaded`` those loaded into the model; ``missing`` / ``unexpected`` / ``mismatched`` are non-zero
    only for a non-strict load. ``materialized`` is False on the meta device (checked, not loaded).
    """

    source: str
    format: str
    sha256: str
    path: str
    tensors: int
    loaded: int
    missing: int = 0
    unexpected: int = 0
    mismatched: int = 0
    strict: bool = True
    materialized: bool = True
    dtypes: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "format": self.format,
            "sha256": self.sha256,
            "path": self.path,
            "tensors": self.tensors,
            "loaded": self.loaded,
            "missing": self.missing,
            "unexpected": self.unexpected,
            "mismatched": self.mismatched,
            "strict": self.strict,
            "materialized": self.materialized,
            "dtypes": list(self.dtypes),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WeightsRecord:
        return cls(
            source=str(d["source"]),
            format=str(d["format"]),
            sha256=str(d["sha256"]),
            path=str(d.get("path", d["source"])),
            tensors=int(d["tensors"]),
            loaded=int(d["loaded"]),
            missing=int(d.get("missing", 0)),
            unexpected=int(d.get("unexpected", 0)),
            mismatched=int(d.get("mismatched", 0)),
            strict=bool(d.get("strict", True)),
            materialized=bool(d.get("materialized", True)),
            dtypes=tuple(d.get("dtypes", ())),
            notes=tuple(d.get("notes", ())),
        )


# ---------------------------------------------------------------------------------------------- reading files
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with the little-endian u64 length of a JSON header, then ``{``."""
    if path.suffix == ".safetensors":
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 0 < n < path.stat().st_size


def _refusal_detail(exc: BaseException) -> str:
    """The line of torch's weights-only refusal that names what it refused (``GLOBAL posix.system``)."""
    for line in str(exc).splitlines():
        line = line.strip()
        if "GLOBAL" in line or line.startswith("Unsupported"):
            return line
    return "the weights-only unpickler refused it"


def _torch_load(path: Path) -> Any:
    import pickle

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols; the outcome is what matters
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InvalidInput(
            f"refusing to load {path}: torch.load(weights_only=True) refused it ({_refusal_detail(exc)}): it holds "
            "Python objects or code, not only tensors, or is no PyTorch file; deploykit never unpickles anything "
            "else: save model.state_dict() (torch.save) or a safetensors file instead"
        ) from None
    except Exception as exc:  # a truncated zip, a text file, a foreign format
        raise ArtifactError(f"cannot read weights {path}: {first_line(exc)}") from None


def _unwrap(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The tensors of a state_dict or of a checkpoint's ``state_dict`` / ``model`` entry, prefixes stripped."""
    notes: list[str] = []
    if not isinstance(obj, Mapping):
        raise InvalidInput(f"{path} holds a {type(obj).__name__}, not a state_dict (a mapping of names to tensors)")
    if obj and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                notes.append(f"checkpoint entry {key!r} unwrapped")
                obj = inner
                break
        else:
            others = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
            raise InvalidInput(
                f"{path} is not a state_dict: entries {', '.join(others[:_SHOW])}"
                f"{' ...' if len(others) > _SHOW else ''} are not tensors, and it has no "
                f"{' / '.join(repr(k) for k in _WRAPPER_KEYS)} entry holding one"
            )
    if not obj:
        raise InvalidInput(f"{path} holds no tensors")
    state = {str(k): v for k, v in obj.items()}
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
            notes.append(f"prefix {prefix!r} stripped")
    return state, notes


def read_state_dict(source: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """Read the tensors of a weights file on the CPU: ``(state_dict, format, notes)``.

    ``format`` is ``"safetensors"`` or ``"torch"``; ``notes`` says what was unwrapped or stripped. Raises
    :class:`ArtifactError` for a missing or unreadable file and :class:`InvalidInput` for a file that is not a
    state_dict or holds Python objects (refused, never unpickled).
    """
    path = Path(source)
    if not path.is_file():
        raise ArtifactError(f"weights file not found: {path}")
    if _is_safetensors(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(os.fspath(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise ArtifactError(f"cannot read safetensors file {path}: {first_line(exc)}") from None
        tensors, notes = _unwrap(state, path)
        return tensors, "safetensors", notes
    tensors, notes = _unwrap(_torch_load(path), path)
    return tensors, "torch", notes


# ------------------------------------------------------------------------------------------ torchvision names
def is_torchvision_weights_name(text: str) -> bool:
    """``DEFAULT``, ``IMAGENET1K_V1`` or ``ResNet18_Weights.IMAGENET1K_V1`` (and not an existing file)."""
    return bool(_TV_NAME.match(text)) and not Path(text).exists()


def _densenet_keys(module: nn.Module, state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    # torchvision's DenseNet checkpoints predate its module names: "norm.1" is "norm1" (torchvision remaps them
    # with this pattern in densenet._load_state_dict).
    pattern = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")
    out = {}
    for k, v in state.items():
        m = pattern.match(k)
        out[m.group(1) + m.group(2) if m else k] = v
    return out, "legacy DenseNet keys renamed (norm.1 -> norm1), as torchvision does"


def _googlenet_keys(module: nn.Module, state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    # torchvision's GoogLeNet weights come with the auxiliary heads and expect transform_input=True (the weights
    # were ported from TensorFlow, which normalised inputs differently); torchvision's builder sets both.
    if getattr(module, "aux1", None) is None:
        state = {k: v for k, v in state.items() if not k.startswith(("aux1.", "aux2."))}
    if hasattr(module, "transform_input"):
        module.transform_input = True  # type: ignore[assignment]
    return state, "auxiliary heads dropped and transform_input=True, as torchvision's googlenet builder does"


_TV_ADAPTERS: dict[str, Callable[[nn.Module, dict[str, torch.Tensor]], tuple[dict[str, torch.Tensor], str]]] = {
    "googlenet": _googlenet_keys,
    **{n: _densenet_keys for n in ("densenet121", "densenet161", "densenet169", "densenet201")},
}


def _torchvision_file(model_name: str, name: str) -> tuple[Path, str]:
    """The local file of torchvision weights ``name`` for ``model_name`` (downloaded into torch hub's cache if
    missing) and the weights' full name."""
    import torchvision.models as tvm

    try:
        enum = tvm.get_model_weights(model_name)
    except (ValueError, KeyError):
        raise InvalidInput(f"torchvision has no weights for {model_name!r}; pass a weights file instead") from None
    prefix, _, member = name.rpartition(".")
    if prefix and prefix != enum.__name__:
        raise InvalidInput(f"{name!r} are not weights of {model_name} (its weights are {enum.__name__})")
    try:
        weights = enum[member]
    except KeyError:
        raise InvalidInput(
            f"{model_name} has no torchvision weights {member!r}; it has {', '.join(enum.__members__)}"
        ) from None
    full = f"{enum.__name__}.{weights.name}"
    from urllib.parse import urlparse

    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)
    if not cached.is_file():
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # torch.hub prints "Downloading: ..." on stdout
                weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
        except Exception as exc:  # offline, proxy, HTTP error, hash mismatch
            raise ArtifactError(
                f"cannot download torchvision weights {full} from {weights.url} ({first_line(exc, 120)}); "
                f"this machine may be offline: fetch that file elsewhere and pass it with --weights "
                f"{cached.name}, or put it at {cached}"
            ) from None
        if not cached.is_file():
            raise ArtifactError(f"torchvision weights {full} were not saved at {cached}")
    return cached, full


# ---------------------------------------------------------------------------------------------------- loading
def _fmt_keys(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return shown + (f" (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else ('es' if word.endswith('ch') else 's')}"


def _compare(
    module: nn.Module, state: Mapping[str, torch.Tensor]
) -> tuple[list[str], list[str], list[str], dict[str, torch.Tensor]]:
    """(missing, unexpected, mismatched descriptions, the tensors that fit)."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched: list[str] = []
    fits: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if k not in own:
            continue
        if tuple(v.shape) != tuple(own[k].shape):
            file_shape = "x".join(map(str, v.shape)) or "scalar"
            model_shape = "x".join(map(str, own[k].shape)) or "scalar"
            mismatched.append(f"{k} (file {file_shape}, model {model_shape})")
        else:
            fits[k] = v
    return missing, unexpected, mismatched, fits


def load_weights(
    module: nn.Module,
    source: str | os.PathLike[str],
    *,
    strict: bool = True,
    torchvision_model: str | None = None,
    model_name: str | None = None,
) -> WeightsRecord:
    """Load weights from ``source`` into ``module`` (in place) and return what was loaded.

    Args:
        module: the model, built (lazy layers materialised). On the ``meta`` device the weights are only checked.
        source: a safetensors or PyTorch file, or a torchvision weight name (``DEFAULT``, ``IMAGENET1K_V1``).
        strict: refuse missing / unexpected keys and shape mismatches (one message listing them). With
            ``strict=False`` the tensors that fit are loaded and the rest counted in the record.
        torchvision_model: the torchvision builder name (``"resnet18"``); needed for a weight name.
        model_name: the model's name in messages.

    Raises :class:`InvalidInput` (exit 2) for weights that do not fit, a file holding Python objects, a
    torchvision name for a model without torchvision weights, or non-finite values; :class:`ArtifactError`
    (exit 2) for a missing or unreadable file and a failed download.

    >>> model, spec = create_model("mnist1d-cnn", device="cpu")         # doctest: +SKIP
    >>> load_weights(model, "w.safetensors").sha256[:12]                 # doctest: +SKIP
    """
    text = os.fspath(source)
    what = model_name or type(module).__name__
    notes: list[str] = []
    if is_torchvision_weights_name(text):
        if torchvision_model is None:
            raise InvalidInput(
                f"{text!r} is a torchvision weight name, and {what} is not a torchvision model: pass a weights file"
            )
        path, display = _torchvision_file(torchvision_model, text)
        state, _, notes = read_state_dict(path)
        fmt = "torchvision"
        adapter = _TV_ADAPTERS.get(torchvision_model)
        if adapter is not None:
            state, note = adapter(module, state)
            notes.append(note)
    else:
        path, display = Path(text), text
        state, fmt, notes = read_state_dict(path)

    missing, unexpected, mismatched, fits = _compare(module, state)
    if strict and (missing or unexpected or mismatched):
        parts = []
        if missing:
            parts.append(f"{_plural(len(missing), 'missing key')} ({_fmt_keys(missing)})")
        if unexpected:
            parts.append(f"{_plural(len(unexpected), 'unexpected key')} ({_fmt_keys(unexpected)})")
        if mismatched:
            parts.append(f"{_plural(len(mismatched), 'shape mismatch')} ({_fmt_keys(mismatched)})")
        raise InvalidInput(
            f"weights {display} do not fit {what} ({len(state)} tensors in the file, "
            f"{len(module.state_dict())} in the model): {'; '.join(parts)}"
        )
    bad = [k for k, v in fits.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise InvalidInput(f"weights {display} hold non-finite values (NaN or inf) in {_fmt_keys(bad)}")
    materialized = not any(t.is_meta for t in module.state_dict().values())
    if materialized:
        module.load_state_dict(fits, strict=False)
    return WeightsRecord(
        source=display,
        format=fmt,
        sha256=_sha256(path),
        path=os.fspath(path),
        tensors=len(state),
        loaded=len(fits),
        missing=len(missing),
        unexpected=len(unexpected),
        mismatched=len(mismatched),
        strict=strict,
        materialized=materialized,
        dtypes=tuple(sorted({str(v.dtype).replace("torch.", "") for v in state.values()})),
        notes=tuple(notes),
    )


def save_weights(
    module: nn.Module, path: str | os.PathLike[str], *, metadata: Mapping[str, Any] | None = None
) -> WeightsRecord:
    """Write ``module``'s state_dict to a safetensors file atomically and return its record.

    ``metadata`` (model name, data hash, accuracy...) goes into the file's header as one entry, ``deploykit``,
    holding sorted JSON: safetensors writes its metadata map in an arbitrary order, and one entry keeps the file,
    and so its sha256, the same for the same weights. Tensors that share memory are written as separate copies
    (safetensors stores no aliases).
    """
    from safetensors.torch import save

    from deploykit._io import atomic_write_bytes

    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}
    if any(v.is_meta for v in state.values()):
        raise InvalidInput("the module has no weights (built on the meta device); nothing to save")
    header = {"deploykit": json.dumps({str(k): v for k, v in (metadata or {}).items()}, sort_keys=True)} if metadata else None
    data = save(state, metadata=header)
    target = atomic_write_bytes(path, data)
    return WeightsRecord(
        source=os.fspath(target),
        format="safetensors",
        sha256=hashlib.sha256(data).hexdigest(),
        path=os.fspath(target),
        tensors=len(state),
        loaded=len(state),
        dtypes=tuple(sorted({str(v.dtype).replace("torch.", "") for v in state.values()})),
    )
