"""History download into the candle store, ccxt ``fetch_ohlcv`` style: page after page
of closed candles from ``since`` until ``until`` (or the last closed candle), each page
validated by the loader's rules and appended to the store before the next is asked
for, so an interrupted download resumes from the last stored candle.

The exchange comes in as any object with ``fetch_candles`` (the project's
ExchangeClient, normally a ResilientExchange around BinanceExchange, which spends
request weight and honours Retry-After); this module does not import the exchange
layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kubetrade.domain.clock import Clock
from kubetrade.domain.models import Candle
from kubetrade.marketdata.loader import LoadOptions, frame_from_candles
from kubetrade.marketdata.progress import Progress
from kubetrade.marketdata.store import CandleStore, SeriesKey
from kubetrade.marketdata.timeframes import iso_ms, timeframe_ms

PAGE_LIMIT = 1000  # Binance's largest klines page


class CandleSource(Protocol):
    """ccxt-style candle paging (ExchangeClient.fetch_candles): closed candles with
    open time >= ``since_ms``, oldest first, at most ``limit``."""

    async def fetch_candles(
        self, symbol: str, timeframe: str, since_ms: int | None = None, limit: int = 500
    ) -> list[Candle]: ...


@dataclass(frozen=True, slots=True)
class DownloadResult:
    """One series: candles fetched and newly stored, pages asked, the range stored by
    this run (ms), and where it started (``resumed`` when after ``since``)."""

    key: SeriesKey
    fetched: int
    added: int
    pages: int
    start_ms: int
    first_ms: int | None
    last_ms: int | None
    resumed: bool

    def to_dict(self) -> dict[str, Any]:
        return {"fetched": self.fetched, "added": self.added, "pages": self.pages,
                "start": iso_ms(self.start_ms), "resumed": self.resumed,
                "first": iso_ms(self.first_ms) if self.first_ms is not None else None,
                "last": iso_ms(self.last_ms) if self.last_ms is not None else None}


def resume_point(store: CandleStore, key: SeriesKey, since_ms: int) -> int:
    """Where to start: ``since_ms``, or just after the last stored candle when the
    store already holds candles from ``since_ms`` on."""
    last = store.last_ms(key)
    if last is None:
        return since_ms
    first = store.info(key).first_ms
    step = timeframe_ms(key.timeframe)
    if first is not None and first <= since_ms + step:
        return max(since_ms, last + step)
    return since_ms


async def download(
    source: CandleSource,
    store: CandleStore,
    key: SeriesKey,
    since_ms: int,
    until_ms: int | None,
    clock: Clock,
    progress: Progress | None = None,
    *,
    page_limit: int = PAGE_LIMIT,
) -> DownloadResult:
    """Fetch ``key``'s candles with open time in [since, until] into ``store``.

    Only closed candles are stored (open + timeframe <= now by ``clock``). A page that
    breaks a rule raises ``CandleDataError`` (the pages before it are stored; the next
    run resumes there); exchange errors propagate as the exchange raised them."""
    step = timeframe_ms(key.timeframe)
    last_closed = (clock.now_ms() // step) * step - step
    end = last_closed if until_ms is None else min(until_ms, last_closed)
    start = resume_point(store, key, since_ms)
    label = key.label
    if progress is not None:
        progress.start(label, max(0, (end - start) // step + 1))
    cursor, fetched, added, pages = start, 0, 0, 0
    first: int | None = None
    last: int | None = None
    while cursor <= end:
        page = await source.fetch_candles(key.symbol, key.timeframe, cursor, page_limit)
        pages += 1
        kept = _within(page, cursor, end)
        if not kept:
            break
        frame = frame_from_candles(
            kept, f"{label} page from {iso_ms(cursor)}", LoadOptions(timeframe=key.timeframe))
        result = store.append(key, frame)
        fetched += len(frame)
        added += result.added
        first = frame.first_ms if first is None else first
        last = frame.last_ms
        assert last is not None
        if progress is not None:
            progress.advance(label, len(frame), last)
        cursor = last + step
    out = DownloadResult(key, fetched, added, pages, start, first, last, start > since_ms)
    if progress is not None:
        progress.finish(label, out.to_dict())
    return out


def _within(page: Sequence[Candle], start: int, end: int) -> list[Candle]:
    return [c for c in page if start <= c.ts_ms <= end]
