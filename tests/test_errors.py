"""How third-party exceptions are quoted inside one-line deploykit errors."""

from __future__ import annotations

from deploykit.errors import first_line


def test_first_line_names_the_type_and_keeps_one_clean_line() -> None:
    assert first_line(ValueError("  \x1b[31mbad shape\x1b[0m  \nTraceback detail\n")) == "ValueError: bad shape"
    assert first_line(RuntimeError("")) == "RuntimeError"
    cut = first_line(OSError("x" * 400))
    assert cut == "OSError: " + "x" * 297 + "..."
    assert first_line(KeyError("k"), limit=10) == "KeyError: 'k'"
