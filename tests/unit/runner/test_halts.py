"""The runner's halt sources: kept by source (``HaltSource``), shown as the text of
the engine's manual halt, persisted beside the engine snapshot, so the change that
lifts one of them after a restart still finds it. Snapshots written before the
sources were persisted are read from the text."""

from __future__ import annotations

from decimal import Decimal

from kubetrade.domain.models import Order, OrderType, Side
from kubetrade.runner.halts import SNAPSHOT_KEY, HaltBook, HaltSource, legacy_sources


def _order(side: Side, reason: str) -> Order:
    return Order(client_order_id="kt-x-1", strategy="s", symbol="BTC/USDT", side=side,
                 type=OrderType.MARKET, quantity=Decimal(1), created_ms=0, reason=reason)


def test_sources_round_trip_through_the_snapshot() -> None:
    book = HaltBook()
    book.set(HaltSource.DISABLED, "spec.enabled is false")
    book.set(HaltSource.EMERGENCY_STOP, "stop by ops: drill; then more; and more")
    book.breaker_open = True  # an exchange gate: not persisted, not in the text
    snapshot = book.engine_snapshot({"version": 1})
    assert snapshot["version"] == 1
    restarted = HaltBook()
    restarted.restore_manual(snapshot, book.text())
    assert restarted.reasons == book.manual
    assert not restarted.breaker_open


def test_text_is_what_the_manual_halt_always_said() -> None:
    book = HaltBook()
    book.set(HaltSource.EMERGENCY_CLOSE_ALL, "close-all by ops: drill")
    book.set(HaltSource.DISABLED, "spec.enabled is false")
    book.set(HaltSource.DELETING, "Strategy deleted")
    assert book.text() == ("deleting: Strategy deleted; disabled: spec.enabled is false; "
                           "emergency: close-all by ops: drill")


def test_one_emergency_source_at_a_time() -> None:
    book = HaltBook()
    book.set(HaltSource.EMERGENCY_STOP, "stop by a: x")
    book.set(HaltSource.EMERGENCY_CLOSE_ALL, "close-all by b: y")
    assert book.emergency is HaltSource.EMERGENCY_CLOSE_ALL
    assert list(book.reasons) == [HaltSource.EMERGENCY_CLOSE_ALL]
    book.set(HaltSource.EMERGENCY_STOP, None)  # "none" lifts whichever is in force
    assert not book.reasons


def test_no_manual_halt_means_no_source_even_if_the_snapshot_says_so() -> None:
    book = HaltBook()
    book.restore_manual({SNAPSHOT_KEY: {"disabled": "spec.enabled is false"}}, None)
    assert not book.reasons


def test_legacy_snapshot_sources_read_from_the_text() -> None:
    text = "disabled: spec.enabled is false; emergency: stop by ops: drill; then more"
    book = HaltBook()
    book.restore_manual({"version": 1}, text)
    assert book.reasons == {HaltSource.DISABLED: "spec.enabled is false",
                            HaltSource.EMERGENCY_STOP: "stop by ops: drill; then more"}
    assert legacy_sources("emergency: close-all by ops: x") == {
        HaltSource.EMERGENCY_CLOSE_ALL: "close-all by ops: x"}


def test_text_no_source_claims_is_lifted_by_an_emergency_resume() -> None:
    assert legacy_sources("halted by hand") == {HaltSource.EMERGENCY_STOP: "halted by hand"}
    assert legacy_sources("") == {}


def test_gates_hold_orders_and_let_protective_exits_through_reconciliation() -> None:
    book = HaltBook()
    entry, stop = _order(Side.BUY, "signal"), _order(Side.SELL, "stop_loss")
    assert book.blocked_reason(entry) == ""
    book.awaiting_reconciliation = True
    assert book.blocked_reason(entry) == "awaiting_reconciliation"
    assert book.blocked_reason(stop) == ""
    book.breaker_open = True
    assert book.blocked_reason(stop) == "circuit_open"
    with book.gates_lifted():
        assert book.blocked_reason(entry) == ""
    assert book.breaker_open and book.awaiting_reconciliation
    assert not book.manual and book.text() == ""
