"""Telegram /status: a live strategy's line against its paper twin (issue 20), from the
summary fields the runner's twin writes; nothing for a strategy without a twin."""

from __future__ import annotations

from kubetrade.notify.text import twin_line


def test_twin_line_from_the_summary() -> None:
    summary = {"pnl": "-12.3", "twin_pnl": "3.1", "twin_divergence_pct": "0.1540",
               "size_pct": "25"}
    assert twin_line(summary) == (
        "  paper twin P&L +3.10 (live -12.30), divergence 0.1540 %, size 25 %")


def test_no_line_without_a_twin() -> None:
    assert twin_line({"pnl": "1", "equity": "10001"}) is None
