"""Property tests of the books: whatever the prices and the order of events,

* equity = cash + every position at its mark,
* no balance goes negative (our cash, positions, and the paper exchange's balances),
* realised P&L is exactly the sum of the closed trades' P&L,
* fees are never negative,
* and our books agree with the paper exchange's balances.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubetrade.domain.models import ZERO, Fill, OrderStatus, Side
from kubetrade.domain.portfolio import BooksMismatch, Portfolio
from kubetrade.exchange.base import OrderRejected

from ._helpers import BTC, ETH, SymbolScripted, candle, make

prices = st.integers(min_value=100, max_value=10_000_000).map(lambda c: Decimal(c) / 100)
sides = st.sampled_from([None, None, Side.BUY, Side.SELL])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    btc=st.lists(st.tuples(prices, sides, st.integers(0, 300)), min_size=1, max_size=60),
    eth=st.lists(st.tuples(prices, sides), min_size=0, max_size=30),
    size_pct=st.sampled_from([Decimal(5), Decimal(30), Decimal(60), Decimal(100)]),
    stop=st.sampled_from([Decimal(0), Decimal(2), Decimal(10)]),
)
def test_engine_and_broker_books_hold_their_invariants(
    btc: list[tuple[Decimal, Side | None, int]],
    eth: list[tuple[Decimal, Side | None]],
    size_pct: Decimal,
    stop: Decimal,
) -> None:
    script = {BTC: {i: s for i, (_, s, _) in enumerate(btc) if s is not None},
              ETH: {i: s for i, (_, s) in enumerate(eth) if s is not None}}
    eng, broker = make(symbols=(BTC, ETH), strategy=SymbolScripted(per_symbol=script),
                       max_position_size_pct=size_pct, stop_loss_pct=stop,
                       daily_loss_limit_pct=0, max_drawdown_pct=0, price_collar_pct=0,
                       max_orders_per_interval=1000, strategy_max_consecutive_losses=0)
    trades = []
    fills_seen = []
    minute = 0
    for i, (price, _, drop) in enumerate(btc):
        low = max(price - Decimal(drop), Decimal("0.01"))
        feeds = [(BTC, candle(minute, price, low=low))]
        if i < len(eth):
            feeds.append((ETH, candle(minute, eth[i][0])))
        minute += 1
        for sym, c in feeds:
            broker.on_candle(sym, c, c.ts_ms + 60_000)
            for o in eng.on_candle(sym, c):
                try:
                    updated, fills = broker.submit(o, c.ts_ms + 60_000)
                except OrderRejected:  # an exchange refusal: the engine is told
                    o.status = OrderStatus.REJECTED
                    updated, fills = o, []
                eng.on_order_update(updated)
                for f in fills:
                    fills_seen.append(f)
                    trades.extend(eng.on_fill(f))
        pf = eng.portfolio
        marks = eng.marks
        expected = pf.cash + sum((p.quantity * marks[s] for s, p in pf.positions.items()), ZERO)
        assert eng.equity == expected
        assert pf.cash >= 0
        assert all(p.quantity > 0 for p in pf.positions.values())
        assert all(b.free >= 0 and b.locked >= 0 for b in broker.balances().values())
        assert pf.realised_pnl == sum((t.pnl for t in trades), ZERO)
        assert pf.fees_paid >= 0
        assert all(f.fee >= 0 for f in fills_seen)
        bal = broker.balances()
        assert bal["USDT"].free == pf.cash
        for sym, base in ((BTC, "BTC"), (ETH, "ETH")):
            held = pf.positions[sym].quantity if sym in pf.positions else ZERO
            assert bal.get(base, None) is None or bal[base].free == held
    # closing everything turns all P&L into realised P&L (positions worth less than the
    # exchange's minimum order value cannot be sold and stay, audited)
    for o in eng.close_all(10**15):
        updated, fills = broker.submit(o)
        eng.on_order_update(updated)
        for f in fills:
            trades.extend(eng.on_fill(f))
    if not eng.portfolio.positions:
        assert eng.portfolio.cash == eng.portfolio.starting_cash + sum(
            (t.pnl for t in trades), ZERO
        )


fill_qty = st.integers(min_value=1, max_value=10_000).map(lambda q: Decimal(q) / 1000)
fee_asset = st.sampled_from(["USDT", "BTC", "BNB"])


@settings(max_examples=200, deadline=None)
@given(events=st.lists(st.tuples(st.booleans(), fill_qty, prices, st.integers(0, 50), fee_asset),
                       max_size=40))
def test_portfolio_alone_under_any_fill_sequence(
    events: list[tuple[bool, Decimal, Decimal, int, str]],
) -> None:
    """Fills straight into the books, with fees in quote, base or a third asset; fills
    the books cannot accept are refused and leave them unchanged."""
    pf = Portfolio("p", Decimal(100_000))
    trades = []
    mark = Decimal(1)
    for n, (buy, qty, price, fee_bps, asset) in enumerate(events):
        mark = price
        fee = (qty * price * fee_bps / 10_000) if asset == "USDT" else (qty * fee_bps / 10_000)
        held = pf.positions[BTC].quantity if BTC in pf.positions else ZERO
        if not buy:
            qty = min(qty, held - (fee if asset == "BTC" else ZERO))
            if qty <= 0:
                continue
        f = Fill(f"t{n}", f"c{n}", "p", BTC, Side.BUY if buy else Side.SELL, qty, price,
                 fee, asset, n)
        before = pf.snapshot()
        try:
            closed = pf.apply_fill(f, "BTC")
        except BooksMismatch:
            assert pf.snapshot() == before
            continue
        if closed is not None:
            trades.append(closed)
            assert closed.fees >= 0
        assert pf.cash >= 0
        assert all(p.quantity >= 0 for p in pf.positions.values())
        pos = pf.positions.get(BTC)
        assert pf.equity({BTC: mark}) == pf.cash + (pos.quantity * mark if pos else ZERO) + (
            pf.dust.get(BTC, ZERO) * mark
        )
        assert pf.realised_pnl == sum((t.pnl for t in trades), ZERO)
        assert pf.fees_paid >= 0
