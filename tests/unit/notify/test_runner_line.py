"""/status says what a runner is doing now, not what it last wrote."""

from __future__ import annotations

from kubetrade.notify.text import runner_line

NOW = 1_800_000_000_000
SUMMARY = {"phase": "Running", "equity": "10100", "pnl": "100", "open_positions": "1",
           "heartbeat_ms": str(NOW - 5_000)}


def test_a_runner_heard_of_recently_shows_its_phase() -> None:
    assert runner_line("btc-sma", SUMMARY, 0, NOW) == (
        "[btc-sma] Running, equity 10,100.00, P&L +100.00, open positions 1")


def test_a_silent_runner_shows_stale_whatever_it_last_wrote() -> None:
    silent = {**SUMMARY, "heartbeat_ms": str(NOW - 61_000), "updated_ms": str(NOW - 90_000)}
    assert runner_line("btc-sma", silent, 0, NOW).startswith("[btc-sma] Stale, equity")
    halted = {**silent, "phase": "Halted", "halted_reason": "max_drawdown"}
    assert runner_line("btc-sma", halted, 0, NOW).endswith("halted: max_drawdown")
    assert runner_line("btc-sma", halted, 0, NOW).startswith("[btc-sma] Stale")
