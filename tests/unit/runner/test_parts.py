"""Pure parts of the runner: what the summary says, which fills window an order is
looked up in, which orders pass a pending reconciliation, the halt sources' names."""

from __future__ import annotations

from decimal import Decimal

from kubetrade.domain.models import Order, OrderType, Side
from kubetrade.runner.halts import HaltSource, is_protective_exit
from kubetrade.runner.orders import FILLS_WINDOW_MS, fills_since
from kubetrade.runner.outputs import summary_record


def _order(created_ms: int, updated_ms: int = 0, side: Side = Side.BUY,
           reason: str = "signal") -> Order:
    return Order("kt-x-1", "s", "BTC/USDT", side, OrderType.MARKET, Decimal(1),
                 created_ms=created_ms, updated_ms=updated_ms, reason=reason)


def test_summary_is_halted_whenever_a_halt_holds() -> None:
    engine = {"phase": "Running", "equity": "10000", "pnl": "0"}
    got = summary_record(engine, halted=True, halted_reason="manual: disabled: x",
                         mode="paper", breaker_open=False, now_ms=5)
    assert got == {"phase": "Halted", "equity": "10000", "pnl": "0",
                   "halted_reason": "manual: disabled: x", "updated_ms": 5, "mode": "paper",
                   "breaker": "closed"}
    running = summary_record({}, halted=False, halted_reason="", mode="live",
                             breaker_open=True, now_ms=6)
    assert running["phase"] == "Running" and running["breaker"] == "open"
    assert engine == {"phase": "Running", "equity": "10000", "pnl": "0"}  # not changed


def test_fills_are_asked_from_a_minute_before_the_order() -> None:
    assert fills_since(_order(120_000), now_ms=200_000) == 60_000
    assert fills_since(_order(120_000, updated_ms=90_000), now_ms=200_000) == 30_000
    assert fills_since(_order(10_000), now_ms=20_000) == 0


def test_orders_older_than_binance_answers_for_get_the_latest_trades() -> None:
    old = _order(1_000_000)
    assert fills_since(old, now_ms=1_000_000 - 60_000 + FILLS_WINDOW_MS) is not None
    assert fills_since(old, now_ms=1_000_000 - 60_000 + FILLS_WINDOW_MS + 1) is None


def test_only_stop_loss_and_close_all_sells_are_protective() -> None:
    assert is_protective_exit(_order(0, side=Side.SELL, reason="stop_loss"))
    assert is_protective_exit(_order(0, side=Side.SELL, reason="close_all"))
    assert not is_protective_exit(_order(0, side=Side.SELL, reason="signal"))
    assert not is_protective_exit(_order(0, side=Side.BUY, reason="close_all"))


def test_halt_sources() -> None:
    assert HaltSource.emergency("close-all") is HaltSource.EMERGENCY_CLOSE_ALL
    assert HaltSource.emergency("stop") is HaltSource.EMERGENCY_STOP
    assert {s.label for s in HaltSource if s.holds_engine} == {
        "emergency", "disabled", "deleting"}
    assert not HaltSource.BREAKER.holds_engine and not HaltSource.RECONCILIATION.holds_engine
