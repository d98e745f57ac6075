"""``deploykit bench`` (a sweep of models × backends × precisions × batches) and ``deploykit bench-summary``."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer

from deploykit.backends.registry import backend_names, list_backends
from deploykit.bench.timing import TimingOptions
from deploykit.cli._common import console, err_console, handle_errors, show, split_list
from deploykit.precision import TORCH_PRECISIONS, Precision

#: The timing defaults, shown in the options' help.
_T = TimingOptions()

#: Precisions a sweep takes (what torch runs; TensorRT int8 is built with `deploykit export --int8`).
BENCH_PRECISIONS = Precision.names(*TORCH_PRECISIONS, Precision.INT8)

HELP = """Benchmark models across backends, precisions and batch sizes; print a table and save a JSON file.

Backends: """ + ", ".join(f"[bold]{b.name}[/] ({b.summary})" for b in list_backends()) + """. compile takes --compile-mode (default max-autotune on CUDA, default on CPU). A backend that cannot run here is skipped with a one-line reason; an out-of-memory cell is reported and the sweep goes on.

[bold]Timing[/]: CUDA events on the stream doing the work (graph replay included) on the GPU,
perf_counter_ns on the CPU (ONNX Runtime on CUDA computes on a torch stream it is given, TensorRT
orders its stream after the caller's: both are event-timed; a backend on a stream torch cannot see would
be timed by the host clock with the device synchronized around each call). Warm-up until two window medians agree within 5%; then R repeats
of n samples (raw samples kept). Latency = median of the repeat medians; noise = IQR/median across
repeats (noisy > 10%, unusable > 25%). The input is staged on the device once, in the layout the backend
wants: host-device transfers are not included. The first call (compile, algorithm search) and the
export / build time are reported separately ('setup s'); a second run reuses the cached ONNX files,
engines and Inductor cache (--cache-dir, default ~/.cache/deploykit).

[bold]Correctness[/]: every cell's output is compared with eager fp32 (TF32 off) on the same input;
rel err = max|out - ref| / max|ref|; beyond the precision's tolerance the cell is marked WRONG and never
counted as fastest.

[bold]INT8[/] (--precision int8 --calib-data D [--weights W]): the model's Q/DQ INT8 ONNX (deploykit export --int8's graph), calibrated on D's train split, run by ort (and trt); other backends skip int8 cells. Each int8 cell carries in its JSON info the accuracy it measured on D's test split (fp32_top1, int8_top1, accuracy_drop_points, int8_agreement) beside its latency, and with --calib-data every cell runs on real test inputs. Compare with fp32 in the same run: --precision fp32,int8.

Defaults: on CUDA all backends, fp32,fp16, batches 1,64; on the CPU eager,ort, fp32, batch 1, and half the
cores as threads for torch and ONNX Runtime (at most 4; 1 on a 2-core machine), leaving the rest to the other
load of a shared machine. The first line of output states the plan: cells, threads, repeats, samples, warm-up.
A backend is marked fastest (★) only when it beats every other correct one by more than their combined noise;
otherwise the fastest ones are marked as a tie (=).

