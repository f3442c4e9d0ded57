"""API latency/throughput and WebSocket fan-out, against a real Redis with 100,000 trades.

What runs: a private ``redis-server`` (or REDIS_URL) is filled the way runners fill it
(``StateStore.commit``): 100,000 closed trades over 5 strategies, with positions,
summaries and equity. ``kubetrade api`` runs as its own process (one uvicorn worker,
authentication on, as deployed). The load generator (aiohttp, this process) then:

1. closed loop: ``--concurrency`` workers hammer GET /api/portfolio and then
   GET /api/trades?limit=50 (varying filters/cursors) for ``--seconds`` each:
   requests/s, p50, p99;
2. open loop: a fixed ``--rate`` (default 500 req/s) for ``--seconds``: p50/p99/max
   latency measured from the scheduled send time (so a stalled server cannot hide
   queueing delay, i.e. no coordinated omission);
3. WebSocket fan-out: ``--clients`` (100) authenticated clients; events are published
   on the Redis events channel with the send time inside; delay = receive time - publish
   time over every delivery: p50, p99, max.

Client and server share the machine's cores, so the figures are a floor for a
dedicated host; the server's CPU time per request (from /proc) is printed too, as a
contention-independent capacity figure. Run: ``.venv/bin/python bench/api.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from kubetrade.domain.models import ClosedTrade, Position
from kubetrade.state.events import EventType, encode_event
from kubetrade.state.keys import Keys
from kubetrade.state.store import Changes, StateStore

KUBETRADE = str(Path(sys.executable).with_name("kubetrade"))
PASSWORD = "bench-password"  # noqa: S105 - a throwaway local password
T0 = 1_700_000_000_000
STRATEGIES = [f"bench-{i}" for i in range(5)]
SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    exe = shutil.which("redis-server")
    if not exe:
        raise SystemExit("redis-server not found and REDIS_URL not set")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), 0.2),
                ):
                    break
                if time.monotonic() > deadline:
                    raise SystemExit("redis-server did not start")
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)


async def seed(redis: aioredis.Redis, keys: Keys, n_trades: int) -> None:
    per = n_trades // len(STRATEGIES)
    batch = 1000
    for s_i, name in enumerate(STRATEGIES):
        store = StateStore(redis, keys, name)
        for start in range(0, per, batch):
            trades = [
                ClosedTrade(
                    trade_id=f"{name}-{i}",
                    strategy=name,
                    symbol=SYMBOLS[i % len(SYMBOLS)],
                    quantity=Decimal("0.01"),
                    entry_price=Decimal("30000"),
                    exit_price=Decimal("30100"),
                    entry_ms=T0 + i * 60_000,
                    exit_ms=T0 + i * 60_000 + 30_000,
                    fees=Decimal("0.6"),
                    pnl=Decimal("0.4") if i % 3 else Decimal("-0.9"),
                    exit_reason="signal",
                )
                for i in range(start, min(start + batch, per))
            ]
            await store.commit(Changes(closed_trades=trades))
        await store.commit(
            Changes(
                positions={
                    sym: Position(name, sym, Decimal("0.5"), Decimal("100.5"), T0)
                    for sym in SYMBOLS
                },
                summary={
                    "phase": "Running",
                    "equity": str(10_000 + s_i),
                    "pnl": str(s_i),
                    "trades": per,
                    "win_rate": "0.66",
                    "open_positions": len(SYMBOLS),
                    "updated_ms": T0,
                    "halted_reason": "",
                },
                equity=(T0, Decimal(10_000 + s_i)),
            )
        )


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process: the server's cost per request, which (unlike
    latency) does not depend on what else runs on the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


async def closed_loop(
    session: aiohttp.ClientSession, base: str, paths: list[str], concurrency: int, seconds: float
) -> tuple[float, list[float], int]:
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal errors
        i = w
        while time.perf_counter() < stop:
            path = paths[i % len(paths)]
            i += concurrency
            t = time.perf_counter()
            async with session.get(base + path) as r:
                await r.read()
                if r.status != 200:
                    errors += 1
            lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return len(lat) / (time.perf_counter() - t0), lat, errors


async def open_loop(
    session: aiohttp.ClientSession, base: str, paths: list[str], rate: float, seconds: float
) -> tuple[list[float], int, float]:
    lat: list[float] = []
    errors = 0
    n = int(rate * seconds)
    start = time.perf_counter() + 0.1
    tasks = []

    async def one(i: int) -> None:
        nonlocal errors
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        async with session.get(base + paths[i % len(paths)]) as r:
            body = await r.read()
            if r.status != 200:
                errors += 1
                if errors == 1:
                    print(f"  first error: {r.status} {body[:200]!r}")
        lat.append(time.perf_counter() - scheduled)

    t0 = time.perf_counter()
    for i in range(n):
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return lat, errors, n / (time.perf_counter() - t0)


def show(name: str, lat: list[float], extra: str = "") -> None:
    ms = [x * 1000 for x in lat]
    print(
        f"  {name:<34} n={len(ms):>6}  p50={pct(ms, 50):7.2f} ms  p99={pct(ms, 99):7.2f} ms  "
        f"max={max(ms):7.2f} ms {extra}"
    )


async def fanout(
    base: str, token: str, redis: aioredis.Redis, keys: Keys, clients: int, events: int
) -> list[float]:
    ws_base = base.replace("http://", "ws://")
    delays: list[float] = []
    sessions: list[aiohttp.ClientSession] = []
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    done = asyncio.Event()
    received = 0
    total = clients * events

    async def reader(ws: aiohttp.ClientWebSocketResponse) -> None:
        nonlocal received
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            now = time.time_ns()
            data = json.loads(msg.data)
            if data.get("type") == "equity":
                delays.append((now - data["data"]["sent_ns"]) / 1e6)
                received += 1
                if received >= total:
                    done.set()

    session = aiohttp.ClientSession()
    sessions.append(session)
    for _ in range(clients):
        ws = await session.ws_connect(f"{ws_base}/api/ws?token={token}", max_msg_size=0)
        hello = json.loads((await ws.receive()).data)
        assert hello["type"] == "hello", hello
        sockets.append(ws)
    readers = [asyncio.create_task(reader(ws)) for ws in sockets]
    for i in range(events):
        payload = encode_event(
            EventType.EQUITY, T0 + i, {"i": i, "sent_ns": time.time_ns(), "equity": "10000"}, "x"
        )
        await redis.publish(keys.events_channel, payload)
        await asyncio.sleep(0.02)  # 50 events/s, a busy dashboard
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), 30)
    for ws in sockets:
        await ws.close()
    for t in readers:
        t.cancel()
    for s in sessions:
        await s.close()
    if received < total:
        print(f"  WARNING: {total - received} of {total} deliveries missing")
    return delays


async def main(args: argparse.Namespace) -> None:
    with redis_server() as redis_url:
        prefix = f"bench-{uuid.uuid4().hex[:6]}"
        keys = Keys(prefix)
        redis = aioredis.from_url(redis_url, decode_responses=True)
        t = time.perf_counter()
        await seed(redis, keys, args.trades)
        print(
            f"seeded {await redis.xlen(keys.trades):,} trades in "
            f"{time.perf_counter() - t:.1f} s (Redis {redis_url})"
        )
        port = free_port()
        env = dict(os.environ)
        env.update(
            REDIS_URL=redis_url,
            KUBETRADE_REDIS_PREFIX=prefix,
            DASHBOARD_PASSWORD=PASSWORD,
            JWT_SECRET="bench-jwt-secret-" + "b" * 32,
            LOGIN_MAX_FAILURES="1000",
        )
        env.pop("KUBECONFIG", None)
        server = subprocess.Popen(  # noqa: ASYNC220 - started once, before timing
            [KUBETRADE, "api", "--host", "127.0.0.1", "--port", str(port), "--local"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            connector = aiohttp.TCPConnector(limit=256)
            async with aiohttp.ClientSession(connector=connector) as s0:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        async with s0.get(base + "/health") as r:
                            if r.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    if time.monotonic() > deadline:
                        raise SystemExit("kubetrade api did not start")
                    await asyncio.sleep(0.1)
                async with s0.post(base + "/api/auth/login", json={"password": PASSWORD}) as r:
                    token = (await r.json())["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            # cursors spread over the stream, so pages come from everywhere in 100k
            rd: Any = redis  # decode_responses=True: replies are str
            first = int((await rd.xrange(keys.trades, count=1))[0][0].split("-")[0])
            last = int((await rd.xrevrange(keys.trades, count=1))[0][0].split("-")[0])
            ids = [f"{first + (last - first) * k // 50}-0" for k in range(1, 51)]
            trade_paths = [
                "/api/trades?limit=50",
                "/api/trades?limit=50&strategy=bench-1",
                "/api/trades?limit=50&symbol=ETH/USDT",
                *[f"/api/trades?limit=50&cursor={c}" for c in ids],
            ]
            connector = aiohttp.TCPConnector(limit=256)
            async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
                # warm-up
                await closed_loop(session, base, ["/api/portfolio"], 4, 1.0)
                print(
                    f"\nclosed loop, {args.concurrency} concurrent clients, "
                    f"{args.seconds:.0f} s each:"
                )
                for name, paths in (
                    ("GET /api/portfolio", ["/api/portfolio"]),
                    ("GET /api/trades (limit 50, mixed)", trade_paths),
                ):
                    cpu0 = cpu_seconds(server.pid)
                    rps, lat, errors = await closed_loop(
                        session, base, paths, args.concurrency, args.seconds
                    )
                    per_req = (cpu_seconds(server.pid) - cpu0) / max(1, len(lat))
                    show(
                        name,
                        lat,
                        f" {rps:5.0f} req/s  errors={errors}  server CPU "
                        f"{per_req * 1000:.2f} ms/req (~{1 / per_req:.0f} req/s per core)",
                    )
                print(f"\nopen loop at {args.rate:.0f} req/s, {args.seconds:.0f} s each:")
                for name, paths in (
                    ("GET /api/portfolio", ["/api/portfolio"]),
                    ("GET /api/trades (limit 50, mixed)", trade_paths),
                ):
                    lat, errors, achieved = await open_loop(
                        session, base, paths, args.rate, args.seconds
                    )
                    show(name, lat, f" offered={achieved:5.0f}/s errors={errors}")
            print(f"\nWebSocket fan-out: {args.clients} clients x {args.events} events:")
            delays = await fanout(base, token, redis, keys, args.clients, args.events)
            if delays:
                print(
                    f"  publish -> receive delay          n={len(delays):>6}  "
                    f"p50={pct(delays, 50):7.2f} ms  p99={pct(delays, 99):7.2f} ms  "
                    f"max={max(delays):7.2f} ms  mean={statistics.fmean(delays):.2f} ms"
                )
        finally:
            server.terminate()
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
            await redis.aclose()


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trades", type=int, default=100_000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=500.0)
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--events", type=int, default=100)
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
