"""What every command shares: one-line errors with the right exit code, consoles, option parsing."""

from __future__ import annotations

import functools
import io
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from deploykit.errors import DeploykitError

F = TypeVar("F", bound=Callable[..., Any])

# Messages are never wrapped by rich (soft_wrap): a path or a command cut into two lines cannot be copied, and a
# terminal wraps long lines itself. Tables still render to the console width.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 1) -> None:
    """Print one red line to stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handle_errors(fn: F) -> F:
    """Turn a :class:`DeploykitError` raised by the library into one line on stderr and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DeploykitError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            err_console.print("interrupted")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def emit(text: str, output: Path | None) -> None:
    """Write ``text`` atomically to ``output`` (and say so on stdout), or print it to stdout when no file is given."""
    if output is None:
        typer.echo(text, nl=False)
        return
    from deploykit._io import atomic_write_text

    atomic_write_text(output, text)
    console.print(f"wrote {output}")


def print_or_write(renderables: Sequence[Any], output: Path | None, width: int) -> None:
    """Print rich renderables on stdout at ``width`` columns, or render them as plain text into ``output``
    (atomically, via :func:`emit`)."""
    if output is None:
        out = Console(width=width)
        for r in renderables:
            out.print(r)
        return
    # Rendered into a recording console that writes nowhere else (``Console.capture()`` would keep the text
    # out of the record, and the file would come out empty).
    out = Console(record=True, file=io.StringIO(), width=width)
    for r in renderables:
        out.print(r)
    emit(out.export_text(), output)


def split_list(text: str | None) -> list[str]:
    """``"a,b, c"`` -> ``["a", "b", "c"]``."""
    if not text:
        return []
    return [t.strip() for t in text.split(",") if t.strip()]
