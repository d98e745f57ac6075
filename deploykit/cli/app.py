"""The ``deploykit`` command: a typer app whose commands live one group per module in this package.

Each command module exposes ``register(app)``; heavy imports (torch, onnx, ...) happen inside command bodies so
that ``deploykit --help`` stays instant.
"""

from __future__ import annotations

import re
import sys
from typing import Annotated, Any

import typer
from typer._click import exceptions as _click_errors
from typer.core import TyperGroup

from deploykit.cli import bench as _bench
from deploykit.cli import check as _check
from deploykit.cli import compare as _compare
from deploykit.cli import evaluate as _evaluate
from deploykit.cli import export as _export
from deploykit.cli import models as _models
from deploykit.cli import profile as _profile
from deploykit.cli import train as _train
from deploykit.cli._common import print_error


class _OneLineUsageErrors(TyperGroup):
    """The root group, whose usage errors (unknown option, missing argument, bad value) are one ``error:`` line on
    stderr naming the command's ``--help``, exit 2 -- like every other bad input -- instead of typer's box."""

    def main(  # type: ignore[override]  # click types main() by overloads on standalone_mode
        self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
        standalone_mode: bool = True, **kwargs: Any,
    ) -> Any:
        kwargs.update(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False)
        if not standalone_mode:
            return super().main(**kwargs)
        try:
            rv = super().main(**kwargs)
        except _click_errors.NoArgsIsHelpError as e:
            e.show()  # a bare group prints its help
            sys.exit(e.exit_code)
        except _click_errors.UsageError as e:
            where = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
            print_error(f"{e.format_message()}{where}")
            sys.exit(e.exit_code)
        except _click_errors.ClickException as e:
            print_error(e.format_message())
            sys.exit(e.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    cls=_OneLineUsageErrors,
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
