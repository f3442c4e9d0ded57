"""A runner restarted after downtime back-fills the candles it missed, in order, before
trading on (real ccxt client on the fake Binance's klines): a stop-loss price crossed
while it was down is acted on at the candle that crossed it, not skipped."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from redis.asyncio import Redis

from kubetrade.domain.models import Side
from kubetrade.runner.assembly import RunnerEnv, create_runner
from kubetrade.runner.core import Runner, RunnerOptions
from kubetrade.state.keys import Keys
from tests.fakes.binance import FakeBinance

MIN = 60_000
STRATEGY: dict[str, Any] = {
    "apiVersion": "kubetrade.io/v1alpha1",
    "kind": "Strategy",
    "metadata": {"name": "btc-backfill"},
    "spec": {
        # buys readily, practically never sells on a signal: the stop-loss is the exit
        "algorithm": "rsi-mean-reversion",
        "parameters": {"period": 3, "oversold": 45, "overbought": 99.9},
        "symbols": ["BTC/USDT"],
        "timeframe": "1m",
        "mode": "paper",
    },
}
POLICY = {"spec": {"stopLossPct": 0.3, "strategyMaxConsecutiveLosses": 0,
                   "dailyLossLimitPct": 0, "maxDrawdownPct": 0}}


class MarketClock:
    """Test time that the fake exchange's market follows: sleeping moves both, paced."""

    def __init__(self, fake: FakeBinance, start_ms: int) -> None:
        self.fake = fake
        self.t = 0
        self.advance_to(start_ms)

    def advance_to(self, ts_ms: int) -> None:
        self.t = ts_ms
        self.fake.set_market_time(ts_ms)

    def now_ms(self) -> int:
        return self.t

    async def sleep(self, seconds: float) -> None:
        # 1200x faster than real time, but still real: the candle feed (a task of its
        # own) must not run ahead of the runner processing its candles
        await asyncio.sleep(seconds / 1200)
        self.advance_to(self.t + max(1, int(seconds * 1000)))


async def _runner(redis: Redis, fake: FakeBinance, clock: MarketClock) -> tuple[Runner, Any]:
    env = RunnerEnv(market_data="exchange", exchange_url=fake.url, testnet=True)
    parts, closers = await create_runner(
        STRATEGY, redis=redis, keys=Keys("kt"), env=env, clock=clock, limits_manifest=POLICY,
        options=RunnerOptions(reconcile_interval_s=0),
    )
    runner = await Runner.restore(parts)
    return runner, closers


async def test_restart_backfills_missed_candles_and_sees_the_stop_crossed_meanwhile(
    redis_client: Redis, fake_binance: FakeBinance
) -> None:
    bars = fake_binance.state.series["BTCUSDT"].base["1m"]
    clock = MarketClock(fake_binance, bars[0].open_ms + 60 * MIN + 1000)
    first, closers = await _runner(redis_client, fake_binance, clock)
    assert first.engine is not None
    candles = first.market.candles(first.cursor)
    for _ in range(600):
        symbol, candle = await anext(candles)
        await first.process_candle(symbol, candle)
        if first.engine.positions:
            break
    await candles.aclose()  # type: ignore[attr-defined]  # an async generator
    for c in closers:
        await c.close()
    position = first.engine.positions["BTC/USDT"]
    assert position.stop_price is not None
    last_seen = first.cursor["BTC/USDT"]
    crossing = next(b for b in bars if b.open_ms > last_seen and b.low <= position.stop_price)
    # the runner is down while the price falls through the stop; it comes back 10 bars later
    clock.advance_to(crossing.open_ms + 10 * MIN + 1000)

    restarted, closers = await _runner(redis_client, fake_binance, clock)
    assert restarted.engine is not None and restarted.engine.positions
    seen: list[int] = []
    candles = restarted.market.candles(restarted.cursor)
    async for symbol, candle in candles:
        await restarted.process_candle(symbol, candle)
        seen.append(candle.ts_ms)
        stops = [o for o in restarted.orders.values()
                 if o.side is Side.SELL and o.reason == "stop_loss"]
        if candle.ts_ms < crossing.open_ms:
            assert not stops, "stop-loss before the price reached the stop"
        else:
            break
    await candles.aclose()  # type: ignore[attr-defined]  # an async generator
    # every missed candle, in order, from the one after the last decided
    assert seen == list(range(last_seen + MIN, crossing.open_ms + MIN, MIN))
    assert len(stops) == 1 and not restarted.engine.positions
    assert Decimal(crossing.low) <= position.stop_price
    for c in closers:
        await c.close()
