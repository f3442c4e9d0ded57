"""A live runner on the fake Binance with "pay fees with BNB" on (case bnb-fee-pnl, end
to end): the real ccxt client reads the fills, the BNB commission is valued at the
BNBUSDT ticker, and the runner's books are net of it: a round trip's P&L is its gross
minus every fee, and the summary's fees are the BNB fees' value."""

from __future__ import annotations

from decimal import Decimal

import pytest
from redis.asyncio import Redis

from kubetrade.exchange.binance import BinanceExchange
from kubetrade.exchange.replay import bundled_candles, load_candles
from kubetrade.runner.core import Runner, RunnerOptions, RunnerParts, RunnerSpec
from kubetrade.runner.market import ReplaySource
from kubetrade.state.keys import Keys
from tests.fakes.binance import FakeBinance
from tests.integration.runner.test_namespaces import LIMITS, WallClock


@pytest.mark.fake_binance(fee_asset="BNB",
                          balances={"USDT": Decimal("10000"), "BNB": Decimal("5")})
async def test_live_round_trip_books_bnb_fees_net(
    redis_client: Redis, fake_binance: FakeBinance
) -> None:
    fake_binance.set_price("BNBUSDT", Decimal("600"))
    clock = WallClock()
    csv = bundled_candles("BTC/USDT")
    assert csv is not None
    exchange = BinanceExchange(fake_binance.api_key, fake_binance.secret, testnet=True,
                               base_url=fake_binance.url, clock=clock)
    spec = RunnerSpec(name="bnb", algorithm="sma-crossover",
                      parameters={"fastPeriod": 2, "slowPeriod": 4}, symbols=["BTC/USDT"],
                      mode="live")
    runner = await Runner.restore(RunnerParts(
        spec, redis=redis_client, keys=Keys("kt-bnb"), exchange=exchange,
        market=ReplaySource({"BTC/USDT": load_candles(csv)}, clock, 0),
        clock=clock, limits=LIMITS,
        options=RunnerOptions(reconcile_interval_s=0, paper=False)))
    try:
        engine = runner.engine
        assert engine is not None
        async for sym, candle in runner.market.candles(runner.cursor):
            await runner.process_candle(sym, candle)
            if engine.summary()["trades"] >= 1:
                break
        summary = engine.summary()
        assert summary["trades"] >= 1
        with fake_binance.state.lock:
            trades = list(fake_binance.state.trades)
        assert trades and {t.commission_asset for t in trades} == {"BNB"}
        bnb_paid = sum((t.commission for t in trades), Decimal(0))
        # every BNB commission valued at 600 USDT is in the books' fees
        assert Decimal(summary["fees"]) == bnb_paid * 600
        gross = sum(((t.qty * t.price) * (1 if t.side == "SELL" else -1) for t in trades),
                    Decimal(0))
        # flat after its first round trip: realised P&L = gross - every fee, exactly
        assert not engine.positions
        assert Decimal(summary["realised_pnl"]) == gross - bnb_paid * 600
    finally:
        await exchange.close()
