"""Recording: every closed exchange candle a runner consumes goes into the candle store.

N runners on one symbol write it once between them: each runner's ``CandleRecorder``
buffers the candles it consumes and, every ``flush_every`` candles, writes the series it
holds the writer lease of (``kubetrade.marketdata.writer_lease``: one holder per
exchange/symbol/timeframe). The others keep a bounded buffer of recent candles; when the
holder stops (it gives the lease up) or dies (its lease expires, ``lease_ttl_s``), the
next runner to take the lease drops from its buffer what the store already has and
writes the rest, so a take-over leaves no gap and writes no candle twice. The lease is
``FileLease`` among processes sharing one data directory on one machine, a Redis lease
in a cluster (chosen by the runner's assembly; docs/marketdata.md). A ``RecordingSource``
renews its leases every third of the TTL in the background while the stream runs.

Only exchange candles are recorded: a ``RecordingSource`` refuses a replay (its candles
come from files or the store already, and ``kubetrade local`` shifts each lap of a
replay forward in time, so they would be invented candles under the exchange's name).
Recording never stops trading: a write that fails is logged and retried at the next
flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kubetrade.domain.clock import Clock
from kubetrade.domain.models import Candle
from kubetrade.marketdata.loader import LoadOptions, frame_from_candles
from kubetrade.marketdata.store import CandleStore, SeriesKey
from kubetrade.marketdata.timeframes import timeframe_ms
from kubetrade.marketdata.writer_lease import FileLease, Tenure, WriterLease

log = logging.getLogger("kubetrade.marketdata.recording")

#: Default lease length: a dead holder's series is taken over within about 40 s.
LEASE_TTL_S = 30.0


def lease_name(key: SeriesKey) -> str:
    """The writer lease's name of a series: ``candles:binance:BTC/USDT:1m``."""
    return f"candles:{key.exchange}:{key.symbol}:{key.timeframe}"


@dataclass
class RecorderStats:
    """Per symbol: candles this recorder added to the store, open time of the newest
    candle seen (ms), whether it holds the series' writer lease (``leader``); flushes
    skipped because another recorder holds the lease; failed writes."""

    recorded_total: dict[str, int] = field(default_factory=dict)
    last_candle_ms: dict[str, int] = field(default_factory=dict)
    leader: dict[str, bool] = field(default_factory=dict)
    not_holder: int = 0
    failures: int = 0


