"""The ``deploykit`` command: a typer app whose commands live one group per module in this package.

Each command module exposes ``register(app)``; heavy imports (torch, onnx, ...) happen inside command bodies so
that ``deploykit --help`` stays instant.
"""

from __future__ import annotations

import re
from typing import Annotated

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


def unwrap_help(text: str) -> str:
    """Join the hard line breaks inside each paragraph of a help text (blank lines separate paragraphs), so that
    the terminal, not the source file, decides where lines break."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


for _info in app.registered_commands:
    if _info.help:
        _info.help = unwrap_help(_info.help)


def _print_version(value: bool) -> None:
    if value:
        from deploykit import __version__

        typer.echo(f"deploykit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", help="Print deploykit's version and exit.", callback=_print_version,
                     is_eager=True),
    ] = False,
) -> None:
    """Take CNNs from PyTorch to deployment and tell the truth about what they cost."""


def main() -> None:
    """Console-script entry point."""
    app()
