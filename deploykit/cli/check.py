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
    app.command("check-ab", help=AB_HELP)(check_ab)


AB_HELP = """Time CANDIDATE against BASELINE interleaved in this one process and compare them as paired ratios; exit 1
when CANDIDATE is slower.

BASELINE and CANDIDATE are models (registered names or pkg.module:Attr import paths, e.g. the same class
imported from two checkouts) taking the same input. Each round times both, alternating which goes first;
the verdict is on the median of the per-round ratios candidate/baseline with a distribution-free 95% interval:
a regression when the median is above 1 + tolerance and the interval lies above 1, an improvement
symmetrically. Both see the same machine load, which separate runs do not (see the README: on a loaded
machine separate runs of the same code differed by a factor of 4.7).

Exit codes: 0 unchanged or faster, 1 regression, 2 bad input, 3 a missing GPU.
"""


@handle_errors
def check_ab(
    baseline: Annotated[str, typer.Argument(help="The baseline model (name or pkg.module:Attr).")],
    candidate: Annotated[str, typer.Argument(help="The candidate model (name or pkg.module:Attr).")],
    input_shape: Annotated[str | None, typer.Option(help="Per-sample input shape (import-path models).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Samples per batch.")] = 1,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch (default 1 on the CPU).")] = None,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds (at least 6: the 95% interval needs them).")] = 15,
    calls: Annotated[int, typer.Option(help="Calls timed together in each round, per model.")] = 1,
    tolerance: Annotated[str, typer.Option(help="Allowed slowdown: 10% (default), 0.1 or 10.")] = "10%",
    seed: Annotated[int, typer.Option(help="Seed of the weights and the input.")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the ratios and verdict as JSON.")] = None,
) -> None:
    import torch

    from deploykit._io import atomic_write_json, check_output_file
    from deploykit.bench.paired import paired_ratios, paired_verdict
    from deploykit.bench.regression import parse_tolerance
    from deploykit.errors import BackendUnavailable, InvalidInput
    from deploykit.models import create_model, run_with_layer_context

    tol = parse_tolerance(tolerance)
    if rounds < 6:
        raise InvalidInput(f"--rounds must be at least 6 (a 95% interval of the median needs them), got {rounds}")
    if batch_size < 1 or calls < 1:
        raise InvalidInput("--batch-size and --calls must be positive")
    if device not in ("cpu", "cuda"):
        raise InvalidInput(f"--device must be cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable("--device cuda asked for, but torch sees no CUDA GPU on this machine")
    if json_out is not None:
        check_output_file(json_out)
    if threads is not None and threads < 1:
        raise InvalidInput(f"--threads must be positive, got {threads}")
    if device == "cpu":
        torch.set_num_threads(threads or 1)
    models = []
    for ref in (baseline, candidate):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            models.append(create_model(ref, device="cpu", input_shape=input_shape))
    (a, spec_a), (b, spec_b) = models
    if tuple(spec_a.input_shape) != tuple(spec_b.input_shape):
        raise InvalidInput(f"the two models take different inputs: {spec_a.input_shape} and {spec_b.input_shape}")
    x = torch.randn(spec_a.batch_shape(batch_size), generator=torch.Generator().manual_seed(seed))
    for m, ref in ((a, baseline), (b, candidate)):
        run_with_layer_context(m.eval(), x, ref)  # a model that cannot run is one line, before any timing
    dev = torch.device(device)
    a, b, x = a.to(dev), b.to(dev), x.to(dev)

    def timed_call(m: Any) -> Any:
        def call() -> None:
            with torch.inference_mode():
                m(x)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
        return call

    ratios = paired_ratios(timed_call(a), {"candidate": timed_call(b)}, pairs=rounds, calls=calls)["candidate"]
    v = paired_verdict(ratios, tol)
    line = (f"{v.status.upper()}: {candidate} / {baseline} = x{v.ratio:.3f} (95% interval {v.ci_low:.3f}-"
            f"{v.ci_high:.3f}, {rounds} interleaved rounds on {device}, tolerance {tol:.0%})")
    if json_out is not None:
        atomic_write_json(json_out, with_version({"baseline": baseline, "candidate": candidate, "device": device,
                                                  "ratios": ratios, **v.to_dict()}))
    if v.status == "regression":
        err_console.print(f"[bold red]{line}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(line, highlight=False, soft_wrap=True)


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
