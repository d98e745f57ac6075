"""Every ``deploykit …`` command in a fenced bash block of README.md runs as written and exits as documented.

Commands the README says exit non-zero (a validation that fails, ``--strict`` on an inconclusive one) are
listed in ``EXITS`` with their code. Each command runs in a fresh folder (through typer's CliRunner, in this process), after the README commands
that make the files it reads (``PREREQUISITES``). A command that needs a CUDA GPU or TensorRT must exit 3 with
one line where they are missing (this is what a newcomer without them sees); where they are present the test
says it is not run here (the ``gpu`` / ``trt`` tests and benchmarks/ cover them). ``CHEAPER`` lists the few
commands run with options appended that only make them shorter (fewer epochs), each with its reason; nothing
else is changed. A command added to the README is picked up automatically; an entry below that no longer
matches a README command fails ``test_tables_name_only_readme_commands``.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from deploykit.cli.app import app

HAS_CUDA = torch.cuda.is_available()
HAS_TRT = importlib.util.find_spec("tensorrt") is not None

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def readme_commands(text: str | None = None) -> list[str]:
    """The ``deploykit …`` lines of the README's fenced bash blocks, comments removed, in order, once each."""
    text = README.read_text(encoding="utf-8") if text is None else text
    out: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            if line.startswith("deploykit "):
                cmd = shlex.join(shlex.split(line, comments=True))
                if cmd not in out:
                    out.append(cmd)
    return out


#: Commands that need hardware or packages a CPU-only machine lacks: (what, needs CUDA, needs TensorRT).
NEEDS = {
    "deploykit profile resnet18 --measure": (True, False),
    "deploykit profile resnet18 --engine deploykit-out/resnet18-fp16-dynamic.engine": (True, True),
    "deploykit export resnet18 --fp16 --format onnx,trt --max-batch 64": (True, True),
    "deploykit bench resnet18 resnet50 --device cuda --backend eager,cuda-graph,compile,ort,trt --precision fp16 "
    "--batch 1,64": (True, False),
    "deploykit bench --suite benchmarks/suites/gpu-zoo.json": (True, False),
}

TRAIN_QUICK = "deploykit train mnist1d-cnn --data mnist1d -o w.safetensors --epochs 2"
#: The README's weights as trained there (200 epochs): the INT8 export's accuracy gate (1 point) is about them;
#: a 2-epoch model is far from converged and its INT8 drop is not what the README documents.
TRAIN_FULL = "deploykit train mnist1d-cnn --data mnist1d -o w.safetensors --epochs 200"
#: Commands whose input files other README commands make: those (or a shorter run of them) go first.
PREREQUISITES = {
    "deploykit export mnist1d-cnn --weights w.safetensors --int8 --calib-data mnist1d": [TRAIN_FULL],
    "deploykit profile deploykit-out/resnet18-fp16.onnx": ["deploykit export resnet18 --fp16"],
    "deploykit evaluate mnist1d-cnn --weights w.safetensors --data mnist1d": [TRAIN_QUICK],
    "deploykit export mnist1d-cnn --weights w.safetensors --data mnist1d": [TRAIN_QUICK],
    "deploykit profile mnist1d-cnn --weights w.safetensors -f json -o m1d.json": [TRAIN_QUICK],
    "deploykit evaluate mnist1d-cnn -w w.safetensors -d mnist1d --precision fp16 --min-agreement 99.5": [TRAIN_QUICK],
    "deploykit evaluate mnist1d-cnn -w w.safetensors -d mnist1d --onnx-dir onnx/": [TRAIN_QUICK],
    "deploykit evaluate onnx/mnist1d-cnn-dynamic.onnx --weights w.safetensors --data mnist1d -f json": [
        TRAIN_QUICK, "deploykit evaluate mnist1d-cnn -w w.safetensors -d mnist1d --onnx-dir onnx/"],
    "deploykit check head.json --baseline base.json --tolerance 25%": [
        "deploykit bench lenet mnist1d-cnn --device cpu --threads 1 -o base.json",
        "deploykit bench lenet mnist1d-cnn --device cpu --threads 1 -o head.json"],
    "deploykit evaluate lenet --weights lenet.safetensors --data digits -f markdown -o lenet-accuracy.md": [
        "deploykit train lenet --data digits --epochs 3 --lr 0.001 --batch-size 64 -o lenet.safetensors"],
}

#: Commands the README documents as exiting non-zero (a check that finds a problem), with their exit code.
EXITS = {
    "deploykit export torchvision.models:efficientnet_b0 --input-shape 3x224x224 --fp16": 1,  # validation failed
    "deploykit export resnet18 --fp16 --strict": 1,  # inconclusive validation under --strict
}

#: Exit codes other than 0 that are a correct outcome, with the reason.
OTHER_EXITS = {
    "deploykit check head.json --baseline base.json --tolerance 25%": (
        {1}, "two runs on a loaded test machine can differ beyond the threshold: a regression verdict is output "
        "too (the test checks that a verdict was printed)"),
}

