"""Incremental indicators for the live path: O(1) work per closed candle.

Each class follows TA-Lib's definition of the indicator (same seeding, same first
output), so the live path and the replay's bulk computation (TA-Lib, see ``bulk.py``)
agree; ``tests/unit/rules`` checks both against independent computations on real
candles. Every indicator has:

- ``lookback``: candles consumed before the first value, TA-Lib's ``*_Lookback``
  (the first value comes with candle number ``lookback + 1``);
- ``update(o, h, l, c, v)``: feed one closed candle (floats);
- ``out``: a list with one float per output (meaningful once ``ready``);
- ``snapshot()``/``restore()``: JSON-able state, so a restart needs no re-warm-up.

Zero guards (a flat window, no volume) compare with exact zero and give the values
documented in docs/strategies.md.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

Source = str
"""Which candle field feeds a single-series indicator: open, high, low, close, volume."""

_FIELDS = {"open": 0, "high": 1, "low": 2, "close": 3, "volume": 4}


class Indicator:
    """Base: the per-candle contract and a generic snapshot over ``__slots__``."""

    __slots__ = ("count", "lookback", "out")

    def __init__(self, lookback: int, outputs: int) -> None:
        self.lookback = lookback
        self.count = 0
        self.out = [math.nan] * outputs

    @property
    def ready(self) -> bool:
        return self.count > self.lookback

    def update(self, o: float, h: float, l: float, c: float, v: float) -> None:  # noqa: E741
        raise NotImplementedError

    def _slots(self) -> list[str]:
        names: list[str] = []
        for cls in type(self).__mro__:
            names.extend(getattr(cls, "__slots__", ()))
        return names

    def snapshot(self) -> dict[str, Any]:
        """Every slot, deques and sub-indicators included, as JSON-able values."""
        data: dict[str, Any] = {}
        for name in self._slots():
            value = getattr(self, name)
            if isinstance(value, Indicator):
                value = value.snapshot()
            elif isinstance(value, deque):
                value = list(value)
            elif isinstance(value, list):
                value = [None if x != x else x for x in value]  # NaN is not JSON
            elif isinstance(value, float) and value != value:
                value = None
            data[name] = value
        return data

    def restore(self, data: dict[str, Any]) -> None:
        """Inverse of ``snapshot`` (the indicator must be built with the same params)."""
        for name in self._slots():
            if name not in data:
                continue
            current = getattr(self, name)
            value = data[name]
            if isinstance(current, Indicator):
                current.restore(value)
            elif isinstance(current, deque):
                setattr(self, name, deque(value, maxlen=current.maxlen))
            elif isinstance(current, list):
                setattr(self, name, [math.nan if x is None else float(x) for x in value])
            elif isinstance(current, float):
                setattr(self, name, math.nan if value is None else float(value))
            else:
                setattr(self, name, value)


class _Series(Indicator):
    """An indicator over one candle field (``source``)."""

    __slots__ = ("_src",)

    def __init__(self, lookback: int, outputs: int, source: Source) -> None:
        super().__init__(lookback, outputs)
        self._src = _FIELDS[source]

    def update(self, o: float, h: float, l: float, c: float, v: float) -> None:  # noqa: E741
        self.push((o, h, l, c, v)[self._src])

    def push(self, x: float) -> None:
        raise NotImplementedError


class SMA(_Series):
    """Simple moving average; TA-Lib's running sum (add newest, then drop oldest)."""

    __slots__ = ("_sum", "_win", "period")

    def __init__(self, period: int, source: Source = "close") -> None:
        super().__init__(period - 1, 1, source)
        self.period = period
        self._win: deque[float] = deque()
        self._sum = 0.0

    def push(self, x: float) -> None:
        self.count += 1
        self._win.append(x)
        self._sum += x
        if len(self._win) == self.period:
            self.out[0] = self._sum / self.period
            self._sum -= self._win.popleft()


class EMA(_Series):
    """Exponential moving average, k = 2/(period+1), seeded with the SMA of the first
    ``period`` values (TA-Lib's default)."""

    __slots__ = ("_k", "_seed", "_skip", "period")

    def __init__(self, period: int, source: Source = "close", skip: int = 0) -> None:
        super().__init__(period - 1 + skip, 1, source)
        self.period = period
        self._k = 2.0 / (period + 1)
        self._seed = 0.0
        self._skip = skip

    def push(self, x: float) -> None:
        self.count += 1
        n = self.count - self._skip
        if n <= 0:
            return
        if n < self.period:
            self._seed += x
        elif n == self.period:
            self.out[0] = (self._seed + x) / self.period
        else:
            prev = self.out[0]
            self.out[0] = (x - prev) * self._k + prev


