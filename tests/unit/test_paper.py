"""The paper broker: fills, fees, slippage, partial fills, rejections, persistence."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from kubetrade.domain.clock import ManualClock
from kubetrade.domain.models import Candle, Order, OrderStatus, OrderType, Side
from kubetrade.exchange.base import (
    BadSymbol,
    DuplicateOrder,
    InsufficientFunds,
    OrderNotFound,
    OrderRejected,
)
from kubetrade.exchange.paper import PaperBroker, PaperExchange, default_market

BTC = "BTC/USDT"
T0 = 1_726_876_800_000


def c(i: int, close: str, low: str | None = None, high: str | None = None,
      volume: str = "10") -> Candle:
    cl = Decimal(close)
    lo = Decimal(low) if low else cl
    hi = Decimal(high) if high else cl
    return Candle(T0 + i * 60_000, cl, max(hi, cl), min(lo, cl), cl, Decimal(volume))


def order(cid: str, side: Side, qty: str, type_: OrderType = OrderType.MARKET,
          price: str | None = None) -> Order:
    return Order(cid, "s", BTC, side, type_, Decimal(qty),
                 price=Decimal(price) if price else None)


def broker(usdt: str = "10000", **kw: Any) -> PaperBroker:
    b = PaperBroker({BTC: default_market(BTC)}, {"USDT": Decimal(usdt)}, **kw)
    b.on_candle(BTC, c(0, "60000"))
    return b


def test_market_buy_pays_slippage_and_fee_in_quote() -> None:
    b = broker(slippage_bps=Decimal(5), fee_rate=Decimal("0.001"))
    got, fills = b.submit(order("a", Side.BUY, "0.1"))
    assert got.status is OrderStatus.FILLED and got.exchange_order_id
    [f] = fills
    assert f.price == Decimal("60030.00")  # 60000 * 1.0005 on the 0.01 tick
    assert f.fee == Decimal("6.003") and f.fee_asset == "USDT"
    bal = b.balances()
    assert bal["USDT"].free == Decimal(10000) - Decimal("6003.000") - Decimal("6.003")
    assert bal["BTC"].free == Decimal("0.1")
    _, [sf] = b.submit(order("b", Side.SELL, "0.1"))
    assert sf.price == Decimal("59970.00")


def test_insufficient_balance_is_rejected() -> None:
    b = broker(usdt="100")
    with pytest.raises(InsufficientFunds, match="buy needs"):
        b.submit(order("a", Side.BUY, "0.01"))
    with pytest.raises(InsufficientFunds, match="sell needs"):
        b.submit(order("b", Side.SELL, "0.01"))
    assert b.balances()["USDT"].free == Decimal(100)


def test_exchange_minimums_duplicates_and_unknown_symbols() -> None:
    b = broker()
    with pytest.raises(OrderRejected) as exc:
        b.submit(order("a", Side.BUY, "0.000001"))
    assert exc.value.reason == "lot_size"
    with pytest.raises(OrderRejected) as exc:
        b.submit(order("b", Side.BUY, "0.00005"))  # 3 USDT < 5
    assert exc.value.reason == "min_notional"
    b.submit(order("c", Side.BUY, "0.001"))
    with pytest.raises(DuplicateOrder):
        b.submit(order("c", Side.BUY, "0.001"))
    o = order("d", Side.BUY, "0.001")
    o.symbol = "NOPE/USDT"
    with pytest.raises(BadSymbol):
        b.submit(o)


def test_the_order_history_keeps_open_orders_and_the_last_done_ones() -> None:
    b = broker(max_orders_kept=3)
    b.submit(order("rest", Side.BUY, "0.01", OrderType.LIMIT, "50000"))  # stays open
    for n in range(5):
        b.submit(order(f"m{n}", Side.BUY, "0.001"))
    # the oldest done orders are forgotten; the open one, oldest of all, is kept
    assert [cid for cid in ("rest", "m0", "m1", "m2", "m3", "m4")
            if b.get_order(cid) is not None] == ["rest", "m3", "m4"]
    with pytest.raises(DuplicateOrder):  # an id among those kept is refused again
        b.submit(order("m4", Side.BUY, "0.001"))
    with pytest.raises(DuplicateOrder):
        b.submit(order("rest", Side.BUY, "0.001"))
    assert b.cancel("rest").status is OrderStatus.CANCELED
    with pytest.raises(ValueError, match="max_orders_kept must be >= 1"):
        broker(max_orders_kept=0)


def test_limit_order_rests_locks_funds_and_fills_partially_by_volume() -> None:
    b2 = broker(fee_rate=Decimal("0.001"))
    with pytest.raises(InsufficientFunds):  # 2 BTC at 59000 is more than the cash
        b2.submit(order("big", Side.BUY, "2", OrderType.LIMIT, "59000"))
    got, fills = b2.submit(order("a", Side.BUY, "0.1", OrderType.LIMIT, "59000"))
    assert fills == [] and got.status is OrderStatus.OPEN
    assert b2.balances()["USDT"].locked == Decimal("5900.0") + Decimal("5.9")
    # candle does not reach the limit: nothing
    assert b2.on_candle(BTC, c(1, "59500", low="59100")) == []
    # reaches it with volume 0.5 -> 10% participation = 0.05 per candle
    f1 = b2.on_candle(BTC, c(2, "59200", low="58900", volume="0.5"))
    assert [f.quantity for f in f1] == [Decimal("0.05")] and f1[0].price == Decimal(59000)
    assert b2.get_order("a").status is OrderStatus.PARTIALLY_FILLED  # type: ignore[union-attr]
    f2 = b2.on_candle(BTC, c(3, "59000", low="58800", volume="5"))
    assert [f.quantity for f in f2] == [Decimal("0.05")]
    assert b2.get_order("a").status is OrderStatus.FILLED  # type: ignore[union-attr]
    bal = b2.balances()
    assert bal["USDT"].locked == 0
    assert bal["USDT"].free == Decimal(10000) - Decimal("5900") - Decimal("5.9")
    assert bal["BTC"].free == Decimal("0.1")


def test_cancel_releases_locked_funds() -> None:
    b = broker()
    b.submit(order("a", Side.BUY, "0.1", OrderType.LIMIT, "50000"))
    assert b.balances()["USDT"].locked > 0
    got = b.cancel("a")
    assert got.status is OrderStatus.CANCELED
    assert b.balances()["USDT"].locked == 0 and b.balances()["USDT"].free == Decimal(10000)
    with pytest.raises(OrderNotFound):
        b.cancel("zzz")


def test_marketable_limit_fills_at_last_price() -> None:
    b = broker()
    _, [f] = b.submit(order("a", Side.BUY, "0.1", OrderType.LIMIT, "61000"))
    assert f.price == Decimal(60000)


def test_snapshot_restore_round_trip() -> None:
    b = broker()
    b.submit(order("a", Side.BUY, "0.1"))
    b.submit(order("b", Side.BUY, "0.01", OrderType.LIMIT, "50000"))
    snap = json.loads(json.dumps(b.snapshot()))
    b2 = PaperBroker({BTC: default_market(BTC)}, {})
    b2.restore(snap)
    assert b2.balances() == b.balances()
    assert [o.client_order_id for o in b2.open_orders()] == ["b"]
    with pytest.raises(DuplicateOrder):
        b2.submit(order("a", Side.BUY, "0.1"))
    _, [f] = b2.submit(order("c", Side.SELL, "0.1"))
    assert f.trade_id not in {x.trade_id for x in b.fills()}


async def test_paper_exchange_speaks_the_exchange_client_interface() -> None:
    clock = ManualClock(T0)
    ex = PaperExchange(PaperBroker({BTC: default_market(BTC)}, {"USDT": Decimal(1000)}), clock)
    assert set(await ex.load_markets()) == {BTC}
    ex.feed(BTC, c(0, "60000"))
    ex.feed(BTC, c(1, "60100"))
    assert await ex.fetch_last_price(BTC) == Decimal("60100")
    assert [x.ts_ms for x in await ex.fetch_candles(BTC, "1m")] == [T0, T0 + 60_000]
    placed = await ex.create_order(order("k1", Side.BUY, "0.001"))
    assert placed.status is OrderStatus.FILLED
    assert (await ex.fetch_order("k1", BTC)).status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert await ex.fetch_order("nope", BTC) is None
    fills = await ex.fetch_fills(BTC)
    assert len(fills) == 1 and fills[0].client_order_id == "k1"
    assert (await ex.fetch_balances())["BTC"].free == Decimal("0.001")
    assert await ex.server_time_ms() == T0
    with pytest.raises(BadSymbol):
        await ex.fetch_last_price("X/USDT")
    await ex.close()


def test_snapshot_does_not_change_the_broker_and_keeps_bounded_history() -> None:
    b = broker(usdt="1000000")
    for i in range(30):
        b.submit(order(f"m{i}", Side.BUY, "0.001"))
    b.submit(order("rest", Side.BUY, "0.01", OrderType.LIMIT, "1000"))
    assert b.snapshot() == b.snapshot()
    small = b.snapshot(history=5)
    assert len(small["fills"]) == 5
    ids = [o["client_order_id"] for o in small["orders"]]
    assert "rest" in ids and len(ids) == 5  # the resting order is among the last 5
    b2 = PaperBroker({BTC: default_market(BTC)}, {})
    b2.restore(small)
    _, [f] = b2.submit(order("next", Side.BUY, "0.001"))
    assert f.trade_id == "paper-t31"
