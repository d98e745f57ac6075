"""Atomic writes: the file appears whole or not at all, and an unwritable target is one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from deploykit._io import atomic_path, atomic_write_text
from deploykit.cli.app import app
from deploykit.errors import ArtifactError


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"]


def test_failure_inside_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_unwritable_target_is_an_artifact_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ArtifactError, match=r"cannot write .*file/out\.txt"):
        atomic_write_text(blocker / "out.txt", "x")


def test_cli_output_to_an_unwritable_place_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    res = CliRunner().invoke(app, ["profile", "lenet", "-o", str(blocker / "out.txt")])
    assert res.exit_code == 2
    assert "cannot write" in res.output and "Traceback" not in res.output


# ------------------------------------------------------------------------------------------ special targets
import errno  # noqa: E402
import os  # noqa: E402
import stat  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from deploykit import _io  # noqa: E402


def _mknod_null(path: Path) -> bool:
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError):
        return False
    return True


def test_character_device_is_written_through_not_replaced(tmp_path: Path) -> None:
    dev = tmp_path / "null"
    if not _mknod_null(dev):
        pytest.skip("cannot create a device node here (not root)")
    atomic_write_text(dev, "x" * 10000)
    assert stat.S_ISCHR(dev.stat().st_mode)  # still the device
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]


def test_dev_null_is_written_through() -> None:
    atomic_write_text("/dev/null", "hello")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_full_device_is_one_artifact_error() -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    with pytest.raises(ArtifactError, match="no space left"):
        atomic_write_text("/dev/full", "x")


def test_fifo_with_a_reader_is_written_through(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as f:
            got.append(f.read())

    t = threading.Thread(target=read)
    t.start()
    deadline = time.time() + 10
    while True:  # wait for the reader to open its end
        try:
            atomic_write_text(fifo, "through the pipe")
            break
        except ArtifactError as exc:
            assert "no reader" in str(exc)
            assert time.time() < deadline
            time.sleep(0.01)
    t.join(10)
    assert got == [b"through the pipe"]
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_fifo_without_a_reader_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ArtifactError, match="FIFO with no reader"):
        atomic_write_text(fifo, "x")
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_symlink_writes_its_target_atomically(tmp_path: Path) -> None:
    real = tmp_path / "real" / "a.txt"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    atomic_write_text(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "new"
    assert sorted(p.name for p in real.parent.iterdir()) == ["a.txt"]


def test_other_non_regular_targets_are_refused(tmp_path: Path) -> None:
    import socket

    sock_path = tmp_path / "s"
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(sock_path))
        with pytest.raises(ArtifactError, match="socket"):
            atomic_write_text(sock_path, "x")
    finally:
        s.close()
    with pytest.raises(ArtifactError, match="is a directory"):
        atomic_write_text(tmp_path, "x")
    with pytest.raises(ArtifactError, match="kernel file system"):
        atomic_write_text("/proc/self/comm", "x")
    with pytest.raises(ArtifactError, match="file name too long"):
        atomic_write_text(tmp_path / ("n" * 300), "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_block_device_is_refused(tmp_path: Path) -> None:
    dev = tmp_path / "blk"
    try:
        os.mknod(dev, 0o600 | stat.S_IFBLK, os.makedev(7, 0))
    except OSError:
        pytest.skip("cannot create a device node here")
    with pytest.raises(ArtifactError, match="block device"):
        atomic_write_text(dev, "x")
    assert stat.S_ISBLK(dev.stat().st_mode)


def test_long_name_near_the_limit_still_works(tmp_path: Path) -> None:
    target = tmp_path / ("n" * 250 + ".txt")  # 254 bytes: the temporary's name must not overflow
    atomic_write_text(target, "ok")
    assert target.read_text() == "ok"


def test_overwrite_keeps_permission_bits(tmp_path: Path) -> None:
    target = tmp_path / "secret.json"
    target.write_text("{}")
    os.chmod(target, 0o600)
    atomic_write_text(target, "[1]")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_text() == "[1]"
    os.chmod(target, 0o640)
    with atomic_path(target) as tmp:
        tmp.write_text("[2]")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_new_file_gets_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "new.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o644


def test_full_disk_inside_atomic_path_is_an_artifact_error(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    target.write_text("old")
    with pytest.raises(ArtifactError, match="no space left"), atomic_path(target):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_stdout_target_writes_to_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    atomic_write_text("/dev/stdout", "to stdout\n")
    assert capsysbinary.readouterr().out == b"to stdout\n"


def test_stale_temporaries_of_dead_processes_are_cleaned(tmp_path: Path) -> None:
    old_time = _io._RUN_START - 7200
    dead = tmp_path / ".resnet18.onnx.999999999.abcd1234.tmp.onnx"  # a pid that cannot be alive
    legacy = tmp_path / ".resnet18.k2j3h4g5.tmp.onnx"  # the previous naming scheme
    mine = tmp_path / f".x.txt.{os.getpid()}.abcd1234.tmp.txt"  # a live process's
    young_legacy = tmp_path / ".y.onnx.qwertyui.tmp.onnx"
    user = tmp_path / ".hidden.abcd1234.tmp"  # not ours? it matches the legacy pattern, but is recent
    keep = tmp_path / "resnet18.onnx"
    for p in (dead, legacy, mine, young_legacy, user, keep):
        p.write_text("x")
    for p in (dead, legacy, mine, keep):
        os.utime(p, (old_time, old_time))
    removed = _io.clean_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted([dead.name, legacy.name])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, young_legacy.name, user.name, keep.name])


def test_a_write_cleans_its_folder_once(tmp_path: Path) -> None:
    stale = tmp_path / ".m.onnx.999999999.abcd1234.tmp.onnx"
    stale.write_text("x" * 100)
    t = _io._RUN_START - 10
    os.utime(stale, (t, t))
    atomic_write_text(tmp_path / "out.txt", "y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_permissions_that_cannot_be_kept_are_said_in_one_line(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    os.chmod(target, 0o600)

    def refuse(path, mode, **kw):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(_io.os, "chmod", refuse)
    res = CliRunner().invoke(app, ["profile", "lenet", "-f", "csv", "-o", str(target)])
    monkeypatch.undo()
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning:") and "could not keep its permissions 0o600" in lines[0]
    assert target.read_text().startswith("layer") or target.read_text() != "old"


def test_output_folders_under_dev_are_refused_except_dev_shm() -> None:
    from deploykit._io import check_output_dir

    with pytest.raises(ArtifactError, match="under /dev"):
        check_output_dir("/dev/full/out")
    if os.path.isdir("/dev/shm"):
        assert check_output_dir("/dev/shm/deploykit-out") == Path("/dev/shm/deploykit-out")  # a tmpfs: allowed
