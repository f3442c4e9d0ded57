"""Market data for the runner: live candles from the exchange, or a paced replay.

Both are async iterators of ``(symbol, closed candle)`` that resume after a cursor
(symbol -> open time of the last candle already decided on), so a restarted runner
neither skips nor repeats a candle.

The replay loops forever for ``kubetrade local``: each lap is shifted forward in time
by the length of the recording, so time keeps increasing and the strategies keep
trading on real price moves without internet.
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from kubetrade.domain.clock import Clock
from kubetrade.domain.models import Candle


class MarketSource(Protocol):
    kind: str  # "exchange" | "replay"

    def candles(self, cursor: Mapping[str, int]) -> AsyncIterator[tuple[str, Candle]]: ...

    def describe(self) -> dict[str, Any]: ...


class RecorderStatsView(Protocol):
    """What the runner reads of a candle recorder (kubetrade.marketdata.recording):
    ``stats.recorded_total`` (symbol -> candles written, cumulative), ``stats.leader``
    (symbol -> holds the series' writer lease) and ``owner`` (its name)."""

    owner: str

    @property
    def stats(self) -> Any: ...


def recorder_of(source: object) -> RecorderStatsView | None:
    """The candle recorder under ``source``, through its wrappers (each keeps the
    source it wraps as ``inner``: the local stop gate, the candle clock); None when the
    market data is not recorded."""
    for _ in range(8):  # wrappers nest a few deep at most
        recorder = getattr(source, "recorder", None)
        if recorder is not None:
            return recorder  # type: ignore[no-any-return]
        source = getattr(source, "inner", None)
        if source is None:
            return None
    return None


class ReplaySource:
    """Recorded candles, one list per symbol, merged in time order and paced by ``interval``."""

    kind = "replay"

    def __init__(
        self,
        series: Mapping[str, Sequence[Candle]],
        clock: Clock,
        interval: float,
        loop: bool = True,
        paths: Mapping[str, Path] | None = None,
    ) -> None:
        for symbol, candles in series.items():
            if not candles:
                raise ValueError(f"replay: no candles for {symbol}")
        self.series = {s: list(c) for s, c in series.items()}
        self.clock = clock
        self.interval = interval
        self.loop = loop
        self.paths = dict(paths or {})

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "interval_s": self.interval,
            "loop": self.loop,
            "files": {s: str(p) for s, p in self.paths.items()},
            "candles": {s: len(c) for s, c in self.series.items()},
        }

    def _span(self, candles: list[Candle]) -> int:
        step = candles[1].ts_ms - candles[0].ts_ms if len(candles) > 1 else 60_000
        return candles[-1].ts_ms - candles[0].ts_ms + step

    def _lap_iter(self, symbol: str, after: int | None) -> Iterator[Candle]:
        candles = self.series[symbol]
        span = self._span(candles)
        first = candles[0].ts_ms
        lap = 0
        if after is not None and after >= first:
            lap = (after - first) // span
        while True:
            shift = lap * span
            for c in candles:
                ts = c.ts_ms + shift
                if after is not None and ts <= after:
                    continue
                yield c if shift == 0 else replace(c, ts_ms=ts)
            if not self.loop:
                return
            lap += 1

    async def candles(self, cursor: Mapping[str, int]) -> AsyncIterator[tuple[str, Candle]]:
        iters = {s: self._lap_iter(s, cursor.get(s)) for s in self.series}
        heap: list[tuple[int, str]] = []
        heads: dict[str, Candle] = {}
        for symbol, it in iters.items():
            head = next(it, None)
            if head is not None:
                heads[symbol] = head
                heapq.heappush(heap, (head.ts_ms, symbol))
        while heap:
            _ts, symbol = heapq.heappop(heap)
            candle = heads.pop(symbol)
            if self.interval > 0:
                await self.clock.sleep(self.interval)
            yield symbol, candle
            nxt = next(iters[symbol], None)
            if nxt is not None:
                heads[symbol] = nxt
                heapq.heappush(heap, (nxt.ts_ms, symbol))


def load_replay(
    paths: Mapping[str, Path], clock: Clock, interval: float, loop: bool = True,
    *, timeframe: str | None = None,
) -> ReplaySource:
    """Replay of candle files through the one strict loader (kubetrade.marketdata): a
    file whose spacing is not ``timeframe`` is refused (CandleDataError, a ValueError)."""
    # imported on use: pyarrow (~1 s) is needed by a replay of files, not by a live runner
    from kubetrade.marketdata import LoadOptions, load_candles

    opts = LoadOptions(timeframe=timeframe)
    return ReplaySource(
        {s: load_candles(p, opts) for s, p in paths.items()}, clock, interval, loop, paths
    )
