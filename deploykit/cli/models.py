"""``deploykit list``: the model zoo with input shapes, parameters and GMACs."""

from __future__ import annotations

from typing import Annotated

import typer

from deploykit.cli._common import handle_errors, show


def register(app: typer.Typer) -> None:
    app.command("list", help="List registered models: family, source, input shape, parameters, GMACs (batch 1).")(
        list_command
    )


@handle_errors
def list_command(
    pattern: Annotated[str, typer.Argument(help="Shell-style filter, e.g. 'res*' or 'd2l-*'.")] = "*",
) -> None:
    from rich.table import Table

    from deploykit.models import get_model_spec, list_models
    from deploykit.profile import profile_model
    from deploykit.report.layout import optional_columns
    from deploykit.report.profile_tables import fmt_count

    names = list_models(pattern)
    table = Table(title=f"{len(names)} models", header_style="bold")
    for col, just in (("name", "left"), ("family", "left"), ("source", "left"), ("input", "right"),
                      ("classes", "right"), ("params", "right"), ("GMACs", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for name in names:
        spec = get_model_spec(name)
        prof = profile_model(name)
        table.add_row(name, spec.family, spec.source, "x".join(map(str, spec.input_shape)), str(spec.num_classes),
                      fmt_count(prof.total_params), f"{prof.total_macs / 1e9:.3f}")
    show([optional_columns(table, ("source", "classes", "family"))])
