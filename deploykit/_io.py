"""Output files: atomic writes that never destroy what is at the target, and artifact pairs that are never torn.

What an output path may be, and what happens:

- absent, or a regular file: written to a temporary file in the same folder, then renamed onto the name. A
  crash or an exception in the middle leaves the old file (or no file), never a half-written one. Overwriting
  keeps the old file's permission bits (and, as root, its owner); a new file gets ``0666`` minus the umask.
- a symbolic link: its target is written, atomically; the link stays a link.
- ``/dev/stdout``, ``/dev/stderr`` (``/dev/fd/1``, ``/dev/fd/2``): the bytes go to that stream.
- ``/dev/null``, ``/dev/full``, ``/dev/zero`` and terminals (character devices) and FIFOs: written through,
  never renamed over (a FIFO with no reader is refused rather than waited on).
- anything else (a directory, a block device, a socket, other character devices, a path under ``/proc`` or
  ``/sys``, a name longer than the file system allows): :class:`ArtifactError`, one line, nothing touched.

Temporary files are named ``.<name>.<pid>.<random>.tmp<suffix>``; ones left by a killed deploykit process (its
pid gone, older than this run) are removed by the next write into that folder.

An artifact and its manifest (``model.onnx`` + ``model.onnx.json``, an engine + its manifest) are one thing:
:func:`commit_pair` swaps a new pair in so that every crash point leaves the complete old pair or the complete
new pair (see there), under a lock on the folder that serialises writers; :func:`check_pair` is what loaders use.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from deploykit.errors import ArtifactError, first_line

__all__ = [
    "OutputWarning",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "check_output_dir",
    "check_output_file",
    "check_pair",
    "clean_stale_temporaries",
    "commit_pair",
    "folder_lock",
    "inside",
    "is_stream_target",
    "make_temporary",
    "sha256_file",
]

#: When this process started writing: temporaries older than this from dead processes are stale.
_RUN_START = time.time()
#: Temporaries of the old naming scheme (no pid) are removed only when older than this many seconds.
_LEGACY_STALE_S = 3600.0
_NAME_MAX = 255
_TMP_RE = re.compile(r"^\.(?P<base>.+)\.(?P<pid>\d+)\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9_-]{1,16})?$")
_LEGACY_TMP_RE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9_-]{1,16})?$")
_cleaned: set[str] = set()

_STREAMS = {"/dev/stdout": 1, "/dev/fd/1": 1, "/proc/self/fd/1": 1,
            "/dev/stderr": 2, "/dev/fd/2": 2, "/proc/self/fd/2": 2}
# Character devices written through: /dev/null (1,3), /dev/zero (1,5), /dev/full (1,7), terminals (4, 5, 136-143).
_CHAR_DEVICES_OK = {(1, 3), (1, 5), (1, 7)}
_TTY_MAJORS = {4, 5, *range(136, 144)}


class OutputWarning(UserWarning):
    """Something about an output file worth one line (permission bits that could not be kept)."""


def _cannot(path: str | os.PathLike[str], why: str) -> ArtifactError:
    return ArtifactError(f"cannot write {_short(os.fspath(path))}: {why}")


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    if exc.errno == errno.ENAMETOOLONG:
        return "file name too long"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno == errno.EISDIR:
        return "it is a directory"
    return first_line(exc)


def is_stream_target(path: str | os.PathLike[str]) -> bool:
    """True for ``/dev/stdout`` / ``/dev/stderr`` (and their ``/dev/fd`` names): nothing to announce as written."""
    return os.fspath(path) in _STREAMS


def _classify(path: str | os.PathLike[str]) -> tuple[str, Path]:
    """``("stream", p)``, ``("through", real path)`` or ``("atomic", real path)``; raises for anything refused."""
    text = os.fspath(path)
    if text in _STREAMS:
        return "stream", Path(text)
    if not text:
        raise ArtifactError("cannot write to an empty path")
    p = Path(text)
    for part in p.parts:
        if len(os.fsencode(part)) > _NAME_MAX:
            shown = part if len(part) <= 40 else part[:37] + "..."
            raise _cannot(text, f"file name too long ({len(os.fsencode(part))} bytes, at most {_NAME_MAX}: {shown})")
    real = Path(os.path.realpath(p))
    for kernel_fs in ("/proc", "/sys"):
        if real == Path(kernel_fs) or Path(kernel_fs) in real.parents:
            raise _cannot(text, f"{real} is under {kernel_fs}, a kernel file system, not a place for output files")
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return "atomic", real
    except OSError as exc:
        raise _cannot(text, _os_reason(exc)) from None
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return "atomic", real
    if stat.S_ISDIR(mode):
        raise _cannot(text, "it is a directory (give a file name)")
    if stat.S_ISFIFO(mode):
        return "through", real
    if stat.S_ISCHR(mode):
        dev = (os.major(st.st_rdev), os.minor(st.st_rdev))
        if dev in _CHAR_DEVICES_OK or dev[0] in _TTY_MAJORS:
            return "through", real
        raise _cannot(text, f"it is a character device {dev[0]},{dev[1]} (only /dev/null, terminals and FIFOs are "
                      "written through)")
    kind = "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file"
    raise _cannot(text, f"it is {kind}")


def check_output_file(path: str | os.PathLike[str]) -> None:
    """Refuse (:class:`ArtifactError`, one line) an output file path that could not be written (see the module
    docstring); writes nothing. For commands that write their file only after long work."""
    kind, real = _classify(path)
    if kind == "atomic":
        check_output_dir(real.parent)


def check_output_dir(folder: str | os.PathLike[str]) -> Path:
    """Refuse (:class:`ArtifactError`, one line) an output folder that cannot be one: a file in the way, a name
    too long, a place under ``/proc`` or ``/sys``. Creates nothing; returns the folder's path."""
    text = os.fspath(folder)
    p = Path(text)
    for part in p.parts:
        if len(os.fsencode(part)) > _NAME_MAX:
            raise ArtifactError(f"cannot write into {_short(text)}: file name too long ({len(os.fsencode(part))} "
                                f"bytes, at most {_NAME_MAX})")
    real = Path(os.path.realpath(p))
    for kernel_fs in ("/proc", "/sys", "/dev"):
        if kernel_fs == "/dev" and (real == Path("/dev/shm") or Path("/dev/shm") in real.parents):
            continue  # a tmpfs for files, unlike the rest of /dev
        if real == Path(kernel_fs) or Path(kernel_fs) in real.parents:
            raise ArtifactError(f"cannot write into {_short(text)}: {real} is under {kernel_fs}, not a place for "
                                "output files")
    probe = real
    while True:  # the first part that exists must be a folder
        try:
            st = os.stat(probe)
        except FileNotFoundError:
            probe = probe.parent
            continue
        except OSError as exc:
            raise ArtifactError(f"cannot write into {_short(text)}: {_os_reason(exc)}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise ArtifactError(f"cannot write into {_short(text)}: {probe} is not a directory")
        return p


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _open_through(real: Path, shown: str) -> int:
    """An fd open for writing on a FIFO or character device (a FIFO without a reader is refused, not waited on)."""
    try:
        fd = os.open(real, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise _cannot(shown, "it is a FIFO with no reader") from None
        raise _cannot(shown, _os_reason(exc)) from None
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
    return fd


def _write_fd(fd: int, data: bytes, shown: str) -> None:
    view = memoryview(data)
    try:
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except OSError as exc:
        raise _cannot(shown, _os_reason(exc)) from None


def _write_stream(number: int, data: bytes) -> None:
    stream = sys.stdout if number == 1 else sys.stderr
    stream.flush()
    buf = getattr(stream, "buffer", None)
    if buf is not None:
        buf.write(data)
        buf.flush()
    else:
        stream.write(data.decode("utf-8", "replace"))
        stream.flush()


def clean_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove deploykit temporaries in ``folder`` left by killed processes; return what was removed.

    Only names of deploykit's own pattern (``.<name>.<pid>.<random>.tmp[.<ext>]``) whose process is gone and
    whose file is older than this run, and the previous pattern (no pid) when older than an hour.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for e in entries:
        if not e.name.startswith("."):
            continue
        m = _TMP_RE.match(e.name)
        legacy = m is None and _LEGACY_TMP_RE.match(e.name) is not None
        if m is None and not legacy:
            continue
        try:
            st = e.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_mtime >= _RUN_START:
            continue
        if m is not None:
            pid = int(m.group("pid"))
            if pid == os.getpid() or _alive(pid):
                continue
        elif now - st.st_mtime < _LEGACY_STALE_S:
            continue
        with contextlib.suppress(OSError):
            os.unlink(e.path)
            removed.append(Path(e.path))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def make_temporary(target: str | os.PathLike[str], suffix: str | None = None) -> Path:
    """Create an empty temporary file next to ``target`` (``.<name>.<pid>.<random>.tmp<suffix>``, mode 0600) and
    return its path; stale temporaries in that folder are cleaned first. :class:`ArtifactError` when the folder
    cannot be created or written."""
    t = Path(target)
    suffix = t.suffix if suffix is None else suffix
    if not re.fullmatch(r"(\.[A-Za-z0-9_-]{1,16})?", suffix):
        suffix = ""
    try:
        t.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cannot(t, _os_reason(exc)) from None
    key = os.path.abspath(t.parent)
    if key not in _cleaned:
        _cleaned.add(key)
        clean_stale_temporaries(t.parent)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{t.name[:100]}.{os.getpid()}.", suffix=".tmp" + suffix, dir=t.parent)
    except OSError as exc:
        raise _cannot(t, _os_reason(exc)) from None
    os.close(fd)
    return Path(name)


def _mode_for(tmp: Path, real: Path) -> None:
    """Give ``tmp`` the mode (and, as root, owner) of the file it replaces, else 0666 minus the umask."""
    try:
        st: os.stat_result | None = os.stat(real)
    except OSError:
        st = None
    if st is None:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    else:
        mode = stat.S_IMODE(st.st_mode)
    try:
        os.chmod(tmp, mode)
        if st is not None and os.geteuid() == 0 and (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
            os.chown(tmp, st.st_uid, st.st_gid)
    except OSError as exc:
        warnings.warn(
            f"{real}: could not keep its permissions {oct(mode)} ({first_line(exc)})", OutputWarning, stacklevel=3
        )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path; on success it becomes ``path`` (see the module docstring), on error it is deleted.

    For writers that insist on a file name (``torch.onnx.export``, ``savefig``)::

        with atomic_path("out/model.onnx") as tmp:
            torch.onnx.export(model, (x,), tmp)

    An ``OSError`` inside (a full disk) becomes :class:`ArtifactError`, and the old file is left as it was.
    """
    kind, real = _classify(path)
    shown = os.fspath(path)
    if kind == "atomic":
        tmp = make_temporary(real)
        _mode_for(tmp, real)
    else:  # the writer writes a scratch file, which is then copied through to the stream / device / FIFO
        fd, name = tempfile.mkstemp(prefix=".deploykit-", suffix=real.suffix if kind == "through" else "")
        os.close(fd)
        tmp = Path(name)
    try:
        try:
            yield tmp
        except OSError as exc:
            raise _cannot(shown, _os_reason(exc)) from None
        if kind == "atomic":
            try:
                os.replace(tmp, real)
            except OSError as exc:
                raise _cannot(shown, _os_reason(exc)) from None
        elif kind == "stream":
            _write_stream(_STREAMS[shown], tmp.read_bytes())
        else:
            fd = _open_through(real, shown)
            try:
                with open(tmp, "rb") as src:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        _write_fd(fd, block, shown)
            finally:
                os.close(fd)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` (atomically for a regular file) and return the path (:class:`ArtifactError`
    when it cannot be written; the old file, if any, is left as it was)."""
    kind, real = _classify(path)
    shown = os.fspath(path)
    if kind == "stream":
        _write_stream(_STREAMS[shown], data)
        return Path(path)
    if kind == "through":
        fd = _open_through(real, shown)
        try:
            _write_fd(fd, data, shown)
        finally:
            os.close(fd)
        return Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON (trailing newline) to ``path`` atomically and return the path."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


# ---------------------------------------------------------------------------------------------- artifact pairs
def read_manifest(path: Path, schema: str, max_version: int, kind: str) -> dict[str, Any]:
    """The JSON manifest at ``path``, checked to be a ``schema`` document of a schema version this deploykit
    reads (at most ``max_version``); one :class:`ArtifactError` line otherwise (unreadable, not JSON, nested too
    deeply, another schema, a newer version). ``kind`` names the artifact in the messages ("ONNX", "TensorRT
    engine")."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise ArtifactError(f"cannot read {kind} manifest {path}: {first_line(exc)}") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != schema:
        raise ArtifactError(f"{path} is not a deploykit {kind} manifest")
    version = manifest.get("schema_version")
    if not isinstance(version, int) or version > max_version:
        raise ArtifactError(
            f"{path} has manifest schema version {version!r}; this deploykit reads up to {max_version}"
        )
    return manifest


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], *, shared: bool = False) -> Iterator[None]:
    """Hold an advisory ``flock`` on ``folder`` itself (exclusive for writers, shared for readers).

    The lock is on the directory, so no lock file is left behind; a folder that cannot be opened is not locked.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


#: Called between the steps of :func:`commit_pair` with the step's name; tests replace it to inject a crash.
_pair_step: Callable[[str], None] = lambda step: None  # noqa: E731

PREVIOUS_KEY = "superseded_pair"


def _matches(file: Path, manifest: Any, sha_key: str, size_key: str) -> bool:
    if not isinstance(manifest, dict):
        return False
    try:
        if file.stat().st_size != manifest.get(size_key):
            return False
        return sha256_file(file) == manifest.get(sha_key)
    except OSError:
        return False


def check_pair(file: Path, manifest: dict[str, Any], *, sha_key: str, size_key: str) -> dict[str, Any] | None:
    """The manifest (``manifest`` itself, or the superseded one it carries during a swap) whose size and sha256
    match ``file``; ``None`` when neither does."""
    current = {k: v for k, v in manifest.items() if k != PREVIOUS_KEY}
    if _matches(file, current, sha_key, size_key):
        return current
    previous = manifest.get(PREVIOUS_KEY)
    if isinstance(previous, dict) and _matches(file, previous, sha_key, size_key):
        return previous
    return None


def write_temporary(tmp: Path, data: bytes, final: Path) -> None:
    """Write ``data`` into the temporary file ``tmp`` and fsync it, before :func:`commit_pair` swaps it in as
    ``final``; a failure (a full disk) is one :class:`ArtifactError` line naming ``final``."""
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise ArtifactError(f"cannot write {final}: {first_line(exc)}") from None


def commit_pair(
    tmp_file: Path, final: Path, manifest_path: Path, manifest: dict[str, Any], *, sha_key: str, size_key: str
) -> None:
    """Swap a new artifact (already complete in ``tmp_file``, same folder) and its manifest in as one artifact.

    Under an exclusive :func:`folder_lock`:

    1. the old manifest is replaced (atomically) by the new one carrying the old one under ``superseded_pair``:
       the old file still matches it (the old pair), and so will the new file;
    2. the new file is renamed onto ``final``: the new pair;
    3. the manifest is rewritten without the superseded one (if this fails the pair is still complete).

    A crash before 1 leaves the old pair, between 1 and 2 the old pair, after 2 the new pair; :func:`check_pair`
    picks the manifest that matches the file, by size and sha256. A failure before 2 (a full disk) leaves the old
    pair and raises :class:`ArtifactError`.
    """
    folder = final.parent
    with folder_lock(folder):
        old: dict[str, Any] | None = None
        if manifest_path.is_file() and final.is_file():
            with contextlib.suppress(OSError, ValueError):
                raw = json.loads(manifest_path.read_text(encoding="utf-8"))
                if isinstance(raw, dict):
                    old = check_pair(final, raw, sha_key=sha_key, size_key=size_key)
        _pair_step("before-manifest")
        atomic_write_json(manifest_path, {**manifest, PREVIOUS_KEY: old} if old is not None else manifest)
        _pair_step("before-rename")
        try:
            os.replace(tmp_file, final)
        except OSError as exc:
            raise _cannot(final, _os_reason(exc)) from None
        _pair_step("after-rename")
        if old is not None:
            with contextlib.suppress(ArtifactError):
                atomic_write_json(manifest_path, manifest)
        _pair_step("done")


def inside(base: str | os.PathLike[str], location: str) -> Path | None:
    """``base / location`` resolved, when it stays inside ``base`` (an ONNX external-data location, say);
    ``None`` for an absolute location or one that climbs out with ``..`` or through a symlink."""
    if not location or os.path.isabs(location):
        return None
    root = Path(os.path.realpath(base))
    target = Path(os.path.realpath(root / location))
    return target if root in target.parents else None


def copy_file(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Copy ``src`` to ``dst`` atomically (see :func:`atomic_path`)."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)
