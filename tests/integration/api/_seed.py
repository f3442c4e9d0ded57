"""Trading state written the way runners write it (kubetrade.state.store), for API tests."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import redis.asyncio as aioredis

from kubetrade.domain.models import ClosedTrade, Position
from kubetrade.state.keys import Keys
from kubetrade.state.store import Changes, StateStore

T0 = 1_700_000_000_000


def strategy_manifest(name: str, symbol: str = "BTC/USDT", enabled: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "kubetrade.io/v1alpha1",
        "kind": "Strategy",
        "metadata": {"name": name},
        "spec": {
            "algorithm": "sma-crossover",
            "parameters": {"fastPeriod": 10, "slowPeriod": 30},
            "symbols": [symbol],
            "timeframe": "1m",
            "mode": "paper",
            "enabled": enabled,
        },
    }


def trade(strategy: str, symbol: str, i: int, pnl: str = "1.5") -> ClosedTrade:
    return ClosedTrade(
        trade_id=f"{strategy}-{i}",
        strategy=strategy,
        symbol=symbol,
        quantity=Decimal("0.01"),
        entry_price=Decimal("30000"),
        exit_price=Decimal("30150"),
        entry_ms=T0 + i * 60_000,
        exit_ms=T0 + i * 60_000 + 30_000,
        fees=Decimal("0.6"),
        pnl=Decimal(pnl),
        exit_reason="signal",
    )


async def seed_strategy(
    redis: aioredis.Redis,
    keys: Keys,
    name: str,
    symbol: str = "BTC/USDT",
    n_trades: int = 0,
    equity: str = "10100",
    pnl: str = "100",
    position: bool = True,
    phase: str = "Running",
    heartbeat_ms: int | None = None,
) -> None:
    """A runner's state as it would write it; alive (``heartbeat_ms`` now, the wall
    clock) unless an older beat is given."""
    store = StateStore(redis, keys, name)
    changes = Changes(
        closed_trades=[trade(name, symbol, i, pnl="2" if i % 3 else "-1") for i in range(n_trades)],
        positions=(
            {
                symbol: Position(
                    strategy=name,
                    symbol=symbol,
                    quantity=Decimal("0.02"),
                    average_price=Decimal("30000.5"),
                    opened_ms=T0,
                    stop_price=Decimal("28500"),
                )
            }
            if position
            else {}
        ),
        summary={
            "phase": phase,
            "equity": equity,
            "pnl": pnl,
            "trades": n_trades,
            "win_rate": "0.66",
            "open_positions": 1 if position else 0,
            "updated_ms": T0,
            "heartbeat_ms": int(time.time() * 1000) if heartbeat_ms is None else heartbeat_ms,
            "halted_reason": "",
        },
    )
    await store.commit(changes)
    for i in range(5):
        await store.commit(Changes(equity=(T0 + i * 60_000, Decimal("10000") + Decimal(i * 25))))