class RSI(_Series):
    """Wilder's RSI: 100 * avgGain / (avgGain + avgLoss); 0 when both are 0 (TA-Lib)."""

    __slots__ = ("_gain", "_loss", "_prev", "period")

    def __init__(self, period: int, source: Source = "close") -> None:
        super().__init__(period, 1, source)
        self.period = period
        self._prev = math.nan
        self._gain = 0.0
        self._loss = 0.0

    def push(self, x: float) -> None:
        self.count += 1
        if self.count == 1:
            self._prev = x
            return
        d = x - self._prev
        self._prev = x
        p = self.period
        if self.count > p + 1:  # smoothing: the sums are averages since count p + 1
            self._loss *= p - 1
            self._gain *= p - 1
        if d < 0:
            self._loss -= d
        else:
            self._gain += d
        if self.count <= p:  # still summing the first p changes
            return
        self._loss /= p
        self._gain /= p
        total = self._gain + self._loss
        self.out[0] = 100.0 * (self._gain / total) if total != 0.0 else 0.0


class MACD(_Series):
    """MACD line (fast EMA - slow EMA), signal (EMA of the line), histogram.

    As TA-Lib: the fast EMA starts where the slow one does (its seed is the SMA of the
    ``fast`` closes ending at candle ``slow``), the signal is seeded with the SMA of the
    first ``signal`` line values."""

    __slots__ = ("_fast", "_sig", "_slow")

    def __init__(self, fast: int, slow: int, signal: int, source: Source = "close") -> None:
        super().__init__(slow - 1 + signal - 1, 3, source)
        self._fast = EMA(fast, skip=slow - fast)
        self._slow = EMA(slow)
        self._sig = EMA(signal)

    def push(self, x: float) -> None:
        self.count += 1
        self._fast.push(x)
        self._slow.push(x)
        if not self._slow.ready:
            return
        line = self._fast.out[0] - self._slow.out[0]
        self._sig.push(line)
        if self._sig.ready:
            out = self.out
            out[0] = line
            out[1] = self._sig.out[0]
            out[2] = line - out[1]


class Bollinger(_Series):
    """Bands at middle ± stdDev * sd, middle = SMA, sd the population standard deviation
    of the window (E[x²] - E[x]², TA-Lib's formula); outputs upper, middle, lower."""

    __slots__ = ("_dev", "_sma", "_sq")

    def __init__(self, period: int, std_dev: float, source: Source = "close") -> None:
        super().__init__(period - 1, 3, source)
        self._sma = SMA(period)
        self._sq = SMA(period)
        self._dev = std_dev

    def push(self, x: float) -> None:
        self.count += 1
        self._sma.push(x)
        self._sq.push(x * x)
        if not self._sma.ready:
            return
        mean = self._sma.out[0]
        var = self._sq.out[0] - mean * mean
        width = math.sqrt(var) * self._dev if var > 0.0 else 0.0
        out = self.out
        out[0] = mean + width
        out[1] = mean
        out[2] = mean - width


def true_range(h: float, l: float, prev_close: float) -> float:  # noqa: E741
    """max(high - low, |high - prev close|, |low - prev close|)."""
    greatest = h - l
    a = abs(prev_close - h)
    if a > greatest:
        greatest = a
    b = abs(prev_close - l)
    return b if b > greatest else greatest


class ATR(Indicator):
    """Average true range, Wilder's smoothing seeded with the SMA of the first
    ``period`` true ranges (the first true range needs a previous close)."""

    __slots__ = ("_prev_close", "_seed", "period")

    def __init__(self, period: int) -> None:
        super().__init__(period, 1)
        self.period = period
        self._prev_close = math.nan
        self._seed = 0.0

    def update(self, o: float, h: float, l: float, c: float, v: float) -> None:  # noqa: E741
        self.count += 1
        prev, self._prev_close = self._prev_close, c
        if self.count == 1:
            return
        tr = true_range(h, l, prev)
        p = self.period
        if self.count <= p:
            self._seed += tr
        elif self.count == p + 1:
            self.out[0] = (self._seed + tr) / p
        else:
            self.out[0] = (self.out[0] * (p - 1) + tr) / p
