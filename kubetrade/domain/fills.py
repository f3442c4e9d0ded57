"""Fill application: an execution into the books, then stops, equity and trade counts.

A fill is a fact from the exchange, booked once per ``trade_id``. A buy that opens or
adds to a position (re)places its stop-loss at ``stop_loss_pct`` below the average
entry; every fill marks equity (which may raise a halt); a fill that ends a round trip
is counted, audited and reported to the strategy tracker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from kubetrade.domain import events as ev
from kubetrade.domain.halts import EquityGuard
from kubetrade.domain.journal import EventJournal
from kubetrade.domain.ledger import OrderLedger
from kubetrade.domain.models import ClosedTrade, Fill, MarketInfo, Position, Side
from kubetrade.domain.portfolio import BooksMismatch, Portfolio
from kubetrade.domain.risk import RiskLimits, stop_price_for
from kubetrade.domain.tracker import StrategyTracker


@dataclass(eq=False, kw_only=True, slots=True)
class FillBooker:
    """Books fills into the portfolio and keeps equity marked; counts closed trades."""

    markets: Mapping[str, MarketInfo]
    limits: RiskLimits
    portfolio: Portfolio
    #: Last price per symbol (shared with the engine, which marks candles into it).
    marks: dict[str, Decimal]
    tracker: StrategyTracker
    guard: EquityGuard
    ledger: OrderLedger
    journal: EventJournal
    trades: int = field(default=0, init=False)
    wins: int = field(default=0, init=False)

    def mark(self) -> None:
        """Equity = cash + everything held at its mark; the halts follow."""
        self.guard.check(self.portfolio.equity(self.marks))

    def mark_one(self, pos: Position, price: Decimal) -> None:
        """Fast mark when ``pos`` is the only thing held (the common case)."""
        pf = self.portfolio
        if len(pf.positions) == 1 and not pf.dust:
            self.guard.mark(pf.cash + pos.quantity * price)
        else:
            self.mark()

    def on_fill(self, fill: Fill) -> list[ClosedTrade]:
        """Book one execution; see ``TradingEngine.on_fill``."""
        ledger = self.ledger
        if ledger.seen(fill.trade_id):
            return []
        market = self.markets.get(fill.symbol)
        if market is None:
            raise ValueError(f"fill {fill.trade_id}: unknown symbol {fill.symbol!r}")
        reason = ledger.reasons.get(fill.client_order_id, "")
        had_position = fill.symbol in self.portfolio.positions
        try:
            closed = self.portfolio.apply_fill(fill, market.base, market.min_qty, reason)
        except BooksMismatch as exc:
            self.journal.emit(
                "fill_rejected",
                str(exc),
                kind=ev.RECONCILIATION_MISMATCH,
                severity="critical",
                title=f"{self.journal.strategy}: fill does not match our books",
                trade_id=fill.trade_id,
            )
            raise
        ledger.remember(fill.trade_id)
        self.journal.advance(fill.ts_ms)
        if fill.symbol not in self.marks:
            self.marks[fill.symbol] = fill.price
        self._after_fill(fill, had_position)
        if closed is None:
            return []
        self._book_closed(closed)
        return [closed]

    def _after_fill(self, fill: Fill, had_position: bool) -> None:
        """Protect a position a buy opened or added to, and mark equity."""
        pf = self.portfolio
        pos = pf.positions.get(fill.symbol)
        if fill.side is Side.BUY and pos is not None:
            pos.stop_price = stop_price_for(pos.average_price, self.limits)
            if not had_position:
                self.journal.emit(
                    "trade_opened",
                    f"bought {fill.quantity} {fill.symbol} at {fill.price}",
                    kind=ev.TRADE_OPENED,
                    title=f"{self.journal.strategy}: opened {fill.symbol}",
                    symbol=fill.symbol,
                    quantity=fill.quantity,
                    price=fill.price,
                    stop_price=pos.stop_price,
                    client_order_id=fill.client_order_id,
                )
        if pos is not None:
            self.mark_one(pos, self.marks[fill.symbol])
        elif not pf.positions and not pf.dust:
            self.guard.check(pf.cash)
        else:
            self.mark()

    def _book_closed(self, closed: ClosedTrade) -> None:
        """Count a finished round trip, audit it and tell the strategy tracker."""
        self.trades += 1
        if closed.pnl > 0:
            self.wins += 1
        self.journal.emit(
            "trade_closed",
            f"closed {closed.symbol} ({closed.exit_reason or 'exit'}): pnl {closed.pnl:.2f}",
            kind=ev.TRADE_CLOSED,
            severity="info" if closed.pnl >= 0 else "warning",
            title=f"{self.journal.strategy}: closed {closed.symbol}",
            symbol=closed.symbol,
            pnl=closed.pnl,
            entry_price=closed.entry_price,
            exit_price=closed.exit_price,
            quantity=closed.quantity,
            exit_reason=closed.exit_reason,
        )
        change = self.tracker.on_trade(closed.pnl, closed.exit_ms)
        if change is not None:
            self.journal.tracker_change(change)


__all__ = ["FillBooker"]
