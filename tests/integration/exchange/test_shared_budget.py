"""Rate budgets shared through a real Redis (kubetrade.state.budgets) by several
ResilientExchange clients with the real ccxt client, against a fake Binance enforcing
Binance's order and weight limits: a burst of three clients past 50 orders per 10 s
earns 0 x 429; closing orders get the reserve entries may not use; the exchange's
header counts raise the shared count; with Redis gone each client keeps to a local
share and says so."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from decimal import Decimal

import pytest
from redis.asyncio import Redis

from kubetrade.domain.clock import ManualClock
from kubetrade.domain.models import Order, OrderType, Side
from kubetrade.exchange.binance import BinanceExchange
from kubetrade.exchange.ratelimit import (
    BINANCE_WINDOWS,
    KIND_ORDERS,
    KIND_WEIGHT,
    BudgetGate,
    allowed,
    budget_plan,
)
from kubetrade.exchange.resilient import ResilientExchange
from kubetrade.state.budgets import RedisBudget
from kubetrade.state.keys import Keys
from tests.fakes.binance import FakeBinance

TEN_S = BINANCE_WINDOWS[KIND_ORDERS][0]


class VirtualClock:
    """Wall time plus an offset that sleeping advances; the fake's clock follows, so
    its windows turn as ours do and waiting costs no real time."""

    def __init__(self, fake: FakeBinance) -> None:
        self.fake = fake
        self.offset_ms = 0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms

    async def sleep(self, seconds: float) -> None:
        self.offset_ms += max(1, int(seconds * 1000))
        self.fake.set_clock_skew(self.offset_ms)
        await asyncio.sleep(0)


def _budget(redis: Redis) -> RedisBudget:
    return RedisBudget(redis, Keys(f"b-{uuid.uuid4().hex[:6]}"), ip="i", account="a",
                       plan=budget_plan)


def _order(cid: str, reason: str = "signal") -> Order:
    now = int(time.time() * 1000)
    return Order(client_order_id=cid, strategy="s", symbol="BTC/USDT", side=Side.BUY,
                 type=OrderType.MARKET, quantity=Decimal("0.0002"), created_ms=now,
                 updated_ms=now, reason=reason)


@pytest.mark.fake_binance(enforce_limits=True, balances={"USDT": Decimal(10**6)})
async def test_three_clients_bursting_past_the_order_limit_get_no_429(
    redis_client: Redis, fake_binance: FakeBinance
) -> None:
    clock = VirtualClock(fake_binance)
    keys = Keys(f"b-{uuid.uuid4().hex[:6]}")
    clients = [
        ResilientExchange(
            BinanceExchange(fake_binance.api_key, fake_binance.secret,
                            base_url=fake_binance.url, clock=clock),
            clock, budget=RedisBudget(redis_client, keys, ip="test", account="acct",
                                         plan=budget_plan))
        for _ in range(3)
    ]
    for c in clients:
        await c.load_markets()

    async def burst(i: int, c: ResilientExchange) -> None:
        for n in range(30):
            await c.create_order(_order(f"c{i}-{n}"))

    await asyncio.gather(*(burst(i, c) for i, c in enumerate(clients)))
    assert fake_binance.limits is not None
    assert fake_binance.limits.status[429] == 0 and fake_binance.limits.status[418] == 0
    assert len(fake_binance.state.accepted_client_ids) == 90  # every entry went out
    for c in clients:
        await c.close()


async def test_closing_orders_use_the_reserve_entries_may_not(redis_client: Redis) -> None:
    budget = _budget(redis_client)
    now = 1_800_000_000_000 - 1_800_000_000_000 % TEN_S.window_ms  # a window's start
    entries = allowed(TEN_S, priority=False)
    results = await asyncio.gather(*(budget.take(KIND_ORDERS, 1, priority=False, now_ms=now)
                                     for _ in range(entries + 5)))
    assert results.count(0.0) == entries  # atomic: never one more than allowed
    assert await budget.take(KIND_ORDERS, 1, priority=False, now_ms=now) == 10.0
    assert await budget.take(KIND_ORDERS, 1, priority=True, now_ms=now) == 0.0  # stop-loss
    # the next window starts empty
    assert await budget.take(KIND_ORDERS, 1, priority=False, now_ms=now + 10_000) == 0.0


async def test_the_exchange_count_raises_the_shared_one(redis_client: Redis) -> None:
    budget = _budget(redis_client)
    now = 1_800_000_000_000
    await budget.take(KIND_WEIGHT, 100, priority=False, now_ms=now)
    await budget.observe(KIND_WEIGHT, 4_700, now_ms=now)  # others on the IP spent it
    assert await budget.used(KIND_WEIGHT, now) == 4_700
    await budget.observe(KIND_WEIGHT, 10, now_ms=now)  # an older answer: never lowered
    assert await budget.used(KIND_WEIGHT, now) == 4_700
    wait = await budget.take(KIND_WEIGHT, 200, priority=False, now_ms=now)
    assert wait > 0  # 4,900 > 4,800 (80 % of 6,000)


async def test_redis_down_falls_back_to_a_local_share_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    clock = ManualClock(1_800_000_000_000 - 1_800_000_000_000 % 10_000)
    gate = BudgetGate(RedisBudget(dead, Keys("x"), ip="i", account="a", plan=budget_plan), clock,
                      local_share=0.1)
    with caplog.at_level(logging.WARNING):
        for _ in range(4):  # 10 % of the 40 entries may send per 10 s
            await gate.spend(KIND_ORDERS, 1, priority=False)
        assert clock.now_ms() % 10_000 == 0  # no wait yet
        await gate.spend(KIND_ORDERS, 1, priority=False)
    assert clock.now_ms() % 10_000 == 0 and gate.waited_s == 10.0  # waited for a new window
    assert not gate.shared_ok
    assert [r for r in caplog.records if "budget.shared_unavailable" in r.getMessage()]
    await dead.aclose()
