"""Replay of recorded candles through the live engine at full speed.

``run_replay`` is the loop validation (``kubetrade validate --replay``) and the
benchmark use: each candle goes to the paper broker (it becomes the price, resting
orders may fill) and then to the same ``TradingEngine`` a live runner uses; the orders
it returns are executed by the same ``PaperBroker`` paper trading uses. Time is an
injected ``ManualClock`` set to each candle's close, so nothing waits.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

from kubetrade.domain.clock import ManualClock
from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.events import EngineEvent
from kubetrade.domain.models import Candle, ClosedTrade, Fill, Order, OrderStatus
from kubetrade.exchange.base import OrderRejected, TransientError
from kubetrade.exchange.paper import PaperBroker

DATA_DIR = Path(__file__).parent / "data"
CSV_HEADER = ["timestamp_ms", "open", "high", "low", "close", "volume"]

_BUNDLED: dict[tuple[str, str], str] = {
    ("BTC/USDT", "1m"): "binance-BTCUSDT-1m-2024-09-21.csv",
    ("BTC/USDT", "1h"): "binance-BTCUSDT-1h-2024-08.csv",
}


def load_candles(path: str | Path) -> list[Candle]:
    """Candles from a CSV with header ``timestamp_ms,open,high,low,close,volume``,
    sorted by time, duplicates dropped. Errors name the file, line and column."""
    p = Path(path)
    out: list[Candle] = []
    with p.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != CSV_HEADER:
            raise ValueError(f"{p}: header must be {','.join(CSV_HEADER)}, got {header}")
        D = Decimal
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != 6:
                raise ValueError(f"{p}:{lineno}: expected 6 columns, got {len(row)}")
            try:
                out.append(Candle(int(row[0]), D(row[1]), D(row[2]), D(row[3]), D(row[4]),
                                  D(row[5])))
            except (ArithmeticError, ValueError) as exc:
                raise ValueError(f"{p}:{lineno}: not a number in {row}: {exc}") from None
            c = out[-1]
            if not (c.low <= c.open <= c.high and c.low <= c.close <= c.high):
                raise ValueError(f"{p}:{lineno}: low/high do not bracket open/close: {row}")
    out.sort(key=lambda c: c.ts_ms)
    dedup: list[Candle] = []
    for c in out:
        if not dedup or c.ts_ms != dedup[-1].ts_ms:
            dedup.append(c)
    return dedup


def bundled_candles(symbol: str, timeframe: str = "1m") -> Path | None:
    """Real candles shipped with kubetrade for ``symbol``/``timeframe``, if any."""
    name = _BUNDLED.get((symbol, timeframe))
    if name is None:
        return None
    path = DATA_DIR / name
    return path if path.exists() else None


@dataclass(slots=True)
class ReplayResult:
    trades: list[ClosedTrade] = field(default_factory=list)
    equity_curve: list[tuple[int, Decimal]] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    candles: int = 0
    rejected: int = 0
    events: list[EngineEvent] = field(default_factory=list)
    event_count: int = 0


ProgressCallback = Callable[[int, int], None]


def run_replay(
    engine: TradingEngine,
    broker: PaperBroker,
    candles: Sequence[Candle],
    clock: ManualClock,
    on_progress: ProgressCallback | None = None,
    *,
    symbol: str | None = None,
    progress_every: int = 10_000,
    keep_events: bool = False,
    equity_every: int = 1,
) -> ReplayResult:
    """Drive ``engine`` and ``broker`` through ``candles`` (one symbol, oldest first).

    ``on_progress(done, total)`` is called every ``progress_every`` candles and at the
    end. The equity curve gets one point per ``equity_every`` candles (at the candle's
    close time) plus the last one. Engine events are drained as the loop goes; they are
    kept in the result only when ``keep_events`` (a long replay makes many).
    """
    symbol = symbol or _only_symbol(engine)
    total = len(candles)
    result = ReplayResult()
    if total == 0:
        return result
    interval = engine.timeframe_ms or (
        min(b.ts_ms - a.ts_ms for a, b in pairwise(candles[:3])) if total > 1 else 60_000)
    curve = result.equity_curve
    prepare = getattr(engine.strategy, "prepare", None)
    if prepare is not None:  # the algorithm may precompute in bulk (rules); no look-ahead
        prepare(symbol, candles)
    feed = CandleFeeder(engine, broker, clock, symbol, result, keep_events).feed
    set_clock = clock.set
    next_progress = progress_every
    countdown = 1
    close_ms = candles[0].ts_ms
    for i, candle in enumerate(candles, start=1):
        close_ms = candle.ts_ms + interval
        feed(candle, close_ms)
        if equity_every == 1:
            curve.append((close_ms, engine.equity))
        else:
            countdown -= 1
            if countdown == 0:
                curve.append((close_ms, engine.equity))
                countdown = equity_every
        if i == next_progress:
            next_progress += progress_every
            set_clock(close_ms)
            _drain(engine, result, keep_events)
            if on_progress is not None:
                on_progress(i, total)
    finish_replay(engine, broker, clock, symbol, result, candles[-1], close_ms, keep_events)
    result.candles = total
    if on_progress is not None:
        on_progress(total, total)
    return result


def _only_symbol(engine: TradingEngine) -> str:
    if len(engine.markets) != 1:
        raise ValueError(f"symbol is required when the engine trades {len(engine.markets)} markets")
    return next(iter(engine.markets))


class CandleFeeder:
    """One candle into the broker and the engine, and the orders it makes to the broker:
    the per-candle body of a replay (``run_replay``, and the validation's fast replay
    for the candles it cannot skip). Closed trades are added to ``result``, and the
    orders as they ended unless ``keep_orders`` is False (a validation reads none of
    them: a million candles make ~40,000, ~15 MiB)."""

    __slots__ = ("broker", "clock", "engine", "keep_events", "keep_orders", "result", "symbol")

    def __init__(self, engine: TradingEngine, broker: PaperBroker, clock: ManualClock,
                 symbol: str, result: ReplayResult, keep_events: bool = False,
                 keep_orders: bool = True) -> None:
        self.engine, self.broker, self.clock = engine, broker, clock
        self.symbol, self.result, self.keep_events = symbol, result, keep_events
        self.keep_orders = keep_orders

    def feed(self, candle: Candle, close_ms: int) -> None:
        """``candle`` (closing at ``close_ms``) through the broker and the engine."""
        engine, broker, symbol = self.engine, self.broker, self.symbol
        trades = self.result.trades
        # The broker only needs the candle when it has resting orders to match or orders
        # to fill; otherwise it is told lazily (before the next order, and at the end).
        if broker.has_resting:
            self.clock.set(close_ms)
            resting = broker.on_candle(symbol, candle, close_ms)
            for f in resting:
                trades.extend(engine.on_fill(f))
            if resting:
                for o in broker.open_orders(symbol):
                    engine.on_order_update(o)
            fed = True
        else:
            fed = False
        orders = engine.on_candle(symbol, candle, close_ms)
        if orders:
            self.clock.set(close_ms)
            if not fed:
                broker.on_candle(symbol, candle, close_ms)
            self._submit(orders, close_ms)
            _drain(engine, self.result, self.keep_events)

    def _submit(self, orders: list[Order], close_ms: int) -> None:
        engine, result = self.engine, self.result
        for order in orders:
            updated, fills, refused = submit_paper(self.broker, order, close_ms)
            if refused:
                result.rejected += 1
            engine.on_order_update(updated)
            for f in fills:
                result.trades.extend(engine.on_fill(f))
            if self.keep_orders:
                result.orders.append(updated)


def submit_paper(broker: PaperBroker, order: Order, ts_ms: int) -> tuple[Order, list[Fill], bool]:
    """``order`` sent to the paper ``broker`` at ``ts_ms``: (the order as it now is, its
    fills, whether it was refused). A refusal (``OrderRejected``, ``TransientError``)
    marks ``order`` REJECTED, its reason extended by the broker's."""
    try:
        updated, fills = broker.submit(order, ts_ms)
    except (OrderRejected, TransientError) as exc:
        order.status = OrderStatus.REJECTED
        order.reason = f"{order.reason}: {getattr(exc, 'reason', 'rejected')}: {exc}"
        return order, [], True
    return updated, fills, False


def finish_replay(engine: TradingEngine, broker: PaperBroker, clock: ManualClock, symbol: str,
                  result: ReplayResult, last: Candle, close_ms: int, keep_events: bool) -> None:
    """The end of a replay: the broker sees the last candle, the curve ends at its close,
    the events are drained and ``result.candles`` is set by the caller's count."""
    clock.set(close_ms)
    broker.on_candle(symbol, last, close_ms)
    curve = result.equity_curve
    if not curve or curve[-1][0] != close_ms:
        curve.append((close_ms, engine.equity))
    _drain(engine, result, keep_events)


def _drain(engine: TradingEngine, result: ReplayResult, keep: bool) -> None:
    events = engine.drain_events()
    result.event_count += len(events)
    if keep:
        result.events.extend(events)


__all__ = ["DATA_DIR", "CandleFeeder", "ReplayResult", "bundled_candles", "finish_replay",
           "load_candles", "run_replay"]
