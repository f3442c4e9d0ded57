"""Recording: every closed candle a runner consumes goes into the candle store.

Design for N runners on one symbol: each runner's ``CandleRecorder`` buffers the candles
it consumes and, every ``flush_every`` candles, asks a ``WriterLease`` for its series
(exchange/symbol/timeframe). Only the lease holder writes; the others keep a bounded
buffer of recent candles, so when the holder stops and its lease expires the next
runner to take it writes what the holder missed (appends are idempotent by open time,
so an overlap changes nothing). ``FileLease`` serves runners sharing one data directory
on one machine (``kubetrade local``, one node); a cluster passes a lease kept in Redis
(the state layer's, through the same Protocol). Recording never stops trading: a write
that fails is logged and retried at the next flush.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kubetrade.domain.clock import Clock
from kubetrade.domain.models import Candle
from kubetrade.marketdata.loader import LoadOptions, frame_from_candles
from kubetrade.marketdata.store import CandleStore, SeriesKey
from kubetrade.marketdata.timeframes import timeframe_ms

log = logging.getLogger("kubetrade.marketdata.recording")


class WriterLease(Protocol):
    """One writer per series: ``acquire`` is true when ``owner`` holds (or now takes)
    the lease of ``series`` until ``now_ms + ttl_ms``."""

    def acquire(self, series: str, owner: str, ttl_ms: int, now_ms: int) -> bool: ...


class FileLease:
    """Leases as small JSON files under ``<datadir>/.leases``, taken under flock (one
    machine; processes that share the directory)."""

    def __init__(self, datadir: str | Path) -> None:
        self.dir = Path(datadir) / ".leases"

    def acquire(self, series: str, owner: str, ttl_ms: int, now_ms: int) -> bool:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / (series.replace("/", "-").replace(" ", "_") + ".json")
        with open(path, "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                fh.seek(0)
                text = fh.read()
                held = json.loads(text) if text.strip() else {}
                if held.get("owner") not in (None, owner) and held.get("expires_ms", 0) > now_ms:
                    return False
                fh.seek(0)
                fh.truncate()
                fh.write(json.dumps({"owner": owner, "expires_ms": now_ms + ttl_ms}))
                fh.flush()
                os.fsync(fh.fileno())
                return True
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@dataclass
class RecorderStats:
    """Per symbol: candles written by this recorder, open time of the newest candle
    seen (ms), and flushes skipped because another runner holds the lease."""

    recorded_total: dict[str, int] = field(default_factory=dict)
    last_candle_ms: dict[str, int] = field(default_factory=dict)
    not_holder: int = 0
    failures: int = 0


class CandleRecorder:
    """Buffers consumed candles and appends them to the store; see the module doc."""

    def __init__(self, store: CandleStore, exchange: str, timeframe: str, owner: str,
                 clock: Clock, *, lease: WriterLease | None = None, flush_every: int = 15,
                 lease_ttl_s: float = 300.0, max_buffer: int = 2000) -> None:
        self.store = store
        self.exchange = exchange
        self.timeframe = timeframe
        self.owner = owner
        self.clock = clock
        self.lease = lease
        self.flush_every = flush_every
        self.lease_ttl_ms = int(lease_ttl_s * 1000)
        self.max_buffer = max_buffer
        self.stats = RecorderStats()
        self._buffer: dict[str, list[Candle]] = {}

    def record(self, symbol: str, candle: Candle) -> bool:
        """Buffer one closed candle; true when the buffer is due to be flushed."""
        buf = self._buffer.setdefault(symbol, [])
        buf.append(candle)
        last = self.stats.last_candle_ms.get(symbol)
        if last is None or candle.ts_ms > last:
            self.stats.last_candle_ms[symbol] = candle.ts_ms
        return sum(len(b) for b in self._buffer.values()) >= self.flush_every

    def flush(self) -> int:
        """Write the buffered candles of the series this recorder holds; returns how
        many candles were written. Never raises (failures are logged and counted)."""
        written = 0
        for symbol, buf in list(self._buffer.items()):
            if not buf:
                continue
            key = SeriesKey(self.exchange, symbol, self.timeframe)
            if self.lease is not None and not self.lease.acquire(
                    key.label, self.owner, self.lease_ttl_ms, self.clock.now_ms()):
                self.stats.not_holder += 1
                del buf[:-self.max_buffer]  # keep recent ones for a take-over
                continue
            try:
                frame = frame_from_candles(buf, f"recorded {key.label}",
                                           LoadOptions(timeframe=self.timeframe))
                self.store.append(key, frame)
            except Exception:
                self.stats.failures += 1
                log.exception("recording %s failed; kept %d candles for the next try",
                              key.label, len(buf))
                del buf[:-self.max_buffer]
                continue
            written += len(frame)
            self.stats.recorded_total[symbol] = self.stats.recorded_total.get(symbol, 0) + len(
                frame)
            buf.clear()
        return written

    def last_candle_age_s(self, symbol: str) -> float | None:
        """Seconds since the newest recorded candle of ``symbol`` closed (None: none yet)."""
        last = self.stats.last_candle_ms.get(symbol)
        if last is None:
            return None
        return max(0.0, (self.clock.now_ms() - last - timeframe_ms(self.timeframe)) / 1000)


class CandleStream(Protocol):
    """A runner's market source (kubetrade.runner.market.MarketSource)."""

    kind: str

    def candles(self, cursor: Mapping[str, int]) -> AsyncIterator[tuple[str, Candle]]: ...

    def describe(self) -> dict[str, Any]: ...


class RecordingSource:
    """A market source that records every candle it passes on (flushes off the event
    loop, in a thread), and flushes what is left when the stream ends."""

    def __init__(self, inner: CandleStream, recorder: CandleRecorder) -> None:
        self.inner = inner
        self.recorder = recorder
        self.kind = inner.kind

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "recording": str(self.recorder.store.root)}

    async def candles(self, cursor: Mapping[str, int]) -> AsyncIterator[tuple[str, Candle]]:
        try:
            async for symbol, candle in self.inner.candles(cursor):
                if self.recorder.record(symbol, candle):
                    await asyncio.to_thread(self.recorder.flush)
                yield symbol, candle
        finally:  # the stream ended or was closed: what is buffered goes in now
            self.recorder.flush()


def recording_source(inner: CandleStream, datadir: str | Path, timeframe: str, owner: str,
                     clock: Clock, exchange: str = "binance") -> RecordingSource:
    """``inner`` recording into the store at ``datadir``, one writer per series among
    the processes sharing that directory (FileLease)."""
    recorder = CandleRecorder(CandleStore(datadir), exchange, timeframe, owner, clock,
                              lease=FileLease(datadir))
    return RecordingSource(inner, recorder)