class CandleRecorder:
    """Buffers consumed candles and appends them to the store; see the module doc.
    ``lease`` None: this recorder is the only writer of its series (no coordination).
    ``owner`` names the recorder (pod or strategy); its lease token adds a random part,
    so a restarted runner of the same name waits for its predecessor's lease to end."""

    def __init__(self, store: CandleStore, exchange: str, timeframe: str, owner: str,
                 clock: Clock, *, lease: WriterLease | None = None, flush_every: int = 15,
                 lease_ttl_s: float = LEASE_TTL_S, max_buffer: int = 2000) -> None:
        self.store = store
        self.exchange = exchange
        self.timeframe = timeframe
        self.owner = owner
        self.clock = clock
        self.flush_every = flush_every
        self.max_buffer = max_buffer
        self.tenure = None if lease is None else Tenure(
            lease, f"{owner}:{secrets.token_hex(4)}", clock, int(lease_ttl_s * 1000))
        self.stats = RecorderStats()
        self._buffer: dict[str, list[Candle]] = {}
        self._resync: set[str] = set()  # symbols just taken over: compare with the store
        self._refreshing = asyncio.Lock()

    def key(self, symbol: str) -> SeriesKey:
        return SeriesKey(self.exchange, symbol, self.timeframe)

    def record(self, symbol: str, candle: Candle) -> bool:
        """Buffer one closed candle; true when the buffer is due to be flushed."""
        buf = self._buffer.setdefault(symbol, [])
        buf.append(candle)
        if self.tenure is None:
            self.stats.leader[symbol] = True
        last = self.stats.last_candle_ms.get(symbol)
        if last is None or candle.ts_ms > last:
            self.stats.last_candle_ms[symbol] = candle.ts_ms
        return sum(len(b) for b in self._buffer.values()) >= self.flush_every

    def holds(self, symbol: str) -> bool:
        """True while this recorder may write ``symbol``'s series."""
        return self.tenure is None or self.tenure.holds(lease_name(self.key(symbol)))

    async def refresh(self) -> None:
        """Take or renew the lease of every series seen so far (``stats.leader`` follows);
        a series just taken over is compared with the store before its next write.
        Never raises (an unreachable lease is logged by the tenure)."""
        if self.tenure is None:
            return
        async with self._refreshing:
            for symbol in list(self._buffer):
                if await self.tenure.refresh(lease_name(self.key(symbol))):
                    self._resync.add(symbol)
                self.stats.leader[symbol] = self.holds(symbol)

    async def release(self) -> None:
        """Give up every lease taken (another recorder takes over at once); never raises."""
        if self.tenure is None:
            return
        for name in self.tenure.held():
            await self.tenure.release(name)
        for symbol in self.stats.leader:  # in place: the leader gauge reads this dict
            self.stats.leader[symbol] = False

    def flush(self) -> int:
        """Write the buffered candles of the series this recorder holds; returns how
        many candles it added to the store. Never raises (failures are logged and
        counted, the candles kept for the next flush)."""
        return sum(self._flush_one(symbol, buf) for symbol, buf in list(self._buffer.items())
                   if buf)

    def _flush_one(self, symbol: str, buf: list[Candle]) -> int:
        key = self.key(symbol)
        if not self.holds(symbol):
            self.stats.not_holder += 1
            del buf[:-self.max_buffer]  # keep recent ones for a take-over
            return 0
        try:
            if symbol in self._resync:
                self._drop_stored(key, buf)
                self._resync.discard(symbol)
            if not buf:
                return 0
            frame = frame_from_candles(buf, f"recorded {key.label}",
                                       LoadOptions(timeframe=self.timeframe))
            result = self.store.append(key, frame)
        except Exception:
            self.stats.failures += 1
            log.exception("recording %s failed; kept %d candles for the next try",
                          key.label, len(buf))
            del buf[:-self.max_buffer]
            return 0
        written = result.added + result.replaced
        self.stats.recorded_total[symbol] = self.stats.recorded_total.get(symbol, 0) + written
        buf.clear()
        return written

    def _drop_stored(self, key: SeriesKey, buf: list[Candle]) -> None:
        """Remove from ``buf`` the candles whose open time the store already has (the
        previous holder wrote them)."""
        table = self.store.read_table(key)
        if table is None:
            return
        stored = set(table.column("timestamp_ms").to_pylist())
        buf[:] = [c for c in buf if c.ts_ms not in stored]

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
    """An exchange market source that records every candle it passes on: leases renewed
    in the background, flushes off the event loop (in a thread), what is left written
    and the leases given up when the stream ends. Raises ValueError for a replay."""

    def __init__(self, inner: CandleStream, recorder: CandleRecorder) -> None:
        if inner.kind != "exchange":
            raise ValueError(f"only exchange candles are recorded, not {inner.kind!r} ones "
                             "(docs/marketdata.md, replayed candles)")
        self.inner = inner
        self.recorder = recorder
        self.kind = inner.kind

    def describe(self) -> dict[str, Any]:
        tenure = self.recorder.tenure
        lease = "none" if tenure is None else type(tenure.lease).__name__
        return {**self.inner.describe(), "recording": str(self.recorder.store.root),
                "writer_lease": lease}

    async def candles(self, cursor: Mapping[str, int]) -> AsyncIterator[tuple[str, Candle]]:
        keeper = None if self.recorder.tenure is None else asyncio.create_task(self._keep())
        try:
            async for symbol, candle in self.inner.candles(cursor):
                if self.recorder.record(symbol, candle):
                    await self.recorder.refresh()
                    await asyncio.to_thread(self.recorder.flush)
                yield symbol, candle
        finally:  # the stream ended or was closed: what is buffered goes in now
            if keeper is not None:
                keeper.cancel()
                # a renewal in flight must not land after the release below
                await asyncio.wait([keeper], timeout=5)
            self.recorder.flush()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self.recorder.release()

    async def _keep(self) -> None:
        tenure = self.recorder.tenure
        assert tenure is not None
        while True:
            await self.recorder.refresh()
            await self.recorder.clock.sleep(tenure.renew_every_s)


def recording_source(inner: CandleStream, datadir: str | Path, timeframe: str, owner: str,
                     clock: Clock, exchange: str = "binance", *,
                     lease: WriterLease | None = None) -> RecordingSource:
    """``inner`` recording into the store at ``datadir``, one writer per series among
    the recorders sharing ``lease`` (default: a FileLease in ``datadir``, the processes
    of one machine)."""
    recorder = CandleRecorder(CandleStore(datadir), exchange, timeframe, owner, clock,
                              lease=lease if lease is not None else FileLease(datadir))
    return RecordingSource(inner, recorder)
