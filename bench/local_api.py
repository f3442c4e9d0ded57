"""The local API while runners trade (issue 17 item 7): paced and unpaced bursts against
a running ``kubetrade local``, p50/p99 beside the runners' decision latency.

What runs: ``kubetrade local`` as a user starts it (embedded Redis in a temporary
``--data-dir``, the example strategies on bundled candles replayed every
``--interval`` s, metrics on a free port). Once every runner trades, the load generator
(aiohttp, this process) sends a mix of dashboard reads (GET /api/status, /api/portfolio,
/api/positions, /api/trades?limit=50):

1. unpaced: ``--concurrency`` (50) workers back to back for ``--seconds``: req/s, p50, p99;
2. paced: a fixed ``--rate`` (67 req/s) for ``--seconds``, latency measured from the
   scheduled send time (a stalled server cannot hide its queue): p50, p99.

Beside each phase (and an idle phase without requests first): the runners' decision
latency over that phase, p50/p99 from histogram bucket deltas (an upper bound at bucket
resolution): per candle from due to done (``kubetrade_local_candle_decision_seconds``,
see kubetrade/cli/_local/latency.py: what a trader waits) and the runner's own candle
taken -> orders sent (``kubetrade_decision_latency_seconds``, candles with orders).
Client and server share the machine's cores, so the figures are a floor.
Run: ``.venv/bin/python bench/local_api.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
KUBETRADE = str(Path(sys.executable).with_name("kubetrade"))
PATHS = ["/api/status", "/api/portfolio", "/api/positions", "/api/trades?limit=50"]
#: The runner's own figure: candle taken to orders submitted (candles with orders only).
METRIC = "kubetrade_decision_latency_seconds_bucket"
#: kubetrade local's per-candle figure: candle due to runner done with it (every candle).
CANDLE_METRIC = "kubetrade_local_candle_decision_seconds_bucket"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def buckets(session: aiohttp.ClientSession, url: str,
                  metric: str = METRIC) -> dict[float, float]:
    """Cumulative bucket counts of ``metric`` (summed over strategies) by bound."""
    out: dict[float, float] = {}
    async with session.get(url) as r:
        for line in (await r.text()).splitlines():
            if line.startswith(metric):
                le = line.split('le="', 1)[1].split('"', 1)[0]
                bound = float("inf") if le == "+Inf" else float(le)
                out[bound] = out.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def bucket_pct(before: dict[float, float], after: dict[float, float], q: float) -> str:
    delta = sorted((b, after.get(b, 0.0) - before.get(b, 0.0)) for b in after)
    total = delta[-1][1] if delta else 0.0
    if total <= 0:
        return "n/a (no decisions)"
    bound = next(b for b, n in delta if n >= q * total)
    return f"<= {bound * 1000:.1f} ms ({int(total)} decisions)"


async def unpaced(session: aiohttp.ClientSession, base: str, workers: int,
                  seconds: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    end = time.perf_counter() + seconds
    paths = itertools.cycle(PATHS)

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            async with session.get(base + next(paths)) as r:
                await r.read()
                errors += r.status != 200
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return latencies, errors


async def paced(session: aiohttp.ClientSession, base: str, rate: float,
                seconds: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()

    async def one(scheduled: float, path: str) -> None:
        nonlocal errors
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        async with session.get(base + path) as r:
            await r.read()
            errors += r.status != 200
        latencies.append(time.perf_counter() - scheduled)

    n = int(rate * seconds)
    paths = itertools.cycle(PATHS)
    await asyncio.gather(*(one(start + i / rate, next(paths)) for i in range(n)))
    return latencies, errors


async def wait_trading(session: aiohttp.ClientSession, base: str, metrics: str) -> None:
    for _ in range(600):
        try:
            if sum((await buckets(session, metrics)).values()) > 0:
                return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit("kubetrade local did not start trading within 120 s")


async def idle(seconds: float) -> tuple[list[float], int]:
    """No requests: the runners' figures without the API's load."""
    await asyncio.sleep(seconds)
    return [], 0


async def snapshot(session: aiohttp.ClientSession, metrics: str) -> list[dict[float, float]]:
    return [await buckets(session, metrics, m) for m in (CANDLE_METRIC, METRIC)]


def report(name: str, label: str, latencies: list[float], errors: int, took: float,
           before: list[dict[float, float]], after: list[dict[float, float]]) -> None:
    if latencies:
        print(f"{name:8} {label}: {len(latencies) / took:7.1f} req/s, "
              f"p50 {statistics.median(latencies) * 1000:7.1f} ms, "
              f"p99 {pct(latencies, 0.99) * 1000:7.1f} ms, errors {errors}")
    else:
        print(f"{name:8} {label}")
    (cb, db), (ca, da) = before, after
    print(f"{'':8} runners, candle due -> done (every candle): p50 {bucket_pct(cb, ca, 0.5)}, "
          f"p99 {bucket_pct(cb, ca, 0.99)}")
    print(f"{'':8} runners, candle taken -> orders sent (candles with orders): p50 "
          f"{bucket_pct(db, da, 0.5)}, p99 {bucket_pct(db, da, 0.99)}", flush=True)


async def measure(args: argparse.Namespace, base: str, metrics: str) -> None:
    conn = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=conn) as session:
        await wait_trading(session, base, metrics)
        print(f"kubetrade local: {len(PATHS)} read endpoints in turn; candles every "
              f"{args.interval} s per runner; {args.seconds:g} s per phase")
        phases: list[tuple[str, str, Callable[[], Awaitable[tuple[list[float], int]]]]] = [
            ("idle", "no requests", lambda: idle(args.seconds)),
            ("unpaced", f"concurrency {args.concurrency}",
             lambda: unpaced(session, base, args.concurrency, args.seconds)),
            ("paced", f"{args.rate:g} req/s scheduled",
             lambda: paced(session, base, args.rate, args.seconds)),
        ]
        for name, label, run in phases:
            before = await snapshot(session, metrics)
            t0 = time.perf_counter()
            latencies, errors = await run()
            took = time.perf_counter() - t0
            report(name, label, latencies, errors, took, before,
                   await snapshot(session, metrics))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rate", type=float, default=67.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--interval", type=float, default=0.05,
                        help="seconds between replayed candles (default 0.05)")
    parser.add_argument("--kubetrade", default=KUBETRADE,
                        help="the command that runs kubetrade, split on spaces (to compare "
                        "builds, e.g. 'python -m kubetrade' with PYTHONPATH=an older tree)")
    args = parser.parse_args()
    port, metrics_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as data:
        env = {k: v for k, v in os.environ.items()
               if k not in ("REDIS_URL", "DASHBOARD_PASSWORD", "TELEGRAM_BOT_TOKEN")}
        env.update(METRICS_PORT=str(metrics_port), KUBETRADE_REPLAY_INTERVAL=str(args.interval))
        proc = subprocess.Popen(
            [*args.kubetrade.split(), "local", "--port", str(port),
             "--market-data", "replay:bundled", "--data-dir", data,
             "--strategies", str(REPO / "examples" / "strategies")],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            asyncio.run(measure(args, f"http://127.0.0.1:{port}",
                                f"http://127.0.0.1:{metrics_port}/metrics"))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


if __name__ == "__main__":
    main()
