"""BudgetedExchange: every exchange call spends its weight from the shared budget first;
a new order also its order count; a 429's Retry-After pauses every client."""

from __future__ import annotations

import asyncio

import pytest

from kubetrade.exchange.base import RateLimited
from kubetrade.exchange.budgeted import BudgetedExchange, weight_of
from kubetrade.exchange.ratelimit import BudgetGate


class Clock:
    def now_ms(self) -> int:
        return 1_000

    async def sleep(self, seconds: float) -> None:
        return None


class Ledger:
    """A RateBudget that records what was taken (always granted)."""

    def __init__(self) -> None:
        self.taken: list[tuple[str, int]] = []
        self.paused: list[float] = []

    async def take(self, kind: str, amount: int, *, priority: bool, now_ms: int) -> float:
        self.taken.append((kind, amount))
        return 0.0

    async def observe(self, kind: str, used: int, *, now_ms: int) -> None:
        return None

    async def pause(self, seconds: float) -> None:
        self.paused.append(seconds)


class Adapter:
    name = "binance"

    def __init__(self) -> None:
        self.on_weight = None

    async def load_markets(self) -> dict[str, str]:
        return {"BTC/USDT": "m"}

    async def create_order(self, order: str) -> str:
        return order

    async def fetch_api_restrictions(self) -> dict[str, bool]:
        raise RateLimited("slow down", retry_after=7.0)

    async def close(self) -> None:
        return None


def test_weights_of_the_adapter_methods() -> None:
    assert weight_of("load_markets") == 20 and weight_of("fetch_balances") == 20
    assert weight_of("fetch_api_restrictions") == 1  # WEIGHTS["api_restrictions"]
    assert weight_of("something_new") == 10


def test_calls_spend_first_and_a_429_pauses_every_client() -> None:
    ledger = Ledger()
    ex = BudgetedExchange(Adapter(), BudgetGate(ledger, Clock()))

    async def go() -> None:
        assert await ex.load_markets() == {"BTC/USDT": "m"}
        assert await ex.create_order("o") == "o"
        with pytest.raises(RateLimited):
            await ex.fetch_api_restrictions()
        await ex.close()  # not an exchange request

    asyncio.run(go())
    assert ledger.taken == [("weight", 20), ("weight", 1), ("orders", 1), ("weight", 1)]
    assert ledger.paused == [7.0]
    assert ex.name == "binance"  # other attributes pass through
