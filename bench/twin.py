"""The paper twin's cost on a live runner (issue 20): decision latency (closed candle
reaching the runner -> its order handed to the exchange client) and the whole candle
(decision, persist, send, twin, Redis writes), p50/p99, with and without the twin.

Target: the twin adds under 10 % to the decision latency's p99. The twin runs after
the live orders are sent, so the decision itself should not move; the candle's total
grows by the twin's engine step and its Redis write.

The "live" exchange is a PaperExchange behind the live runner (no network: the figures
are the runner's own), fed each candle before the runner sees it; the on-exchange stop
is off (the paper exchange has no STOP_LOSS_LIMIT). Real Redis (redis-server when
installed). Prints figures, asserts nothing.

    .venv/bin/python bench/twin.py [--candles 1440] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.runner import RedisServer, pct  # noqa: E402


class _FeedingSource:
    """Replay candles, each fed to the stand-in exchange before the runner gets it."""

    kind = "replay"

    def __init__(self, candles: list[Any], exchange: Any, symbol: str) -> None:
        self._candles, self.exchange, self.symbol = candles, exchange, symbol

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind}

    async def _each(self) -> AsyncIterator[tuple[str, Any]]:
        for candle in self._candles:
            self.exchange.feed(self.symbol, candle)
            yield self.symbol, candle

    def candles(self, cursor: Any) -> AsyncIterator[tuple[str, Any]]:
        return self._each()


Samples = tuple[list[float], list[float], list[float], list[float]]


async def one_run(redis_url: str, n: int, mode: str, prefix: str) -> Samples:
    """(decision latencies, candle times) in seconds of a live runner over ``n`` candles,
    wall clock, then the same on this thread's CPU clock (what the runner itself spent,
    without the time other processes on a busy machine took the CPU). ``mode``: ``off``
    (no twin), ``on``, or ``unsaved`` (the twin runs, its Redis write is skipped: where
    the cost lies)."""
    from prometheus_client import CollectorRegistry

    from kubetrade.domain.clock import ManualClock
    from kubetrade.domain.risk import RiskLimits
    from kubetrade.exchange.paper import PaperBroker, PaperExchange, default_market
    from kubetrade.exchange.replay import bundled_candles, load_candles
    from kubetrade.runner.core import Runner, RunnerOptions, RunnerParts, RunnerSpec
    from kubetrade.runner.metrics import RunnerMetrics
    from kubetrade.state.keys import Keys

    symbol = "BTC/USDT"
    path = bundled_candles(symbol)
    assert path is not None
    candles = load_candles(path)[:n]
    clock = ManualClock(candles[0].ts_ms)
    exchange = PaperExchange(PaperBroker({symbol: default_market(symbol)},
                                         {"USDT": Decimal(10000)}), clock)
    redis = Redis.from_url(redis_url, decode_responses=True)
    spec = RunnerSpec(name="bench", algorithm="sma-crossover",
                      parameters={"fastPeriod": 2, "slowPeriod": 4}, symbols=[symbol],
                      mode="live")
    limits = RiskLimits(strategy_max_consecutive_losses=0, daily_loss_limit_pct=Decimal(0),
                        max_drawdown_pct=Decimal(0), stop_loss_on_exchange=False,
                        price_collar_pct=Decimal(0), twin_divergence_pct=Decimal(1))
    runner = await Runner.restore(RunnerParts(
        spec, redis=redis, keys=Keys(prefix), exchange=exchange,
        market=_FeedingSource(candles, exchange, symbol), clock=clock, limits=limits,
        metrics=RunnerMetrics(CollectorRegistry()),
        options=RunnerOptions(reconcile_interval_s=0, paper=False)))
    twin = mode != "off"
    if not twin:
        runner.live_period = None
    elif mode == "unsaved":
        assert runner.live_period is not None

        async def no_save(*args: Any, **kwargs: Any) -> None:
            return None

        runner.live_period.store.save = no_save  # type: ignore[method-assign]
    assert (runner.live_period is not None) == twin
    decisions: list[float] = []
    per_candle: list[float] = []
    cpu_decisions: list[float] = []
    cpu_candle: list[float] = []
    started = cpu_started = 0.0
    submit = exchange.create_order

    async def timed_submit(order: Any) -> Any:
        decisions.append(time.perf_counter() - started)
        cpu_decisions.append(time.thread_time() - cpu_started)
        return await submit(order)

    exchange.create_order = timed_submit  # type: ignore[method-assign]
    async for sym, candle in runner.market.candles(runner.cursor):
        clock.set(candle.ts_ms + 60_000)
        started, cpu_started = time.perf_counter(), time.thread_time()
        await runner.process_candle(sym, candle)
        per_candle.append(time.perf_counter() - started)
        cpu_candle.append(time.thread_time() - cpu_started)
    if twin:
        assert runner.live_period is not None and runner.live_period.comparison is not None
        shown = runner.live_period.comparison.to_dict()
        print(f"    twin: {shown['twin']['trades']} trades, live {shown['live']['trades']}; "
              f"matched fills {shown['fills_matched']}, divergence {shown['divergence_pct']} %")
    await redis.aclose()
    return decisions, per_candle, cpu_decisions, cpu_candle


def _ms(values: list[float]) -> tuple[float, float]:
    ms = [v * 1000 for v in values]
    return statistics.median(ms), pct(ms, 0.99)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candles", type=int, default=1440)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from kubetrade.logs import configure_logging

    configure_logging("WARNING", sys.stderr)
    server = RedisServer()
    try:
        print(f"Redis: {server.kind}; load average {os.getloadavg()[0]:.2f} on "
              f"{os.cpu_count()} CPUs; {args.candles} 1m candles, live runner, "
              f"{args.rounds} rounds each, interleaved")
        modes = ("off", "on", "unsaved")
        results: dict[str, Samples] = {m: ([], [], [], []) for m in modes}
        for r in range(args.rounds):
            for mode in modes:
                prefix = f"bench-twin-{r}-{mode}"
                for mine, got in zip(results[mode], asyncio.run(
                        one_run(server.url, args.candles, mode, prefix)), strict=True):
                    mine.extend(got)
        for what, idx in (("decision latency, wall", 0), ("whole candle, wall", 1),
                          ("decision latency, CPU", 2), ("whole candle, CPU", 3)):
            (b50, b99), (t50, t99), (u50, u99) = (_ms(results[m][idx]) for m in modes)
            n = len(results["on"][idx])
            print(f"{what} (ms, n={n}): without twin p50={b50:.3f} p99={b99:.3f}; "
                  f"with twin p50={t50:.3f} p99={t99:.3f} ({100 * (t99 / b99 - 1):+.1f} %); "
                  f"twin not stored p50={u50:.3f} p99={u99:.3f} ({100 * (u99 / b99 - 1):+.1f} %)")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
