"""OrderRouter against a real Redis and a scripted exchange: the intent is in Redis
before the send, a lost answer is written UNKNOWN and looked up by client id (never
sent again), a duplicate is looked up, an open breaker sends nothing, a fill is
applied once, and a restarted router resolves what it left in doubt."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from kubetrade.domain.algorithms import create_algorithm
from kubetrade.domain.clock import ManualClock
from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.models import Fill, Order, OrderStatus
from kubetrade.domain.risk import RiskLimits
from kubetrade.exchange.base import DuplicateOrder, TransientError
from kubetrade.exchange.paper import default_market
from kubetrade.exchange.replay import bundled_candles, load_candles
from kubetrade.runner.halts import HaltBook
from kubetrade.runner.metrics import RunnerMetrics
from kubetrade.runner.orders import OrderRouter
from kubetrade.runner.outputs import RunnerOutputs
from kubetrade.state.keys import Keys
from kubetrade.state.store import StateStore
from tests.fakes.null_exchange import NullExchange

NAME = "router"
SYMBOL = "BTC/USDT"
LIMITS = RiskLimits(strategy_max_consecutive_losses=0, daily_loss_limit_pct=Decimal(0),
                    max_drawdown_pct=Decimal(0), price_collar_pct=Decimal(0))


class Scripted(NullExchange):
    """Sends as scripted (an exception, or "fill"); remembers what Redis held for the
    order at each send and look-up."""

    name = "scripted"

    def __init__(self, redis: Redis, keys: Keys, sends: list[object]) -> None:
        self.redis, self.keys, self.sends = redis, keys, sends
        self.sent: list[str] = []
        self.stored_at_send: list[str] = []
        self.stored_at_lookup: list[str] = []
        self.known: dict[str, Order] = {}
        self.fills: list[Fill] = []

    async def _stored(self, cid: str) -> str:
        raw: Any = await self.redis.hget(self.keys.orders(NAME), cid)  # type: ignore[misc]
        return str(json.loads(raw)["status"]) if raw else "absent"

    async def create_order(self, order: Order) -> Order:
        self.sent.append(order.client_order_id)
        self.stored_at_send.append(await self._stored(order.client_order_id))
        step = self.sends.pop(0)
        if isinstance(step, Exception):
            raise step
        return self.fill(order)

    def fill(self, order: Order) -> Order:
        """Fill ``order`` on the exchange (one trade) and return its filled state."""
        done = replace(order, status=OrderStatus.FILLED, filled_quantity=order.quantity,
                       average_price=Decimal(100), exchange_order_id=str(len(self.known) + 1))
        self.known[order.client_order_id] = done
        self.fills.append(Fill(f"t{len(self.fills) + 1}", order.client_order_id, NAME, SYMBOL,
                               order.side, order.quantity, Decimal(100), Decimal(0), "USDT",
                               order.created_ms))
        return done

    async def fetch_order(self, client_order_id: str, symbol: str) -> Order | None:
        self.stored_at_lookup.append(await self._stored(client_order_id))
        return self.known.get(client_order_id)

    async def fetch_fills(self, symbol: str, since_ms: int | None = None) -> list[Fill]:
        return list(self.fills)


def _engine() -> TradingEngine:
    algorithm = create_algorithm("sma-crossover", {"fastPeriod": 2, "slowPeriod": 4})
    return TradingEngine(NAME, algorithm, LIMITS, {SYMBOL: default_market(SYMBOL)},
                         Decimal(10000), timeframe_ms=60_000)


def _first_orders(engine: TradingEngine) -> tuple[list[Order], int]:
    """Candles through the engine until it wants an order: (orders, candle open ms)."""
    csv = bundled_candles(SYMBOL)
    assert csv is not None
    for candle in load_candles(csv):
        orders = engine.on_candle(SYMBOL, candle, None)
        if orders:
            return orders, candle.ts_ms
    raise AssertionError("the strategy never traded")


async def _router(redis: Redis, keys: Keys, exchange: Scripted,
                  engine: TradingEngine | None = None) -> tuple[OrderRouter, StateStore]:
    store = StateStore(redis, keys, NAME)
    clock = ManualClock(1_800_000_000_000)
    outputs = RunnerOutputs(NAME, "live", redis=redis, keys=keys, store=store, clock=clock,
                            metrics=RunnerMetrics(CollectorRegistry()))
    restored = await store.load()
    router = OrderRouter(
        NAME, engine or _engine(), exchange=exchange, store=store, outputs=outputs,
        halts=HaltBook(), clock=clock, market_clock=clock, paper=None,
        orders=restored.orders, fills_seen=restored.fills_seen,
    )
    return router, store


async def test_intent_stored_before_the_send_and_the_fill_applied_once(
    redis_client: Redis,
) -> None:
    keys = Keys(f"kt-{uuid.uuid4().hex[:8]}")
    exchange = Scripted(redis_client, keys, ["fill"])
    router, store = await _router(redis_client, keys, exchange)
    [order], ts = _first_orders(router.engine)
    await router.persist_intents([order], {SYMBOL: ts})
    await router.submit(order)
    assert exchange.stored_at_send == ["created"]
    cid = order.client_order_id
    assert router.orders[cid].status is OrderStatus.FILLED
    restored = await store.load()
    assert restored.orders[cid].status is OrderStatus.FILLED
    assert restored.fills_seen == {"t1"} and restored.cursor == {SYMBOL: ts}
    held = restored.positions[SYMBOL].quantity
    await router.apply(exchange.known[cid], list(exchange.fills))  # the same fill again
    assert router.engine.positions[SYMBOL].quantity == held
    assert (await store.load()).positions[SYMBOL].quantity == held


async def test_lost_answer_is_stored_unknown_then_looked_up_never_resent(
    redis_client: Redis,
) -> None:
    keys = Keys(f"kt-{uuid.uuid4().hex[:8]}")
    exchange = Scripted(redis_client, keys, [TransientError("timeout")])
    router, _ = await _router(redis_client, keys, exchange)
    [order], ts = _first_orders(router.engine)
    await router.persist_intents([order], {SYMBOL: ts})
    await router.submit(order)
    assert exchange.sent == [order.client_order_id]
    assert exchange.stored_at_lookup == ["unknown"]
    assert router.orders[order.client_order_id].status is OrderStatus.EXPIRED


async def test_duplicate_is_looked_up_and_adopted(redis_client: Redis) -> None:
    keys = Keys(f"kt-{uuid.uuid4().hex[:8]}")
    exchange = Scripted(redis_client, keys, [DuplicateOrder("-2010")])
    router, _ = await _router(redis_client, keys, exchange)
    [order], ts = _first_orders(router.engine)
    await router.persist_intents([order], {SYMBOL: ts})
    exchange.fill(order)  # an earlier send, whose answer was lost, went through
    await router.submit(order)
    assert exchange.sent == [order.client_order_id]
    assert router.orders[order.client_order_id].status is OrderStatus.FILLED
    assert router.fills_seen == {"t1"}


async def test_open_breaker_sends_nothing(redis_client: Redis) -> None:
    keys = Keys(f"kt-{uuid.uuid4().hex[:8]}")
    exchange = Scripted(redis_client, keys, [])
    router, _ = await _router(redis_client, keys, exchange)
    router.halts.breaker_open = True
    [order], ts = _first_orders(router.engine)
    await router.persist_intents([order], {SYMBOL: ts})
    await router.submit(order)
    assert exchange.sent == []
    stored = router.orders[order.client_order_id]
    assert stored.status is OrderStatus.REJECTED and stored.reason == "circuit_open"


async def test_restarted_router_resolves_orders_left_in_doubt(redis_client: Redis) -> None:
    keys = Keys(f"kt-{uuid.uuid4().hex[:8]}")
    exchange = Scripted(redis_client, keys, [])
    first, _ = await _router(redis_client, keys, exchange)
    [order], ts = _first_orders(first.engine)
    await first.persist_intents([order], {SYMBOL: ts})  # killed before the send
    restarted, store = await _router(redis_client, keys, exchange)
    assert [o.client_order_id for o in restarted.live_orders()] == [order.client_order_id]
    await restarted.recover()
    assert exchange.sent == []  # looked up, never sent
    cid = order.client_order_id
    assert (await store.load()).orders[cid].status is OrderStatus.EXPIRED
    assert "never_sent" in restarted.orders[cid].reason
