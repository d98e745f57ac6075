"""Atomic file writes: every artifact is written to a temporary file in the target folder, then renamed.

A crash or an exception in the middle leaves the old file (or no file), never a half-written one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from deploykit.errors import ArtifactError, first_line


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``, on error delete it.

    For writers that insist on a file name (``torch.onnx.export``, ``savefig``)::

        with atomic_path("out/model.onnx") as tmp:
            torch.onnx.export(model, (x,), tmp)
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix, dir=target.parent)
    except OSError as exc:  # an unwritable folder, a file where a folder should be, a full disk: one clear line
        raise ArtifactError(f"cannot write {target}: {first_line(exc)}") from None
    os.close(fd)
    # mkstemp creates 0600; give the artifact the permissions a plain open() would (0666 minus umask)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_name, 0o666 & ~umask)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path (:class:`ArtifactError` when it cannot be
    written; the old file, if any, is left as it was)."""
    with atomic_path(path) as tmp:
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise ArtifactError(f"cannot write {path}: {first_line(exc)}") from None
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON (trailing newline) to ``path`` atomically and return the path."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
