"""Fees paid in BNB (case tests/data/cases/bnb-fee-pnl): the real ccxt client against the
fake Binance with "pay fees with BNB" on. The fee reaches the books valued in USDT at
the fill's time, so the round trip's P&L, fees and win count are net of it; a fill read
back later is valued from the cache (marked an estimate) or, with no price, flagged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal as D

import pytest

from kubetrade.domain.algorithms import create_algorithm
from kubetrade.domain.clock import ManualClock
from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.metrics import compute_metrics
from kubetrade.domain.models import ClosedTrade, Fill, Order, OrderStatus, OrderType, Side
from kubetrade.domain.risk import RiskLimits
from kubetrade.exchange.binance import BinanceExchange
from kubetrade.exchange.paper import default_market
from tests.fakes.binance import FakeBinance

T0 = 1726876800000 + 3_600_000
BNB_PAYS = pytest.mark.fake_binance(
    fee_asset="BNB", balances={"USDT": D("10000"), "BTC": D("0"), "BNB": D("1")}
)


def make(fake: FakeBinance, clock: ManualClock) -> BinanceExchange:
    return BinanceExchange(api_key=fake.api_key, secret=fake.secret, base_url=fake.url,
                           clock=clock)


@pytest.fixture
async def binance(fake_binance: FakeBinance) -> AsyncIterator[BinanceExchange]:
    fake_binance.set_market_time(T0)
    fake_binance.set_price("BNBUSDT", D("600"))
    ex = make(fake_binance, ManualClock(T0))
    try:
        yield ex
    finally:
        await ex.close()


def engine(name: str) -> TradingEngine:
    return TradingEngine(name, create_algorithm("sma-crossover", {}), RiskLimits(),
                         {"BTC/USDT": default_market("BTC/USDT")}, D("10000"), "USDT",
                         timeframe_ms=60_000)


def book_case(eng: TradingEngine, buy_value: D | None, sell_value: D | None) -> ClosedTrade:
    """The case script's round trip booked through the engine (fills as it builds them,
    with the quote values the exchange client would attach)."""
    eng.on_fill(Fill("t1", "c1", eng.name, "BTC/USDT", Side.BUY, D("0.1"), D("60000"),
                     D("0.0075"), "BNB", 60_000, fee_quote=buy_value))
    o = eng.close_all(120_000)[0]
    o.status = OrderStatus.FILLED
    o.filled_quantity = o.quantity
    eng.on_order_update(o)
    [trade] = eng.on_fill(Fill("t2", o.client_order_id, eng.name, "BTC/USDT", Side.SELL,
                               D("0.1"), D("60030"), D("0.00750375"), "BNB", 120_000,
                               fee_quote=sell_value))
    return trade


async def round_trip(fake: FakeBinance, ex: BinanceExchange) -> list[Fill]:
    """Buy 0.1 BTC at 60000, sell it at 60030 (the case's fills), read the fills back."""
    fake.set_price("BTCUSDT", D("60000"))
    await ex.create_order(Order("bnb-1", "bnb", "BTC/USDT", Side.BUY, OrderType.MARKET,
                                D("0.1")))
    fake.set_price("BTCUSDT", D("60030"))
    await ex.create_order(Order("bnb-2", "bnb", "BTC/USDT", Side.SELL, OrderType.MARKET,
                                D("0.1")))
    return await ex.fetch_fills("BTC/USDT", since_ms=T0 - 60_000)


@BNB_PAYS
async def test_bnb_fee_valued_at_fill_time_and_pnl_is_net(
    fake_binance: FakeBinance, binance: BinanceExchange
) -> None:
    fills = await round_trip(fake_binance, binance)
    assert [(f.fee, f.fee_asset) for f in fills] == [
        (D("0.0075"), "BNB"), (D("0.00750375"), "BNB")]
    assert [f.fee_quote for f in fills] == [D("4.5"), D("4.50225")]
    assert not any(f.fee_estimated for f in fills)
    # the exchange took the fee from BNB, not from BTC or USDT
    assert fake_binance.state.balances["BNB"] == D("1") - D("0.01500375")
    assert fake_binance.state.balances["BTC"] == 0

    eng = engine("bnb")
    assert eng.on_fill(fills[0]) == []
    [trade] = eng.on_fill(fills[1])
    # the case's right value: 3.00 gross - 9.00225 fees = -6.00225, a losing trade
    assert trade.pnl == D("-6.00225") and trade.fees == D("9.00225")
    assert not trade.fees_estimated and trade.fees_unvalued == ""
    summary = eng.summary()
    assert (summary["wins"], summary["trades"], summary["win_rate"]) == (0, 1, 0.0)
    assert D(summary["fees"]) == D("9.00225")
    assert eng.equity == D("10000") - D("6.00225")
    metrics = compute_metrics([trade], [(0, D("10000")), (1, eng.equity)])
    assert metrics.win_rate == 0.0


@BNB_PAYS
async def test_fill_read_back_later_reuses_the_price_cached_at_its_time(
    fake_binance: FakeBinance, binance: BinanceExchange
) -> None:
    await round_trip(fake_binance, binance)
    tickers = fake_binance.count("GET", "/api/v3/ticker/price")
    binance.clock.advance(2 * 3_600_000)  # type: ignore[attr-defined]
    fake_binance.set_price("BNBUSDT", D("700"))  # today's price is not the fills' price
    fills = await binance.fetch_fills("BTC/USDT", since_ms=T0 - 60_000)
    assert [f.fee_quote for f in fills] == [D("4.5"), D("4.50225")]
    assert not any(f.fee_estimated for f in fills)
    assert fake_binance.count("GET", "/api/v3/ticker/price") == tickers


@BNB_PAYS
async def test_no_price_known_leaves_fee_unvalued_and_flagged(
    fake_binance: FakeBinance, binance: BinanceExchange
) -> None:
    await round_trip(fake_binance, binance)
    later = make(fake_binance, ManualClock(T0 + 2 * 3_600_000))  # a restarted runner
    try:
        fills = await later.fetch_fills("BTC/USDT", since_ms=T0 - 60_000)
    finally:
        await later.close()
    # the fake has no BNBUSDT candles recorded: no price at the fills' time, none cached
    assert [f.fee_quote for f in fills] == [None, None]
    eng = engine("bnb")
    eng.on_fill(fills[0])
    [trade] = eng.on_fill(fills[1])
    assert trade.pnl == D("3.000") and trade.fees_unvalued == "0.01500375 BNB"


def test_case_script_fills_without_a_price_are_flagged() -> None:
    """The case's own Fills carry no value (built by hand): the trade says it is not net
    of 0.01500375 BNB instead of silently reporting gross as net."""
    trade = book_case(engine("bnb"), None, None)
    assert trade.fees_unvalued == "0.01500375 BNB"
    # with the values the exchange client attaches, the same fills are net: -6.00225
    net = book_case(engine("bnb2"), D("4.50"), D("4.50225"))
    assert (net.pnl, net.fees, net.pnl > 0) == (D("-6.00225"), D("9.00225"), False)
