"""The ``deploykit`` command: a typer app whose commands live one group per module in this package.

Each command module exposes ``register(app)``; heavy imports (torch, onnx, ...) happen inside command bodies so
that ``deploykit --help`` stays instant.
"""

from __future__ import annotations

import typer

from deploykit.cli import bench as _bench
from deploykit.cli import check as _check
from deploykit.cli import compare as _compare
from deploykit.cli import evaluate as _evaluate
from deploykit.cli import export as _export
from deploykit.cli import models as _models
from deploykit.cli import profile as _profile
from deploykit.cli import train as _train

app = typer.Typer(
    name="deploykit",
    help="Take CNNs from PyTorch to deployment and tell the truth about what they cost.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

_COMMAND_MODULES: tuple = (_models, _profile, _compare, _export, _bench, _check, _train, _evaluate)

for _module in _COMMAND_MODULES:
    _module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
