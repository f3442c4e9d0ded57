"""Cash, positions and realised P&L, driven only by fills.

Spot and long only: a BUY fill opens or adds to a position, a SELL fill reduces it. A
round trip becomes one ``ClosedTrade`` when the position is gone, whose ``pnl`` is the
cash that came back minus the cash that went out (fees included), so the sum of the
trades' P&L is exactly the realised P&L, and ``equity = cash + marked positions`` at
any moment. Fills are facts from the exchange; a fill that would make cash or a
position negative means our books disagree with the exchange, and is refused loudly
(``BooksMismatch``) rather than papered over.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubetrade.domain.allocation import spendable
from kubetrade.domain.models import (
    ZERO,
    ClosedTrade,
    Fill,
    Position,
    Side,
    from_dict,
    to_dict,
)


class BooksMismatch(ValueError):
    """A fill contradicts our books (sell more than held, spend more than cash)."""


@dataclass(slots=True)
class _RoundTrip:
    """Cash flows of the open round trip of one symbol."""

    trade_id: str
    entry_qty: Decimal = ZERO
    entry_value: Decimal = ZERO
    cash_out: Decimal = ZERO
    exit_qty: Decimal = ZERO
    exit_value: Decimal = ZERO
    cash_in: Decimal = ZERO
    fees: Decimal = ZERO
    estimated: bool = False
    unvalued: dict[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Fee:
    """One fill's fee in the books: ``value`` in quote (what P&L is net of), ``quote``
    paid from quote cash, ``base`` paid in the base asset, ``other`` the quote value of
    a fee paid in a third asset (BNB) that these books charge to cash, ``unvalued`` a
    third-asset amount with no known price."""

    value: Decimal = ZERO
    quote: Decimal = ZERO
    base: Decimal = ZERO
    other: Decimal = ZERO
    unvalued: Decimal = ZERO


def _fee_in_quote(fill: Fill, base: str, quote: str) -> _Fee:
    """The fill's fee valued in the quote asset (see ``_Fee``).

    A fee paid in a third asset leaves the quote cash on the exchange untouched, but it
    is a cost of this strategy's trading: its quote value at the fill's time
    (``fill.fee_quote``, set by the exchange client) is charged to the books' cash, so
    P&L, win rate, daily loss and drawdown are net of it.
    """
    if fill.fee < 0:
        raise BooksMismatch(f"fill {fill.trade_id}: fee must not be negative, got {fill.fee}")
    if fill.fee_asset == quote or not fill.fee_asset:
        return _Fee(value=fill.fee, quote=fill.fee)
    if fill.fee_asset == base:
        return _Fee(value=fill.fee * fill.price, base=fill.fee)
    if fill.fee_quote is None:
        return _Fee(unvalued=fill.fee)
    if fill.fee_quote < 0:
        raise BooksMismatch(f"fill {fill.trade_id}: fee value must not be negative")
    return _Fee(value=fill.fee_quote, other=fill.fee_quote)


def _note_fee(trip: _RoundTrip, fill: Fill, fee: _Fee) -> None:
    """Add a fill's fee to its round trip, with any estimate or unvalued amount."""
    trip.fees += fee.value
    trip.estimated = trip.estimated or (fill.fee_estimated and fee.other > 0)
    if fee.unvalued > 0:
        trip.unvalued[fill.fee_asset] = trip.unvalued.get(fill.fee_asset, ZERO) + fee.unvalued


_TRIP_FLAGS = ("trade_id", "estimated", "unvalued")


