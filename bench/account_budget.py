"""20 runners on one Binance account and one egress IP, bursting entries: how many 429
and 418 answers the exchange gives with the shared budget (Redis, kubetrade.state.budgets)
and without it (each runner with only its own per-process weight bucket).

Each runner is an in-process ResilientExchange over its own real ccxt Binance client,
all against one fake Binance that enforces Binance's real limits (6,000 request weight
per IP per minute, 50 orders per account per 10 s and 160,000 per day, an IP ban (418)
after sending on through a 429's Retry-After). Every entry is what a runner does to
enter and reconcile: the last price (weight 2), the balances (20), the account's open
orders (80), a market buy (1 + one order): 103 weight and one order.
Both runs in one invocation, a fresh fake each; a run ends when every entry is done or
at ``--deadline`` seconds (a ban lasts 2 minutes). Figures are printed, never asserted.

Needs ``redis-server`` on PATH (or REDIS_URL). Run:
``.venv/bin/python bench/account_budget.py [--runners 20] [--entries 3] [--deadline 90]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.asyncio import Redis

from kubetrade.domain.clock import SystemClock
from kubetrade.domain.models import Order, OrderType, Side
from kubetrade.exchange.base import ExchangeError
from kubetrade.exchange.binance import BinanceExchange
from kubetrade.exchange.ratelimit import budget_plan
from kubetrade.exchange.resilient import ResilientExchange
from kubetrade.state.budgets import RedisBudget
from kubetrade.state.keys import Keys
from tests.bed.redis import start_redis
from tests.fakes.binance import FakeBinance


@dataclass
class RunFigures:
    label: str
    accepted: int
    refused_429: int
    refused_418: int
    errors_seen: int
    entries_done: int
    seconds: float


async def _runner(ex: ResilientExchange, idx: int, entries: int, tag: str) -> tuple[int, int]:
    """One runner's burst: (entries done, errors its calls raised)."""
    done = errors = 0
    for n in range(entries):
        try:
            await ex.fetch_last_price("BTC/USDT")
            await ex.fetch_balances()
            await ex.fetch_open_orders()  # the whole account's, as reconciliation reads them
            now = int(time.time() * 1000)
            await ex.create_order(Order(
                client_order_id=f"b{tag}-{idx}-{n}", strategy=f"r{idx}", symbol="BTC/USDT",
                side=Side.BUY, type=OrderType.MARKET, quantity=Decimal("0.0002"),
                created_ms=now, updated_ms=now, reason="signal"))
            done += 1
        except ExchangeError:
            errors += 1
    return done, errors


async def one_run(label: str, redis_url: str | None, runners: int, entries: int,
                  deadline: float) -> RunFigures:
    fake = FakeBinance(enforce_limits=True, balances={"USDT": Decimal(10**6)}).start()
    clock = SystemClock()
    redis = Redis.from_url(redis_url, decode_responses=True) if redis_url else None
    keys = Keys(f"bench-{uuid.uuid4().hex[:6]}")
    clients: list[ResilientExchange] = []
    try:
        for _ in range(runners):
            inner = BinanceExchange(fake.api_key, fake.secret, base_url=fake.url, clock=clock)
            budget = (RedisBudget(redis, keys, ip="bench", account="bench", plan=budget_plan)
                      if redis else None)
            clients.append(ResilientExchange(inner, clock, budget=budget, read_attempts=2,
                                             failure_threshold=10**6))
        await clients[0].load_markets()  # one exchangeInfo for the whole bench's clients
        for c in clients[1:]:
            await c.load_markets()
        tag = uuid.uuid4().hex[:4]
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(_runner(c, i, entries, tag)) for i, c in enumerate(clients)]
        finished, pending = await asyncio.wait(tasks, timeout=deadline)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        seconds = time.perf_counter() - t0
        results = [t.result() for t in finished]
        assert fake.limits is not None
        return RunFigures(
            label, len(fake.state.accepted_client_ids), fake.limits.status[429],
            fake.limits.status[418], sum(e for _, e in results), sum(d for d, _ in results),
            seconds)
    finally:
        for c in clients:
            await c.close()
        if redis is not None:
            await redis.aclose()
        fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runners", type=int, default=20)
    parser.add_argument("--entries", type=int, default=3, help="entries per runner")
    parser.add_argument("--deadline", type=float, default=90.0, help="seconds per run")
    args = parser.parse_args()
    server = None if os.environ.get("REDIS_URL") else start_redis()
    url = os.environ.get("REDIS_URL") or (server.url if server else None)
    try:
        runs = [
            asyncio.run(one_run("without shared budget", None, args.runners, args.entries,
                                args.deadline)),
            asyncio.run(one_run("with shared budget (Redis)", url, args.runners, args.entries,
                                args.deadline)),
        ]
    finally:
        if server is not None:
            server.stop()
    print(f"{args.runners} runners x {args.entries} entries on one account and IP "
          f"(fake Binance: 6000 weight/min, 50 orders/10 s, 418 ban after ignoring a 429)")
    print(f"{'run':28} {'429':>5} {'418':>5} {'orders in':>9} {'entries done':>12} "
          f"{'call errors':>11} {'seconds':>8}")
    for r in runs:
        print(f"{r.label:28} {r.refused_429:5d} {r.refused_418:5d} {r.accepted:9d} "
              f"{r.entries_done:12d} {r.errors_seen:11d} {r.seconds:8.1f}")


if __name__ == "__main__":
    main()
