"""``deploykit check``: compare a benchmark result with a baseline; exit 1 on a regression."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from deploykit.cli._common import console, err_console, handle_errors, show, with_version

HELP = """Compare CURRENT (a `deploykit bench` JSON) with --baseline, cell by cell; exit 1 on any regression.

Cells are matched by (model, backend, precision, batch). Both files must come from the same device (GPU
name or CPU model), NVIDIA driver, measurement regime (CPU threads on the CPU) and schema version and
share at least one cell, else exit 2. Library version
changes (torch, ONNX Runtime, TensorRT, CUDA, cuDNN) are allowed and listed.

[bold]The rule[/] (noise-aware): latency = median of the repeat medians, noise = IQR/median across repeats,
both as recorded. change = current/baseline - 1; threshold = max(tolerance, 2 x (noise_current +
noise_baseline)). Regression when change > threshold, improvement when change < -threshold. A cell with
noise above 25% is marked unreliable (its threshold is already wide). A cell that was correct and now
gives a wrong output, or that ran and now errors / runs out of memory, is a regression too. Cells missing
from either file are listed and do not fail.

[bold]In GitHub Actions[/] (GITHUB_STEP_SUMMARY set, or --github-summary): the markdown verdict table is appended
to the job summary and every regression is printed as an ::error:: annotation; --no-github-summary turns
both off.

Exit codes: 0 pass, 1 regression, 2 unusable input (corrupt JSON, schema / device / driver / regime
mismatch, no cell in common).
"""


def register(app: typer.Typer) -> None:
    app.command("check", help=HELP)(check)


@handle_errors
def check(
    current: Annotated[Path, typer.Argument(help="Results JSON of the run to check.")],
    baseline: Annotated[
        list[Path],
        typer.Option(
            "--baseline",
            help="Baseline results JSON (same device). Give it several times for a baseline made of several "
            "runs of the same code: their repeats are pooled, so the noise includes the drift between runs.",
        ),
    ],
    tolerance: Annotated[
        str, typer.Option(help="Allowed slowdown before noise: 10% (default), 0.1 or 10.")
    ] = "10%",
    markdown: Annotated[
        Path | None, typer.Option(help="Also write the comparison as markdown to this file.")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the comparison as JSON to this file.")
    ] = None,
    changes_only: Annotated[
        bool, typer.Option("--changes-only", help="Hide unchanged cells in the table.")
    ] = False,
    github_summary: Annotated[
        bool | None,
        typer.Option(
            "--github-summary/--no-github-summary",
            help="Append the markdown verdict table to the GitHub Actions job summary ($GITHUB_STEP_SUMMARY) and "
            "print each regression as an ::error:: annotation (default: on when GITHUB_STEP_SUMMARY is set).",
            show_default=False,
        ),
    ] = None,
) -> None:
    from deploykit._io import atomic_write_json, atomic_write_text
    from deploykit.bench.regression import compare_results, parse_tolerance
    from deploykit.bench.results import load_results
    from deploykit.errors import InvalidInput
    from deploykit.report.check import check_markdown, check_summary, check_table

    summary_file = os.environ.get("GITHUB_STEP_SUMMARY") or None
    if github_summary and summary_file is None:
        raise InvalidInput("--github-summary: GITHUB_STEP_SUMMARY is not set (this is not a GitHub Actions job); "
                           "write the markdown with --markdown FILE instead")
    github = summary_file is not None if github_summary is None else github_summary

    tol = parse_tolerance(tolerance)
    cur = load_results(current)
    base = [load_results(b) for b in baseline]
    report = compare_results(cur, base, tolerance=tol)
    for w in report.warnings:
        err_console.print(f"[yellow]note:[/] version change {w}", highlight=False, soft_wrap=True)
    if changes_only and not any(c.status != "unchanged" for c in report.comparisons):
        console.print(f"no changes: all {len(report.comparisons)} cells unchanged", highlight=False, soft_wrap=True)
    else:
        show([check_table(report, show_unchanged=not changes_only)])
    if markdown is not None:
        atomic_write_text(markdown, check_markdown(report))
    if github:
        _github(report, Path(summary_file) if summary_file else None)
    if json_out is not None:
        atomic_write_json(json_out, with_version({**report.to_dict(), "settings": {"current": str(current), "baseline": str(baseline[0]) if len(baseline) == 1 else [str(b) for b in baseline], "tolerance": tol}}))
    line = check_summary(report)
    if report.failed:
        err_console.print(f"[bold red]{line}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(report.exit_code)
    console.print(f"[bold green]{line}[/]", highlight=False, soft_wrap=True)


def _github(report: Any, summary_file: Path | None) -> None:
    """Append the verdict table to the job summary and print the annotations (stdout, where the runner reads
    workflow commands)."""
    from deploykit.errors import ArtifactError
    from deploykit.report.check import check_annotations, check_markdown

    if summary_file is not None:
        try:
            with summary_file.open("a", encoding="utf-8") as f:  # the job summary is appended to, by design
                f.write(check_markdown(report) + "\n")
        except OSError as exc:
            raise ArtifactError(f"cannot append to GITHUB_STEP_SUMMARY {summary_file}: {exc.strerror or exc}") from None
    for line in check_annotations(report):
        typer.echo(line)
