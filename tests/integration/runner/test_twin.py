"""The paper twin of a live strategy (issue 20), against the fake Binance through the
real ccxt client: live market orders fill 10 bps against the strategy (the fake's price
set from each candle's close) and the first entry is rejected (the account's USDT is
short for that one order). The comparison shows exactly those differences, the
divergence passes its threshold (the gauge the chart's alert reads), the twin's books
equal a separate paper replay of the same candles, and Redis keeps the twin apart.
The size ramp: steps up after clean periods, holds on a reconciliation mismatch, each
step audited."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from kubetrade.domain.algorithms import create_algorithm
from kubetrade.domain.clock import ManualClock
from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.models import Candle, OrderStatus, Side
from kubetrade.domain.risk import RiskLimits, round_price
from kubetrade.domain.twin import slippage_bps
from kubetrade.exchange.binance import BinanceExchange
from kubetrade.exchange.paper import PaperBroker
from kubetrade.exchange.replay import bundled_candles, load_candles, run_replay
from kubetrade.exchange.resilient import ResilientExchange
from kubetrade.runner.core import Runner, RunnerOptions, RunnerParts, RunnerSpec
from kubetrade.runner.market import ReplaySource
from kubetrade.runner.metrics import RunnerMetrics
from kubetrade.state.audit import AuditEntry
from kubetrade.state.keys import Keys
from kubetrade.state.twin import TwinStore, read_twin, read_twin_equity
from tests.fakes.binance import FakeBinance

SYMBOL = "BTC/USDT"
SLIP = Decimal("0.001")  # live fills 10 bps against the strategy
TWIN_SLIP = Decimal("0.0002")  # the paper broker's 2 bps
PARAMS = {"fastPeriod": 2, "slowPeriod": 4}
LIMITS = RiskLimits(strategy_max_consecutive_losses=0, daily_loss_limit_pct=Decimal(0),
                    max_drawdown_pct=Decimal(0), price_collar_pct=Decimal(0),
                    stop_loss_on_exchange=False, twin_divergence_pct=Decimal("0.05"))


class WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep(self, seconds: float) -> None:
        return None


async def _runner(redis: Redis, fake: FakeBinance, name: str, limits: RiskLimits,
                  registry: CollectorRegistry) -> tuple[Runner, AsyncIterator[tuple[str, Candle]]]:
    clock = WallClock()
    inner = BinanceExchange(fake.api_key, fake.secret, testnet=True, base_url=fake.url,
                            clock=clock)
    csv = bundled_candles(SYMBOL)
    assert csv is not None
    spec = RunnerSpec(name=name, algorithm="sma-crossover", parameters=dict(PARAMS),
                      symbols=[SYMBOL], mode="live")
    runner = await Runner.restore(RunnerParts(
        spec, redis=redis, keys=Keys(f"twin-{name}"), exchange=ResilientExchange(inner, clock),
        market=ReplaySource({SYMBOL: load_candles(csv)}, clock, 0), clock=clock,
        limits=limits, metrics=RunnerMetrics(registry),
        options=RunnerOptions(reconcile_interval_s=0, paper=False)))
    return runner, runner.market.candles(runner.cursor)


def _gauge(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def test_live_against_its_twin_shows_slippage_and_the_rejection(
    redis_client: Redis, fake_binance: FakeBinance
) -> None:
    registry = CollectorRegistry()
    runner, candles = await _runner(redis_client, fake_binance, "cmp", LIMITS, registry)
    assert runner.live_period is not None
    fed: list[Candle] = []
    rejected_once = False
    for _ in range(400):
        symbol, candle = await anext(candles)
        holding = SYMBOL in runner.engine.positions
        # the next live order is a sell when a position is held, else a buy: 10 bps worse
        fake_binance.set_price("BTCUSDT", candle.close * (1 - SLIP if holding else 1 + SLIP))
        if not rejected_once:
            fake_binance.set_balance("USDT", "1")  # the first entry is refused
        await runner.process_candle(symbol, candle)
        fed.append(candle)
        if not rejected_once and any(o.status is OrderStatus.REJECTED
                                     for o in runner.orders.values()):
            rejected_once = True
            fake_binance.set_balance("USDT", "10000")
    assert rejected_once
    period = runner.live_period
    twin = period.twin
    comparison = period.comparison
    assert comparison is not None

    # what each book did, from each book's own records (not from the ledger)
    closes = {c.ts_ms + 60_000: c.close for c in fed}
    live = {(o.side.value, o.created_ms): o for o in runner.orders.values()}
    twin_orders = {(o["side"], o["created_ms"]): o
                   for o in twin.broker.snapshot(10**6)["orders"]}
    live_filled = {k for k, o in live.items() if o.filled_quantity > 0}
    twin_filled = set(twin_orders)  # every twin order filled (market orders, funded)
    matched = live_filled & twin_filled
    assert len(matched) >= 4
    expected = []
    for side, ms in matched:
        close = closes[ms]
        sign = 1 if side == "buy" else -1
        live_px = close * (1 + sign * SLIP)
        twin_px = round_price(close * (1 + sign * TWIN_SLIP), Decimal("0.01"))
        cid = live[(side, ms)].client_order_id
        assert [t.price for t in fake_binance.state.trades if t.client_order_id == cid] == [
            live_px]
        expected.append(slippage_bps(side, live_px, twin_px))
    shown = comparison.to_dict()
    assert shown["fills_matched"] == len(matched)
    assert shown["fills_missed"] == len(twin_filled - live_filled) >= 2  # rejected buy + its sell
    assert shown["fills_extra"] == len(live_filled - twin_filled)
    assert shown["rejected"] == {"live": 1, "twin": 0}
    mean = sum(expected, Decimal(0)) / len(expected)
    assert Decimal(shown["avg_slippage_bps"]) == mean.quantize(Decimal("0.01"))
    assert Decimal(shown["avg_slippage_bps"]) > 7  # ~10 bps less the twin's 2 bps
    assert shown["live"]["trades"] == runner.engine.summary()["trades"]
    assert shown["twin"]["fees"] == str(twin.engine.portfolio.fees_paid)
    assert shown["avg_latency_ms"] is not None and shown["avg_latency_ms"] >= 0

    # past the threshold: the gauges the chart's KubetradeLiveTwinDiverged rule compares
    assert comparison.diverged
    div = _gauge(registry, "kubetrade_twin_divergence_pct", strategy="cmp")
    threshold = _gauge(registry, "kubetrade_twin_divergence_threshold_pct", strategy="cmp")
    assert div is not None and threshold == 0.05 and div > threshold
    assert _gauge(registry, "kubetrade_twin_rejected_orders", strategy="cmp", book="live") == 1
    assert _gauge(registry, "kubetrade_size_ramp_pct", strategy="cmp") == 100
    alerts: Any = await redis_client.xrange(runner.keys.alerts)
    diverged = [f for _id, f in alerts if f.get("kind") == "twin_diverged"]
    assert len(diverged) == 1  # once, when it crossed (it stays past the threshold)
    assert "away from its paper twin" in diverged[0]["title"]

    # the twin's books equal a paper replay of the same candles from the same start
    engine = TradingEngine("cmp", create_algorithm("sma-crossover", dict(PARAMS)), LIMITS,
                           dict(runner.engine.markets), Decimal(10000), timeframe_ms=60_000)
    broker = PaperBroker(dict(runner.engine.markets), {"USDT": Decimal(10000)})
    run_replay(engine, broker, fed, ManualClock(fed[0].ts_ms))
    assert twin.engine.portfolio.snapshot() == engine.portfolio.snapshot()
    assert twin.engine.equity == engine.equity
    assert twin.engine.summary()["trades"] == engine.summary()["trades"]
    assert twin.broker.balances() == broker.balances()

    # Redis: the twin apart from the live books; what readers and the operator see
    public = await read_twin(redis_client, runner.keys, "cmp")
    assert public is not None and public["comparison"] == shown
    curve = await read_twin_equity(redis_client, runner.keys, "cmp")
    assert len(curve) == len(fed) and Decimal(curve[-1][1]) == twin.engine.equity
    summary = await redis_client.hgetall(runner.keys.summary("cmp"))
    assert summary["twin_divergence_pct"] == shown["divergence_pct"]
    assert summary["size_pct"] == "100"
    live_trades = await redis_client.xlen(runner.keys.strategy_trades("cmp"))
    assert live_trades == runner.engine.summary()["trades"]  # no twin trade among them
    assert {t.client_order_id for t in fake_binance.state.trades} <= set(runner.orders)
    await runner.exchange.close()


async def test_a_restarted_runner_continues_its_twin(
    redis_client: Redis, fake_binance: FakeBinance
) -> None:
    registry = CollectorRegistry()
    runner, candles = await _runner(redis_client, fake_binance, "again", LIMITS, registry)
    for _ in range(60):
        await runner.process_candle(*await anext(candles))
    assert runner.live_period is not None
    before = runner.live_period.twin.engine.snapshot()
    await runner.exchange.close()
    again, _ = await _runner(redis_client, fake_binance, "again", LIMITS, CollectorRegistry())
    assert again.live_period is not None
    assert again.live_period.twin.engine.snapshot()["portfolio"] == before["portfolio"]
    await again.exchange.close()
    await TwinStore(redis_client, Keys("twin-again"), "again").reset()


async def _audited(redis: Redis, keys: Keys, prefix: str) -> list[AuditEntry]:
    entries: Any = await redis.xrange(keys.audit)
    out = [AuditEntry.from_stream(i, f) for i, f in entries]
    return [e for e in out if e.action.startswith(prefix)]


async def test_size_ramp_steps_up_after_clean_periods_and_holds_on_an_incident(
    redis_client: Redis, fake_binance: FakeBinance
) -> None:
    limits = LIMITS.model_copy(update={
        "twin_divergence_pct": Decimal(0), "size_ramp_steps": [25, 50, 100],
        "size_ramp_period_hours": Decimal("0.5"), "max_position_size_pct": Decimal(20)})
    registry = CollectorRegistry()
    runner, candles = await _runner(redis_client, fake_binance, "ramp", limits, registry)
    period = runner.live_period
    assert period is not None and period.size_pct == 25
    assert runner.engine.limits.max_position_size_pct == Decimal(5)  # 25 % of 20 %
    assert period.twin.engine.limits == runner.engine.limits  # the twin trades the same size
    for _ in range(31):  # 30 one-minute candles make one clean half hour
        await runner.process_candle(*await anext(candles))
    assert period.size_pct == 50
    assert runner.engine.limits.max_position_size_pct == Decimal(10)
    for _ in range(15):  # half a clean period
        await runner.process_candle(*await anext(candles))
    # an incident: the account holds BTC the books do not know of
    btc = fake_binance.state.balances.get("BTC", Decimal(0))
    fake_binance.set_balance("BTC", btc + 1)
    result = await runner.reconcile_now("test")
    assert not result.ok
    fake_binance.set_balance("BTC", btc)
    for _ in range(20):  # 35 minutes after the raise: without the incident, it would step
        await runner.process_candle(*await anext(candles))
    assert period.size_pct == 50  # held: the clean period restarted at the incident
    for _ in range(11):
        await runner.process_candle(*await anext(candles))
    assert period.size_pct == 100
    assert _gauge(registry, "kubetrade_size_ramp_pct", strategy="ramp") == 100
    audited = await _audited(redis_client, runner.keys, "size_ramp.")
    steps = [(e.action, e.detail["from_pct"], e.detail["to_pct"]) for e in audited if e.detail]
    assert steps == [("size_ramp.raised", 25, 50), ("size_ramp.held", 50, 50),
                     ("size_ramp.raised", 50, 100)]
    assert "reconciliation (test)" in audited[1].detail["reason"]  # type: ignore[index]
    raw: Any = await redis_client.get(runner.keys.strategy("ramp", "twin"))
    record = json.loads(raw)
    assert record["size_pct"] == 100 and record["ramp_change"]["action"] == "raised"
    summary = await redis_client.hgetall(runner.keys.summary("ramp"))
    assert summary["size_pct"] == "100"
    # the entries were sized at the step in force: the first one at 25 % of full size
    buys = sorted((o for o in runner.orders.values() if o.side is Side.BUY and
                   o.filled_quantity > 0), key=lambda o: o.created_ms)
    assert buys, "the strategy never bought"
    await runner.exchange.close()


async def test_a_failing_twin_never_stops_live_trading(
    redis_client: Redis, fake_binance: FakeBinance
) -> None:
    registry = CollectorRegistry()
    runner, candles = await _runner(redis_client, fake_binance, "fails", LIMITS, registry)
    period = runner.live_period
    assert period is not None
    for _ in range(5):
        await runner.process_candle(*await anext(candles))

    def broken(*args: Any) -> int:
        raise ValueError("twin books broken")

    period.twin.on_candle = broken  # type: ignore[method-assign,assignment]
    before = runner.candles_processed
    for _ in range(100):
        await runner.process_candle(*await anext(candles))
    assert runner.candles_processed == before + 100  # live went on
    assert runner.engine.summary()["trades"] > 0
    assert period.failed == "ValueError: twin books broken"
    failed = await _audited(redis_client, runner.keys, "twin.failed")
    assert len(failed) == 1
    assert await TwinStore(redis_client, runner.keys, "fails").load() is None  # restart anew
    await runner.exchange.close()


async def test_a_twin_record_it_cannot_read_begins_anew_from_the_live_state(
    redis_client: Redis, fake_binance: FakeBinance
) -> None:
    keys = Keys("twin-unreadable")
    await redis_client.set(keys.strategy("unreadable", "twin"),
                           json.dumps({"version": 1, "engine": {"version": 99}}))
    runner, _ = await _runner(redis_client, fake_binance, "unreadable", LIMITS,
                              CollectorRegistry())
    assert runner.live_period is not None
    assert runner.live_period.twin.engine.equity == runner.engine.equity
    audited = await _audited(redis_client, runner.keys, "twin.")
    assert [e.action for e in audited] == ["twin.unreadable", "twin.start"]
    await runner.exchange.close()
