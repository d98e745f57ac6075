"""Every command-line option a message or help text names exists: the strings in deploykit's source are scanned
for ``--option`` tokens and each is looked up among the options of every ``deploykit`` command."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import typer

import deploykit
from deploykit.cli.app import app

#: ``--flags`` of other programs that deploykit runs or quotes, each with the program it belongs to.
OTHER_PROGRAMS = {"--query-gpu": "nvidia-smi", "--id": "nvidia-smi"}

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _options() -> set[str]:
    group = typer.main.get_command(app)
    found = {"--help"}
    for command in (group, *group.commands.values()):  # type: ignore[attr-defined]
        for param in command.params:
            found.update(o for o in (*param.opts, *param.secondary_opts) if o.startswith("--"))
    return found


def _strings(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append((node.lineno, node.value))
    return out


def test_every_option_named_in_the_source_exists() -> None:
    options = _options()
    root = Path(deploykit.__file__).parent
    unknown = []
    for path in sorted(root.rglob("*.py")):
        for line, text in _strings(path):
            for flag in FLAG.findall(text):
                if flag not in options and flag not in OTHER_PROGRAMS:
                    unknown.append(f"{path.relative_to(root)}:{line}: {flag}")
    assert unknown == []


def test_the_scan_sees_options_and_would_catch_a_wrong_one() -> None:
    options = _options()
    assert {"--trace-device", "--input-dtype", "--input-range", "--convention", "--device"} <= options
    assert FLAG.findall("profile it with --device cpu or --trace-device cpu") == ["--device", "--trace-device"]
    assert "--no-such-option" not in options
