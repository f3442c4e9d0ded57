"""The fee flags of a BNB-fee round trip survive storage: the portfolio's snapshot (an
open trip that is an estimate or carries an unvalued fee) and the trades stream."""

from __future__ import annotations

from decimal import Decimal as D

from kubetrade.domain.models import ClosedTrade, Fill, Side
from kubetrade.domain.portfolio import Portfolio
from kubetrade.state.store import trade_fields, trade_from_fields


def bnb_fill(tid: str, side: Side, price: str, fee: str, value: D | None,
             estimated: bool = False, qty: str = "0.1") -> Fill:
    return Fill(tid, "c1", "s", "BTC/USDT", side, D(qty), D(price), D(fee), "BNB", 1,
                fee_quote=value, fee_estimated=estimated)


def test_open_trip_flags_survive_snapshot_and_restore() -> None:
    pf = Portfolio("s", D("20000"))
    pf.apply_fill(bnb_fill("t1", Side.BUY, "60000", "0.0075", D("4.5"), estimated=True), "BTC")
    pf.apply_fill(bnb_fill("t2", Side.BUY, "60000", "0.0075", None), "BTC")
    # the valued fee is charged to cash: 2 x 6000 notional + 4.5
    assert pf.cash == D("20000") - D("12000") - D("4.5")
    back = Portfolio.restore("s", pf.snapshot())
    sell = bnb_fill("t3", Side.SELL, "60030", "0.015", D("9"), qty="0.2")
    closed = back.apply_fill(sell, "BTC", D("0.00001"))
    assert closed is not None
    assert closed.fees_estimated and closed.fees_unvalued == "0.0075 BNB"
    assert closed.fees == D("13.5")
    assert closed.pnl == D("0.2") * D("60030") - D("12000") - D("13.5")


def test_trade_flags_survive_the_trades_stream() -> None:
    trade = ClosedTrade("ct", "s", "BTC/USDT", D("0.1"), D("1"), D("2"), 1, 2, D("9"),
                        D("-6"), "signal", fees_estimated=True, fees_unvalued="0.01 BNB")
    assert trade_from_fields(trade_fields(trade)) == trade
    plain = ClosedTrade("ct", "s", "BTC/USDT", D("0.1"), D("1"), D("2"), 1, 2, D("9"), D("-6"))
    assert trade_from_fields(trade_fields(plain)) == plain