class Portfolio:
    """One strategy's books in one quote asset."""

    __slots__ = (
        "_trips",
        "account_free",
        "cash",
        "dust",
        "fees_paid",
        "positions",
        "quote_asset",
        "realised_pnl",
        "starting_cash",
        "strategy",
    )

    def __init__(self, strategy: str, starting_cash: Decimal, quote_asset: str = "USDT") -> None:
        if starting_cash < 0:
            raise ValueError(f"starting_cash must be >= 0, got {starting_cash}")
        self.strategy = strategy
        self.quote_asset = quote_asset
        self.starting_cash = starting_cash
        self.cash = starting_cash
        self.positions: dict[str, Position] = {}
        self.dust: dict[str, Decimal] = {}
        self.realised_pnl = ZERO
        self.fees_paid = ZERO
        self._trips: dict[str, _RoundTrip] = {}
        #: The account's free quote balance as last read from the exchange, less the
        #: entries made since and plus our sales' proceeds since (None: not read;
        #: paper: the paper account's). Not books:
        #: not snapshotted; it only caps what an entry may spend (``spendable``).
        self.account_free: Decimal | None = None

    def spendable(self) -> Decimal:
        """What an entry may spend: this strategy's cash (its budget), never more than
        the account's free quote balance when known (kubetrade.domain.allocation)."""
        return spendable(self.cash, self.account_free)

    def reserve(self, amount: Decimal) -> None:
        """An entry of ``amount`` quote was sent: the known free balance is that less."""
        if self.account_free is not None:
            self.account_free -= amount

    def equity(self, marks: dict[str, Decimal]) -> Decimal:
        """Cash plus every position (and unsellable dust) at its mark price."""
        total = self.cash
        for sym, pos in self.positions.items():
            mark = marks.get(sym, pos.average_price)
            total += pos.quantity * mark
        for sym, qty in self.dust.items():
            total += qty * marks.get(sym, ZERO)
        return total

    def apply_fill(
        self, fill: Fill, base: str, min_qty: Decimal = ZERO, reason: str = ""
    ) -> ClosedTrade | None:
        """Book one fill; returns the ClosedTrade when it ends a round trip.

        ``min_qty`` is the exchange's smallest sellable quantity: what is left below it
        after a sell cannot be sold, so the round trip ends and the rest is kept as dust.
        Raises ``BooksMismatch`` (books unchanged) for a fill the books cannot take.
        """
        if fill.quantity <= 0 or fill.price <= 0:
            raise BooksMismatch(
                f"fill {fill.trade_id}: quantity and price must be positive "
                f"(got {fill.quantity} @ {fill.price})"
            )
        fee = _fee_in_quote(fill, base, self.quote_asset)
        if fill.side is Side.BUY:
            self._buy(fill, fee)
            return None
        return self._sell(fill, fee, min_qty, reason)

    def _buy(self, fill: Fill, fee: _Fee) -> None:
        """A buy: cash out (a third-asset fee's value too, which may take cash below 0
        by that value: the quote cash itself paid only notional + quote fee)."""
        notional = fill.quantity * fill.price
        sym = fill.symbol
        fee_value = fee.value
        if notional + fee.quote > self.cash:
            raise BooksMismatch(
                f"fill {fill.trade_id}: buy costs {notional + fee.quote} {self.quote_asset} "
                f"but cash is {self.cash}"
            )
        cash_out = notional + fee.quote + fee.other
        got = fill.quantity - fee.base
        self.cash -= cash_out
        self.fees_paid += fee_value
        pos = self.positions.get(sym)
        if pos is None:
            pos = Position(
                strategy=self.strategy,
                symbol=sym,
                quantity=got,
                average_price=fill.price,
                opened_ms=fill.ts_ms,
                fees=fee_value,
            )
            self.positions[sym] = pos
            self._trips[sym] = _RoundTrip(trade_id=fill.client_order_id)
        else:
            pos.average_price = (
                pos.quantity * pos.average_price + got * fill.price
            ) / (pos.quantity + got)
            pos.quantity += got
            pos.fees += fee_value
        trip = self._trips[sym]
        trip.entry_qty += got
        trip.entry_value += notional
        trip.cash_out += cash_out
        _note_fee(trip, fill, fee)

    def _sell(self, fill: Fill, fee: _Fee, min_qty: Decimal, reason: str) -> ClosedTrade | None:
        notional = fill.quantity * fill.price
        sym = fill.symbol
        fee_value = fee.value
        pos = self.positions.get(sym)
        sold = fill.quantity + fee.base
        if pos is None or sold > pos.quantity:
            held = ZERO if pos is None else pos.quantity
            raise BooksMismatch(
                f"fill {fill.trade_id}: sells {sold} {sym} but only {held} is held"
            )
        cash_in = notional - fee.quote - fee.other
        self.cash += cash_in
        if self.account_free is not None:  # our sale frees quote on the account too
            self.account_free += cash_in
        self.fees_paid += fee_value
        pos.quantity -= sold
        pos.fees += fee_value
        trip = self._trips[sym]
        trip.exit_qty += fill.quantity
        trip.exit_value += notional
        trip.cash_in += cash_in
        _note_fee(trip, fill, fee)
        if pos.quantity > 0 and pos.quantity >= min_qty:
            return None
        return self._close(pos, trip, fill.ts_ms, reason)

    def _close(self, pos: Position, trip: _RoundTrip, ts_ms: int, reason: str) -> ClosedTrade:
        """The round trip of ``pos`` ended: what is left is dust, the P&L is realised."""
        sym = pos.symbol
        if pos.quantity > 0:
            self.dust[sym] = self.dust.get(sym, ZERO) + pos.quantity
        del self.positions[sym]
        del self._trips[sym]
        pnl = trip.cash_in - trip.cash_out
        self.realised_pnl += pnl
        return ClosedTrade(
            trade_id=trip.trade_id,
            strategy=self.strategy,
            symbol=sym,
            quantity=trip.entry_qty,
            entry_price=trip.entry_value / trip.entry_qty if trip.entry_qty else ZERO,
            exit_price=trip.exit_value / trip.exit_qty if trip.exit_qty else ZERO,
            entry_ms=pos.opened_ms,
            exit_ms=ts_ms,
            fees=trip.fees,
            pnl=pnl,
            exit_reason=reason,
            fees_estimated=trip.estimated,
            fees_unvalued=", ".join(f"{q} {a}" for a, q in sorted(trip.unvalued.items())),
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            "cash": str(self.cash),
            "starting_cash": str(self.starting_cash),
            "realised_pnl": str(self.realised_pnl),
            "fees_paid": str(self.fees_paid),
            "positions": [to_dict(p) for p in self.positions.values()],
            "dust": {k: str(v) for k, v in self.dust.items()},
            "trips": {
                sym: {
                    "trade_id": t.trade_id,
                    "entry_qty": str(t.entry_qty),
                    "entry_value": str(t.entry_value),
                    "cash_out": str(t.cash_out),
                    "exit_qty": str(t.exit_qty),
                    "exit_value": str(t.exit_value),
                    "cash_in": str(t.cash_in),
                    "fees": str(t.fees),
                    "estimated": t.estimated,
                    "unvalued": {a: str(q) for a, q in t.unvalued.items()},
                }
                for sym, t in self._trips.items()
            },
        }

    @classmethod
    def restore(cls, strategy: str, data: dict[str, Any], quote_asset: str = "USDT") -> Portfolio:
        pf = cls(strategy, Decimal(data["starting_cash"]), quote_asset)
        pf.cash = Decimal(data["cash"])
        pf.realised_pnl = Decimal(data.get("realised_pnl", "0"))
        pf.fees_paid = Decimal(data.get("fees_paid", "0"))
        for p in data.get("positions", []):
            pos = from_dict(Position, p)
            pf.positions[pos.symbol] = pos
        pf.dust = {k: Decimal(v) for k, v in data.get("dust", {}).items()}
        for sym, t in data.get("trips", {}).items():
            pf._trips[sym] = _RoundTrip(
                trade_id=t["trade_id"],
                estimated=bool(t.get("estimated", False)),
                unvalued={a: Decimal(q) for a, q in t.get("unvalued", {}).items()},
                **{k: Decimal(t[k]) for k in t if k not in _TRIP_FLAGS},
            )
        for sym, pos in pf.positions.items():
            if sym not in pf._trips:
                pf._trips[sym] = _RoundTrip(
                    trade_id=f"restored-{sym}-{pos.opened_ms}",
                    entry_qty=pos.quantity,
                    entry_value=pos.quantity * pos.average_price,
                    cash_out=pos.quantity * pos.average_price + pos.fees,
                    fees=pos.fees,
                )
        return pf
