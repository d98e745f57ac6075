"""How every table deploykit prints fits where it is read: one rule for all of them.

* **Not a terminal** (a pipe, a file written with ``-o``, a CI log): every table at its natural width, every
  column, no cell cut. Lines are not wrapped and carry no trailing spaces.
* **A terminal**: the terminal's width. A table wider than that leaves out its *optional* columns (declared by
  the function that builds it with :func:`optional_columns`, least important first) until it fits, and a line
  under it names what was left out and how to see everything. Cells that still do not fit wrap onto further
  lines (``fold``): a value is never cut short with an ellipsis, so a name in a table can always be copied whole
  from a wide enough terminal, a pipe or a file.

The rendering functions return text; only the CLI prints it.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

#: Attribute of a :class:`rich.table.Table` holding the headers of its optional columns, least important first.
_OPTIONAL_ATTR = "_deploykit_optional_columns"
#: Console width for "natural width" rendering: wider than any table deploykit makes, so nothing is squeezed.
_UNBOUNDED = 4000
#: Content width up to which a column counts as short (kept on one line when long text can wrap instead).
_SHORT = 24
#: Narrowest a wrapping column is made before short columns are allowed to wrap too.
_MIN_WRAPPED = 12


def optional_columns(table: Table, headers: Sequence[str]) -> Table:
    """Declare the columns of ``table`` that may be left out in a narrow terminal, least important first."""
    known = {str(c.header) for c in table.columns}
    unknown = [h for h in headers if h not in known]
    if unknown:
        raise ValueError(f"optional columns {unknown} are not columns of the table ({sorted(known)})")
    setattr(table, _OPTIONAL_ATTR, tuple(headers))
    return table


def natural_width(renderable: Any) -> int:
    """Columns ``renderable`` takes when nothing constrains it."""
    return Console(width=_UNBOUNDED, file=io.StringIO()).measure(renderable).maximum


def _tables(renderable: Any) -> Iterable[Table]:
    if isinstance(renderable, Table):
        yield renderable
    elif isinstance(renderable, Group):
        for r in renderable.renderables:
            yield from _tables(r)


def _column_widths(table: Table) -> list[int]:
    """Natural width of each column's content (header, cells, footer), without padding."""
    console = Console(width=_UNBOUNDED, file=io.StringIO())
    out = []
    for col in table.columns:
        parts = [col.header, col.footer, *col._cells]
        out.append(max((console.measure(p).maximum for p in parts if p not in ("", None)), default=0))
    return out


def fit_table(table: Table, width: int | None) -> list[str]:
    """Make ``table`` follow the rule for ``width`` columns (``None``: not a terminal). Returns the headers of
    the columns left out (none when ``width`` is None or the table fits).

    When the table is still too wide once its optional columns are gone, short values (names, numbers: at
    most ``_SHORT`` characters) stay on one line and the long text columns wrap, as long as the short ones
    leave room; otherwise every column wraps.
    """
    for col in table.columns:
        col.overflow = "fold"
        col.no_wrap = False
    if width is None:
        return []
    dropped: list[str] = []
    for header in getattr(table, _OPTIONAL_ATTR, ()):
        if natural_width(table) <= width:
            break
        table.columns = [c for c in table.columns if str(c.header) != header]
        dropped.append(header)
    if natural_width(table) > width:
        widths = _column_widths(table)
        short = [w <= _SHORT for w in widths]
        # borders and padding: one border per column plus one, two spaces of padding per column
        fixed = sum(w for w, s in zip(widths, short, strict=True) if s) + 3 * len(widths) + 1
        wrapping = sum(1 for s in short if not s)
        if wrapping and fixed + _MIN_WRAPPED * wrapping <= width:
            for col, s in zip(table.columns, short, strict=True):
                col.no_wrap = s
    return dropped


def fit_renderables(renderables: Sequence[Any], width: int | None) -> list[Any]:
    """``renderables`` with every table in them fitted to ``width`` (see :func:`fit_table`), each followed by a
    line naming the columns left out, if any."""
    out: list[Any] = []
    for r in renderables:
        out.append(r)
        dropped: list[str] = []
        for t in _tables(r):
            dropped += [h for h in fit_table(t, width) if h not in dropped]
        if dropped:
            out.append(Text(
                f"(left out to fit {width} columns: {', '.join(dropped)}; pipe the output or widen the terminal "
                "for all)",
                style="dim",
            ))
    return out


def render_text(renderables: Sequence[Any], width: int | None = None) -> str:
    """``renderables`` as plain text under the rule: ``width`` None for anything that is not a terminal (natural
    width), else a terminal's width. No styles, no trailing spaces."""
    buf = io.StringIO()
    out = Console(file=buf, width=_UNBOUNDED if width is None else width, color_system=None,
                  soft_wrap=width is None, highlight=False)
    for r in fit_renderables(renderables, width):
        out.print(r)
    return "\n".join(line.rstrip() for line in buf.getvalue().split("\n"))


__all__ = ["fit_renderables", "fit_table", "natural_width", "optional_columns", "render_text"]
