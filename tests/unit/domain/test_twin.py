"""Live against its paper twin (kubetrade/domain/twin.py): pairing by decision, the
figures of settled pairs, divergence and its threshold, snapshot round trip."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kubetrade.domain.twin import (
    LIVE,
    TWIN,
    BookFigures,
    OrderOutcome,
    TwinLedger,
    compare,
    divergence_pct,
    outcomes_total,
    slippage_bps,
)

D = Decimal


def filled(side: str, ms: int, price: str, updated: int | None = None) -> OrderOutcome:
    return OrderOutcome("BTC/USDT", side, ms, "filled", D("0.01"), D(price),
                        ms if updated is None else updated)


def test_slippage_is_positive_when_live_is_worse_on_either_side() -> None:
    assert slippage_bps("buy", D("100.10"), D("100")) == D("10")
    assert slippage_bps("sell", D("99.90"), D("100")) == D("10")
    assert slippage_bps("sell", D("100.10"), D("100")) == D("-10")
    with pytest.raises(ValueError, match="twin price"):
        slippage_bps("buy", D(1), D(0))


def test_matched_missed_extra_rejected_and_latency() -> None:
    totals = outcomes_total([
        (LIVE, filled("buy", 1000, "100.10", updated=1250)),
        (TWIN, filled("buy", 1000, "100")),
        (LIVE, filled("sell", 2000, "109.89", updated=2050)),
        (TWIN, filled("sell", 2000, "110")),
        # live rejected, twin filled: one rejection, one missed fill
        (LIVE, OrderOutcome("BTC/USDT", "buy", 3000, "rejected", updated_ms=3010)),
        (TWIN, filled("buy", 3000, "90")),
        # the twin sells what live never bought: missed again, live has no order
        (TWIN, filled("sell", 4000, "95")),
        # live alone (e.g. the twin had no position): extra
        (LIVE, filled("sell", 5000, "80", updated=5400)),
    ])
    assert (totals.fills_matched, totals.fills_missed, totals.fills_extra) == (2, 2, 1)
    assert (totals.rejected_live, totals.rejected_twin) == (1, 0)
    assert totals.slippage_bps_sum == D("10") + D("10")
    assert totals.latency_count == 3 and totals.latency_ms_sum == 250 + 50 + 400
    assert totals.latency_ms_max == 400


def test_a_lone_order_waits_until_the_other_book_has_decided() -> None:
    ledger = TwinLedger()
    ledger.record(LIVE, filled("buy", 1000, "100"))
    assert ledger.totals.fills_extra == 0 and ledger.pending  # twin may still decide
    ledger.record(TWIN, filled("buy", 1000, "100"))
    assert ledger.totals.fills_matched == 1 and not ledger.pending


def test_an_open_order_stays_pending_until_terminal() -> None:
    ledger = TwinLedger()
    ledger.record(LIVE, OrderOutcome("BTC/USDT", "buy", 1000, "open"))
    ledger.record(TWIN, filled("buy", 1000, "100"))
    ledger.close_decisions(5000)
    assert ledger.totals.fills_matched == 0 and ledger.pending
    ledger.record(LIVE, filled("buy", 1000, "100.05", updated=1100))
    assert ledger.totals.fills_matched == 1 and not ledger.pending
    assert ledger.totals.slippage_bps_sum == D("5")


def test_snapshot_round_trip_keeps_totals_and_pending() -> None:
    ledger = TwinLedger()
    ledger.record(LIVE, filled("buy", 1000, "100.1"))
    ledger.record(TWIN, filled("buy", 1000, "100"))
    ledger.record(LIVE, OrderOutcome("BTC/USDT", "sell", 2000, "open"))
    again = TwinLedger.restore(ledger.snapshot())
    assert again == ledger


def test_divergence_and_threshold() -> None:
    live = BookFigures(D("9800"), D("10000"), D("12"), 3)
    twin = BookFigures(D("10050"), D("10000"), D("10"), 4)
    assert divergence_pct(live, twin) == D("2.5000")
    off = compare(live, twin, outcomes_total([]))
    assert not off.diverged  # threshold 0 = off
    over = compare(live, twin, outcomes_total([]), threshold_pct=D("2"))
    assert over.diverged and not compare(live, twin, over.totals, D("3")).diverged
    shown = over.to_dict()
    assert shown["pnl_gap"] == "-250" and shown["avg_slippage_bps"] is None
    assert shown["live"]["pnl"] == "-200" and shown["twin"]["trades"] == 4
    assert divergence_pct(live, BookFigures(D(1), D(0), D(0), 0)) == 0


def test_average_slippage_and_latency_of_a_comparison() -> None:
    totals = outcomes_total([
        (LIVE, filled("buy", 1000, "100.10", updated=1300)),
        (TWIN, filled("buy", 1000, "100")),
        (LIVE, filled("sell", 2000, "99.95", updated=2100)),
        (TWIN, filled("sell", 2000, "100")),
    ])
    same = BookFigures(D(100), D(100), D(0), 1)
    c = compare(same, same, totals)
    assert c.avg_slippage_bps == D("7.50") and c.avg_latency_ms == 200
    assert c.to_dict()["max_latency_ms"] == 300
    assert c.to_dict()["rejected"] == {"live": 0, "twin": 0}


def test_book_figures_from_an_engine_summary() -> None:
    fig = BookFigures.from_summary({"equity": "10010.5", "starting_cash": "10000",
                                    "fees": "1.2", "trades": 2})
    assert fig.pnl == D("10.5") and fig.trades == 2


def test_unknown_book_is_refused() -> None:
    with pytest.raises(ValueError, match="book must be"):
        TwinLedger().record("other", filled("buy", 1, "1"))
