"""The one interface every exchange implements: live ccxt, paper broker, and the
ResilientExchange wrapper around either. The runner sees only this.

Errors are ours, not ccxt's, so the paper broker and the live adapter fail the same
way and the risk/retry logic has one vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from kubetrade.domain.models import Balance, Candle, Fill, MarketInfo, Order


class ExchangeError(Exception):
    """Base of every exchange failure. Messages never include credentials."""


class TransientError(ExchangeError):
    """Network trouble, 5xx, rate limit: retrying a *read* is safe."""


class RateLimited(TransientError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OutcomeUnknown(TransientError):
    """An order request may or may not have been accepted (timeout after send, 5xx).
    The order must be looked up by client order id before anything else is done."""


class AuthenticationFailed(ExchangeError):
    pass


class OrderRejected(ExchangeError):
    """The exchange refused the order; ``reason`` is a short machine-readable tag."""

    def __init__(self, message: str, reason: str = "rejected") -> None:
        super().__init__(message)
        self.reason = reason


class InsufficientFunds(OrderRejected):
    def __init__(self, message: str) -> None:
        super().__init__(message, reason="insufficient_funds")


class BadSymbol(OrderRejected):
    def __init__(self, message: str) -> None:
        super().__init__(message, reason="bad_symbol")


class DuplicateOrder(OrderRejected):
    """The client order id is already known to the exchange (Binance -2010)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="duplicate")


class OrderNotFound(ExchangeError):
    pass


class CircuitOpen(ExchangeError):
    """ResilientExchange refuses calls while its breaker is open."""


class ExchangeClient(Protocol):
    """Async exchange access. All quantities and prices are Decimal."""

    name: str

    async def load_markets(self) -> dict[str, MarketInfo]: ...

    async def fetch_candles(
        self, symbol: str, timeframe: str, since_ms: int | None = None, limit: int = 500
    ) -> list[Candle]:
        """Closed candles only, oldest first."""
        ...

    async def fetch_last_price(self, symbol: str) -> Decimal: ...

    async def fetch_balances(self) -> dict[str, Balance]: ...

    async def create_order(self, order: Order) -> Order:
        """Send ``order`` (its ``client_order_id`` already persisted by the caller) and
        return it with status, fills so far and exchange id updated."""
        ...

    async def fetch_order(self, client_order_id: str, symbol: str) -> Order | None:
        """The order as the exchange knows it, or None if it never arrived."""
        ...

    async def fetch_open_orders(self, symbol: str | None = None) -> list[Order]: ...

    async def cancel_order(self, client_order_id: str, symbol: str) -> Order: ...

    async def fetch_fills(self, symbol: str, since_ms: int | None = None) -> list[Fill]: ...

    async def server_time_ms(self) -> int: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ExchangeEvent:
    """Something the runner may want to alert on or count.

    kinds: ``breaker`` (data: from, to, reason, failures), ``reconciliation_required``,
    ``reconciled``, ``rate_limited`` (retry_after), ``retry`` (op, attempt, error),
    ``order_outcome_unknown`` / ``order_recovered`` / ``order_resent`` (client_order_id,
    status), ``order_unresolved`` (client_order_id).
    """

    kind: str
    ts_ms: int
    data: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class GuardedExchange(Protocol):
    """What an exchange behind a circuit breaker and a reconciliation gate offers the
    runner beyond ``ExchangeClient`` (``ResilientExchange`` implements it; the paper
    broker does not need it). Checked with ``isinstance`` once, when a runner is built.
    """

    #: Called (synchronously) with every breaker transition and gate change.
    on_event: Callable[[ExchangeEvent], None] | None

    async def probe(self) -> bool:
        """One cheap call through the breaker, so a due half-open probe runs even when
        nothing else asks the exchange; True when it answered."""
        ...

    def mark_reconciled(self) -> None:
        """The runner's reconciliation passed: new orders may flow again."""
        ...

    def allow_unreconciled(self) -> AbstractContextManager[None]:
        """Within the block, orders go out while reconciliation is pending (protective
        exits); an open breaker still refuses them."""
        ...
