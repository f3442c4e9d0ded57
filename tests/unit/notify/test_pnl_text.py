"""Telegram /pnl across strategies (case analytics-combined-curve): the total is the
P&L summed and its return on the capital each strategy started with, so a strategy that
joined later is not counted as profit."""

from __future__ import annotations

from kubetrade.notify.text import pnl_lines


def test_total_return_on_the_capital_of_every_strategy() -> None:
    both_lose = {
        "btc-sma": {"pnl": "-17.90", "equity": "9982.10", "starting_cash": "10000",
                    "trades": "5", "win_rate": "0.2"},
        "btc-sma-hourly": {"pnl": "-17.90", "equity": "9982.10", "starting_cash": "10000",
                           "trades": "5", "win_rate": "0.2"},
    }
    lines = pnl_lines(both_lose)
    assert lines[0].startswith("[btc-sma] P&L -17.90, equity 9,982.10, trades 5")
    assert lines[-1] == "Total P&L -35.80 on capital 20,000.00 (-0.18 %)"


def test_unknown_capital_gives_the_total_alone() -> None:
    lines = pnl_lines({"a": {"pnl": "5"}, "b": {"pnl": "-2", "starting_cash": "100"}})
    assert lines[-1] == "Total P&L +3.00"
    assert pnl_lines({"a": {"pnl": "5"}}) == ["[a] P&L +5.00, equity ?, trades 0, win rate ?"]