Exit code 1 when a cell ends in an error or a wrong output (skipped and OOM cells do not fail).
"""

SUMMARY_HELP = """Write a markdown summary (environment, fastest correct configuration per model / precision /
batch, all cells) and a latency plot PNG for a results JSON written by `deploykit bench`."""


MERGE_HELP = """Merge results JSON files measured in parts on the same device (same GPU, driver and regime) into one;
a cell present in several files is taken from the last."""


def register(app: typer.Typer) -> None:
    app.command("bench", help=HELP)(bench)
    app.command("bench-summary", help=SUMMARY_HELP)(bench_summary)
    app.command("bench-merge", help=MERGE_HELP)(bench_merge)


def _progress_reporter() -> tuple[Any, Any]:
    """A rich progress bar on a terminal, one line per finished cell otherwise (CI logs)."""
    from deploykit.report.bench import fmt_ms

    if err_console.is_terminal:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        )
        task = progress.add_task("bench", total=None)

        def report(ev: Any) -> None:
            progress.update(
                task, total=ev.total, description=f"{ev.model} {ev.backend} {ev.precision} b{ev.batch}"
            )
            if ev.cell is not None:
                progress.advance(task)

        return progress, report

    def report_plain(ev: Any) -> None:
        if ev.cell is None:
            return
        c = ev.cell
        what = f"{fmt_ms(c.median_ms)} ms" if c.ok else f"{c.status}: {c.reason}"
        err_console.print(
            f"[{ev.index}/{ev.total}] {ev.model} {ev.backend} {ev.precision} b{ev.batch}: {what}",
            highlight=False,
            soft_wrap=True,
        )

    return None, report_plain


def _device_label(device: str) -> str:
    """The device name the results file is named after (the GPU name, or ``cpu:<model>``), before running."""
    from deploykit._env import device_name, environment
    from deploykit.bench.spec import device_type

    if device_type(device) == "cuda":
        import torch

        if not torch.cuda.is_available():
            return "cuda"  # run_bench refuses with a clear message
    return device_name(environment(device))


def _batches(text: str | None) -> tuple[int, ...] | None:
    from deploykit.errors import InvalidInput

    try:
        return tuple(int(b) for b in split_list(text)) if text else None
    except ValueError:
        raise InvalidInput(f"bad --batch {text!r}: expected integers like 1,8,64") from None


def _default_output(spec: Any) -> Path:
    from datetime import datetime, timezone

    from deploykit.bench.cache import slug

    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path("benchmarks") / "results" / f"{slug(spec.name or 'bench')}-{slug(_device_label(spec.device))}-{stamp}.json"


def _check_outputs(path: Path | None, summary: Path | None) -> None:
    """Before the sweep, not after it: an output that cannot be written is one line now."""
    from deploykit._io import check_output_dir, check_output_file

    if path is not None:
        check_output_file(path)
    if summary is not None:
        check_output_dir(summary)


def _show_result(result: Any, path: Path | None, summary: Path | None, output: Path | None) -> None:
    from deploykit.report.bench import bench_table, summary_lines, write_markdown_summary

    show([bench_table(result)])
    for line in summary_lines(result):
        console.print(line, highlight=False, soft_wrap=True)
    if path is not None:
        result.save(path)
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    if summary is not None:
        written = write_markdown_summary(result, summary, name=output.stem if output else "bench-summary")
        console.print(
            f"wrote {written['markdown']}" + (f" and {written['plot']}" if written["plot"] else ""),
            highlight=False,
            soft_wrap=True,
        )


@handle_errors
def bench(
    models: Annotated[
        list[str] | None, typer.Argument(help="Registered model names or pkg.module:Attr import paths.")
    ] = None,
    suite: Annotated[
        Path | None,
        typer.Option(help="Suite JSON (benchmarks/suites/*.json); options given here override it."),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option("--backend", help=f"Comma list: {','.join(backend_names())}."),
    ] = None,
    precision: Annotated[str | None, typer.Option("--precision", help=f"Comma list: {','.join(BENCH_PRECISIONS)}.")] = None,
    batch: Annotated[
        str | None, typer.Option("--batch", help="Comma list of batch sizes, e.g. 1,8,64,256.")
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="cpu | cuda | cuda:N (default: cuda when available).")
    ] = None,
    iterations: Annotated[
        int | None,
        typer.Option(help=f"Samples per repeat (at most; --cell-seconds caps it). (default {_T.iterations})"),
    ] = None,
    repeats: Annotated[
        int | None, typer.Option(help=f"Repeats per cell (>= 5 for regression checks). (default {_T.repeats})")
    ] = None,
    warmup: Annotated[
        int | None,
        typer.Option(help=f"Minimum warm-up calls before the stability check (windows of {_T.warmup_window} calls "
                     f"until two medians agree within {_T.warmup_rel_tol:.0%}). (default {_T.warmup_iters})"),
    ] = None,
    warmup_seconds: Annotated[
        float | None, typer.Option(help=f"Longest warm-up per cell, seconds. (default {_T.warmup_seconds:g})")
    ] = None,
    cell_seconds: Annotated[
        float | None,
        typer.Option(help=f"Time budget for the timed part of a cell, seconds. (default {_T.cell_seconds:g})"),
    ] = None,
    compile_mode: Annotated[
        str | None,
        typer.Option(
            help="torch.compile mode: default, reduce-overhead, max-autotune, max-autotune-no-cudagraphs."
        ),
    ] = None,
    image_size: Annotated[int | None, typer.Option(help="Spatial size override for every model.")] = None,
    num_classes: Annotated[int | None, typer.Option(help="Number of classes override.")] = None,
    in_channels: Annotated[int | None, typer.Option(help="Input channels override.")] = None,
    input_shape: Annotated[
        str | None, typer.Option(help="Per-sample input shape (needed for import-path models).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for weights and inputs (default 0).")] = None,
    weights: Annotated[
        str | None,
        typer.Option("--weights", "-w", help="Trained weights of the (one) model: a safetensors or torch file, or a "
                     "torchvision name; strict (exit 2 when they do not fit). Recorded in the results."),
    ] = None,
    calib_data: Annotated[
        str | None,
        typer.Option(help="int8 cells: real calibration data (its train split; the test split measures the accuracy "
                     "delta and is the input of every cell): mnist1d, digits, FILE.npz or an image folder."),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(help="CPU threads for torch and ONNX Runtime (default on the CPU: half the cores, at most 4; "
                     "1 on 2 cores). Recorded: check compares only files with the same count."),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Cache for ONNX files, engines, Inductor (default ~/.cache/deploykit)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o",
            help="Results JSON (default: in benchmarks/results/ under the current folder, named "
            "bench-<device>-<time>.json, or <suite name>-… with --suite).",
        ),
    ] = None,
    no_save: Annotated[bool, typer.Option("--no-save", help="Do not write the JSON file.")] = False,
    summary: Annotated[
        Path | None, typer.Option(help="Also write a markdown summary + latency plot into this folder.")
    ] = None,
) -> None:
    import dataclasses

    from deploykit.bench.spec import bench_spec, default_cpu_threads, device_type, load_suite
    from deploykit.bench.sweep import run_bench
    from deploykit.report.bench import plan_line

    spec = bench_spec(
        load_suite(suite) if suite is not None else None,
        models=tuple(models) if models else None,
        device=device,
        timing={"iterations": iterations, "repeats": repeats, "warmup_iters": warmup,
                "warmup_seconds": warmup_seconds, "cell_seconds": cell_seconds},
        backends=tuple(split_list(backend)) if backend else None,
        precisions=Precision.parse_list(precision, allowed=BENCH_PRECISIONS) if precision else None,
        batches=_batches(batch), compile_mode=compile_mode or None, num_classes=num_classes,
        in_channels=in_channels, image_size=image_size, input_shape=input_shape or None, seed=seed,
        threads=threads, cache_dir=str(cache_dir) if cache_dir else None, weights=weights or None,
        calib_data=calib_data or None,
    )
    if spec.threads is None and device_type(spec.device) == "cpu":
        spec = dataclasses.replace(spec, threads=default_cpu_threads())
    path = None if no_save else output or _default_output(spec)
    _check_outputs(path, summary)  # before the plan line: a bad -o is the only line printed
    err_console.print(plan_line(spec), highlight=False, soft_wrap=True)
    progress, report = _progress_reporter()
    # The file is rewritten after every cell: a sweep cut short (time limit, Ctrl-C) keeps what it measured.
    with progress if progress is not None else contextlib.nullcontext():
        result = run_bench(spec, progress=report, checkpoint=path)
    _show_result(result, path, summary, output)
    bad = [c for c in result.cells if c.status == "error" or c.correct is False]
    if bad:
        err_console.print(
            f"[bold red]{len(bad)} cell(s) failed or gave wrong outputs:[/] "
            + ", ".join(f"{c.model}/{c.backend}/{c.precision}/b{c.batch}" for c in bad),
            highlight=False,
        )
        raise typer.Exit(1)


@handle_errors
def bench_summary(
    results: Annotated[Path, typer.Argument(help="Results JSON written by deploykit bench.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the markdown and PNG.")] = Path("reports"),
    name: Annotated[
        str | None, typer.Option(help="File name stem (default: the results file's stem).")
    ] = None,
    title: Annotated[str | None, typer.Option(help="Heading of the markdown document.")] = None,
    plot: Annotated[
        bool, typer.Option("--plot/--no-plot", help="Draw the latency plot (matplotlib).")
    ] = True,
) -> None:
    from deploykit.bench.results import load_results
    from deploykit.report.bench import write_markdown_summary

    result = load_results(results)
    written = write_markdown_summary(result, out, name=name or results.stem, plot=plot, title=title)
    console.print(
        f"wrote {written['markdown']}" + (f" and {written['plot']}" if written["plot"] else ""),
        highlight=False,
        soft_wrap=True,
    )


@handle_errors
def bench_merge(
    results: Annotated[
        list[Path], typer.Argument(help="Results JSON files, in order (later cells replace earlier).")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Merged results JSON.")],
) -> None:
    from deploykit.bench.results import load_results, merge_results

    merged = merge_results([load_results(p) for p in results])
    merged.save(output)
    console.print(
        f"wrote {output} ({len(merged.cells)} cells from {len(results)} files)",
        highlight=False,
        soft_wrap=True,
    )
