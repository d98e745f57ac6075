"""What every command shares: one-line errors with the right exit code, consoles, option parsing."""

from __future__ import annotations

import functools
import io
import sys
import warnings
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


def print_error(message: str) -> None:
    """Print one red ``error:`` line to stderr (a message over 1000 characters is cut: it echoes some huge
    input)."""
    message = " ".join(message.split("\n")) if "\n" in message else message
    if len(message) > 1000:
        message = message[:997] + "..."
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> None:
    """Print one red line to stderr (:func:`print_error`) and exit with ``code``."""
    print_error(message)
    raise typer.Exit(code)


def handle_errors(fn: F) -> F:
    """Turn a :class:`DeploykitError` raised by the library into one line on stderr and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from deploykit._io import OutputWarning

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", OutputWarning)
                try:
                    return fn(*args, **kwargs)
                finally:
                    for w in caught:
                        if issubclass(w.category, OutputWarning):
                            err_console.print(f"[yellow]warning:[/] {escape(str(w.message))}", highlight=False)
                        else:  # not ours: shown as Python would have
                            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
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
    from deploykit._io import atomic_write_text, is_stream_target

    atomic_write_text(output, text)
    if not is_stream_target(output):
        console.print(f"wrote {output}")


def table_width() -> int | None:
    """Columns a table printed on stdout must fit: the terminal's width, or None (the table's natural width)
    when stdout is not a terminal. ``COLUMNS`` overrides the measured width; a stdout that rich treats as a
    terminal (FORCE_COLOR, TTY_COMPATIBLE) but that has no size and no ``COLUMNS`` (a CI log) gets None."""
    import os

    if not console.is_terminal:
        return None
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns or None
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        return None


def show(renderables: Sequence[Any], output: Path | None = None) -> None:
    """Print rich renderables (tables, groups, text) on stdout, or write them as plain text into ``output``
    (atomically, via :func:`emit`), under the rule of :mod:`deploykit.report.layout`: a terminal's width with
    optional columns left out (and named) when a table does not fit, every column at full width anywhere else."""
    from deploykit.report.layout import fit_renderables, render_text

    width = table_width() if output is None else None
    if width is None:
        emit(render_text(renderables, None), output)
        return
    # A console of its own: the shared one may have fixed its width when it was created (COLUMNS at import).
    out = Console(file=sys.stdout, width=width, force_terminal=True, color_system=console.color_system,  # type: ignore[arg-type]
                  no_color=console.no_color)
    for r in fit_renderables(renderables, width):
        out.print(r)


def existing_files(folder: Path) -> set[Path]:
    """The files already in ``folder`` (none when it does not exist), to say later which ones were replaced."""
    return {p for p in folder.iterdir() if p.is_file()} if folder.is_dir() else set()


def report_written(paths: Sequence[Path], before: set[Path]) -> None:
    """One ``wrote PATH`` line per file on stderr, saying so when it replaced a file that was there before."""
    for p in paths:
        note = " (replaced the earlier file)" if Path(p) in before else ""
        err_console.print(f"wrote {p}{note}", highlight=False, soft_wrap=True)


def with_version(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with ``settings.deploykit_version`` set: every JSON document the CLI writes says which deploykit
    wrote it."""
    from deploykit import __version__

    settings = doc.get("settings")
    doc["settings"] = {**(settings if isinstance(settings, dict) else {}), "deploykit_version": __version__}
    return doc


def json_text(doc: dict[str, Any]) -> str:
    """``doc`` (stamped by :func:`with_version`) as indented JSON text with a final newline."""
    import json

    return json.dumps(with_version(doc), indent=2) + "\n"


def split_list(text: str | None) -> list[str]:
    """``"a,b, c"`` -> ``["a", "b", "c"]``; an empty item (``"1,,64"``, ``"a,"``) is :class:`InvalidInput`."""
    if not text:
        return []
    items = [t.strip() for t in text.split(",")]
    if any(not t for t in items):
        from deploykit.errors import InvalidInput

        shown = text if len(text) <= 80 else text[:77] + "..."
        raise InvalidInput(f"{shown!r} has an empty item: give a comma-separated list like a,b,c")
    return items
