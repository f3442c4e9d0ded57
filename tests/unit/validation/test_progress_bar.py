"""The terminal progress bar: percentage, ETA, a newline at the end."""

from __future__ import annotations

import io

from kubetrade.validation.progress import TerminalBar


def test_bar_rewrites_one_line_and_ends_it() -> None:
    out = io.StringIO()
    bar = TerminalBar(out, width=10)
    bar(37.0, 75.0, "37% (ETA 1m15s)")
    bar(100.0, 0.0, "100% (ETA 0s)")
    text = out.getvalue()
    assert text.startswith("\r[###.......]  37.0% ETA   1m15s")
    assert text.endswith("\r[##########] 100.0% ETA      0s\n")
    assert text.count("\n") == 1
