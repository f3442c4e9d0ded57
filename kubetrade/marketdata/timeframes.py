"""Candle time arithmetic for market data, over the domain's one timeframe table
(kubetrade.domain.timeframes, re-exported here). Pure, no I/O. Candle grids are
aligned as Binance aligns them: to the Unix epoch for every interval up to a day, to
Monday 00:00 UTC for a week (``bucket_offset_ms``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from kubetrade.domain.timeframes import TIMEFRAME_MS, timeframe_ms

_NAMES = {ms: name for name, ms in TIMEFRAME_MS.items()}
DAY_MS = 86_400_000
WEEK_MS = 604_800_000
# 1970-01-05 was the first Monday after the epoch: Binance weeks open on Mondays
_MONDAY_OFFSET_MS = 4 * DAY_MS

__all__ = ["TIMEFRAME_MS", "bucket_offset_ms", "can_resample", "describe_ms", "iso_ms",
           "parse_time", "timeframe_ms"]


def describe_ms(ms: int) -> str:
    """``60000`` -> ``"1m"``; a length that is no interval -> ``"90s"``/``"1.5h"``-like text."""
    if ms in _NAMES:
        return _NAMES[ms]
    for unit, size in (("d", DAY_MS), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size:
            value = ms / size
            return f"{value:g}{unit}"
    return f"{ms}ms"


def bucket_offset_ms(timeframe_ms_: int) -> int:
    """Offset of the candle grid from the epoch: 0, or 4 days for weeks (Mondays)."""
    return _MONDAY_OFFSET_MS if timeframe_ms_ == WEEK_MS else 0


def can_resample(fine_ms: int, coarse_ms: int) -> bool:
    """Whether candles of ``coarse_ms`` can be built from candles of ``fine_ms``."""
    if coarse_ms <= fine_ms or coarse_ms % fine_ms:
        return False
    return DAY_MS % coarse_ms == 0 or coarse_ms == WEEK_MS


def iso_ms(ts_ms: int) -> str:
    """``1726876800000`` -> ``"2024-09-21T00:00:00Z"`` (UTC, seconds precision); a time
    beyond the calendar (year > 9999) -> ``"<N> ms (beyond year 9999)"``."""
    try:
        dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return f"{ts_ms} ms (beyond year 9999)"
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + "Z"


def parse_time(text: str) -> int:
    """``"2024-01-01"``, ``"2024-01-01T12:00"`` (UTC unless an offset is given) or a
    number of ms since the epoch -> ms since the epoch. ValueError says what is allowed."""
    value = text.strip()
    if value.isdigit():
        return int(value)
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"time {text!r}: expected YYYY-MM-DD, an ISO 8601 time or ms since the epoch"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)
