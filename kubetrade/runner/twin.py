"""The paper twin of a live strategy: the same engine in paper mode on the same candles.

``PaperTwin`` holds a second ``TradingEngine`` (same algorithm, parameters and risk
limits as the live one) and its own ``PaperBroker`` (paper mode's execution model:
market orders at the last close moved 2 bps against the taker, 0.1 % fee). The live
runner hands it each closed candle after its own orders are sent, with the decision
time the live engine used, so both engines decide on the same candle at the same time;
the twin's orders go to its broker only, never to the exchange, and it makes no
exchange call of its own (its prices are the candles').

It begins from the live state at go-live (``from_live``: a copy of the live engine's
snapshot, the broker holding its cash and positions) and continues from Redis after a
restart (``from_snapshots``). Each order it makes is told to a ``TwinLedger`` as a
``twin`` outcome (kubetrade/domain/twin.py); the live runner tells the live ones.

The per-candle body follows ``kubetrade.exchange.replay.CandleFeeder`` (broker first,
then the engine, orders to the broker), so a replay of the same candles through
``run_replay`` ends with the same books: the test of the twin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubetrade.domain.algorithms import Algorithm
from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.models import Candle, MarketInfo, Order
from kubetrade.domain.risk import RiskLimits
from kubetrade.domain.twin import TWIN, BookFigures, OrderOutcome, TwinLedger
from kubetrade.exchange.paper import PaperBroker
from kubetrade.exchange.replay import submit_paper

#: Orders and fills of the twin's broker kept in its snapshot (enough for a restart)
#: and fills kept in memory.
BROKER_HISTORY = 50


def outcome_of(order: Order, decided_ms: int) -> OrderOutcome:
    """An order as the twin ledger compares it (``decided_ms``: its decision time)."""
    filled = order.filled_quantity
    return OrderOutcome(order.symbol, order.side.value, decided_ms, order.status.value, filled,
                        order.average_price if filled > 0 else None, order.updated_ms)


def broker_from(engine: TradingEngine) -> PaperBroker:
    """A paper broker holding what ``engine``'s books hold: its cash in the quote asset
    and each position's quantity in its base asset."""
    balances: dict[str, Decimal] = {engine.quote_asset: engine.portfolio.cash}
    for symbol, pos in engine.positions.items():
        base = engine.markets[symbol].base
        balances[base] = balances.get(base, Decimal(0)) + pos.quantity
    return PaperBroker(engine.markets, balances, max_fills_kept=BROKER_HISTORY)


@dataclass(eq=False)
class PaperTwin:
    """The twin's engine and broker, fed one candle at a time (``on_candle``)."""

    engine: TradingEngine
    broker: PaperBroker
    ledger: TwinLedger
    events: int = field(default=0, init=False)
    rejected: int = field(default=0, init=False)
    #: the broker changed since ``snapshots`` last gave it (an order or a fill)
    broker_changed: bool = field(default=True, init=False)

    @classmethod
    def from_live(cls, live: TradingEngine, algorithm: Algorithm[Any, Any]) -> PaperTwin:
        """A twin of ``live`` as it is now (``algorithm``: a fresh instance of the live
        one, restored from the live snapshot)."""
        engine = TradingEngine.restore(live.snapshot(), algorithm, limits=live.limits,
                                       markets=live.markets)
        engine.order_id_source = live.order_id_source
        return cls(engine, broker_from(live), TwinLedger())

    @classmethod
    def from_snapshots(
        cls, engine: dict[str, Any], broker: dict[str, Any], ledger: dict[str, Any],
        algorithm: Algorithm[Any, Any], limits: RiskLimits, markets: dict[str, MarketInfo],
    ) -> PaperTwin:
        """The twin as a runner stored it (``TwinRecord``), under ``limits``. Raises
        ValueError for an engine snapshot of another version."""
        eng = TradingEngine.restore(engine, algorithm, limits=limits, markets=markets)
        paper = PaperBroker(markets, {}, max_fills_kept=BROKER_HISTORY)
        paper.restore(broker)
        return cls(eng, paper, TwinLedger.restore(ledger))

    def decision_ms(self, candle: Candle, now_ms: int | None) -> int:
        """The decision time the engines use for ``candle``: its close, or ``now_ms``
        when later (``TradingEngine.on_candle``'s rule)."""
        close_ms = candle.ts_ms + (self.engine.timeframe_ms or 0)
        return close_ms if now_ms is None or now_ms < close_ms else now_ms

    def on_candle(self, symbol: str, candle: Candle, now_ms: int | None) -> int:
        """``candle`` through the twin's broker and engine, with the live engine's
        ``now_ms`` (None: the candle's close); returns the decision time."""
        engine, broker = self.engine, self.broker
        decided = self.decision_ms(candle, now_ms)
        resting = broker.on_candle(symbol, candle, decided)
        for fill in resting:
            engine.on_fill(fill)
        if resting:
            self.broker_changed = True
            for order in broker.open_orders(symbol):
                engine.on_order_update(order)
        for order in engine.on_candle(symbol, candle, now_ms):
            self.broker_changed = True
            self._submit(order, decided)
        self.events += len(engine.drain_events())
        return decided

    def _submit(self, order: Order, decided: int) -> None:
        engine = self.engine
        updated, fills, refused = submit_paper(self.broker, order, decided)
        if refused:
            self.rejected += 1
        engine.on_order_update(updated)
        for fill in fills:
            engine.on_fill(fill)
        self.ledger.record(TWIN, outcome_of(updated, order.created_ms))

    def follow_limits(self, limits: RiskLimits) -> None:
        """The live engine's limits changed (RiskPolicy, size step): the twin's too."""
        if limits != self.engine.limits:
            self.engine.update_limits(limits)
            self.events += len(self.engine.drain_events())

    def figures(self) -> BookFigures:
        """The twin's book figures."""
        return book_figures(self.engine)

    def snapshots(self) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]]:
        """(engine, broker, ledger) snapshots, as ``from_snapshots`` takes them; the
        broker's only when it changed since the last call (else None: the stored one
        holds), as its snapshot costs more than the rest together."""
        broker = self.broker.snapshot(BROKER_HISTORY) if self.broker_changed else None
        self.broker_changed = False
        return self.engine.snapshot(), broker, self.ledger.snapshot()


def book_figures(engine: TradingEngine) -> BookFigures:
    """An engine's book figures (equity, starting equity, fees, closed trades)."""
    pf = engine.portfolio
    return BookFigures(engine.equity, pf.starting_cash, pf.fees_paid,
                       int(engine.summary()["trades"]))


__all__ = ["BROKER_HISTORY", "PaperTwin", "book_figures", "broker_from", "outcome_of"]
