"""Exchange layer figures: what ResilientExchange costs and how lost order answers end.

1. Wrapper overhead: ResilientExchange (breaker + weight bucket + tenacity) around an
   in-memory client that answers at once, vs the bare client: microseconds per call.
2. Round trip through the real ccxt Binance client to the fake server on 127.0.0.1:
   create_order (market, FULL answer) and fetch_order by client id, p50/p99 in ms.
3. Lost answers: N orders whose answer is lost after acceptance (the fake holds the
   answer past ccxt's timeout; mode ``timeout``), N with a dropped connection and N with
   a 503 after execution: duplicates on the exchange, orders whose state differs from
   the exchange's, look-ups per recovery and wall time per recovered order.

Client and server share the machine's cores. Run: ``.venv/bin/python bench/exchange.py
[--orders 200] [--lost 100] [--timeout-ms 150]``. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubetrade.domain.clock import ManualClock, SystemClock
from kubetrade.domain.models import (
    Order,
    OrderType,
    Side,
)
from kubetrade.exchange.binance import BinanceExchange
from kubetrade.exchange.resilient import ResilientExchange
from tests.fakes.binance import FakeBinance
from tests.fakes.null_exchange import NullExchange

T0 = 1726876800000 + 3_600_000


class Instant(NullExchange):
    """An ExchangeClient that answers immediately (isolates the wrapper's cost)."""

    name = "instant"


def order(cid: str) -> Order:
    return Order(client_order_id=cid, strategy="bench", symbol="BTC/USDT", side=Side.BUY,
                 type=OrderType.MARKET, quantity=Decimal("0.001"))


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def overhead(n: int) -> None:
    bare = Instant()
    wrapped = ResilientExchange(Instant(), ManualClock(0), weight_limit_per_minute=10**9)
    for label, client in (("bare", bare), ("resilient", wrapped)):
        t = time.perf_counter()
        for _ in range(n):
            await client.fetch_balances()
        read_us = (time.perf_counter() - t) / n * 1e6
        t = time.perf_counter()
        for i in range(n):
            await client.create_order(order(f"o{i}"))
        write_us = (time.perf_counter() - t) / n * 1e6
        print(f"  {label:9s}: read {read_us:7.1f} us/call, create_order {write_us:7.1f} us/call")


async def round_trip(fake: FakeBinance, n: int) -> None:
    ex = BinanceExchange(api_key=fake.api_key, secret=fake.secret, base_url=fake.url,
                         clock=SystemClock())
    res = ResilientExchange(ex, SystemClock(), weight_limit_per_minute=10**9)
    try:
        await res.load_markets()
        create, lookup = [], []
        for i in range(n):
            t = time.perf_counter()
            await res.create_order(order(f"rt-{i}"))
            create.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            await res.fetch_order(f"rt-{i}", "BTC/USDT")
            lookup.append((time.perf_counter() - t) * 1000)
        print(f"  create_order: p50 {statistics.median(create):.2f} ms, "
              f"p99 {pct(create, 0.99):.2f} ms ({n} orders)")
        print(f"  fetch_order : p50 {statistics.median(lookup):.2f} ms, "
              f"p99 {pct(lookup, 0.99):.2f} ms")
    finally:
        await res.close()


async def lost_answers(fake: FakeBinance, n: int, timeout_ms: int) -> None:
    fake.state.client_id_reuse = "after_close"  # Binance: only open orders' ids are unique
    for mode in ("timeout", "disconnect", "5xx"):
        clock = ManualClock(T0)  # backoff/cool-downs in test time; HTTP in real time
        ex = BinanceExchange(api_key=fake.api_key, secret=fake.secret, base_url=fake.url,
                             clock=clock, timeout_ms=timeout_ms)
        res = ResilientExchange(ex, clock, weight_limit_per_minute=10**9)
        try:
            await res.load_markets()
            lookups0 = fake.count("GET", "/api/v3/order")
            mismatched = 0
            t = time.perf_counter()
            for i in range(n):
                fake.fail_orders_after_accept(count=1, mode=mode, hang_seconds=1)
                got = await res.create_order(order(f"lost-{mode}-{i}"))
                truth = fake.state.orders_by_client_id(got.client_order_id)
                if (len(truth) != 1 or str(truth[0].order_id) != got.exchange_order_id
                        or truth[0].executed_qty != got.filled_quantity):
                    mismatched += 1
            wall = time.perf_counter() - t
            lookups = fake.count("GET", "/api/v3/order") - lookups0
            print(f"  {mode:10s}: {n} lost answers -> duplicates "
                  f"{len(fake.state.duplicate_client_ids())}, mismatched {mismatched}, "
                  f"look-ups/order {lookups / n:.2f}, {wall / n * 1000:.0f} ms/order "
                  f"(ccxt timeout {timeout_ms} ms)")
        finally:
            await res.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--orders", type=int, default=200)
    ap.add_argument("--lost", type=int, default=100)
    ap.add_argument("--timeout-ms", type=int, default=150)
    args = ap.parse_args()
    print(f"1. wrapper overhead ({args.calls} calls each)")
    await overhead(args.calls)
    with FakeBinance(balances={"USDT": Decimal("10000000")}, weight_limit=10**9) as fake:
        fake.set_market_time(T0)
        print("2. real ccxt -> fake Binance on 127.0.0.1")
        await round_trip(fake, args.orders)
        print("3. answers lost after the exchange accepted the order")
        await lost_answers(fake, args.lost, args.timeout_ms)


if __name__ == "__main__":
    asyncio.run(main())