#: Options appended only to make a command shorter, with the reason.
CHEAPER = {
    "deploykit bench resnet18 --device cpu": (
        ["--warmup-seconds", "3", "--cell-seconds", "3"],
        "the same cells, defaults and output with shorter time budgets (~2 min as written on 2 loaded cores)"),
    "deploykit train mnist1d-cnn --data mnist1d -o w.safetensors": (
        ["--epochs", "5"], "200 epochs take ~40 s on one core; the loop, output and file are the same"),
    "deploykit train lenet --data digits --epochs 30 --lr 0.001 --batch-size 64 -o lenet.safetensors": (
        ["--epochs", "3"], "the epochs only repeat"),
    "deploykit bench lenet mnist1d-cnn --device cpu --threads 1 -o base.json": (
        ["--iterations", "10", "--warmup-seconds", "2"], "fewer samples per repeat: the same cells, repeats, files"),
    "deploykit bench lenet mnist1d-cnn --device cpu --threads 1 -o head.json": (
        ["--iterations", "10", "--warmup-seconds", "2"], "fewer samples per repeat: the same cells, repeats, files"),
}

#: Commands that took more than ~15 s on two shared, loaded cores (measured with --durations; still in the default
#: suite, -m "not slow" skips them). Most of it is exporting and validating ONNX files.
SLOW = {
    "deploykit export mnist1d-cnn --weights w.safetensors --int8 --calib-data mnist1d",
    "deploykit bench resnet18 --device cpu",
    "deploykit bench lenet mnist1d-cnn --device cpu --threads 1 -o base.json",
    "deploykit bench lenet mnist1d-cnn --device cpu --threads 1 -o head.json",
    "deploykit check head.json --baseline base.json --tolerance 25%",
    "deploykit export nin",
    "deploykit export torchvision.models:efficientnet_b0 --input-shape 3x224x224 --fp16",
    "deploykit export resnet18 --fp16 --strict",
    "deploykit export resnet18 --fp16",
    "deploykit export resnet18 --dynamic-batch --opset 18 --out models/",
    "deploykit export resnet18 --fp16 --format onnx,trt --max-batch 64",
    "deploykit profile deploykit-out/resnet18-fp16.onnx",
    "deploykit compare nin vgg11 vgg16 -b 64 --plot figs/",
    "deploykit compare nin vgg16 -f json -o cmp.json",
    "deploykit train mnist1d-cnn --data mnist1d -o w.safetensors",
    "deploykit evaluate mnist1d-cnn --weights w.safetensors --data mnist1d",
    "deploykit evaluate mnist1d-cnn -w w.safetensors -d mnist1d --onnx-dir onnx/",
    "deploykit evaluate onnx/mnist1d-cnn-dynamic.onnx --weights w.safetensors --data mnist1d -f json",
    "deploykit evaluate lenet --weights lenet.safetensors --data digits -f markdown -o lenet-accuracy.md",
}

MYPKG = '''import torch.nn as nn


class Net(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 10))
'''


def _setup_folder(folder: Path) -> None:
    """What the README assumes is in the current folder: the suites of this repository, a user module."""
    (folder / "benchmarks" / "suites").mkdir(parents=True)
    for suite in (ROOT / "benchmarks" / "suites").glob("*.json"):
        (folder / "benchmarks" / "suites" / suite.name).write_text(suite.read_text())
    (folder / "mypkg").mkdir()
    (folder / "mypkg" / "__init__.py").write_text("")
    (folder / "mypkg" / "nets.py").write_text(MYPKG)


def _run(cmd: str, extra: list[str] | None = None):
    args = shlex.split(cmd)[1:] + (extra or [])
    return CliRunner().invoke(app, args)


def _params() -> list:
    out = []
    for cmd in readme_commands():
        marks = [pytest.mark.slow] if cmd in SLOW else []
        out.append(pytest.param(cmd, marks=marks, id=cmd.removeprefix("deploykit ")[:70]))
    return out


@pytest.mark.parametrize("cmd", _params())
def test_readme_command_runs_as_written(cmd: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    needs_cuda, needs_trt = NEEDS.get(cmd, (False, False))
    missing = (needs_cuda and not HAS_CUDA) or (needs_trt and not HAS_TRT)
    if (needs_cuda or needs_trt) and not missing:
        pytest.skip("needs the GPU / TensorRT present here: run by the gpu / trt tests and benchmarks/, not here")
    _setup_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # `python -m deploykit` has the current folder on sys.path
    for pre in PREREQUISITES.get(cmd, []):
        res = _run(pre, CHEAPER.get(pre, ([], ""))[0])
        assert res.exit_code == 0, f"prerequisite {pre!r} failed:\n{res.output}"
    res = _run(cmd, CHEAPER.get(cmd, ([], ""))[0])
    expected = {3} if missing else {EXITS.get(cmd, 0)} | OTHER_EXITS.get(cmd, (set(), ""))[0]
    assert res.exit_code in expected, f"{cmd!r} exited {res.exit_code}, expected {expected}:\n{res.output}"
    if cmd.startswith("deploykit check"):
        assert "PASS:" in res.output or "FAIL:" in res.output
    assert "Traceback" not in res.output
    if missing:
        errors = [line for line in res.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, res.output


def test_tables_name_only_readme_commands() -> None:
    cmds = set(readme_commands())
    listed = set(NEEDS) | set(PREREQUISITES) | set(CHEAPER) | SLOW | set(EXITS) | set(OTHER_EXITS)
    listed |= {p for pres in PREREQUISITES.values() for p in pres if p in cmds}
    assert listed <= cmds, f"not README commands (any more): {sorted(listed - cmds)}"
    assert len(cmds) >= 25


def test_command_extraction() -> None:
    text = "x\n```bash\ndeploykit list 'd2l-*'   # the book's\nls\n```\n```\ndeploykit not-bash\n```\n"
    assert readme_commands(text) == ["deploykit list 'd2l-*'"]
