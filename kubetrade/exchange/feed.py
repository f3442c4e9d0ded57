"""CandleFeed: closed candles of one symbol, in order, exactly once, by polling.

Why polling and not websockets: a runner trades on closed bars (1m and up), one REST
call per bar costs 2 weight, and polling through the same ExchangeClient works the same
over live Binance, the fake server and the paper path, with the injected clock. The
feed waits for each bar's close, asks for everything after the last bar it delivered
(so after an outage the missed bars are back-filled, paged, in order), records bars the
exchange itself lacks as gaps, and refuses to pass off old data as current: when the
newest closed bar is older than ``max_stale_intervals`` timeframes it raises
``StaleData`` instead of waiting silently, and ``is_fresh(candle)`` tells the runner
whether a back-filled bar is recent enough to trade on.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from kubetrade.domain.clock import Clock
from kubetrade.domain.models import Candle
from kubetrade.domain.timeframes import timeframe_ms
from kubetrade.exchange.base import CircuitOpen, ExchangeClient, ExchangeError, TransientError

log = logging.getLogger(__name__)


class StaleData(ExchangeError):
    """The newest closed candle is too old to trade on (feed stalled or exchange down)."""

    def __init__(self, message: str, lag_ms: int) -> None:
        super().__init__(message)
        self.lag_ms = lag_ms


@dataclass(frozen=True, slots=True)
class Gap:
    """Bars missing on the exchange itself: ``[start_ms, end_ms)`` open times."""

    start_ms: int
    end_ms: int


class CandleFeed:
    """Async iterator of closed candles; see the module docstring."""

    def __init__(
        self,
        client: ExchangeClient,
        symbol: str,
        timeframe: str,
        clock: Clock,
        *,
        since_ms: int | None = None,
        history: int = 0,
        max_stale_intervals: int = 3,
        close_delay_s: float = 1.0,
        retry_s: float = 5.0,
        page_limit: int = 1000,
        on_gap: Callable[[Gap], None] | None = None,
    ) -> None:
        if max_stale_intervals < 1:
            raise ValueError(f"max_stale_intervals must be >= 1, got {max_stale_intervals}")
        self.client = client
        self.symbol = symbol
        self.timeframe = timeframe
        self.tf_ms = timeframe_ms(timeframe)
        self.clock = clock
        self.since_ms = since_ms
        self.history = history
        self.max_stale_ms = max_stale_intervals * self.tf_ms
        self.close_delay_s = close_delay_s
        self.retry_s = retry_s
        self.page_limit = page_limit
        self.on_gap = on_gap
        self.last_ts_ms: int | None = None  # open time of the last delivered bar
        self._buffer: deque[Candle] = deque()
        self._started = False
        self._start_ms = 0
        self.gaps: list[Gap] = []
        self.backfilled = 0  # bars delivered late, by a catch-up after missed polls
        self.polls = 0
        self.errors = 0
        self.last_lag_ms: int | None = None  # now - close time, when the last bar came out

    # ---- lag and freshness ------------------------------------------------------------
    @property
    def lag_ms(self) -> int | None:
        """How far behind real time the newest bar seen is: now - its close time."""
        newest = self._buffer[-1].ts_ms if self._buffer else self.last_ts_ms
        if newest is None:
            return None
        return self.clock.now_ms() - (newest + self.tf_ms)

    def is_fresh(self, candle: Candle) -> bool:
        """Recent enough to act on (not an old bar being back-filled)."""
        return self.clock.now_ms() - (candle.ts_ms + self.tf_ms) <= self.max_stale_ms

    def _check_stale(self) -> None:
        lag = self.lag_ms
        if lag is None and self._started:
            lag = self.clock.now_ms() - (self._start_ms + self.tf_ms)
        if lag is not None and lag > self.max_stale_ms:
            raise StaleData(
                f"{self.symbol} {self.timeframe}: newest closed candle is {lag / 1000:.0f} s "
                f"old, more than {self.max_stale_ms // self.tf_ms} timeframes",
                lag,
            )

    # ---- polling ------------------------------------------------------------------------
    async def _start(self) -> None:
        self._start_ms = self.clock.now_ms()
        if self.since_ms is not None:
            self.last_ts_ms = self.since_ms - self.tf_ms
        else:
            latest = await self.client.fetch_candles(
                # +1: the exchange's newest bar is usually still forming and dropped
                self.symbol, self.timeframe, None, limit=self.history + 1
            )
            if latest:
                keep = latest[-self.history:] if self.history else []
                self._buffer.extend(keep)
                self.last_ts_ms = latest[-1].ts_ms if not keep else keep[0].ts_ms - self.tf_ms
            else:
                now = self.clock.now_ms()
                self.last_ts_ms = now - now % self.tf_ms - 2 * self.tf_ms
        self._started = True

    def _expected_next(self) -> int:
        newest = self._buffer[-1].ts_ms if self._buffer else self.last_ts_ms
        assert newest is not None
        return newest + self.tf_ms

    async def poll(self) -> list[Candle]:
        """Fetch every closed bar after the last one seen (paging through a back-log);
        returns the new bars and queues them for iteration."""
        if not self._started:
            await self._start()
        self.polls += 1
        new: list[Candle] = []
        while True:
            expected = self._expected_next()
            batch = await self.client.fetch_candles(
                self.symbol, self.timeframe, expected, limit=self.page_limit
            )
            batch = [c for c in batch if c.ts_ms >= expected]
            for c in batch:
                if c.ts_ms > expected:
                    gap = Gap(expected, c.ts_ms)
                    self.gaps.append(gap)
                    log.warning("%s %s: exchange has no candles for [%d, %d)", self.symbol,
                                self.timeframe, gap.start_ms, gap.end_ms)
                    if self.on_gap is not None:
                        self.on_gap(gap)
                if c.ts_ms < expected:
                    continue
                new.append(c)
                self._buffer.append(c)
                expected = c.ts_ms + self.tf_ms
            if len(batch) < self.page_limit:
                break
        if len(new) > 1:
            self.backfilled += len(new) - 1
        return new

    # ---- iteration -------------------------------------------------------------------
    def __aiter__(self) -> CandleFeed:
        return self

    async def __anext__(self) -> Candle:
        return await self.next()

    async def next(self) -> Candle:
        """The next closed bar. Waits for it to close (plus ``close_delay_s``), rides out
        transient errors, raises ``StaleData`` while the data is too old (call again to
        keep waiting)."""
        while True:
            if self._buffer:
                c = self._buffer.popleft()
                self.last_ts_ms = c.ts_ms
                self.last_lag_ms = self.clock.now_ms() - (c.ts_ms + self.tf_ms)
                return c
            if self._started:
                due = self._expected_next() + self.tf_ms + int(self.close_delay_s * 1000)
                wait_ms = due - self.clock.now_ms()
                if wait_ms > 0:
                    await self.clock.sleep(wait_ms / 1000)
            try:
                got = await self.poll()
            except (TransientError, CircuitOpen) as e:
                self.errors += 1
                log.warning("%s %s: candle poll failed (%s)", self.symbol, self.timeframe,
                            type(e).__name__)
                await self.clock.sleep(self.retry_s)  # first wait: each call moves on
                self._check_stale()
                continue
            if not got:
                await self.clock.sleep(self.retry_s)
                self._check_stale()
