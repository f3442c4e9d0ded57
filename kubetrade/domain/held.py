"""The per-symbol candle state of the engine, and the held position's quiet candles.

A held position makes every candle matter: its stop is checked and its mark moves the
equity the halts are judged on. Most of those candles do nothing else, and a replay
that knows which ones (no signal, low above the stop, no order open, same UTC day, no
tracker check due) can hand them over in bulk: :func:`mark_held` does for each exactly
what ``TradingEngine.on_candle`` does for such a candle (time, last price, reference
price, equity and the halts it may raise), without building a whole candle or stepping
the algorithm. Money is Decimal; times are epoch milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from operator import sub
from typing import Any

from kubetrade.domain.halts import EquityGuard
from kubetrade.domain.journal import EventJournal
from kubetrade.domain.models import Candle, MarketInfo, Side
from kubetrade.domain.risk import _Reference


@dataclass(slots=True)
class SymbolState:
    """What the engine keeps per symbol: its market, the last candle's open time, the
    smallest gap seen between candles (ms), the bound algorithm step and the reference
    price the price collar reads."""

    market: MarketInfo
    last_ts: int | None = None
    interval_ms: int = 0
    step: Callable[[Candle], Side | None] | None = None
    ref: _Reference | None = None

    def snapshot(self) -> dict[str, Any]:
        return {"last_ts": self.last_ts, "interval_ms": self.interval_ms}

    def restore(self, data: dict[str, Any]) -> None:
        self.last_ts = data.get("last_ts")
        self.interval_ms = int(data.get("interval_ms", 0))


def mark_held(
    state: SymbolState, guard: EquityGuard, journal: EventJournal, cash: Decimal,
    quantity: Decimal, opens_ms: Sequence[int], closes: Sequence[Decimal],
    timeframe_ms: int,
) -> list[Decimal]:
    """Candles (open times ``opens_ms``, strictly increasing and newer than the last one
    seen, and their ``closes``) of the only position held, ``quantity`` bought with
    ``cash`` left: per candle the engine's time becomes its close, equity becomes
    ``cash + quantity * close`` and the drawdown and daily-loss halts are judged on it,
    as ``TradingEngine.on_candle`` does. Returns the equity after each candle.

    The caller vouches for what this does not look at: no signal, lows above the stop,
    all closing before the next UTC day and the tracker's next check (see
    ``TradingEngine.on_held_candles``, which checks the rest). The last price and the
    reference price are the last candle's afterwards (nothing reads them in between).
    Raises ``ValueError`` for candles not newer than the last one seen.
    """
    n = len(opens_ms)
    if n == 0:
        return []
    prev = state.last_ts
    first = opens_ms[0]
    if prev is not None and first <= prev:
        raise ValueError(f"candle {first} is not newer than the last one seen ({prev})")
    gaps = list(map(sub, opens_ms[1:], opens_ms[:-1]))
    if prev is not None:
        gaps.append(first - prev)
    if gaps:  # on_candle keeps the smallest gap it has seen (the first one sets it)
        smallest = min(gaps)
        if smallest <= 0:
            raise ValueError("candle open times must increase")
        if not state.interval_ms or smallest < state.interval_ms:
            state.interval_ms = smallest
    out: list[Decimal] = []
    append = out.append
    # EquityGuard.mark inlined: its no-news case (above both floors, not above the peak)
    # only sets the equity, done once at the end; anything else goes through check()
    dd_floor, peak, day_floor = guard.dd_floor, guard.peak, guard.day_floor
    equity = guard.equity
    for open_ms, close in zip(opens_ms, closes, strict=True):
        equity = cash + quantity * close
        if not (dd_floor < equity <= peak and equity > day_floor):
            journal.now_ms = open_ms + timeframe_ms  # the time a halt event carries
            guard.check(equity)
            dd_floor, peak, day_floor = guard.dd_floor, guard.peak, guard.day_floor
        append(equity)
    guard.equity = equity
    last_close_ms = opens_ms[-1] + timeframe_ms
    journal.now_ms = last_close_ms
    state.last_ts = opens_ms[-1]
    ref = state.ref
    if ref is not None and last_close_ms >= ref.ts_ms:
        ref.price = closes[-1]
        ref.ts_ms = last_close_ms
    return out


__all__ = ["SymbolState", "mark_held"]
