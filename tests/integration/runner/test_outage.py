"""A 5-minute exchange outage in test time, live mode (real ccxt client, fake Binance):
the breaker opens, not one order reaches the exchange while it is open, and trading
resumes only after the runner has looked up its in-doubt orders and reconciled."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

from redis.asyncio import Redis

from kubetrade.domain.models import OrderStatus
from kubetrade.domain.risk import RiskLimits
from kubetrade.exchange.binance import BinanceExchange
from kubetrade.exchange.replay import bundled_candles, load_candles
from kubetrade.exchange.resilient import ResilientExchange
from kubetrade.runner.core import Runner, RunnerOptions, RunnerParts, RunnerSpec
from kubetrade.runner.market import ReplaySource
from kubetrade.state.keys import Keys
from tests.fakes.binance import FakeBinance


class VirtualClock:
    """Wall time plus a virtual offset that sleeping advances; the fake server's clock
    follows, so signed requests stay inside Binance's recvWindow."""

    def __init__(self, fake: FakeBinance) -> None:
        self.fake = fake
        self.offset_ms = 0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms

    def advance(self, seconds: float) -> None:
        self.offset_ms += int(seconds * 1000)
        self.fake.set_clock_skew(self.offset_ms)

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)


async def test_outage_opens_breaker_and_resumes_after_reconciliation(
    redis_client: Redis, fake_binance: FakeBinance
) -> None:
    clock = VirtualClock(fake_binance)
    inner = BinanceExchange(fake_binance.api_key, fake_binance.secret, testnet=True,
                            base_url=fake_binance.url, clock=clock)
    exchange = ResilientExchange(inner, clock, failure_threshold=3, cooldown_s=30,
                                 backoff_initial_s=0.5, backoff_max_s=5, lookup_attempts=3)
    csv = bundled_candles("BTC/USDT")
    assert csv is not None
    spec = RunnerSpec(name="outage", algorithm="sma-crossover",
                      parameters={"fastPeriod": 2, "slowPeriod": 4}, symbols=["BTC/USDT"],
                      mode="live")
    limits = RiskLimits(strategy_max_consecutive_losses=0, daily_loss_limit_pct=Decimal(0),
                        max_drawdown_pct=Decimal(0), price_collar_pct=Decimal(0))
    keys = Keys("kt")
    # Runner.restore connects the exchange's events (breaker) to the runner
    runner = await Runner.restore(RunnerParts(
        spec, redis=redis_client, keys=keys, exchange=exchange,
        market=ReplaySource({"BTC/USDT": load_candles(csv)}, clock, 0),
        clock=clock, limits=limits,
        options=RunnerOptions(reconcile_interval_s=0, paper=False)))
    candles = runner.market.candles(runner.cursor)

    async def step() -> None:
        symbol, candle = await anext(candles)
        await runner.process_candle(symbol, candle)

    def accepted() -> int:
        return len(fake_binance.state.accepted_client_ids)

    for _ in range(500):
        await step()
        if accepted() >= 2:
            break
    # --- outage: 5 minutes of test time, one candle a minute --------------------------
    fake_binance.start_outage()
    for _ in range(500):
        await step()
        clock.advance(60)
        if runner.breaker_open:
            break
    orders_when_open = accepted()
    posts_when_open = fake_binance.count("POST", "/api/v3/order")
    opened_at = clock.now_ms()
    while clock.now_ms() - opened_at < 5 * 60_000:
        await step()
        clock.advance(60)
    assert runner.breaker_open and runner.awaiting_reconciliation
    in_doubt = [o.client_order_id for o in runner.orders.values()
                if o.status in (OrderStatus.CREATED, OrderStatus.UNKNOWN)]
    assert accepted() == orders_when_open  # 0 orders while open
    assert fake_binance.count("POST", "/api/v3/order") == posts_when_open
    # --- the exchange is back: probe closes the breaker, then recovery + reconciliation
    fake_binance.end_outage()

    async def resumed() -> None:
        for _ in range(100):
            if not (runner.breaker_open or runner.awaiting_reconciliation):
                return
            await step()
            clock.advance(60)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(resumed(), 60)
    entries: Any = await redis_client.xrange(keys.audit)
    audit = [f["action"] for _, f in entries]
    assert "breaker.open" in audit and "trading.resumed_after_reconciliation" in audit
    assert audit.index("breaker.closed") < audit.index("trading.resumed_after_reconciliation")
    raw: Any = await redis_client.get(keys.reconciliation("outage"))
    recon: dict[str, Any] = json.loads(raw)
    assert recon["ok"] is True
    alerts: Any = await redis_client.xrange(keys.alerts)
    kinds = [f["kind"] for _, f in alerts]
    assert "circuit_open" in kinds and "circuit_closed" in kinds
    assert not [o for o in runner.orders.values()
                if o.status in (OrderStatus.CREATED, OrderStatus.UNKNOWN)]
    for cid in in_doubt:  # looked up by client id, not left in doubt nor re-sent blindly
        assert runner.orders[cid].status.is_terminal
    before = accepted()
    for _ in range(500):
        await step()
        if accepted() > before:
            break
    assert accepted() > before  # trading again
    await exchange.close()


