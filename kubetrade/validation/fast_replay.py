"""The validation's replay loop: the same trades as ``run_replay``, without building a
Decimal candle for candles that cannot change anything.

``run_replay`` builds a domain ``Candle`` (five Decimals) for every candle and passes it
through the engine; that is most of a replay's time. Here the algorithm's signals are
known before the loop (:mod:`kubetrade.validation.signals`: the engine steps it on every
candle whatever happens, and an algorithm deciding on closes sees nothing else), and a
candle goes through the engine whole (as a Decimal ``Candle``, through
:class:`~kubetrade.exchange.replay.CandleFeeder`, the very body ``run_replay`` uses) only
when it can matter:

* the algorithm signals on it (the engine is told that signal instead of stepping the
  algorithm a second time);
* an order is open, the paper broker has resting orders, or more than the one
  position is held (or dust);
* the held position's stop may be hit (its low within a hair of the stop: the float
  test is conservative, the engine decides in Decimal);
* it is the first candle of a new UTC day (daily baselines and halts roll over);
* the strategy tracker has a re-enable check due by its close;
* it is the first or the last candle.

Between those, a candle of the one position held changes only the mark and the equity
the halts are judged on: ``TradingEngine.on_held_candles`` does exactly that for a run
of them (Decimal closes only, no candle, no step). A candle with nothing held changes
only the last price the engine keeps (set again on the next candle it sees) and adds an
equity point equal to the previous one (cash), appended here. Only algorithms that
decide on closes alone (no ``on_candle``/``bind_candle``/``prepare`` of their own) and
an engine with a fixed timeframe take this path; :func:`replay_fast` says when it
cannot (None).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kubetrade.domain.algorithms import Algorithm
from kubetrade.domain.clock import ManualClock
from kubetrade.domain.engine import TradingEngine, use_step
from kubetrade.domain.halts import DAY_MS
from kubetrade.domain.models import Candle, Side
from kubetrade.exchange.paper import PaperBroker
from kubetrade.exchange.replay import CandleFeeder, ReplayResult, finish_replay
from kubetrade.marketdata.frame import CandleFrame
from kubetrade.validation.curve import EquityCurve
from kubetrade.validation.equity_values import EquityValues
from kubetrade.validation.signals import signals_of

_CHUNK = 8192
_PRICES = ("open", "high", "low", "close", "volume")
_STOP_MARGIN = 1e-9
"""A low within this fraction above the stop goes through the engine (float noise)."""


def decides_on_closes(engine: TradingEngine) -> bool:
    """Whether the engine's algorithm uses nothing but closes (the fast path applies)."""
    kind = type(engine.strategy)
    return bool(engine.timeframe_ms) and all(
        getattr(kind, name) is getattr(Algorithm, name)
        for name in ("on_candle", "bind_candle", "prepare")
    )


def column_array(frame: CandleFrame, name: str, dtype: type) -> np.ndarray:
    """A column of ``frame`` as a read-only numpy view of its Arrow buffer (the loader's
    columns have no nulls). Arrow's own ``to_numpy`` would import pandas (~0.3 s)."""
    column = frame.table.column(name)
    # a CandleFrame's columns are one chunk each: viewed, not concatenated (a copy)
    arr = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    width = np.dtype(dtype).itemsize
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr),
                         offset=arr.offset * width)


def _index(rows: list[int]) -> pa.Array:
    """Row numbers as an Arrow int64 array, from raw bytes (``pa.array`` of a list goes
    through pyarrow's pandas shim and imports pandas)."""
    return pa.Array.from_buffers(pa.int64(), len(rows),
                                 [None, pa.py_buffer(np.array(rows, np.int64))])


