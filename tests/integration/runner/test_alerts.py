"""Alerts of fills reach Redis when the fill is applied, not at the next candle: a
fill learnt outside the candle loop (here: an order whose answer was lost, resolved by
the restarted runner) raises its "trade opened" alert before any candle is processed."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from redis.asyncio import Redis

from kubetrade.domain.models import OrderStatus
from kubetrade.domain.risk import RiskLimits
from kubetrade.exchange.binance import BinanceExchange
from kubetrade.exchange.replay import bundled_candles, load_candles
from kubetrade.runner.core import Runner, RunnerOptions, RunnerParts, RunnerSpec
from kubetrade.runner.market import ReplaySource
from kubetrade.state.keys import Keys
from tests.fakes.binance import FakeBinance


class WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep(self, seconds: float) -> None:  # pragma: no cover - not used here
        raise AssertionError("no sleeping in this test")


async def _runner(redis: Redis, fake: FakeBinance) -> Runner:
    csv = bundled_candles("BTC/USDT")
    assert csv is not None
    clock = WallClock()
    spec = RunnerSpec(name="alerts", algorithm="sma-crossover",
                      parameters={"fastPeriod": 2, "slowPeriod": 4}, symbols=["BTC/USDT"],
                      mode="live")
    limits = RiskLimits(strategy_max_consecutive_losses=0, daily_loss_limit_pct=Decimal(0),
                        max_drawdown_pct=Decimal(0), price_collar_pct=Decimal(0))
    return await Runner.restore(RunnerParts(
        spec, redis=redis, keys=Keys("kt"),
        exchange=BinanceExchange(fake.api_key, fake.secret, testnet=True,
                                 base_url=fake.url, clock=clock),
        market=ReplaySource({"BTC/USDT": load_candles(csv)}, clock, 0),
        clock=clock, limits=limits,
        options=RunnerOptions(reconcile_interval_s=0, paper=False)))


async def test_trade_opened_alert_raised_when_fill_is_applied(
    redis_client: Redis, fake_binance: FakeBinance
) -> None:
    first = await _runner(redis_client, fake_binance)
    # the first order executes but its answer is lost, and lookups fail: in doubt
    fake_binance.fail_orders_after_accept(count=1, mode="disconnect")
    fake_binance.fail_requests(status=503, count=None, method="GET", path="/api/v3/order")
    async for symbol, candle in first.market.candles(first.cursor):
        await first.process_candle(symbol, candle)
        if first.orders:
            break
    [order] = first.orders.values()
    assert order.status is OrderStatus.UNKNOWN
    await first.exchange.close()
    fake_binance.clear_faults()

    # restored: looks the order up (filled); no candle processed yet
    restarted = await _runner(redis_client, fake_binance)
    assert restarted.orders[order.client_order_id].status is OrderStatus.FILLED
    entries: Any = await redis_client.xrange(Keys("kt").alerts)
    kinds = [f["kind"] for _, f in entries]
    assert "trade_opened" in kinds, kinds
    await restarted.exchange.close()
