"""A paper runner of the bundled BTC/USDT day, built as `kubetrade runner` builds one,
for tests that drive a real Runner against a real Redis."""

from __future__ import annotations

from typing import Any

from kubetrade.domain.clock import ManualClock
from kubetrade.exchange.replay import bundled_candles
from kubetrade.runner.assembly import RunnerEnv, create_runner
from kubetrade.runner.core import Runner, RunnerOptions
from kubetrade.state.client import RedisClient
from kubetrade.state.keys import Keys


def sma_manifest(name: str, fast: int, slow: int) -> dict[str, Any]:
    """A paper sma-crossover Strategy on BTC/USDT 1m."""
    return {
        "apiVersion": "kubetrade.io/v1alpha1",
        "kind": "Strategy",
        "metadata": {"name": name},
        "spec": {"algorithm": "sma-crossover",
                 "parameters": {"fastPeriod": fast, "slowPeriod": slow},
                 "symbols": ["BTC/USDT"], "timeframe": "1m", "mode": "paper"},
    }


async def paper_runner(redis: RedisClient, keys: Keys, manifest: dict[str, Any],
                       replay_interval: float = 0) -> Runner:
    """The restored Runner of ``manifest`` replaying the bundled candles
    (``replay_interval`` seconds between candles once it runs)."""
    env = RunnerEnv(market_data=f"replay:{bundled_candles('BTC/USDT')}",
                    replay_interval=replay_interval)
    parts, _ = await create_runner(
        manifest, redis=redis, keys=keys, env=env, clock=ManualClock(1_800_000_000_000),
        options=RunnerOptions(reconcile_interval_s=0))
    return await Runner.restore(parts)
