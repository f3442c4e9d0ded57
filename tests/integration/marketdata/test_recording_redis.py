"""Recording in a cluster: two runners' recorders on one series share a writer lease in
the bed's real Redis (kubetrade.state.leases). Exactly one writes; when it dies the other
takes over once the lease expired (real Redis expiry), when it stops the other takes over
at once; either way no candle is written twice and the store has no gap."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from kubetrade.domain.clock import SystemClock
from kubetrade.domain.models import Candle
from kubetrade.marketdata import load_candles
from kubetrade.marketdata.recording import CandleRecorder, RecordingSource, lease_name
from kubetrade.marketdata.store import CandleStore, SeriesKey
from kubetrade.state.keys import Keys
from kubetrade.state.leases import RedisLease
from tests.integration.notify._util import eventually
from tests.marketdata import market_file
from tests.unit.marketdata._spy import SpyStore, feed

KEY = SeriesKey("binance", "BTC/USDT", "1m")
NAME = lease_name(KEY)
TTL_S = 5.0  # a phase of the test must not stall 4 s (ttl - margin) on a loaded machine


@pytest.fixture
def minutes() -> list[Candle]:
    return load_candles(market_file("binance-BTCUSDT-1m-2024-09-21.csv")).to_list()[:61]


@pytest.fixture
def lease(redis_client: Redis) -> RedisLease:
    return RedisLease(redis_client, Keys(f"lease-{uuid.uuid4().hex[:8]}"))


def recorder(root: Path, name: str, log: list[tuple[str, int]], lease: RedisLease,
             flush_every: int = 15) -> CandleRecorder:
    return CandleRecorder(SpyStore(root, name, log), "binance", "1m", name, SystemClock(),
                          lease=lease, lease_ttl_s=TTL_S, flush_every=flush_every)


def assert_once_each(log: list[tuple[str, int]], candles: list[Candle]) -> None:
    assert sorted(ts for _, ts in log) == [c.ts_ms for c in candles]


async def test_redis_lease_compare_and_set(lease: RedisLease, redis_client: Redis) -> None:
    assert await lease.acquire(NAME, "a", 1_000, 0)
    assert not await lease.acquire(NAME, "b", 60_000, 0)
    assert await lease.acquire(NAME, "a", 60_000, 0)  # renewed: longer than the first TTL
    assert await redis_client.pttl(lease.keys.lease(NAME)) > 1_000
    await lease.release(NAME, "b", 0)  # not b's: left alone
    assert await lease.holder(NAME) == "a"
    await lease.release(NAME, "a", 0)
    assert await lease.holder(NAME) is None
    assert await lease.acquire(NAME, "b", 60_000, 0)


async def test_the_other_recorder_takes_over_when_the_holder_dies(
    tmp_path: Path, lease: RedisLease, minutes: list[Candle]
) -> None:
    log: list[tuple[str, int]] = []
    a, b = recorder(tmp_path, "runner-a", log, lease), recorder(tmp_path, "runner-b", log, lease)
    feed(minutes[:30], a, b)
    await a.refresh()
    await b.refresh()
    assert a.stats.leader == {"BTC/USDT": True} and b.stats.leader == {"BTC/USDT": False}
    assert a.tenure is not None and b.tenure is not None
    assert await lease.holder(NAME) == a.tenure.token
    assert await asyncio.to_thread(a.flush) == 30
    assert await asyncio.to_thread(b.flush) == 0
    # runner-a dies: no renewal, no release. runner-b keeps consuming and retrying.
    for c in minutes[30:60]:
        b.record("BTC/USDT", c)

    async def b_holds() -> bool:
        await b.refresh()
        return b.stats.leader["BTC/USDT"]

    await eventually(b_holds)  # once runner-a's lease expired
    assert await lease.holder(NAME) == b.tenure.token
    assert await asyncio.to_thread(b.flush) == 30  # what runner-a never wrote, nothing more
    assert CandleStore(tmp_path).load(KEY).to_list() == minutes[:60]  # no gap
    assert_once_each(log, minutes[:60])  # no candle written twice
    assert {ts for who, ts in log if who == "runner-b"} == {c.ts_ms for c in minutes[30:60]}
    # runner-a was only paused: it comes back, cannot renew, writes nothing
    a.record("BTC/USDT", minutes[60])
    await a.refresh()
    assert a.stats.leader == {"BTC/USDT": False}
    assert await asyncio.to_thread(a.flush) == 0


class QueueStream:
    """Exchange candles as a test hands them over; None ends the stream."""

    kind = "exchange"

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Candle | None] = asyncio.Queue()

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind}

    async def candles(self, cursor: Mapping[str, int]) -> AsyncIterator[tuple[str, Candle]]:
        while (candle := await self.queue.get()) is not None:
            yield "BTC/USDT", candle


async def test_runners_streams_hand_the_series_over_when_one_stops(
    tmp_path: Path, lease: RedisLease, minutes: list[Candle]
) -> None:
    log: list[tuple[str, int]] = []
    recs = {n: recorder(tmp_path, n, log, lease, flush_every=10) for n in ("pod-a", "pod-b")}
    streams = {n: QueueStream() for n in recs}
    consumed = dict.fromkeys(recs, 0)

    async def run(name: str) -> None:
        async for _ in RecordingSource(streams[name], recs[name]).candles({}):
            consumed[name] += 1

    tasks = {"pod-a": asyncio.create_task(run("pod-a"))}
    streams["pod-a"].queue.put_nowait(minutes[0])

    async def a_leads() -> bool:  # its background renewal took the series
        return recs["pod-a"].stats.leader.get("BTC/USDT", False)

    await eventually(a_leads)
    tasks["pod-b"] = asyncio.create_task(run("pod-b"))
    streams["pod-b"].queue.put_nowait(minutes[0])
    for c in minutes[1:30]:
        for s in streams.values():
            s.queue.put_nowait(c)
    await eventually(lambda: consumed["pod-a"] >= 30)
    await eventually(lambda: consumed["pod-b"] >= 30)
    assert not recs["pod-b"].stats.leader["BTC/USDT"]
    streams["pod-a"].queue.put_nowait(None)  # pod-a stops: writes what it has, lets go
    await asyncio.wait_for(tasks["pod-a"], 60)
    for c in minutes[30:60]:
        streams["pod-b"].queue.put_nowait(c)
    await eventually(lambda: consumed["pod-b"] >= 60)
    streams["pod-b"].queue.put_nowait(None)
    await asyncio.wait_for(tasks["pod-b"], 60)
    assert CandleStore(tmp_path).load(KEY).to_list() == minutes[:60]
    assert_once_each(log, minutes[:60])
    assert {ts for who, ts in log if who == "pod-a"} == {c.ts_ms for c in minutes[:30]}
    assert await lease.holder(NAME) is None  # both gave it up when their stream ended
