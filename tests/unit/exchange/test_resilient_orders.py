"""Order placement rules of ResilientExchange against a scripted in-memory exchange
(the protocol-level behaviour is tested against the fake Binance in integration)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kubetrade.domain.clock import ManualClock
from kubetrade.domain.models import (
    Order,
    OrderStatus,
    OrderType,
    Side,
)
from kubetrade.exchange.base import ExchangeEvent, OutcomeUnknown, TransientError
from kubetrade.exchange.resilient import ResilientExchange
from tests.fakes.null_exchange import NullExchange


class Scripted(NullExchange):
    """Answers create/fetch_order from scripts; records what was sent."""

    name = "scripted"

    def __init__(self, creates: list[object], lookups: list[object]) -> None:
        self.creates = creates
        self.lookups = lookups
        self.sent: list[str] = []
        self.looked: int = 0

    async def create_order(self, order: Order) -> Order:
        self.sent.append(order.client_order_id)
        step = self.creates.pop(0)
        if isinstance(step, Exception):
            raise step
        order.status = OrderStatus.FILLED
        return order

    async def fetch_order(self, client_order_id: str, symbol: str) -> Order | None:
        self.looked += 1
        step = self.lookups.pop(0)
        if isinstance(step, Exception):
            raise step
        return step  # type: ignore[return-value]


def order() -> Order:
    return Order("kt-1", "s", "BTC/USDT", Side.BUY, OrderType.MARKET, Decimal("0.1"))


def filled() -> Order:
    o = order()
    o.status = OrderStatus.FILLED
    o.exchange_order_id = "42"
    return o


async def test_not_listed_once_is_asked_again_before_any_resend() -> None:
    ex = Scripted([OutcomeUnknown("timeout")], [None, filled()])
    res = ResilientExchange(ex, ManualClock(0))
    got = await res.create_order(order())
    assert got.exchange_order_id == "42"
    assert ex.sent == ["kt-1"]  # never sent twice


async def test_absent_twice_is_resent_under_the_same_id() -> None:
    ex = Scripted([OutcomeUnknown("5xx"), "ok"], [None, None])
    res = ResilientExchange(ex, ManualClock(0))
    got = await res.create_order(order())
    assert got.status is OrderStatus.FILLED
    assert ex.sent == ["kt-1", "kt-1"]


async def test_unreachable_exchange_leaves_the_order_unknown() -> None:
    events: list[ExchangeEvent] = []
    ex = Scripted([OutcomeUnknown("timeout")], [TransientError("down")] * 200)
    res = ResilientExchange(ex, ManualClock(0), on_event=events.append, lookup_attempts=4,
                            failure_threshold=100)
    o = order()
    with pytest.raises(OutcomeUnknown, match="kt-1"):
        await res.create_order(o)
    assert o.status is OrderStatus.UNKNOWN
    assert ex.sent == ["kt-1"]
    assert [e.kind for e in events if e.kind.startswith("order_")] == [
        "order_outcome_unknown", "order_unresolved"]
