"""On-exchange stop-losses, live mode (real ccxt client, fake Binance that triggers
STOP_LOSS_LIMIT orders on its price): a position carries one stop on the exchange with
the books' quantity and stop; a signal exit cancels it before selling; a price through
the stop closes the position on the exchange and the runner books that fill once."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from redis.asyncio import Redis

from kubetrade.domain.models import Candle, OrderStatus, OrderType
from kubetrade.domain.risk import RiskLimits, stop_limit_for
from kubetrade.exchange.binance import BinanceExchange
from kubetrade.exchange.replay import bundled_candles, load_candles
from kubetrade.exchange.resilient import ResilientExchange
from kubetrade.runner.core import Runner, RunnerOptions, RunnerParts, RunnerSpec
from kubetrade.runner.market import ReplaySource
from kubetrade.state.keys import Keys
from tests.fakes.binance import FakeBinance
from tests.fakes.binance.state import FakeOrder

SYMBOL = "BTC/USDT"
LIMITS = RiskLimits(strategy_max_consecutive_losses=0, daily_loss_limit_pct=Decimal(0),
                    max_drawdown_pct=Decimal(0), price_collar_pct=Decimal(0))


class WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep(self, seconds: float) -> None:
        return None


async def _runner(redis: Redis, fake: FakeBinance, name: str,
                  limits: RiskLimits = LIMITS) -> tuple[Runner, AsyncIterator[tuple[str, Candle]]]:
    clock = WallClock()
    inner = BinanceExchange(fake.api_key, fake.secret, testnet=True, base_url=fake.url,
                            clock=clock)
    exchange = ResilientExchange(inner, clock)
    csv = bundled_candles(SYMBOL)
    assert csv is not None
    spec = RunnerSpec(name=name, algorithm="sma-crossover",
                      parameters={"fastPeriod": 2, "slowPeriod": 4}, symbols=[SYMBOL],
                      mode="live")
    runner = await Runner.restore(RunnerParts(
        spec, redis=redis, keys=Keys(f"stops-{name}"), exchange=exchange,
        market=ReplaySource({SYMBOL: load_candles(csv)}, clock, 0), clock=clock,
        limits=limits, options=RunnerOptions(reconcile_interval_s=0, paper=False)))
    return runner, runner.market.candles(runner.cursor)


async def _step(runner: Runner, candles: AsyncIterator[tuple[str, Candle]]) -> None:
    symbol, candle = await anext(candles)
    await runner.process_candle(symbol, candle)


def _stops(fake: FakeBinance, status: str | None = None) -> list[FakeOrder]:
    with fake.state.lock:
        return [o for o in fake.state.orders.values() if o.type == "STOP_LOSS_LIMIT"
                and (status is None or o.status == status)]


async def _until_stop_placed(runner: Runner, candles: AsyncIterator[tuple[str, Candle]],
                             fake: FakeBinance) -> FakeOrder:
    for _ in range(2000):
        await _step(runner, candles)
        placed = _stops(fake, "NEW")
        if placed:
            return placed[0]
    raise AssertionError("no position was ever protected on the exchange")


async def test_stop_follows_the_position_and_a_signal_exit_cancels_it_first(
    redis_client: Redis, fake_binance: FakeBinance
) -> None:
    runner, candles = await _runner(redis_client, fake_binance, "follow")
    stop = await _until_stop_placed(runner, candles, fake_binance)
    pos = runner.engine.positions[SYMBOL]
    want = stop_limit_for(pos.quantity, pos.stop_price, runner.markets[SYMBOL], LIMITS)
    assert want == (stop.orig_qty, stop.stop_price, stop.price)
    assert stop.client_order_id.startswith(runner.reconciler.prefix)
    assert stop.client_order_id in runner.orders
    assert (await runner.reconcile_now("test")).ok  # the stop is ours, its lock counted
    # the strategy sells: the stop is cancelled before the sell goes out
    for _ in range(2000):
        await _step(runner, candles)
        if SYMBOL not in runner.engine.positions:
            break
    assert SYMBOL not in runner.engine.positions
    assert fake_binance.state.orders[stop.order_id].status == "CANCELED"
    assert runner.orders[stop.client_order_id].status is OrderStatus.CANCELED
    assert not fake_binance.state.open_orders(None)
    assert fake_binance.state.duplicate_client_ids() == []
    assert (await runner.reconcile_now("test")).ok
    await runner.exchange.close()


async def test_price_through_the_stop_closes_the_position_on_the_exchange(
    redis_client: Redis, fake_binance: FakeBinance
) -> None:
    runner, candles = await _runner(redis_client, fake_binance, "cross")
    stop = await _until_stop_placed(runner, candles, fake_binance)
    usdt_before = fake_binance.state.balances["USDT"]
    fake_binance.set_price("BTCUSDT", stop.stop_price)  # the exchange triggers and fills
    assert fake_binance.state.orders[stop.order_id].status == "FILLED"
    await _step(runner, candles)  # the runner follows its resting orders each candle
    assert SYMBOL not in runner.engine.positions
    local = runner.orders[stop.client_order_id]
    assert local.status is OrderStatus.FILLED and local.type is OrderType.STOP_LOSS_LIMIT
    trade = [t for t in fake_binance.state.trades if t.client_order_id == stop.client_order_id]
    assert len(trade) == 1 and trade[0].price == stop.stop_price
    assert {str(t.trade_id) for t in trade} <= runner.fills_seen
    closed = await runner.store.trades()
    assert closed[-1].exit_reason == "stop_loss_exchange"  # named, not empty
    cash = runner.engine.portfolio.cash
    assert cash > 0 and fake_binance.state.balances["USDT"] > usdt_before
    assert fake_binance.state.duplicate_client_ids() == []
    assert (await runner.reconcile_now("test")).ok
    await runner.exchange.close()


async def test_policy_option_off_places_no_stop(
    redis_client: Redis, fake_binance: FakeBinance
) -> None:
    limits = LIMITS.model_copy(update={"stop_loss_on_exchange": False})
    runner, candles = await _runner(redis_client, fake_binance, "off", limits)
    for _ in range(2000):
        await _step(runner, candles)
        if runner.engine.positions:
            break
    assert runner.engine.positions
    assert _stops(fake_binance) == []
    await runner.exchange.close()


async def test_an_order_placed_by_hand_is_flagged_foreign_not_a_mismatch(
    redis_client: Redis, fake_binance: FakeBinance
) -> None:
    """Account attribution by client order id: a resting order made on the exchange by a
    person (Binance's web ids) is reported as foreign within one reconciliation; an
    order of another kubetrade strategy on the account is its own, not ours."""
    runner, candles = await _runner(redis_client, fake_binance, "hand")
    await _step(runner, candles)
    now = int(time.time() * 1000)
    with fake_binance.state.lock:  # what the Binance web page sends: no kt- id
        by_hand = fake_binance.state.new_order(
            {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
             "quantity": "0.001", "price": "10000", "newClientOrderId": "web_1a2b3c"}, now)
        other = fake_binance.state.new_order(
            {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
             "quantity": "0.001", "price": "10000",
             "newClientOrderId": "kt-0badf00d-1-0"}, now)
    result = await runner.reconcile_now("test")
    assert result.ok, result.to_dict()  # never one strategy's mismatch
    assert [o["client_order_id"] for o in result.foreign] == [by_hand.client_order_id]
    assert other.client_order_id not in {o["client_order_id"] for o in result.foreign}
    stored = json.loads(await redis_client.get(  # type: ignore[arg-type]
        Keys("stops-hand").reconciliation("hand")))
    assert stored["foreign_orders"][0]["client_order_id"] == "web_1a2b3c"
    entries: Any = await redis_client.xrange(Keys("stops-hand").audit)
    audit = [f for _, f in entries]
    assert [a for a in audit if a["action"] == "reconciliation.foreign_orders"]
    await runner.exchange.close()
