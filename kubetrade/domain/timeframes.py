"""The candle timeframes kubetrade knows: one table, Binance's interval names.

``TradingTimeframe`` lists the timeframes a Strategy may trade on (its ``timeframe``
field; the CRD's enum); ``TIMEFRAMES`` adds the longer intervals candles are fetched,
stored and exported in. Lengths are derived from the names (``15m`` = 15 minutes), in
milliseconds.
"""

from __future__ import annotations

from typing import Literal, get_args

TradingTimeframe = Literal[
    "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d"
]

#: The timeframes a Strategy may trade on, shortest first.
TRADING_TIMEFRAMES: tuple[str, ...] = get_args(TradingTimeframe)

#: Every Binance candle interval, shortest first.
TIMEFRAMES: tuple[str, ...] = (*TRADING_TIMEFRAMES, "3d", "1w")

_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}

#: Timeframe name -> length in milliseconds (``"1m"`` -> 60000).
TIMEFRAME_MS: dict[str, int] = {tf: int(tf[:-1]) * _UNIT_MS[tf[-1]] for tf in TIMEFRAMES}


def timeframe_ms(timeframe: str) -> int:
    """Length of ``timeframe`` in ms; ValueError names the allowed values."""
    try:
        return TIMEFRAME_MS[timeframe]
    except KeyError:
        raise ValueError(
            f"timeframe {timeframe!r} is not a candle interval (one of {', '.join(TIMEFRAMES)})"
        ) from None


__all__ = ["TIMEFRAMES", "TIMEFRAME_MS", "TRADING_TIMEFRAMES", "TradingTimeframe", "timeframe_ms"]
