"""Candle data behind the fake Binance: the real CSVs in tests/data/market, aggregated to
every Binance interval, plus a market clock the test controls.

Why aggregation: the recorded data holds 1m/5m/1h bars only, but a strategy may ask for
15m or 4h; Binance builds those from the same trades, so summing finer bars gives the
bars Binance would have served. The bar that is still forming at "market now" is built
from the finer bars seen so far, so the fake never leaks a bar's future close.
"""

from __future__ import annotations

import bisect
import csv
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from tests.marketdata import market_data_dir

INTERVAL_MS: dict[str, int] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
}


def shared_data_dir() -> Path:
    """Where the recorded candles live (tests/data/market, or KUBETRADE_SHARED_DATA)."""
    return market_data_dir()


@dataclass(frozen=True, slots=True)
class Bar:
    open_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


def load_csv(path: Path) -> list[Bar]:
    bars: list[Bar] = []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            bars.append(
                Bar(
                    int(row["timestamp_ms"]),
                    Decimal(row["open"]),
                    Decimal(row["high"]),
                    Decimal(row["low"]),
                    Decimal(row["close"]),
                    Decimal(row["volume"]),
                )
            )
    bars.sort(key=lambda b: b.open_ms)
    return bars


def aggregate(bars: list[Bar], interval_ms: int) -> list[Bar]:
    """Bars of ``interval_ms`` from finer ``bars`` (aligned to the epoch like Binance)."""
    out: list[Bar] = []
    cur: list[Bar] = []
    cur_open = None
    for b in bars:
        start = b.open_ms - b.open_ms % interval_ms
        if cur_open is not None and start != cur_open:
            out.append(_merge(cur_open, cur))
            cur = []
        cur_open = start
        cur.append(b)
    if cur_open is not None and cur:
        out.append(_merge(cur_open, cur))
    return out


def _merge(open_ms: int, bars: list[Bar]) -> Bar:
    return Bar(
        open_ms,
        bars[0].open,
        max(b.high for b in bars),
        min(b.low for b in bars),
        bars[-1].close,
        sum((b.volume for b in bars), Decimal(0)),
    )


class Series:
    """All bars of one symbol: the finest recorded series per base interval."""

    def __init__(self) -> None:
        # base interval -> bars (e.g. {"1m": [...], "1h": [...]})
        self.base: dict[str, list[Bar]] = {}
        self._agg: dict[str, list[Bar]] = {}

    def add(self, interval: str, bars: list[Bar]) -> None:
        self.base[interval] = sorted(bars, key=lambda b: b.open_ms)
        self._agg.clear()

    def _source_for(self, interval: str, now_ms: int | None = None) -> str | None:
        """Base series to build ``interval`` from: among those whose step divides it,
        prefer one that covers ``now_ms`` (the 1h August file cannot answer for a
        market time on 21 September), then the exact interval, then the finest."""
        want = INTERVAL_MS[interval]
        cands = [n for n in self.base if self.base[n] and want % INTERVAL_MS[n] == 0]
        if not cands:
            return None

        def covers(name: str) -> bool:
            bars = self.base[name]
            return now_ms is None or bars[0].open_ms <= now_ms < (
                bars[-1].open_ms + INTERVAL_MS[name])

        def rank(name: str) -> tuple[int, int, int]:
            return (0 if covers(name) else 1, 0 if name == interval else 1, INTERVAL_MS[name])

        return min(cands, key=rank)

    def full_bars(self, interval: str, src: str | None = None) -> list[Bar]:
        src = src if src is not None else self._source_for(interval)
        key = f"{interval}<{src}"
        if key not in self._agg:
            if src is None:
                self._agg[key] = []
            elif src == interval:
                self._agg[key] = self.base[src]
            else:
                self._agg[key] = aggregate(self.base[src], INTERVAL_MS[interval])
        return self._agg[key]

    def bars_at(self, interval: str, now_ms: int | None) -> list[Bar]:
        """Bars visible at market time ``now_ms``: every bar opened at or before it, the
        last one (still forming) rebuilt from the finer bars already closed or forming."""
        src = self._source_for(interval, now_ms)
        bars = self.full_bars(interval, src)
        if now_ms is None or not bars:
            return bars
        opens = [b.open_ms for b in bars]
        idx = bisect.bisect_right(opens, now_ms)
        visible = bars[:idx]
        if not visible:
            return visible
        last = visible[-1]
        step = INTERVAL_MS[interval]
        if last.open_ms + step > now_ms + 1 and src is not None and src != interval:  # forming
            fine = [b for b in self.base[src] if last.open_ms <= b.open_ms <= now_ms]
            if fine:
                visible = [*visible[:-1], _merge(last.open_ms, fine)]
        return visible

    def price_at(self, now_ms: int | None) -> Decimal | None:
        """Last traded price at ``now_ms``: the close of the finest bar containing it
        (the bar's close stands in for the trades inside it)."""
        if not self.base:
            return None
        name = min(self.base, key=lambda n: INTERVAL_MS[n])
        bars = self.base[name]
        if not bars:
            return None
        if now_ms is None:
            return bars[-1].close
        opens = [b.open_ms for b in bars]
        idx = bisect.bisect_right(opens, now_ms) - 1
        if idx < 0:
            return bars[0].open
        return bars[idx].close

    def range_ms(self) -> tuple[int, int] | None:
        if not self.base:
            return None
        first = min(bars[0].open_ms for bars in self.base.values() if bars)
        last = max(bars[-1].open_ms for bars in self.base.values() if bars)
        return first, last


