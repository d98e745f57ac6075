"""Reports: results -> rich tables, markdown, plots, JSON; the baseline comparison of ``deploykit check``.

Modules: :mod:`deploykit.report.bench` (benchmark tables, markdown summary, latency plot),
:mod:`deploykit.report.check` (the noise-aware regression rule), :mod:`deploykit.report.profile_tables`
(per-layer profiles). Names load on first use.
"""

from __future__ import annotations

from deploykit._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "CheckReport": "deploykit.report.check",
    "bench_table": "deploykit.report.bench",
    "check_markdown": "deploykit.report.check",
    "check_table": "deploykit.report.check",
    "compare_results": "deploykit.report.check",
    "fastest_correct": "deploykit.report.bench",
    "markdown_summary": "deploykit.report.bench",
    "parse_tolerance": "deploykit.report.check",
    "plot_latency": "deploykit.report.bench",
    "write_markdown_summary": "deploykit.report.bench",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
