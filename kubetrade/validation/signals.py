"""An algorithm's signals over a whole series of closes, before the replay loop runs.

The engine steps its algorithm on every candle, whatever else happens (halts, open
orders, positions), and an algorithm that decides on closes alone sees nothing but the
closes: so its signals can be known before the loop, and the loop visits only the
candles where something can happen. Two ways, the same answers:

* ``SmaCrossover`` in bulk (numpy): its sums are exact integers of 1e-8 price units
  (``round(close * 1e8)``, round-half-even as Python's ``round``), so window sums from
  integer cumulative sums are the very values its step computes, and "fast above slow"
  (``fast_sum * slow > slow_sum * fast``) is decided on the same integers. Offsets from
  a base price keep every integer far inside int64; when they would not fit (extreme
  prices or periods) the step is used instead.
* any other algorithm: its own step over every close, in order.

Either way the algorithm's state afterwards is what stepping every close leaves.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from kubetrade.domain.algorithms import Algorithm, SmaCrossover
from kubetrade.domain.indicators import PRICE_SCALE
from kubetrade.domain.models import Side

Step = Callable[[float], Side | None]
Signals = tuple[np.ndarray, list[Side]]
"""(indices of the candles that signal, int64 ascending; the side of each)."""

_BLOCK = 1 << 16
_LIMIT = 1 << 62


def signals_of(algorithm: Algorithm[Any, Any], symbol: str, step: Step,
               closes: np.ndarray) -> Signals:
    """The signals ``step`` (``algorithm.bind(symbol)``) gives over ``closes`` (float64,
    oldest first), stepping or in bulk; see the module doc."""
    state = algorithm.snapshot()["symbols"].get(symbol)
    fresh = state is None or not state.get("window")
    if type(algorithm) is SmaCrossover and fresh and len(closes) > algorithm.warmup:
        params = algorithm.params
        bulk = _sma_signals(closes, params.fast_period, params.slow_period)
        if bulk is not None:
            # the state every close would leave: the last slow closes decide all of it
            for close in closes[-params.slow_period:].tolist():
                step(close)
            return bulk
    return _stepped(step, closes)


def _stepped(step: Step, closes: np.ndarray) -> Signals:
    where: list[int] = []
    sides: list[Side] = []
    for start in range(0, len(closes), _BLOCK):  # a slice of Python floats at a time
        for i, close in enumerate(closes[start:start + _BLOCK].tolist(), start):
            side = step(close)
            if side is not None:
                where.append(i)
                sides.append(side)
    return np.array(where, dtype=np.int64), sides


def _sma_signals(closes: np.ndarray, fast: int, slow: int) -> Signals | None:
    """SmaCrossover's signals in bulk, or None when its integers could overflow int64.

    Scaled one block at a time (``_BLOCK`` closes plus the window): no temporary the
    size of the series, which would stay in the process's heap after it is freed."""
    n = len(closes)
    # NaN and inf stay in min/max; x = rint(close * scale) is monotonic in close
    lo, hi = float(closes.min()) * PRICE_SCALE, float(closes.max()) * PRICE_SCALE
    if not (math.isfinite(lo) and math.isfinite(hi)) or max(-lo, hi) >= _LIMIT:
        return None
    if (int(np.rint(hi)) - int(np.rint(lo))) * max(_BLOCK + slow, fast * slow) >= _LIMIT:
        return None
    above = np.empty(n - slow + 1, dtype=bool)  # above[k]: candle slow - 1 + k
    for start in range(slow - 1, n, _BLOCK):
        stop = min(n, start + _BLOCK)
        part = np.rint(closes[start - slow + 1:stop] * PRICE_SCALE).astype(np.int64)
        part -= part[0]
        sums = np.concatenate(([0], np.cumsum(part)))
        ends = np.arange(slow, len(part) + 1)
        fast_sum = sums[ends] - sums[ends - fast]
        slow_sum = sums[ends] - sums[ends - slow]
        above[start - slow + 1:stop - slow + 1] = fast_sum * slow > slow_sum * fast
    flips = np.flatnonzero(above[1:] != above[:-1]) + 1
    sides = [Side.BUY if up else Side.SELL for up in above[flips].tolist()]
    return (flips + slow - 1).astype(np.int64), sides


__all__ = ["Signals", "signals_of"]
