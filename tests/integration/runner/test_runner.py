"""The paper runner on real Redis: exact resume after restart, emergency via Redis,
breaker gate with reconciliation before resuming, hot reload of desired state."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from kubetrade.domain.clock import ManualClock
from kubetrade.domain.models import OrderStatus
from kubetrade.exchange.replay import bundled_candles
from kubetrade.resources.loader import strategy_with_defaults
from kubetrade.runner.assembly import RunnerEnv, create_runner
from kubetrade.runner.core import Runner, RunnerOptions
from kubetrade.runner.emergency import listen_redis
from kubetrade.runner.watch import watch_local_desired
from kubetrade.state.desired import LocalDesiredState
from kubetrade.state.keys import Keys
from kubetrade.state.store import StateStore

CSV = bundled_candles("BTC/USDT")
assert CSV is not None


def manifest(name: str = "btc-sma") -> dict[str, Any]:
    return {
        "apiVersion": "kubetrade.io/v1alpha1",
        "kind": "Strategy",
        "metadata": {"name": name},
        "spec": {
            "algorithm": "sma-crossover",
            "parameters": {"fastPeriod": 5, "slowPeriod": 20},
            "symbols": ["BTC/USDT"],
            "timeframe": "1m",
            "mode": "paper",
        },
    }


async def make_runner(
    redis: Redis, keys: Keys, max_candles: int | None = None, csv: Path = CSV  # type: ignore[assignment]
) -> Runner:
    env = RunnerEnv(market_data=f"replay:{csv}", replay_interval=0)
    parts, _ = await create_runner(
        manifest(), redis=redis, keys=keys, env=env, clock=ManualClock(1_800_000_000_000),
        options=RunnerOptions(reconcile_interval_s=0, max_candles=max_candles),
    )
    runner = await Runner.restore(parts)
    return runner


async def wait_until(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    async def loop() -> Any:
        while True:  # polling Redis state, not an in-process flag
            value = await check()
            if value:
                return value
            await asyncio.sleep(0.01)

    try:
        return await asyncio.wait_for(loop(), 15)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def state_of(runner: Runner) -> dict[str, Any]:
    assert runner.engine is not None and runner.paper is not None
    summary = runner.engine.summary()
    summary.pop("updated_ms")
    return {
        "summary": summary,
        "positions": runner.engine.positions,
        "balances": runner.paper.broker.balances(),
        "cursor": runner.cursor,
        "orders": {k: (v.status, v.filled_quantity) for k, v in runner.orders.items()},
    }


async def test_restart_resumes_exactly(redis_client: Redis) -> None:
    straight = await make_runner(redis_client, Keys("ref"), max_candles=600)
    await straight.run()
    first = await make_runner(redis_client, Keys("kt"), max_candles=250)
    await first.run()
    second = await make_runner(redis_client, Keys("kt"))
    assert state_of(second) == state_of(first)
    second.options.max_candles = 350
    await second.run()
    assert state_of(second) == state_of(straight)
    got = await StateStore(redis_client, Keys("kt"), "btc-sma").trades()
    want = await StateStore(redis_client, Keys("ref"), "btc-sma").trades()
    assert got == want and len(got) >= 3
    raw_recon: Any = await redis_client.get(Keys("kt").reconciliation("btc-sma"))
    recon = json.loads(raw_recon)
    assert recon["ok"] is True and recon["trigger"] == "start"


async def _run_until_position(runner: Runner) -> None:
    assert runner.engine is not None
    async for symbol, candle in runner.market.candles(runner.cursor):
        await runner.process_candle(symbol, candle)
        if runner.engine.positions:
            return
    raise AssertionError("no position opened on the recorded candles")


async def test_emergency_close_all_via_redis_halts_sells_and_acks(redis_client: Redis) -> None:
    keys = Keys("kt")
    runner = await make_runner(redis_client, keys)
    await _run_until_position(runner)
    ready = asyncio.Event()
    listener = asyncio.create_task(listen_redis(redis_client, keys, runner.apply_emergency, ready))
    await asyncio.wait_for(ready.wait(), 5)
    desired = LocalDesiredState(redis_client, keys)
    await desired.set_emergency("close-all", "alice", "drill")
    ack = await wait_until(
        lambda: redis_client.hget(keys.emergency_acks, "btc-sma"), "the close-all ack"
    )
    assert json.loads(ack)["action"] == "close-all"
    assert runner.engine is not None and runner.engine.is_halted
    assert runner.engine.positions == {}
    sells = [o for o in runner.orders.values() if o.reason == "close_all"]
    assert sells and all(o.status is OrderStatus.FILLED for o in sells)
    assert not [o for o in runner.orders.values() if not o.status.is_terminal]
    # halted: more candles, no new orders
    before = len(runner.orders)
    count = 0
    async for symbol, candle in runner.market.candles(runner.cursor):
        await runner.process_candle(symbol, candle)
        count += 1
        if count == 200:
            break
    assert len(runner.orders) == before
    summary = await redis_client.hgetall(keys.summary("btc-sma"))
    assert summary["phase"] == "Halted" and "alice" in summary["halted_reason"]
    # resume through the same path
    await desired.set_emergency("none", "alice", "drill over")
    await wait_until(
        lambda: _ack_action(redis_client, keys, "none"), "the resume ack"
    )
    assert not runner.engine.is_halted
    listener.cancel()
    audit_entries: Any = await redis_client.xrange(keys.audit)
    audit = [f["action"] for _, f in audit_entries]
    assert "emergency.close-all.applied" in audit and "emergency.none.applied" in audit


async def _ack_action(redis: Redis, keys: Keys, action: str) -> bool:
    raw = await redis.hget(keys.emergency_acks, "btc-sma")
    return bool(raw) and json.loads(raw or "{}")["action"] == action


async def test_emergency_in_redis_at_start_is_applied(redis_client: Redis) -> None:
    from kubetrade.runner.assembly import run_runner

    keys = Keys("kt")
    await LocalDesiredState(redis_client, keys).set_emergency("stop", "bob", "before start")
    env = RunnerEnv(market_data=f"replay:{CSV}", replay_interval=0)
    parts, closers = await create_runner(
        manifest(), redis=redis_client, keys=keys, env=env, clock=ManualClock(1),
        options=RunnerOptions(reconcile_interval_s=0, max_candles=300),
    )
    runner = await run_runner(parts, closers)
    assert runner.engine is not None and runner.engine.is_halted
    assert not runner.orders  # halted from the first candle: not one order
    assert await _ack_action(redis_client, keys, "stop")


async def test_breaker_blocks_orders_until_reconciliation(redis_client: Redis) -> None:
    keys = Keys("kt")
    runner = await make_runner(redis_client, keys)
    await runner.on_breaker("open")
    before = {k for k, o in runner.orders.items() if o.status is not OrderStatus.REJECTED}
    count = 0
    async for symbol, candle in runner.market.candles(runner.cursor):
        await runner.process_candle(symbol, candle)
        count += 1
        if any(o.reason == "circuit_open" for o in runner.orders.values()) or count > 1400:
            break
    refused = [o for o in runner.orders.values() if o.reason == "circuit_open"]
    assert refused and all(o.status is OrderStatus.REJECTED for o in refused)
    assert {k for k, o in runner.orders.items() if o.status is not OrderStatus.REJECTED} == before
    last_alerts: Any = await redis_client.xrange(keys.alerts)
    assert last_alerts[-1][1]["kind"] == "circuit_open"
    await runner.on_breaker("closed")
    assert not runner.awaiting_reconciliation and not runner.breaker_open
    raw_recon: Any = await redis_client.get(keys.reconciliation("btc-sma"))
    recon = json.loads(raw_recon)
    assert recon["trigger"] == "breaker_closed" and recon["ok"]
    audit_entries: Any = await redis_client.xrange(keys.audit)
    audit = [f["action"] for _, f in audit_entries]
    assert audit.index("breaker.closed") < audit.index("trading.resumed_after_reconciliation")


async def test_reconciliation_mismatch_is_alerted_not_overwritten(redis_client: Redis) -> None:
    keys = Keys("kt")
    runner = await make_runner(redis_client, keys)
    await _run_until_position(runner)
    assert runner.paper is not None and runner.engine is not None
    position = dict(runner.engine.positions)
    # somebody sells coins behind the bot's back
    runner.paper.broker._free["BTC"] = Decimal(0)
    result = await runner.reconcile_now("periodic")
    assert [m.kind for m in result.mismatches] == ["balance"]
    assert runner.engine.positions == position  # never silently overwritten
    alert_entries: Any = await redis_client.xrange(keys.alerts)
    alerts = [f for _, f in alert_entries]
    assert alerts[-1]["kind"] == "reconciliation_mismatch"
    raw_stored: Any = await redis_client.get(keys.reconciliation("btc-sma"))
    stored = json.loads(raw_stored)
    assert stored["status"] == "mismatch" and stored["mismatches"][0]["subject"] == "BTC"


async def test_hot_reload_of_risk_policy_and_enabled_flag(redis_client: Redis) -> None:
    keys = Keys("kt")
    desired = LocalDesiredState(redis_client, keys, check_strategy=strategy_with_defaults)
    await desired.put_strategy(manifest(), "test")
    runner = await make_runner(redis_client, keys)
    watcher = asyncio.create_task(watch_local_desired(redis_client, keys, desired, runner))
    await wait_until(lambda: _subscribed(redis_client, keys), "the watcher's subscription")
    await desired.update_risk_policy("default", {"stopLossPct": "2.5"}, "carol")

    async def limits_changed() -> bool:
        return runner.limits.stop_loss_pct == Decimal("2.5")

    await wait_until(limits_changed, "the new stop-loss in the running engine")
    assert runner.engine is not None and runner.engine.limits.stop_loss_pct == Decimal("2.5")
    await desired.set_strategy_enabled("btc-sma", False, "carol")

    async def halted() -> bool:
        return bool(runner.engine and runner.engine.is_halted)

    await wait_until(halted, "the disabled strategy to halt")
    await desired.set_strategy_enabled("btc-sma", True, "carol")

    async def resumed() -> bool:
        return bool(runner.engine and not runner.engine.is_halted)

    await wait_until(resumed, "the re-enabled strategy to resume")
    watcher.cancel()


async def _subscribed(redis: Redis, keys: Keys) -> bool:
    counts = await redis.pubsub_numsub(keys.events_channel)
    return bool(counts and counts[0][1] >= 1)


@pytest.mark.parametrize("bad", ["stopLossPct", "maxPositionSizePct"])
async def test_invalid_risk_patch_is_refused_naming_the_field(
    redis_client: Redis, bad: str
) -> None:
    from kubetrade.state.desired import DesiredStateError

    desired = LocalDesiredState(redis_client, Keys("kt"))
    with pytest.raises(DesiredStateError, match=bad.replace("Pct", "")[:8]):
        await desired.update_risk_policy("default", {bad: "-1"}, "eve")


async def test_risk_gauges_follow_the_engine(redis_client: Redis) -> None:
    """kubetrade_daily_loss_limit_used_ratio and kubetrade_drawdown_halted (read by the
    chart's alert rules) move with losses and with the drawdown halt and its resume."""
    from prometheus_client import REGISTRY

    from kubetrade.runner.emergency import EmergencyCommand

    name = "btc-risk-gauges"
    keys = Keys("kt")
    env = RunnerEnv(market_data=f"replay:{CSV}", replay_interval=0)
    policy = {"spec": {"maxDrawdownPct": 0.3, "dailyLossLimitPct": 50,
                       "maxPositionSizePct": 90, "strategyMaxConsecutiveLosses": 0}}
    parts, _ = await create_runner(
        manifest(name), redis=redis_client, keys=keys, env=env,
        clock=ManualClock(1_800_000_000_000), limits_manifest=policy,
        options=RunnerOptions(reconcile_interval_s=0),
    )
    runner = await Runner.restore(parts)
    assert runner.engine is not None

    def gauge(metric: str) -> float | None:
        return REGISTRY.get_sample_value(metric, {"strategy": name})

    assert gauge("kubetrade_daily_loss_limit_used_ratio") == 0.0
    assert gauge("kubetrade_drawdown_halted") == 0.0
    async for symbol, candle in runner.market.candles(runner.cursor):
        await runner.process_candle(symbol, candle)
        if "max_drawdown" in runner.engine.halts:
            break
    assert "max_drawdown" in runner.engine.halts
    risk = runner.engine.risk_state()
    used = gauge("kubetrade_daily_loss_limit_used_ratio")
    assert used is not None and 0 < used < 1
    assert used == pytest.approx(float(risk["daily_loss_pct"]) / 50)
    assert gauge("kubetrade_drawdown_halted") == 1.0
    for action in ("stop", "none"):  # a person's resume lifts the drawdown halt
        await runner.apply_emergency(EmergencyCommand(action, 1, "ops", "", "redis"))
    assert "max_drawdown" not in runner.engine.halts
    assert gauge("kubetrade_drawdown_halted") == 0.0


async def test_reenabled_while_down_trades_again_after_restart(redis_client: Redis) -> None:
    """Disabled, then re-enabled while the runner was down: the restarted runner lifts the
    halt it restored instead of staying halted for good."""
    keys = Keys("kt")
    first = await make_runner(redis_client, keys)
    await first.set_enabled(False, "dashboard")
    assert first.engine is not None and first.engine.is_halted
    restarted = await make_runner(redis_client, keys)
    assert restarted.engine is not None and restarted.engine.is_halted
    await restarted.set_enabled(True, "desired")  # the state it finds at start
    assert not restarted.engine.is_halted
    summary = await redis_client.hgetall(keys.summary("btc-sma"))  # type: ignore[misc]
    assert summary["phase"] == "Running"


async def test_strategy_file_with_enabled_false_does_not_trade(redis_client: Redis) -> None:
    from kubetrade.runner.assembly import run_runner

    keys = Keys("kt")
    body = manifest()
    body["spec"]["enabled"] = False
    env = RunnerEnv(market_data=f"replay:{CSV}", replay_interval=0)
    parts, closers = await create_runner(
        body, redis=redis_client, keys=keys, env=env, clock=ManualClock(1_800_000_000_000),
        options=RunnerOptions(reconcile_interval_s=0, max_candles=400),
    )
    runner = await run_runner(parts, closers)
    assert runner.candles_processed == 400
    assert runner.engine is not None and runner.engine.is_halted
    assert not [o for o in runner.orders.values() if o.status is OrderStatus.FILLED]
