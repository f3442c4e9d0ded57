"""Entry and exit decisions: which orders a signal, a stop-loss or a close-all produces.

A halt blocks new entries. Strategy exits still go out during the risk halts (they
reduce risk) but not during a manual halt (the kill switch means "stop trading").
Stop-loss exits and close-all go out in every case: leaving a losing position
unprotected is the larger risk. Every refusal is audited (``order_refused`` with the
``rule`` and a ``reason``); every order made is audited (``order_created``) and counted
by the pre-trade controls' throttle and duplicate windows.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from kubetrade.domain import events as ev
from kubetrade.domain.halts import HALT_MANUAL, EquityGuard
from kubetrade.domain.journal import EventJournal
from kubetrade.domain.ledger import OrderLedger
from kubetrade.domain.models import (
    ZERO,
    Candle,
    MarketInfo,
    Order,
    OrderType,
    Position,
    Side,
)
from kubetrade.domain.portfolio import Portfolio
from kubetrade.domain.risk import PreTradeControls, RiskLimits, floor_to_step, size_entry
from kubetrade.domain.tracker import StrategyTracker


class OrderDesk:
    """Turns one strategy's signals into risk-checked market orders (status CREATED)."""

    __slots__ = (
        "allowed",
        "controls",
        "fee_rate",
        "guard",
        "journal",
        "ledger",
        "limits",
        "markets",
        "portfolio",
        "tracker",
    )

    def __init__(
        self,
        *,
        markets: Mapping[str, MarketInfo],
        limits: RiskLimits,
        fee_rate: Decimal,
        portfolio: Portfolio,
        controls: PreTradeControls,
        tracker: StrategyTracker,
        guard: EquityGuard,
        ledger: OrderLedger,
        journal: EventJournal,
    ) -> None:
        self.markets = markets
        self.allowed = frozenset(markets)
        self.limits = limits
        self.fee_rate = fee_rate
        self.portfolio = portfolio
        self.controls = controls
        self.tracker = tracker
        self.guard = guard
        self.ledger = ledger
        self.journal = journal

    def refuse(
        self, symbol: str, side: Side, rule: str, reason: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Audit an order not placed: ``rule`` refused it for ``reason``."""
        merged: dict[str, Any] = dict(detail or {})
        merged.update(rule=rule, symbol=symbol, side=str(side))
        self.journal.emit("order_refused", reason, actor=ev.ACTOR_RISK, **merged)

    def exit_qty(self, symbol: str, pos: Position, price: Decimal, why: str) -> Decimal:
        """Sellable quantity of a position, or 0 (audited) when the exchange would refuse
        the sell: less than a lot step or below the minimum order value."""
        market = self.markets[symbol]
        qty = floor_to_step(pos.quantity, market.qty_step)
        if qty > 0 and qty >= market.min_qty and qty * price >= market.min_notional:
            return qty
        self.refuse(
            symbol, Side.SELL, "below_min_notional",
            f"{why}: position {pos.quantity} {symbol} worth {qty * price} cannot be sold "
            f"(min_qty {market.min_qty}, min_notional {market.min_notional})",
        )
        return ZERO

    def make_order(
        self, symbol: str, side: Side, qty: Decimal, ts_ms: int, reason: str, price: Decimal
    ) -> Order:
        """A market order of ours, recorded as open and counted by the controls."""
        cid = self.ledger.next_id(ts_ms)
        order = Order(
            client_order_id=cid,
            strategy=self.journal.strategy,
            symbol=symbol,
            side=side,
            type=OrderType.MARKET,
            quantity=qty,
            created_ms=ts_ms,
            updated_ms=ts_ms,
            reason=reason,
        )
        self.ledger.add(order, reason)
        self.controls.record(symbol, side, qty, ts_ms)
        self.journal.emit(
            "order_created",
            reason,
            symbol=symbol,
            side=str(side),
            quantity=qty,
            expected_price=price,
            client_order_id=cid,
        )
        return order

    def stop_loss(
        self, symbol: str, pos: Position, candle: Candle, price: Decimal, now: int,
        orders: list[Order],
    ) -> None:
        """The candle's low reached the position's stop: sell it all at market."""
        qty = self.exit_qty(symbol, pos, price, "stop_loss")
        if qty > 0:
            self.journal.emit(
                "stop_loss",
                f"low {candle.low} <= stop {pos.stop_price}",
                actor=ev.ACTOR_RISK,
                symbol=symbol,
                stop_price=str(pos.stop_price),
                low=str(candle.low),
            )
            orders.append(self.make_order(symbol, Side.SELL, qty, now, "stop_loss", price))

    def entry(
        self, symbol: str, market: MarketInfo, price: Decimal, now: int, orders: list[Order]
    ) -> None:
        """A BUY signal: a sized, risk-checked entry, or an audited refusal."""
        if not self.tracker.enabled:
            self.tracker.on_shadow_signal(symbol, True, price)
            self.journal.emit("shadow_signal", "strategy disabled: BUY traded in shadow only",
                              symbol=symbol, side="buy", price=str(price))
            return
        pf = self.portfolio
        if symbol in pf.positions or self.ledger.pending(symbol) is not None:
            return
        guard = self.guard
        if guard.halts:
            self.refuse(symbol, Side.BUY, "halted", f"trading halted ({guard.halted_reason})")
            return
        # never more than this strategy's budget (its cash) nor the account's free balance
        cash = pf.spendable()
        qty, verdict = size_entry(guard.equity, cash, price, market, self.limits, self.fee_rate)
        if not verdict.ok:
            detail = dict(verdict.detail or {})
            if cash < pf.cash:
                detail["account_free"] = pf.account_free
            self.refuse(symbol, Side.BUY, verdict.rule, verdict.reason, detail)
            return
        if self._passes(symbol, Side.BUY, qty, price, now, self.positions_and_entries()):
            orders.append(self.make_order(symbol, Side.BUY, qty, now, "signal", price))
            pf.reserve(qty * price * (1 + self.fee_rate))

    def _passes(
        self, symbol: str, side: Side, qty: Decimal, price: Decimal, now: int, open_positions: int
    ) -> bool:
        """The pre-trade controls for a signal's order (a sell is an exit of a held
        position: reduce-only); a refusal is audited."""
        exit_ = side is Side.SELL
        verdict = self.controls.check(
            symbol=symbol,
            side=side,
            quantity=qty,
            price=price,
            now_ms=now,
            reduce_only=exit_,
            open_positions=open_positions,
            has_position=exit_,
            open_same_side=False,
            allowed_symbols=self.allowed,
        )
        if not verdict.ok:
            self.refuse(symbol, side, verdict.rule, verdict.reason, verdict.detail)
        return verdict.ok

    def positions_and_entries(self) -> int:
        """Positions held plus entries still at the exchange (sent, unknown or resting):
        each of those may become a position, so each takes a max_concurrent_positions
        slot until the exchange says otherwise."""
        held = self.portfolio.positions
        return len(held) + self.ledger.entries_not_held(held)

    def signal_exit(self, symbol: str, price: Decimal, now: int, orders: list[Order]) -> None:
        """A SELL signal: sell what is held, unless the kill switch is on."""
        if not self.tracker.enabled:
            self.tracker.on_shadow_signal(symbol, False, price)
            self.journal.emit("shadow_signal", "strategy disabled: SELL traded in shadow only",
                              symbol=symbol, side="sell", price=str(price))
        pos = self.portfolio.positions.get(symbol)
        if pos is None or self.ledger.pending(symbol) is not None or orders:
            return
        if HALT_MANUAL in self.guard.halts:
            self.refuse(
                symbol, Side.SELL, "halted", f"trading halted ({self.guard.halted_reason})"
            )
            return
        qty = self.exit_qty(symbol, pos, price, "signal")
        if qty <= 0:
            return
        if self._passes(symbol, Side.SELL, qty, price, now, len(self.portfolio.positions)):
            orders.append(self.make_order(symbol, Side.SELL, qty, now, "signal", price))

    def close_all(self, ts_ms: int, marks: Mapping[str, Decimal]) -> list[Order]:
        """Market sells for every position not already being sold, bypassing halts."""
        orders: list[Order] = []
        for sym, pos in list(self.portfolio.positions.items()):
            if self.ledger.exiting(sym):
                continue
            mark = marks.get(sym, pos.average_price)
            qty = self.exit_qty(sym, pos, mark, "close_all")
            if qty <= 0:
                continue
            orders.append(self.make_order(sym, Side.SELL, qty, ts_ms, "close_all", mark))
        self.journal.emit("close_all", f"{len(orders)} positions to close", ts_ms=ts_ms,
                          orders=[o.client_order_id for o in orders])
        return orders


__all__ = ["OrderDesk"]
