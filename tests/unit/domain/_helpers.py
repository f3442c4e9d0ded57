"""Builders for engine tests: candles on a 1-minute grid and a scripted strategy."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kubetrade.domain.algorithms import Algorithm
from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.models import Candle, Fill, MarketInfo, Order, Side
from kubetrade.domain.risk import RiskLimits
from kubetrade.exchange.paper import PaperBroker, default_market

T0 = 1_726_876_800_000  # 2024-09-21 00:00 UTC
MIN = 60_000
BTC = "BTC/USDT"
ETH = "ETH/USDT"


def candle(i: int, close: float | str | Decimal, low: float | str | Decimal | None = None,
           high: float | str | Decimal | None = None, volume: str = "10") -> Candle:
    """Candle number ``i`` (opening at T0 + i minutes)."""
    c = Decimal(str(close))
    lo = Decimal(str(low)) if low is not None else c
    hi = Decimal(str(high)) if high is not None else c
    return Candle(T0 + i * MIN, c, max(hi, c), min(lo, c), c, Decimal(volume))


class Scripted(Algorithm[Any, dict[str, int]]):
    """Emits the signals it is told to, by per-symbol candle number (0-based)."""

    algorithm = "scripted"

    def __init__(self, script: dict[int, Side] | None = None,
                 per_symbol: dict[str, dict[int, Side]] | None = None) -> None:
        super().__init__(None)
        self.script = script or {}
        self.per_symbol = per_symbol or {}
        self.seen: list[tuple[str, float]] = []

    @property
    def warmup(self) -> int:
        return 0

    def _new_state(self) -> dict[str, int]:
        return {"n": 0}

    def update(self, symbol: str, close: float) -> Side | None:
        self.seen.append((symbol, close))
        return super().update(symbol, close)

    def _step(self, state: dict[str, int], close: float) -> Side | None:
        n = state["n"]
        state["n"] = n + 1
        return self.script.get(n)

    def _dump(self, state: dict[str, int]) -> dict[str, Any]:
        return dict(state)

    def _load(self, data: dict[str, Any]) -> dict[str, int]:
        return {"n": int(data["n"])}


class SymbolScripted(Scripted):
    def update(self, symbol: str, close: float) -> Side | None:
        state = self._states.setdefault(symbol, {"n": 0})
        n = state["n"]
        state["n"] = n + 1
        return self.per_symbol.get(symbol, {}).get(n)


def markets(*symbols: str) -> dict[str, MarketInfo]:
    return {s: default_market(s) for s in symbols or (BTC,)}


def make(script: dict[int, Side] | None = None, cash: str = "10000",
         symbols: tuple[str, ...] = (BTC,), strategy: Algorithm[Any, Any] | None = None,
         **limits: Any) -> tuple[TradingEngine, PaperBroker]:
    m = markets(*symbols)
    eng = TradingEngine("test", strategy or Scripted(script), RiskLimits(**limits), m,
                        Decimal(cash))
    broker = PaperBroker(m, {"USDT": Decimal(cash)}, slippage_bps=Decimal(0))
    return eng, broker


def step(eng: TradingEngine, broker: PaperBroker, symbol: str, c: Candle,
         now_ms: int | None = None) -> tuple[list[Order], list[Fill]]:
    """One candle through broker and engine, executing the orders like the replay does."""
    broker.on_candle(symbol, c, c.ts_ms + MIN)
    orders = eng.on_candle(symbol, c, now_ms)
    fills: list[Fill] = []
    for o in orders:
        updated, fs = broker.submit(o, c.ts_ms + MIN)
        eng.on_order_update(updated)
        for f in fs:
            eng.on_fill(f)
        fills.extend(fs)
    return orders, fills


def refusals(eng: TradingEngine) -> list[str]:
    return [e.detail["rule"] for e in eng.drain_events() if e.action == "order_refused"]
