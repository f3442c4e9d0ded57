"""The engine's parts on their own: equity halts (halts.py), the order ledger
(ledger.py), the event journal (journal.py)."""

from __future__ import annotations

from decimal import Decimal

from kubetrade.domain.halts import DAY_MS, HALT_DAILY, HALT_DRAWDOWN, EquityGuard
from kubetrade.domain.journal import EventJournal
from kubetrade.domain.ledger import SEEN_TRADES_KEPT, OrderLedger
from kubetrade.domain.models import Order, OrderType, Side
from kubetrade.domain.risk import RiskLimits

D = Decimal


def _guard(**limits: object) -> tuple[EquityGuard, EventJournal]:
    journal = EventJournal("s")
    return EquityGuard(RiskLimits.model_validate(limits), journal, D(1000)), journal


def test_drawdown_halts_and_a_resume_restarts_the_peak() -> None:
    guard, journal = _guard(max_drawdown_pct=10, daily_loss_limit_pct=0)
    guard.mark(D(1100))
    assert guard.peak == D(1100)
    guard.mark(D(990))  # 10 % below the peak
    assert HALT_DRAWDOWN in guard.halts
    assert [e.kind for e in journal.drain()] == ["max_drawdown_halt"]
    assert guard.lift_for_resume() == [HALT_DRAWDOWN]
    assert guard.peak == D(990) and not guard.halts


def test_daily_loss_halts_until_the_next_utc_day() -> None:
    guard, journal = _guard(daily_loss_limit_pct=5, max_drawdown_pct=0)
    guard.new_day(0, 0)
    journal.now_ms = 1000
    guard.mark(D(950))
    assert guard.halts[HALT_DAILY].until_ms == DAY_MS
    guard.new_day(1, DAY_MS)
    assert not guard.halts and guard.day_start == D(950)
    assert [e.action for e in journal.drain()] == ["halt", "halt_lifted"]


def test_guard_snapshot_round_trip() -> None:
    guard, _ = _guard(max_drawdown_pct=10)
    guard.halt_manual("test", "me", 5)
    guard.mark(D(1200))
    snap = {"halts": guard.snapshot_halts(), **guard.snapshot_equity()}
    again, _ = _guard(max_drawdown_pct=10)
    again.restore(snap, "0")
    assert (again.halts, again.equity, again.peak, again.dd_floor) == (
        guard.halts, guard.equity, guard.peak, guard.dd_floor)


def _order(cid: str, symbol: str, side: Side) -> Order:
    return Order(client_order_id=cid, strategy="s", symbol=symbol, side=side,
                 type=OrderType.MARKET, quantity=D(1), created_ms=0, updated_ms=0)


def test_ledger_ids_are_unique_within_a_millisecond_and_deterministic() -> None:
    a, b = OrderLedger("s"), OrderLedger("s")
    ids = [a.next_id(7) for _ in range(3)]
    assert len(set(ids)) == 3 and ids == [b.next_id(7) for _ in range(3)]
    a.id_source = "ns/s"
    assert a.next_id(8) != b.next_id(8)


def test_ledger_pending_exits_and_entries_in_flight() -> None:
    ledger = OrderLedger("s")
    ledger.add(_order("1", "BTC/USDT", Side.BUY), "signal")
    ledger.add(_order("2", "ETH/USDT", Side.SELL), "stop_loss")
    assert ledger.pending("BTC/USDT") is not None and ledger.pending("XRP/USDT") is None
    assert ledger.exiting("ETH/USDT") and not ledger.exiting("BTC/USDT")
    assert ledger.entries_not_held({}) == 1 and ledger.entries_not_held({"BTC/USDT": 1}) == 0


def test_ledger_forgets_the_oldest_seen_trades() -> None:
    ledger = OrderLedger("s")
    for i in range(SEEN_TRADES_KEPT + 1):
        ledger.remember(str(i))
    assert not ledger.seen("0") and ledger.seen("1") and ledger.seen(str(SEEN_TRADES_KEPT))


def test_journal_time_only_moves_forward() -> None:
    journal = EventJournal("s")
    journal.advance(10)
    journal.advance(5)
    journal.emit("x", "why", detail_key=1)
    [event] = journal.drain()
    assert (event.ts_ms, event.strategy, event.detail) == (10, "s", {"detail_key": 1})
    assert journal.drain() == []
