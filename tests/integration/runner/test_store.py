"""The runner's Redis state: atomic commits, idempotent fills, faithful restore."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import pytest
from redis.asyncio import Redis

from kubetrade.domain.models import (
    ClosedTrade,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
)
from kubetrade.resources.loader import strategy_with_defaults
from kubetrade.state.desired import DesiredStateError, LocalDesiredState, NotFoundError
from kubetrade.state.keys import Keys
from kubetrade.state.store import Changes, StateStore


def _order(cid: str = "kt-1", status: OrderStatus = OrderStatus.CREATED) -> Order:
    return Order(
        client_order_id=cid,
        strategy="s1",
        symbol="BTC/USDT",
        side=Side.BUY,
        type=OrderType.MARKET,
        quantity=Decimal("0.01"),
        status=status,
        created_ms=1000,
    )


def _fill(tid: str = "t1") -> Fill:
    return Fill(
        trade_id=tid,
        client_order_id="kt-1",
        strategy="s1",
        symbol="BTC/USDT",
        side=Side.BUY,
        quantity=Decimal("0.01"),
        price=Decimal("60000.10"),
        fee=Decimal("0.6"),
        fee_asset="USDT",
        ts_ms=2000,
    )


async def test_commit_and_restore_round_trip(redis_client: Redis) -> None:
    keys = Keys("t")
    store = StateStore(redis_client, keys, "s1")
    assert (await store.load()).fresh
    await store.commit(Changes(orders=[_order()], engine_snapshot={"v": 1}, cursor={"BTC/USDT": 5}))
    trade = ClosedTrade(
        trade_id="ct1",
        strategy="s1",
        symbol="BTC/USDT",
        quantity=Decimal("0.01"),
        entry_price=Decimal("60000.10"),
        exit_price=Decimal("61000"),
        entry_ms=2000,
        exit_ms=3000,
        fees=Decimal("1.2"),
        pnl=Decimal("8.799"),
        exit_reason="signal",
    )
    position = Position("s1", "ETH/USDT", Decimal("2"), Decimal("3000"), 1500)
    await store.commit(
        Changes(
            orders=[_order(status=OrderStatus.FILLED)],
            fills=[_fill()],
            closed_trades=[trade],
            engine_snapshot={"v": 2},
            positions={"ETH/USDT": position},
            paper_snapshot={"cash": "1"},
            equity=(3000, Decimal("10008.799")),
            summary={"phase": "Running", "equity": Decimal("10008.799"), "halted_reason": None},
        )
    )
    got = await store.load()
    assert got.engine_snapshot == {"v": 2}
    assert got.paper_snapshot == {"cash": "1"}
    assert got.orders["kt-1"].status is OrderStatus.FILLED
    assert got.positions == {"ETH/USDT": position}
    assert got.fills_seen == {"t1"}
    assert got.cursor == {"BTC/USDT": 5}
    assert got.summary["equity"] == "10008.799" and got.summary["halted_reason"] == ""
    assert await store.trades() == [trade]
    assert await store.equity_curve() == [(3000, Decimal("10008.799"))]
    trades: Any = await redis_client.xrange(keys.trades)
    assert len(trades) == 1
    assert await store.fills_seen(["t1", "t2"]) == {"t1"}
    # a commit with an empty positions map clears the projection
    await store.commit(Changes(positions={}))
    assert (await store.load()).positions == {}


async def test_local_desired_state_audits_and_publishes(redis_client: Redis) -> None:
    keys = Keys("t")
    desired = LocalDesiredState(redis_client, keys, check_strategy=strategy_with_defaults)
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(keys.events_channel, keys.emergency_channel)
    manifest = {
        "apiVersion": "kubetrade.io/v1alpha1",
        "kind": "Strategy",
        "metadata": {"name": "btc-sma"},
        "spec": {
            "algorithm": "sma-crossover",
            "parameters": {"fastPeriod": 10, "slowPeriod": 30},
            "symbols": ["BTC/USDT"],
            "timeframe": "1m",
            "mode": "paper",
            "enabled": True,
        },
    }
    await desired.put_strategy(manifest, actor="test")
    assert [m["metadata"]["name"] for m in await desired.list_strategies()] == ["btc-sma"]
    toggled = await desired.set_strategy_enabled("btc-sma", False, actor="alice")
    assert toggled["spec"]["enabled"] is False
    assert (await desired.get_strategy("btc-sma"))["spec"]["enabled"] is False
    with pytest.raises(NotFoundError):
        await desired.get_strategy("nope")
    with pytest.raises(DesiredStateError, match=r"Emergency\.spec\.action"):
        await desired.set_emergency("explode", "alice", "x")
    state = await desired.set_emergency("stop", "alice", "test halt")
    assert state["action"] == "stop"
    assert (await desired.get_emergency())["by"] == "alice"

    seen: list[tuple[str, dict[str, object]]] = []

    async def collect() -> None:
        while len(seen) < 4:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if msg:
                seen.append((msg["channel"], json.loads(msg["data"])))

    await asyncio.wait_for(collect(), timeout=10)
    channels = [c for c, _ in seen]
    assert channels.count(keys.emergency_channel) == 1
    desired_events = [d for c, d in seen if c == keys.events_channel and d["type"] == "desired"]
    assert len(desired_events) == 2
    audit: Any = await redis_client.xrange(keys.audit)
    actions = [f["action"] for _, f in audit]
    assert actions == ["strategy.put", "strategy.enabled", "emergency.stop"]
    assert audit[1][1]["actor"] == "alice"
    await pubsub.aclose()  # type: ignore[no-untyped-call]
