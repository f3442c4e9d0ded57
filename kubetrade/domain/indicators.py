"""Incremental indicators: O(1) work and O(period) memory per update.

A replay of half a million candles calls these once per candle, so each ``update`` is a
handful of arithmetic operations on a running state instead of a recomputation over the
window. Prices arrive as floats (indicator maths is the one place floats are allowed);
the moving average keeps its sums as integers of 1e-8 units, which makes it exact: no
drift after millions of updates, and a crossover test (fast vs slow) gives the same
answer as a Decimal computation over the same window.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

PRICE_SCALE = 100_000_000
"""Prices are quantised to 1e-8 (the smallest Binance tick) inside the exact SMA."""
_N = TypeVar("_N", int, float)


def scaled(price: float) -> int:
    """Price as an integer number of 1e-8 units (exact for prices below ~9e7)."""
    return round(price * PRICE_SCALE)


def _restored_window(
    data: dict[str, Any], period: int, convert: Callable[[Any], _N]
) -> deque[_N]:
    """A snapshot's ``window`` list, each value through ``convert``, cut to its last
    ``period`` values."""
    window = deque(convert(v) for v in data.get("window", []))
    while len(window) > period:
        window.popleft()
    return window


def _period(period: int, least: int) -> int:
    """``period``; ValueError when it is below ``least``."""
    if period < least:
        raise ValueError(f"period must be >= {least}, got {period}")
    return period


class ExactSMA:
    """Simple moving average over ``period`` values, kept as an exact integer sum."""

    __slots__ = ("_sum", "_window", "period")

    def __init__(self, period: int) -> None:
        self.period = _period(period, 1)
        self._window: deque[int] = deque()
        self._sum = 0

    def update(self, value: int) -> None:
        window = self._window
        window.append(value)
        self._sum += value
        if len(window) > self.period:
            self._sum -= window.popleft()

    @property
    def ready(self) -> bool:
        return len(self._window) >= self.period

    @property
    def total(self) -> int:
        """Sum of the window in 1e-8 units; compare ``a.total * b.period`` with
        ``b.total * a.period`` to compare two averages without rounding."""
        return self._sum

    @property
    def value(self) -> float:
        return self._sum / len(self._window) / PRICE_SCALE if self._window else math.nan

    def snapshot(self) -> dict[str, Any]:
        return {"window": list(self._window)}

    def restore(self, data: dict[str, Any]) -> None:
        self._window = _restored_window(data, self.period, int)
        self._sum = sum(self._window)


class RollingStats:
    """Rolling mean and population standard deviation (Bollinger's convention).

    Sums of values and of squares are updated in O(1); to keep float cancellation from
    accumulating, both are recomputed from the window every ``period * 64`` updates,
    which costs O(1) amortised.
    """

    __slots__ = ("_n_since_refresh", "_sum", "_sumsq", "_window", "period")

    def __init__(self, period: int) -> None:
        self.period = _period(period, 2)
        self._window: deque[float] = deque()
        self._sum = 0.0
        self._sumsq = 0.0
        self._n_since_refresh = 0

    def update(self, value: float) -> None:
        window = self._window
        window.append(value)
        self._sum += value
        self._sumsq += value * value
        if len(window) > self.period:
            old = window.popleft()
            self._sum -= old
            self._sumsq -= old * old
        self._n_since_refresh += 1
        if self._n_since_refresh >= self.period * 64:
            self._refresh()

    def _refresh(self) -> None:
        self._sum = math.fsum(self._window)
        self._sumsq = math.fsum(v * v for v in self._window)
        self._n_since_refresh = 0

    @property
    def ready(self) -> bool:
        return len(self._window) >= self.period

    @property
    def mean(self) -> float:
        return self._sum / len(self._window) if self._window else math.nan

    @property
    def std(self) -> float:
        n = len(self._window)
        if n == 0:
            return math.nan
        mean = self._sum / n
        var = self._sumsq / n - mean * mean
        return math.sqrt(var) if var > 0.0 else 0.0

    def snapshot(self) -> dict[str, Any]:
        return {"window": list(self._window)}

    def restore(self, data: dict[str, Any]) -> None:
        self._window = _restored_window(data, self.period, float)
        self._refresh()


class WilderRSI:
    """Relative Strength Index with Wilder's smoothing (the textbook definition).

    The first average gain/loss is the simple mean of the first ``period`` changes;
    after that ``avg = (avg * (period - 1) + x) / period``.
    """

    __slots__ = ("_avg_gain", "_avg_loss", "_count", "_prev", "_seed_gain", "_seed_loss", "period")

    def __init__(self, period: int) -> None:
        self.period = _period(period, 2)
        self._prev: float | None = None
        self._count = 0
        self._seed_gain = 0.0
        self._seed_loss = 0.0
        self._avg_gain = 0.0
        self._avg_loss = 0.0

    def update(self, value: float) -> None:
        prev = self._prev
        self._prev = value
        if prev is None:
            return
        change = value - prev
        gain = change if change > 0.0 else 0.0
        loss = -change if change < 0.0 else 0.0
        self._count += 1
        p = self.period
        if self._count < p:
            self._seed_gain += gain
            self._seed_loss += loss
        elif self._count == p:
            self._avg_gain = (self._seed_gain + gain) / p
            self._avg_loss = (self._seed_loss + loss) / p
        else:
            self._avg_gain = (self._avg_gain * (p - 1) + gain) / p
            self._avg_loss = (self._avg_loss * (p - 1) + loss) / p

    @property
    def ready(self) -> bool:
        return self._count >= self.period

    @property
    def value(self) -> float:
        if not self.ready:
            return math.nan
        if self._avg_loss == 0.0:
            return 100.0 if self._avg_gain > 0.0 else 50.0
        rs = self._avg_gain / self._avg_loss
        return 100.0 - 100.0 / (1.0 + rs)

    #: The float sums a snapshot holds, each kept as ``_<name>`` (restored as 0.0 when absent).
    _SUMS = ("seed_gain", "seed_loss", "avg_gain", "avg_loss")

    def snapshot(self) -> dict[str, Any]:
        state: dict[str, Any] = {"prev": self._prev, "count": self._count}
        return state | {name: getattr(self, "_" + name) for name in self._SUMS}

    def restore(self, data: dict[str, Any]) -> None:
        prev = data.get("prev")
        self._prev = None if prev is None else float(prev)
        self._count = int(data.get("count", 0))
        for name in self._SUMS:
            setattr(self, "_" + name, float(data.get(name, 0.0)))