# symbol -> list of (interval, csv file name)
DEFAULT_SOURCES: dict[str, list[tuple[str, str]]] = {
    "BTCUSDT": [
        ("1m", "binance-BTCUSDT-1m-2024-09-21.csv"),
        ("1h", "binance-BTCUSDT-1h-2024-08.csv"),
    ],
    "ETHBTC": [("5m", "freqtrade-ETHBTC-5m-2018-01.csv")],
    "LTCBTC": [("5m", "freqtrade-LTCBTC-5m-2018-01.csv")],
    "XRPETH": [("1m", "freqtrade-XRPETH-1m-2019-10.csv")],
}

_CACHE: dict[tuple[str, str], list[Bar]] = {}


def load_default_series(data_dir: Path | None = None) -> dict[str, Series]:
    """Series for every symbol with recorded data (CSV parsing cached per process)."""
    d = data_dir or shared_data_dir()
    out: dict[str, Series] = {}
    for symbol, sources in DEFAULT_SOURCES.items():
        s = Series()
        for interval, name in sources:
            path = d / name
            if not path.exists():
                continue
            key = (str(d), name)
            if key not in _CACHE:
                _CACHE[key] = load_csv(path)
            s.add(interval, _CACHE[key])
        out[symbol] = s
    return out


class MarketClock:
    """Market time of the fake: unset (= end of the recorded data), pinned by the test,
    or running from a start point at ``speed`` x wall time (for e2e runs)."""

    def __init__(self) -> None:
        self._pinned: int | None = None
        self._start: int | None = None
        self._wall0 = 0.0
        self._speed = 1.0
        # live replay: recorded time + shift_ms = the wall time clients see
        self.shift_ms = 0

    def pin(self, ts_ms: int | None) -> None:
        self._pinned = ts_ms
        self._start = None
        self.shift_ms = 0

    def run_from(self, start_ms: int, speed: float = 1.0) -> None:
        self._pinned = None
        self._start = start_ms
        self._wall0 = time.monotonic()
        self._speed = speed
        self.shift_ms = 0

    def run_live(self, data_start_ms: int, warmup_ms: int, wall_now_ms: int) -> None:
        """Replay the recording as if it were happening now: bars are served with their
        times moved forward by a whole number of hours (so 1m..1h bars stay aligned),
        chosen so that "now" falls at least ``warmup_ms`` (and less than an hour more)
        after ``data_start_ms``: rounding the other way put "now" before the recording
        whenever the wall clock was past the warm-up's minute of the hour."""
        hour = 3_600_000
        lag = wall_now_ms - (data_start_ms + warmup_ms)
        self.shift_ms = (lag // hour) * hour  # floor to whole hours
        data_now = wall_now_ms - self.shift_ms
        self._pinned = None
        self._start = data_now
        self._wall0 = time.monotonic()
        self._speed = 1.0

    @property
    def running(self) -> bool:
        return self._pinned is None and self._start is not None

    def now_ms(self) -> int | None:
        if self._pinned is not None:
            return self._pinned
        if self._start is not None:
            return self._start + int((time.monotonic() - self._wall0) * 1000 * self._speed)
        return None