class _Texts:
    """Decimal text of the price columns, as Arrow casts it (the text CandleFrame builds
    Decimals from): the rows of ``rows`` (those known to go through the engine) cast
    ``_CHUNK`` at a time as the loop reaches them, any other row alone when asked, and
    the closes of held runs one slice of ``_CHUNK`` rows at a time (the loop only moves
    forward: one batch of each is kept, not the text of every row at once)."""

    __slots__ = ("_closes", "_known", "_next", "_rows", "_table")

    def __init__(self, frame: CandleFrame, rows: list[int]) -> None:
        self._table = frame.table
        self._closes: tuple[int, list[str]] = (-1, [])
        self._known = rows
        self._next = 0  # the first of ``rows`` not cast yet
        self._rows: dict[int, tuple[str, ...]] = {}

    def _cast(self, rows: list[int]) -> dict[int, tuple[str, ...]]:
        taken = self._table.take(_index(rows))
        texts = [pc.cast(taken.column(n), pa.string()).to_pylist() for n in _PRICES]
        return dict(zip(rows, zip(*texts, strict=True), strict=True))

    def _row(self, i: int) -> tuple[str, ...]:
        row = self._rows.pop(i, None)
        if row is not None:
            return row
        k = bisect_left(self._known, i, self._next)
        if k == len(self._known) or self._known[k] != i:
            return self._cast([i])[i]
        self._next = min(len(self._known), k + _CHUNK)
        self._rows = self._cast(self._known[k:self._next])
        return self._rows.pop(i)

    def candle(self, i: int, ts: int) -> Candle:
        o, h, low, close, v = self._row(i)
        return Candle(ts, Decimal(o), Decimal(h), Decimal(low), Decimal(close), Decimal(v))

    def closes(self, start: int, stop: int) -> list[Decimal]:
        out: list[Decimal] = []
        while start < stop:
            c, j = divmod(start, _CHUNK)
            if self._closes[0] != c:
                part = self._table.column("close").slice(c * _CHUNK, _CHUNK)
                self._closes = (c, pc.cast(part, pa.string()).to_pylist())
            take = min(stop - start, _CHUNK - j)
            out.extend(map(Decimal, self._closes[1][j:j + take]))
            start += take
        return out


