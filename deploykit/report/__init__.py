"""Reports: results -> rich tables, markdown, plots, JSON; the baseline comparison of ``deploykit check``.

Modules: :mod:`deploykit.report.bench` (benchmark tables, markdown summary, latency plot),
:mod:`deploykit.report.check` (``deploykit check``'s comparison; the rule itself is
:mod:`deploykit.bench.regression`), :mod:`deploykit.report.profile_tables`
(per-layer profiles), :mod:`deploykit.report.evaluate` (accuracy of deployed artifacts),
:mod:`deploykit.report.training` (training runs). Names load on first use.
"""

from __future__ import annotations

from deploykit._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "CheckReport": "deploykit.report.check",
    "bench_table": "deploykit.report.bench",
    "check_markdown": "deploykit.report.check",
    "check_table": "deploykit.report.check",
    "compare_results": "deploykit.report.check",
    "evaluation_markdown": "deploykit.report.evaluate",
    "evaluation_renderable": "deploykit.report.evaluate",
    "fastest_correct": "deploykit.report.bench",
    "markdown_summary": "deploykit.report.bench",
    "parse_tolerance": "deploykit.report.check",
    "plot_latency": "deploykit.report.bench",
    "training_lines": "deploykit.report.training",
    "training_markdown": "deploykit.report.training",
    "write_markdown_summary": "deploykit.report.bench",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
