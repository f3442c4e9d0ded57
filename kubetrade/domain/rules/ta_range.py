"""Incremental indicators over the candle's range and volume (see ``ta.py`` for the
contract): rolling highest/lowest, stochastic, ADX, rolling VWAP."""

from __future__ import annotations

import math
from collections import deque

from kubetrade.domain.rules.ta import SMA, Indicator, Source, _Series, true_range


class _Extreme(_Series):
    """Rolling max (or min) over ``period`` values: a monotonic deque of (index, value),
    O(1) amortised per update."""

    __slots__ = ("_dq", "_max", "period")

    def __init__(self, period: int, source: Source, maximum: bool) -> None:
        super().__init__(period - 1, 1, source)
        self.period = period
        self._max = maximum
        self._dq: deque[tuple[int, float]] = deque()

    def push(self, x: float) -> None:
        self.count += 1
        dq = self._dq
        if self._max:
            while dq and dq[-1][1] <= x:
                dq.pop()
        else:
            while dq and dq[-1][1] >= x:
                dq.pop()
        dq.append((self.count, x))
        if dq[0][0] <= self.count - self.period:
            dq.popleft()
        if self.count >= self.period:
            self.out[0] = dq[0][1]

    def restore(self, data: dict[str, object]) -> None:
        super().restore(data)
        self._dq = deque((int(i), float(v)) for i, v in self._dq)  # JSON gives lists


class Highest(_Extreme):
    """Highest ``source`` (default high) of the last ``period`` candles."""

    __slots__ = ()

    def __init__(self, period: int, source: Source = "high") -> None:
        super().__init__(period, source, maximum=True)


class Lowest(_Extreme):
    """Lowest ``source`` (default low) of the last ``period`` candles."""

    __slots__ = ()

    def __init__(self, period: int, source: Source = "low") -> None:
        super().__init__(period, source, maximum=False)


class Stochastic(Indicator):
    """%K = 100 * (close - lowest low) / (highest high - lowest low) over ``k_period``
    (0 when the range is 0), smoothed by an SMA of ``k_smooth``; %D = SMA(%K, d_period).
    TA-Lib's STOCH with SMA smoothing; outputs k, d."""

    __slots__ = ("_d", "_hi", "_k", "_lo")

    def __init__(self, k_period: int, k_smooth: int, d_period: int) -> None:
        super().__init__(k_period - 1 + k_smooth - 1 + d_period - 1, 2)
        self._hi = Highest(k_period)
        self._lo = Lowest(k_period)
        self._k = SMA(k_smooth)
        self._d = SMA(d_period)

    def update(self, o: float, h: float, l: float, c: float, v: float) -> None:  # noqa: E741
        self.count += 1
        self._hi.push(h)
        self._lo.push(l)
        if not self._hi.ready:
            return
        lowest = self._lo.out[0]
        diff = (self._hi.out[0] - lowest) / 100.0
        self._k.push((c - lowest) / diff if diff != 0.0 else 0.0)
        if not self._k.ready:
            return
        self._d.push(self._k.out[0])
        if self._d.ready:
            self.out[0] = self._k.out[0]
            self.out[1] = self._d.out[0]


class ADX(Indicator):
    """Wilder's average directional index (TA-Lib's ADX): smoothed +DM, -DM and true
    range over ``period``, DX = 100 * |+DI - -DI| / (+DI + -DI), ADX seeded with the
    mean of the first ``period`` DX values, then Wilder-smoothed. First value on
    candle ``2 * period``."""

    __slots__ = ("_adx", "_mdm", "_pc", "_pdm", "_ph", "_pl", "_sum_dx", "_tr", "period")

    def __init__(self, period: int) -> None:
        super().__init__(2 * period - 1, 1)
        self.period = period
        self._ph = self._pl = self._pc = math.nan
        self._pdm = self._mdm = self._tr = self._sum_dx = self._adx = 0.0

    def _dx(self) -> float | None:
        if self._tr == 0.0:
            return None
        minus_di = 100.0 * (self._mdm / self._tr)
        plus_di = 100.0 * (self._pdm / self._tr)
        total = minus_di + plus_di
        if total == 0.0:
            return None
        return 100.0 * (abs(minus_di - plus_di) / total)

    def update(self, o: float, h: float, l: float, c: float, v: float) -> None:  # noqa: E741
        self.count += 1
        n = self.period
        ph, pl, pc = self._ph, self._pl, self._pc
        self._ph, self._pl, self._pc = h, l, c
        if self.count == 1:
            return
        diff_p = h - ph
        diff_m = pl - l
        if self.count > n:  # smoothing starts once n-1 raw values are summed
            self._mdm -= self._mdm / n
            self._pdm -= self._pdm / n
        if diff_m > 0 and diff_p < diff_m:
            self._mdm += diff_m
        elif diff_p > 0 and diff_p > diff_m:
            self._pdm += diff_p
        tr = true_range(h, l, pc)
        self._tr = self._tr - self._tr / n + tr if self.count > n else self._tr + tr
        if self.count <= n:
            return
        dx = self._dx()
        if self.count <= 2 * n:
            if dx is not None:
                self._sum_dx += dx
            if self.count == 2 * n:
                self._adx = self._sum_dx / n
                self.out[0] = self._adx
            return
        if dx is not None:
            self._adx = (self._adx * (n - 1) + dx) / n
        self.out[0] = self._adx


class VWAP(Indicator):
    """Rolling volume-weighted average price over ``period`` candles, with the typical
    price (high + low + close) / 3; the typical price of the candle when the window
    traded no volume. Running sums are recomputed from the window every
    ``64 * period`` candles so float error cannot accumulate."""

    __slots__ = ("_pv", "_since", "_traded", "_v", "_win", "period")

    def __init__(self, period: int) -> None:
        super().__init__(period - 1, 1)
        self.period = period
        self._win: deque[tuple[float, float]] = deque()
        self._pv = 0.0
        self._v = 0.0
        self._traded = 0  # candles in the window with volume
        self._since = 0

    def update(self, o: float, h: float, l: float, c: float, v: float) -> None:  # noqa: E741
        self.count += 1
        tp = (h + l + c) / 3.0
        pv = tp * v
        win = self._win
        win.append((pv, v))
        self._pv += pv
        self._v += v
        if v != 0.0:
            self._traded += 1
        if len(win) > self.period:
            old_pv, old_v = win.popleft()
            self._pv -= old_pv
            self._v -= old_v
            if old_v != 0.0:
                self._traded -= 1
        self._since += 1
        if self._since >= 64 * self.period:
            self._pv = math.fsum(a for a, _ in win)
            self._v = math.fsum(b for _, b in win)
            self._since = 0
        if self.count >= self.period:
            self.out[0] = self._pv / self._v if self._traded else tp

    def restore(self, data: dict[str, object]) -> None:
        super().restore(data)
        self._win = deque((float(a), float(b)) for a, b in self._win)
