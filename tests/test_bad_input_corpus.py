"""A corpus of bad inputs and faults across every command (issue 14).

Each case runs the real command in-process (typer's CliRunner) in a folder holding a few files, and asserts:
the exit code (2 bad input, 3 missing GPU / backend), exactly one error line on stderr (``error: ...``, under
1000 characters, last; before it only the progress line a long command prints as it starts), no traceback, and that nothing in the folder was written, changed or destroyed (every entry's
type, mode, size and content are compared before and after; device nodes and FIFOs keep their type).

The README's exit-code table is checked against the codes used here (``test_readme_exit_codes``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from deploykit.bench.results import BenchResult, CellResult
from deploykit.bench.timing import TimingStats
from deploykit.cli.app import app

RUNNER = CliRunner()
#: Lines a command prints on stderr as it starts work ("plan: 2 cells on cpu ...", "exporting lenet ...").
PROGRESS = ("plan: ", "exporting ")
NO_CUDA = not torch.cuda.is_available()


def _results(*medians: float) -> dict:
    cells = tuple(
        CellResult("lenet", "eager", "fp32", i + 1, timing=TimingStats.from_repeats([[m]] * 5), correct=True)
        for i, m in enumerate(medians)
    )
    r = BenchResult(cells=cells, device="cpu:test", environment={}, regime={"device_type": "cpu"}, spec={},
                    created_utc="2026-12-02T00:00:00Z")
    return r.to_dict()


def _onnx_with_external_data(path: Path, location: str) -> None:
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [4], [0.0] * 4)
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", "16")):
        e = w.external_data.add()
        e.key, e.value = k, v
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w],
    )
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())


def populate(d: Path) -> None:
    """The folder every case runs in."""
    (d / "dir").mkdir()
    (d / "dir" / "keep.txt").write_text("keep")
    (d / "file.txt").write_text("do not touch")
    os.chmod(d / "file.txt", 0o600)
    (d / "good.json").write_text(json.dumps(_results(1.0, 2.0)))
    (d / "inf.json").write_text(json.dumps(_results(1.0, math.inf)))
    (d / "zero.json").write_text(json.dumps(_results(0.0, 0.0)))
    (d / "latin1.json").write_bytes(b"\xff\xfe{}")
    (d / "cells-dict.json").write_text(json.dumps({**_results(1.0), "cells": {"a": 1}}))
    (d / "deep.json").write_text("[" * 100000 + "]" * 100000)
    (d / "suite-bad.json").write_text(json.dumps({"models": "lenet"}))
    (d / "not.onnx").write_bytes(b"\x00garbage not a protobuf")
    (d / "secret").write_text("x" * 1234)
    (d / "model").mkdir()
    _onnx_with_external_data(d / "model" / "escape.onnx", "../secret")
    os.mkfifo(d / "fifo")


def snapshot(d: Path) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    for root, dirs, files in os.walk(d):
        for name in dirs + files:
            p = Path(root) / name
            st = p.lstat()
            content = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else None
            out[str(p.relative_to(d))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                          st.st_size if content else None, content)
    return out


@dataclass(frozen=True)
class Case:
    args: Callable[[Path], list[str]]
    code: int = 2
    match: str = ""
    skip: str | None = None


def _long(d: Path) -> str:
    return str(d / ("n" * 300))


CASES: dict[str, Case] = {
    # ---- output files (every -o / --out)
    "profile -o an existing directory": Case(lambda d: ["profile", "lenet", "-o", str(d / "dir")], match="is a directory"),
    "profile -o under a file": Case(lambda d: ["profile", "lenet", "-o", str(d / "file.txt" / "x.txt")]),
    "profile -o under /proc": Case(lambda d: ["profile", "lenet", "-o", "/proc/self/x.txt"], match="/proc"),
    "profile -o a name too long": Case(lambda d: ["profile", "lenet", "-o", _long(d)], match="too long"),
    "profile -o a full disk (/dev/full)": Case(lambda d: ["profile", "lenet", "-f", "json", "-o", "/dev/full"],
                                               match="no space left",
                                               skip=None if os.path.exists("/dev/full") else "no /dev/full"),
    "profile -o a FIFO without a reader": Case(lambda d: ["profile", "lenet", "-o", str(d / "fifo")], match="FIFO"),
    "compare -o an existing directory": Case(lambda d: ["compare", "lenet", "mnist1d-cnn", "-o", str(d / "dir")]),
    "check --json an existing directory": Case(
        lambda d: ["check", str(d / "good.json"), "--baseline", str(d / "good.json"), "--json", str(d / "dir")]),
    "check --markdown a name too long": Case(
        lambda d: ["check", str(d / "good.json"), "--baseline", str(d / "good.json"), "--markdown", _long(d)]),
    "bench-merge -o an existing directory": Case(lambda d: ["bench-merge", str(d / "good.json"), "-o", str(d / "dir")]),
    "bench-summary --name a path": Case(
        lambda d: ["bench-summary", str(d / "good.json"), "--out", str(d / "dir"), "--name", "../../x"],
        match="file name"),
    "bench-summary --out a file": Case(
        lambda d: ["bench-summary", str(d / "good.json"), "--out", str(d / "file.txt"), "--no-plot"]),
    "bench -o an existing directory": Case(
        lambda d: ["bench", "lenet", "--device", "cpu", "--backend", "eager", "-o", str(d / "dir")]),
    "bench --summary a file": Case(
        lambda d: ["bench", "lenet", "--device", "cpu", "--backend", "eager", "--no-save", "--summary",
                   str(d / "file.txt")]),
    "export -o a file in the way": Case(lambda d: ["export", "lenet", "-f", "onnx", "-o", str(d / "file.txt")]),
    "export -o a device": Case(lambda d: ["export", "lenet", "-f", "onnx", "-o", "/dev/null"]),
    "export -o a name too long": Case(lambda d: ["export", "lenet", "-f", "onnx", "-o", _long(d)], match="too long"),
    "export -o under /proc": Case(lambda d: ["export", "lenet", "-f", "onnx", "-o", "/proc/self/out"]),
    # ---- results files: check, bench-summary, bench-merge, bench --suite
    "check: infinite current samples": Case(
        lambda d: ["check", str(d / "inf.json"), "--baseline", str(d / "good.json")], match="lenet/eager/fp32/b2"),
    "check: zero baseline samples": Case(
        lambda d: ["check", str(d / "good.json"), "--baseline", str(d / "zero.json")], match="unusable"),
    "check: not UTF-8": Case(lambda d: ["check", str(d / "latin1.json"), "--baseline", str(d / "good.json")],
                             match="UTF-8"),
    "check: cells not a list": Case(lambda d: ["check", str(d / "cells-dict.json"), "--baseline", str(d / "good.json")]),
    "check: deeply nested JSON": Case(lambda d: ["check", str(d / "deep.json"), "--baseline", str(d / "good.json")]),
    "check: missing file": Case(lambda d: ["check", str(d / "nope.json"), "--baseline", str(d / "good.json")]),
    "check: bad tolerance": Case(
        lambda d: ["check", str(d / "good.json"), "--baseline", str(d / "good.json"), "--tolerance", "abc"]),
    "bench-summary: not UTF-8": Case(lambda d: ["bench-summary", str(d / "latin1.json"), "--out", str(d / "dir")]),
    "bench-merge: deeply nested": Case(
        lambda d: ["bench-merge", str(d / "good.json"), str(d / "deep.json"), "-o", str(d / "m.json")]),
    "bench --suite: not UTF-8": Case(lambda d: ["bench", "--suite", str(d / "latin1.json"), "--no-save"]),
    "bench --suite: models not a list": Case(lambda d: ["bench", "--suite", str(d / "suite-bad.json"), "--no-save"]),
    # ---- models that do not work
    "bench: forward raises": Case(lambda d: ["bench", "fakes.bad_models:Raises", "--input-shape", "4", "--device",
                                             "cpu", "--backend", "eager", "--no-save"], match="boom"),
    "bench: forward needs two inputs": Case(
        lambda d: ["bench", "fakes.bad_models:TwoInputs", "--input-shape", "4", "--device", "cpu", "--backend",
                   "eager", "--no-save"]),
    "bench: forward returns None": Case(
        lambda d: ["bench", "fakes.bad_models:ReturnsNone", "--input-shape", "4", "--device", "cpu", "--backend",
                   "eager", "--no-save"], match="not a tensor"),
    "profile --memory: no parameters": Case(
        lambda d: ["profile", "fakes.bad_models:NoParams", "--input-shape", "4", "--memory"], match="no parameters"),
    "profile: unknown model": Case(lambda d: ["profile", "lenett"], match="lenet"),
    "profile: 100 KB model name": Case(lambda d: ["profile", "x" * 100_000], match="100000 characters"),
    "export: 100 KB model name": Case(lambda d: ["export", "x" * 100_000], match="100000 characters"),
    # ---- options out of range
    "profile --depth -1": Case(lambda d: ["profile", "lenet", "--depth", "-1"]),
    "profile --top -3": Case(lambda d: ["profile", "lenet", "--top", "-3"]),
    "profile --trace-device foo": Case(lambda d: ["profile", "lenet", "--trace-device", "foo"]),
    "profile --peak-tflops 0 --bandwidth-gbs 0": Case(
        lambda d: ["profile", "lenet", "--peak-tflops", "0", "--bandwidth-gbs", "0"]),
    "profile --peak-tflops nan": Case(lambda d: ["profile", "lenet", "--peak-tflops", "nan", "--bandwidth-gbs", "100"]),
    "profile -b 1,,64": Case(lambda d: ["profile", "lenet", "-b", "1,,64"], match="empty item"),
    "profile -b 0": Case(lambda d: ["profile", "lenet", "-b", "0"]),
    "compare with one model": Case(lambda d: ["compare", "lenet"], match="two or more"),
    "compare --top -3": Case(lambda d: ["compare", "lenet", "mnist1d-cnn", "--top", "-3"]),
    "export -b 0": Case(lambda d: ["export", "lenet", "-b", "0", "-o", str(d / "out")]),
    "export --fp16 --bf16": Case(lambda d: ["export", "lenet", "--fp16", "--bf16", "-o", str(d / "out")]),
    "export --format foo": Case(lambda d: ["export", "lenet", "--format", "foo", "-o", str(d / "out")]),
    "bench --batch 1,,64": Case(lambda d: ["bench", "lenet", "--device", "cpu", "--batch", "1,,64", "--no-save"]),
    # ---- ONNX files
    "profile: not an ONNX file": Case(lambda d: ["profile", str(d / "not.onnx")]),
    "profile: missing ONNX file": Case(lambda d: ["profile", str(d / "missing.onnx")]),
    "profile: external data outside the folder": Case(
        lambda d: ["profile", str(d / "model" / "escape.onnx")], match="points outside"),
    # ---- command-line usage errors: one line naming the command's --help, not typer's box
    "profile: missing MODEL argument": Case(lambda d: ["profile"], match="Missing argument"),
    "profile: unknown option": Case(lambda d: ["profile", "lenet", "--bogus"], match="No such option: --bogus"),
    "export: an option without its value": Case(lambda d: ["export", "lenet", "-o"], match="requires an argument"),
    "bench: a value of the wrong type": Case(lambda d: ["bench", "lenet", "--repeats", "many"], match="Invalid value for '--repeats'"),
    "unknown command": Case(lambda d: ["profiel", "lenet"], match="No such command"),
    # ---- a missing GPU is exit 3
    "profile --trace-device cuda without a GPU": Case(
        lambda d: ["profile", "lenet", "--trace-device", "cuda"], code=3, skip=None if NO_CUDA else "has a GPU"),
    "export --device cuda without a GPU": Case(
        lambda d: ["export", "lenet", "--device", "cuda", "-o", str(d / "out")], code=3,
        skip=None if NO_CUDA else "has a GPU"),
    "bench --device cuda without a GPU": Case(
        lambda d: ["bench", "lenet", "--device", "cuda", "--no-save"], code=3, skip=None if NO_CUDA else "has a GPU"),
}


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case = CASES[name]
    if case.skip:
        pytest.skip(case.skip)
    monkeypatch.chdir(tmp_path)  # default output folders would land here, and be seen
    monkeypatch.setenv("DEPLOYKIT_CACHE_DIR", str(tmp_path / "cache"))
    populate(tmp_path)
    before = snapshot(tmp_path)
    res = RUNNER.invoke(app, case.args(tmp_path))
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.exit_code == case.code, (res.exit_code, res.stderr[-2000:])
    # one error line, last; before it at most the progress lines a long command prints as it starts
    errors = [line for line in lines if not line.startswith(PROGRESS)]
    assert len(errors) == 1 and errors[0] == lines[-1], res.stderr[-2000:]
    assert lines[-1].startswith("error:") and len(lines[-1]) < 1000, lines[-1][:300]
    assert case.match in lines[-1], lines[-1][:300]
    after = {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("cache")}
    assert after == before  # nothing written, changed or destroyed


def test_external_data_message_reveals_nothing_about_the_target(tmp_path: Path) -> None:
    populate(tmp_path)
    res = RUNNER.invoke(app, ["profile", str(tmp_path / "model" / "escape.onnx")])
    assert res.exit_code == 2 and "1234" not in res.stderr


def test_readme_exit_codes() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for code in sorted({c.code for c in CASES.values()} | {0, 1}):
        assert f"| {code} |" in readme, f"README's exit-code table has no row for {code}"