class _Loop:
    """One fast replay's state: where the next thing happens, and the loop's steps."""

    def __init__(self, engine: TradingEngine, broker: PaperBroker, frame: CandleFrame,
                 clock: ManualClock, symbol: str, result: ReplayResult,
                 keep_orders: bool) -> None:
        self.engine, self.broker, self.symbol, self.result = engine, broker, symbol, result
        interval = engine.timeframe_ms
        assert interval is not None
        opens = column_array(frame, "timestamp_ms", np.int64)
        self.ts = opens.data
        # the curve's times: one point per candle, at its close
        self.close_ms = array("q", (opens + interval).tobytes())
        self.equity = EquityValues(frame.table.column("close"))
        self.lows = column_array(frame, "low", np.float64).data
        step = engine.strategy.bind(symbol)
        where, sides = signals_of(engine.strategy, symbol, step,
                                  column_array(frame, "close", np.float64))
        self.signal_at: list[int] = where.tolist()
        # the rows known to go through the engine: signals, each UTC day's first close
        days = (opens + interval) // DAY_MS
        day_starts = (np.flatnonzero(days[1:] != days[:-1]) + 1).tolist()
        self.texts = _Texts(frame, sorted({0, len(opens) - 1, *self.signal_at, *day_starts}))
        self.sides = sides
        self.next_signal = 0
        decided: list[Side | None] = [None]
        self.decided = decided  # the engine's step answers it (no cycle through self)
        use_step(engine, symbol, lambda _candle: decided[0])
        self.feeder = CandleFeeder(engine, broker, clock, symbol, result,
                                   keep_orders=keep_orders)

    def signal_index(self, i: int) -> int:
        """Index of the first signal at or after candle ``i`` (len when none)."""
        at = self.signal_at
        k = self.next_signal
        while k < len(at) and at[k] < i:
            k += 1
        self.next_signal = k
        return at[k] if k < len(at) else len(self.ts)

    def feed(self, i: int) -> None:
        """Candle ``i`` whole through the broker and the engine."""
        at_or_after = self.signal_index(i)
        self.decided[0] = self.sides[self.next_signal] if at_or_after == i else None
        self.feeder.feed(self.texts.candle(i, self.ts[i]), self.close_ms[i])
        self.equity.append(self.engine.equity)

    def quiet_end(self, i: int, stop: int) -> int:
        """After candle ``i - 1`` went through the engine: the first candle from ``i``
        (before ``stop``) that must go through it too; ``i`` when the state needs
        every candle."""
        engine = self.engine
        pf = engine.portfolio
        if engine.open_orders or self.broker.has_resting or pf.dust or len(pf.positions) > 1:
            return i
        until = (self.close_ms[i - 1] // DAY_MS + 1) * DAY_MS
        tracker = engine.tracker
        if not tracker.enabled and tracker.next_check_ms is not None:
            until = min(until, tracker.next_check_ms)
        pos = pf.positions.get(self.symbol)
        if pos is None and pf.positions:
            return i
        end = min(stop, self.signal_index(i), bisect_left(self.close_ms, until, i, stop))
        if pos is not None and pos.stop_price is not None and end > i:
            floor = float(pos.stop_price) * (1 + _STOP_MARGIN)
            # a plain loop: held runs are short, numpy's call costs more than the scan
            for k, low in enumerate(self.lows[i:end], i):
                if low <= floor:
                    return k
        return end

    def skip(self, i: int, end: int) -> None:
        """Candles ``i .. end - 1``, quiet: marks of the one position held, or nothing."""
        engine = self.engine
        pf = engine.portfolio
        if pf.positions:  # the one held, this symbol's (quiet_end): equity per candle is
            # cash + quantity * close, kept as such (EquityValues), not as Decimals
            cash, quantity = pf.cash, pf.positions[self.symbol].quantity
            held = engine.on_held_candles(self.symbol, self.ts[i:end],
                                          self.texts.closes(i, end))
            self.equity.add_held(cash, quantity, held)
        else:
            self.equity.add(engine.equity, end - i)


def replay_fast(
    engine: TradingEngine,
    broker: PaperBroker,
    frame: CandleFrame,
    clock: ManualClock,
    symbol: str,
    on_progress: Callable[[int, int], None] | None = None,
    progress_every: int = 10_000,
    keep_orders: bool = False,
) -> ReplayResult | None:
    """``run_replay(engine, broker, frame, clock, on_progress, symbol=symbol,
    progress_every=progress_every)`` with the same trades and equity curve (and orders,
    when ``keep_orders``: a validation reads none), or None (nothing done) when the
    algorithm or engine does not allow the fast path."""
    if not decides_on_closes(engine) or len(frame) == 0:
        return None
    result = ReplayResult()
    loop = _Loop(engine, broker, frame, clock, symbol, result, keep_orders)
    total = len(frame)
    last_index = total - 1
    next_progress = progress_every
    i = 0
    # candle i is known to need the engine: the first one, or the end of a skip that
    # stopped short of its bound (a signal, a new day or check, a low near the stop:
    # quiet_end would answer i again, the skip changed none of what it looks at)
    due = True
    while i < total:
        bound = min(next_progress, last_index)
        end = i if due else loop.quiet_end(i, bound)
        if end > i:
            loop.skip(i, end)
            due = end < bound
            i = end
        else:
            due = False
            loop.feed(i)
            i += 1
        if i == next_progress:  # as run_replay: the time, the events drained, the call
            next_progress += progress_every
            clock.set(loop.close_ms[i - 1])
            result.event_count += len(engine.drain_events())
            if on_progress is not None:
                on_progress(i, total)
    close_ms = loop.close_ms[last_index]
    last = loop.texts.candle(last_index, loop.ts[last_index])
    # columns, not a tuple per candle (a ReplayResult's curve reads as a list of pairs)
    result.equity_curve = EquityCurve(loop.close_ms, loop.equity)  # type: ignore[assignment]
    finish_replay(engine, broker, clock, symbol, result, last, close_ms, False)
    result.candles = total
    if on_progress is not None:
        on_progress(total, total)
    return result


__all__ = ["column_array", "decides_on_closes", "replay_fast"]