async def test_lost_answers_after_acceptance_never_duplicate_orders(
    redis_client: Redis, fake_binance: FakeBinance
) -> None:
    """100 orders whose answer is lost after the exchange executed them (dropped
    connection or 503): each is looked up by client id, none is sent twice, and the
    runner's orders and fills equal the exchange's."""
    clock = VirtualClock(fake_binance)
    inner = BinanceExchange(fake_binance.api_key, fake_binance.secret, testnet=True,
                            base_url=fake_binance.url, clock=clock)
    exchange = ResilientExchange(inner, clock, failure_threshold=1000)
    csv = bundled_candles("BTC/USDT")
    assert csv is not None
    spec = RunnerSpec(name="lossy", algorithm="sma-crossover",
                      parameters={"fastPeriod": 2, "slowPeriod": 4}, symbols=["BTC/USDT"],
                      mode="live")
    limits = RiskLimits(strategy_max_consecutive_losses=0, daily_loss_limit_pct=Decimal(0),
                        max_drawdown_pct=Decimal(0), price_collar_pct=Decimal(0))
    keys = Keys("kt")
    # Runner.restore connects the exchange's events (breaker) to the runner
    runner = await Runner.restore(RunnerParts(
        spec, redis=redis_client, keys=keys, exchange=exchange,
        market=ReplaySource({"BTC/USDT": load_candles(csv)}, clock, 0),
        clock=clock, limits=limits,
        options=RunnerOptions(reconcile_interval_s=0, paper=False)))
    fake_binance.fail_orders_after_accept(count=50, mode="disconnect")
    fake_binance.fail_orders_after_accept(count=50, mode="5xx")
    async for symbol, candle in runner.market.candles(runner.cursor):
        await runner.process_candle(symbol, candle)
        if len(fake_binance.state.accepted_client_ids) >= 110:
            break
    assert sum(fake_binance.faults_fired.values()) >= 100, fake_binance.faults_fired
    ids = fake_binance.state.accepted_client_ids
    assert len(ids) == len(set(ids))  # 0 duplicate orders
    with fake_binance.state.lock:
        remote = {o.client_order_id: o.status.lower() for o in fake_binance.state.orders.values()}
        trades = {str(t.trade_id) for t in fake_binance.state.trades}
    remote = {c: "open" if s == "new" else s for c, s in remote.items()}  # resting stops
    local = {cid: o.status.value for cid, o in runner.orders.items() if cid in remote}
    assert local == remote  # every order reconciled with the exchange
    assert set(await redis_client.smembers(keys.fills_seen("lossy"))) == trades
    result = await runner.reconcile_now("test")
    assert result.ok, result.to_dict()
    await exchange.close()


async def test_close_all_gets_through_pending_reconciliation(
    redis_client: Redis, fake_binance: FakeBinance
) -> None:
    """After an outage the breaker is closed again but reconciliation has not passed
    (here: coins appeared on the account), so entries stay refused; an emergency
    close-all must still sell the position."""
    from kubetrade.domain.models import Side
    from kubetrade.runner.emergency import EmergencyCommand

    clock = VirtualClock(fake_binance)
    inner = BinanceExchange(fake_binance.api_key, fake_binance.secret, testnet=True,
                            base_url=fake_binance.url, clock=clock)
    exchange = ResilientExchange(inner, clock, failure_threshold=3, cooldown_s=30,
                                 backoff_initial_s=0.5, backoff_max_s=5, lookup_attempts=3)
    csv = bundled_candles("BTC/USDT")
    assert csv is not None
    spec = RunnerSpec(name="closeall", algorithm="sma-crossover",
                      parameters={"fastPeriod": 2, "slowPeriod": 4}, symbols=["BTC/USDT"],
                      mode="live")
    limits = RiskLimits(strategy_max_consecutive_losses=0, daily_loss_limit_pct=Decimal(0),
                        max_drawdown_pct=Decimal(0), price_collar_pct=Decimal(0))
    # Runner.restore connects the exchange's events (breaker) to the runner
    runner = await Runner.restore(RunnerParts(
        spec, redis=redis_client, keys=Keys("kt"), exchange=exchange,
        market=ReplaySource({"BTC/USDT": load_candles(csv)}, clock, 0),
        clock=clock, limits=limits,
        options=RunnerOptions(reconcile_interval_s=0, paper=False)))
    assert runner.engine is not None
    candles = runner.market.candles(runner.cursor)
    for _ in range(500):
        symbol, candle = await anext(candles)
        await runner.process_candle(symbol, candle)
        if runner.engine.positions:
            break
    held = runner.engine.positions["BTC/USDT"].quantity
    fake_binance.start_outage()
    for _ in range(50):
        symbol, candle = await anext(candles)
        await runner.process_candle(symbol, candle)
        clock.advance(60)
        if runner.breaker_open:
            break
    assert runner.breaker_open
    with fake_binance.state.lock:  # a deposit while we were away: reconciliation fails
        btc = fake_binance.state.balances.get("BTC", Decimal(0))
    fake_binance.set_balance("BTC", btc + Decimal("1"))
    fake_binance.end_outage()
    clock.advance(31)
    assert await exchange.probe()  # the breaker closes ...

    # the runner's breaker-closed work (recover orders, reconcile) runs as a task
    assert runner._background
    await asyncio.wait_for(asyncio.gather(*list(runner._background)), 30)
    assert not runner.breaker_open
    # ... but reconciliation found the deposit: trading stays held on both gates
    assert runner.awaiting_reconciliation and exchange.needs_reconciliation
    await runner.apply_emergency(EmergencyCommand("close-all", clock.now_ms(), "ops",
                                                  "drill", "redis"))
    assert not runner.engine.positions
    sells = [o for o in runner.orders.values()
             if o.side is Side.SELL and o.reason == "close_all"]
    assert len(sells) == 1 and sells[0].status is OrderStatus.FILLED
    step = runner.markets["BTC/USDT"].qty_step
    assert held - step < sells[0].filled_quantity <= held  # all but unsellable dust
    with fake_binance.state.lock:
        assert sells[0].client_order_id in fake_binance.state.accepted_client_ids
    await exchange.close()
