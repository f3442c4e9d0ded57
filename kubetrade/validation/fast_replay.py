"""The validation's replay loop: the same trades as ``run_replay``, without building a
Decimal candle for candles that cannot change anything.

``run_replay`` builds a domain ``Candle`` (five Decimals) for every candle and passes it
through the engine; that is most of a replay's time. Here the algorithm's own step runs
over the float closes straight from the Arrow columns (the engine would hand it
``float(candle.close)``, which is the same float), and a candle goes through the engine
(as a Decimal ``Candle``, through :class:`~kubetrade.exchange.replay.CandleFeeder`, the
very body ``run_replay`` uses) only when it can matter:

* the algorithm signals on it (the engine is told that signal instead of stepping the
  algorithm a second time);
* a position is held, an order is open, or the paper broker has resting orders (stops,
  marks, fills, halts are decided in Decimal on every such candle);
* it is the first candle of a new UTC day (daily baselines and halts roll over);
* the strategy tracker has a re-enable check due by its close;
* it is the first or the last candle.

Any other candle, with no position and no order, changes only the last price the
engine keeps (set again on the next candle it sees) and adds an equity point equal to
the previous one (cash), which is appended here. Only algorithms that decide on closes
alone (no ``on_candle``/``bind_candle``/``prepare`` of their own) and an engine with a
fixed timeframe take this path; :func:`replay_fast` says when it cannot (None).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

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

_CHUNK = 8192
_PRICES = ("open", "high", "low", "close", "volume")


def decides_on_closes(engine: TradingEngine) -> bool:
    """Whether the engine's algorithm uses nothing but closes (the fast path applies)."""
    kind = type(engine.strategy)
    return bool(engine.timeframe_ms) and all(
        getattr(kind, name) is getattr(Algorithm, name)
        for name in ("on_candle", "bind_candle", "prepare")
    )


class _Chunk:
    """One slice of the frame: times and float closes now, Decimal candles on demand
    (decimal text of the five price columns cast once per slice, as CandleFrame does)."""

    __slots__ = ("_text", "part", "start")

    def __init__(self, frame: CandleFrame, start: int) -> None:
        self.start = start
        self.part = frame.table.slice(start, _CHUNK)
        self._text: list[list[str]] | None = None

    def columns(self) -> tuple[list[int], list[float]]:
        return (self.part.column("timestamp_ms").to_pylist(),
                self.part.column("close").to_pylist())

    def candle(self, j: int, ts: int) -> Candle:
        text = self._text
        if text is None:
            text = self._text = [pc.cast(self.part.column(n), pa.string()).to_pylist()
                                 for n in _PRICES]
        o, h, low, c, v = text
        return Candle(ts, Decimal(o[j]), Decimal(h[j]), Decimal(low[j]), Decimal(c[j]),
                      Decimal(v[j]))


def _quiet_until(engine: TradingEngine, broker: PaperBroker, close_ms: int) -> int:
    """Close time (ms) before which a candle without a signal changes nothing but the
    last price: -1 while a position, an order or a resting order needs every candle."""
    if engine.portfolio.positions or engine.open_orders or broker.has_resting:
        return -1
    until = (close_ms // DAY_MS + 1) * DAY_MS
    tracker = engine.tracker
    if not tracker.enabled and tracker.next_check_ms is not None:
        until = min(until, tracker.next_check_ms)
    return until


def replay_fast(
    engine: TradingEngine,
    broker: PaperBroker,
    frame: CandleFrame,
    clock: ManualClock,
    symbol: str,
    on_progress: Callable[[int, int], None] | None = None,
    progress_every: int = 10_000,
) -> ReplayResult | None:
    """``run_replay(engine, broker, frame, clock, on_progress, symbol=symbol,
    progress_every=progress_every)`` with the same trades, orders and equity curve, or
    None (nothing done) when the algorithm or engine does not allow the fast path."""
    if not decides_on_closes(engine) or len(frame) == 0:
        return None
    interval = engine.timeframe_ms
    assert interval is not None
    result = ReplayResult()
    step = engine.strategy.bind(symbol)
    decided: list[Side | None] = [None]
    use_step(engine, symbol, lambda _candle: decided[0])
    feed = CandleFeeder(engine, broker, clock, symbol, result).feed
    total = len(frame)
    last_index = total - 1
    append = result.equity_curve.append
    quiet = -1
    equity = engine.equity
    next_progress = progress_every
    close_ms = 0
    for start in range(0, total, _CHUNK):
        chunk = _Chunk(frame, start)
        times, closes = chunk.columns()
        for j, ts in enumerate(times):
            signal = step(closes[j])
            close_ms = ts + interval
            i = start + j
            if signal is not None or close_ms >= quiet or i == last_index:
                decided[0] = signal
                feed(chunk.candle(j, ts), close_ms)
                quiet = _quiet_until(engine, broker, close_ms)
                equity = engine.equity
            append((close_ms, equity))
            if i + 1 == next_progress:
                next_progress += progress_every
                clock.set(close_ms)
                result.event_count += len(engine.drain_events())
                if on_progress is not None:
                    on_progress(i + 1, total)
    last = chunk.candle(len(times) - 1, times[-1])
    finish_replay(engine, broker, clock, symbol, result, last, close_ms, False)
    result.candles = total
    if on_progress is not None:
        on_progress(total, total)
    return result


__all__ = ["decides_on_closes", "replay_fast"]
