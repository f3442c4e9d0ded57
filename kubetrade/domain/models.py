"""The nouns every component shares: candles, signals, orders, fills, positions, trades.

Prices, quantities, fees and P&L are ``Decimal`` because they are stored and compared
with limits; float exists only inside indicator maths. Dataclasses (not pydantic) keep
the replay loop cheap; ``to_dict``/``from_dict`` give the JSON form used in Redis and
the API, with Decimals as strings so nothing is rounded on the way.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

ZERO = Decimal(0)


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    #: A sell resting on the exchange until the price falls to ``stop_price``, then a
    #: limit at ``price`` (Binance STOP_LOSS_LIMIT): the on-exchange stop-loss.
    STOP_LOSS_LIMIT = "stop_loss_limit"


class OrderStatus(StrEnum):
    """Life of an order. CREATED is persisted before sending; UNKNOWN means sent but the
    outcome was lost (timeout, 5xx), so it must be looked up by client id before any
    other action."""

    CREATED = "created"
    UNKNOWN = "unknown"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


@dataclass(frozen=True, slots=True)
class Candle:
    """One closed OHLCV bar; ``ts_ms`` is the bar's open time (Binance convention)."""

    ts_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """Exchange trading rules for one symbol (Binance PRICE_FILTER, LOT_SIZE, NOTIONAL)."""

    symbol: str
    base: str
    quote: str
    price_step: Decimal
    qty_step: Decimal
    min_qty: Decimal
    min_notional: Decimal
    max_qty: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Signal:
    """What a strategy wants; the risk engine decides whether and how much."""

    strategy: str
    symbol: str
    side: Side
    ts_ms: int
    price: Decimal
    reason: str = ""


@dataclass(slots=True)
class Order:
    client_order_id: str
    strategy: str
    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    price: Decimal | None = None
    status: OrderStatus = OrderStatus.CREATED
    filled_quantity: Decimal = ZERO
    average_price: Decimal | None = None
    exchange_order_id: str | None = None
    created_ms: int = 0
    updated_ms: int = 0
    reason: str = ""
    stop_price: Decimal | None = None

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled_quantity


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution; ``trade_id`` is unique per exchange, which makes fills idempotent.

    A fee in a third asset (BNB) carries ``fee_quote``, its value in the quote asset at
    the fill's time (None: not valued), and ``fee_estimated`` when only a stale price
    was known (kubetrade/exchange/fee_prices.py).
    """

    trade_id: str
    client_order_id: str
    strategy: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    ts_ms: int
    fee_quote: Decimal | None = None
    fee_estimated: bool = False


@dataclass(slots=True)
class Position:
    strategy: str
    symbol: str
    quantity: Decimal
    average_price: Decimal
    opened_ms: int
    stop_price: Decimal | None = None
    fees: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """A round trip (spot, long only): entry fills to exit fills. ``pnl`` is net of fees.

    ``fees_estimated``: a third-asset fee was valued at a stale price; ``fees_unvalued``
    (e.g. ``"0.015 BNB"``): fees no price was known for, so ``pnl`` is not net of them.
    """

    trade_id: str
    strategy: str
    symbol: str
    quantity: Decimal
    entry_price: Decimal
    exit_price: Decimal
    entry_ms: int
    exit_ms: int
    fees: Decimal
    pnl: Decimal
    exit_reason: str = ""
    fees_estimated: bool = False
    fees_unvalued: str = ""


@dataclass(frozen=True)
class Mismatch:
    """One difference between our books and the exchange: found by the runner's
    reconciliation (kubetrade/runner/reconcile.py), stored and read back with its
    result (kubetrade/state/schema.py ``ReconciliationRecord``)."""

    kind: str  # balance | order_missing_on_exchange | order_unknown_locally | order_state
    subject: str  # asset or client order id
    local: str
    exchange: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        """Every field by name."""
        return to_dict(self)


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    free: Decimal
    locked: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


def make_client_order_id(strategy: str, ts_ms: int, seq: int) -> str:
    """Deterministic id from (strategy, decision time, sequence).

    Re-deciding the same candle after a crash yields the same id, so the exchange refuses
    the copy (Binance -2010 duplicate) instead of filling it twice. Fits Binance's
    ``^[a-zA-Z0-9-_]{1,36}$``.
    """
    return f"kt-{_strategy_digest(strategy)}-{ts_ms:x}-{seq:x}"


@functools.lru_cache(maxsize=1024)
def _strategy_digest(strategy: str) -> str:
    return hashlib.sha256(strategy.encode()).hexdigest()[:8]


_T = TypeVar("_T")


def to_dict(obj: Any) -> dict[str, Any]:
    """JSON-ready dict of a model; Decimals become strings, enums their values."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, StrEnum):
            value = value.value
        out[f.name] = value
    return out


def fields_of(obj: object, *names: str) -> dict[str, Any]:
    """``{name: obj.<name>}`` for ``names``, in that order: the attributes a ``to_dict``
    or ``snapshot`` passes through as they are, beside the keys it converts or computes."""
    return {name: getattr(obj, name) for name in names}


def from_dict(cls: type[_T], data: dict[str, Any]) -> _T:
    """Inverse of :func:`to_dict`; unknown keys are ignored so old readers survive new fields."""
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for name, f in names.items():
        if name not in data:
            continue
        value = data[name]
        ftype = str(f.type)
        if value is None and ftype in ("str", "bool") and f.default is not dataclasses.MISSING:
            continue  # a stream field stored empty: the field's default
        if value is not None and "Decimal" in ftype:
            value = Decimal(str(value))
        elif ftype == "bool" and isinstance(value, str):
            value = value.strip().lower() in ("true", "1")
        elif value is not None and ftype in _ENUMS:
            value = _ENUMS[ftype](value)
        kwargs[name] = value
    return cls(**kwargs)


_ENUMS: dict[str, type[StrEnum]] = {
    "Side": Side,
    "OrderType": OrderType,
    "OrderStatus": OrderStatus,
}

__all__ = [
    "ZERO",
    "Balance",
    "Candle",
    "ClosedTrade",
    "Fill",
    "MarketInfo",
    "Order",
    "OrderStatus",
    "OrderType",
    "Position",
    "Side",
    "Signal",
    "from_dict",
    "make_client_order_id",
    "to_dict",
]
