"""Property test of the paper broker: under any mix of market and limit orders, partial
fills and cancels, balances never go negative, nothing stays locked without a resting
order, and every unit of cash and coin is accounted for by the fills."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from kubetrade.domain.models import ZERO, Candle, Order, OrderType, Side
from kubetrade.exchange.base import OrderRejected
from kubetrade.exchange.paper import PaperBroker, default_market

BTC = "BTC/USDT"
T0 = 1_726_876_800_000

price = st.integers(min_value=50_000, max_value=70_000).map(Decimal)
action = st.one_of(
    st.tuples(st.just("candle"), price, st.integers(0, 3000), st.integers(1, 50)),
    st.tuples(st.just("market"), st.booleans(), st.integers(1, 300)),
    st.tuples(st.just("limit"), st.booleans(), st.integers(1, 300), st.integers(-2000, 2000)),
    st.tuples(st.just("cancel"), st.integers(0, 20)),
)


@settings(max_examples=200, deadline=None)
@given(actions=st.lists(action, max_size=50))
def test_broker_balances_are_conserved_and_never_negative(actions: list[tuple]) -> None:  # type: ignore[type-arg]
    start = Decimal(20_000)
    b = PaperBroker({BTC: default_market(BTC)}, {"USDT": start}, slippage_bps=Decimal(3))
    b.on_candle(BTC, Candle(T0, Decimal(60000), Decimal(60000), Decimal(60000),
                            Decimal(60000), Decimal(10)))
    last = Decimal(60000)
    minute = 1
    placed: list[str] = []
    for n, act in enumerate(actions):
        kind = act[0]
        try:
            if kind == "candle":
                _, close, spread, vol = act
                last = close
                b.on_candle(BTC, Candle(T0 + minute * 60_000, close, close + spread,
                                        close - spread, close, Decimal(vol) / 10))
                minute += 1
            elif kind == "market":
                _, buy, q = act
                b.submit(Order(f"m{n}", "p", BTC, Side.BUY if buy else Side.SELL,
                               OrderType.MARKET, Decimal(q) / 1000))
            elif kind == "limit":
                _, buy, q, off = act
                o = Order(f"l{n}", "p", BTC, Side.BUY if buy else Side.SELL, OrderType.LIMIT,
                          Decimal(q) / 1000, price=last + off)
                b.submit(o)
                placed.append(o.client_order_id)
            elif placed:
                b.cancel(placed[act[1] % len(placed)])
        except OrderRejected:
            pass
        bal = b.balances()
        for asset in bal.values():
            assert asset.free >= 0 and asset.locked >= 0
        fills = b.fills()
        spent = sum((f.quantity * f.price + f.fee for f in fills if f.side is Side.BUY), ZERO)
        got = sum((f.quantity * f.price - f.fee for f in fills if f.side is Side.SELL), ZERO)
        usdt = bal["USDT"]
        assert usdt.free + usdt.locked == start - spent + got
        coins = sum((f.quantity if f.side is Side.BUY else -f.quantity for f in fills), ZERO)
        btc = bal.get("BTC")
        assert (btc.free + btc.locked if btc else ZERO) == coins
        if not b.open_orders():
            assert usdt.locked == 0 and (btc is None or btc.locked == 0)
        assert all(f.fee >= 0 for f in fills)
