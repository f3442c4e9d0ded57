"""Two Strategies with the same name in two namespaces, trading one exchange account
(real ccxt client, fake Binance): their client order ids must not collide, or one
runner's order would be refused as a duplicate and that runner would adopt the other's
order and fills (the position booked twice)."""

from __future__ import annotations

import time
from decimal import Decimal

from redis.asyncio import Redis

from kubetrade.domain.clock import Clock
from kubetrade.domain.models import OrderStatus
from kubetrade.domain.risk import RiskLimits
from kubetrade.exchange.binance import BinanceExchange
from kubetrade.exchange.replay import bundled_candles, load_candles
from kubetrade.runner.core import Runner, RunnerOptions, RunnerParts, RunnerSpec
from kubetrade.runner.market import ReplaySource
from kubetrade.state.keys import Keys
from tests.fakes.binance import FakeBinance

# The on-exchange stop (a resting STOP_LOSS_LIMIT, cancelled before each exit) is off:
# these tests count the strategy's own market orders, all of which fill; the stops have
# their own tests (test_exchange_stops.py, test_sigkill_stop.py).
LIMITS = RiskLimits(strategy_max_consecutive_losses=0, daily_loss_limit_pct=Decimal(0),
                    max_drawdown_pct=Decimal(0), price_collar_pct=Decimal(0),
                    stop_loss_on_exchange=False)


class WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep(self, seconds: float) -> None:  # pragma: no cover - not used here
        raise AssertionError("no sleeping in this test")


async def _runner(redis: Redis, fake: FakeBinance, namespace: str | None, prefix: str,
            clock: Clock) -> Runner:
    csv = bundled_candles("BTC/USDT")
    assert csv is not None
    exchange = BinanceExchange(fake.api_key, fake.secret, testnet=True, base_url=fake.url,
                               clock=clock)
    spec = RunnerSpec(name="btc-sma", algorithm="sma-crossover",
                      parameters={"fastPeriod": 2, "slowPeriod": 4}, symbols=["BTC/USDT"],
                      mode="live", namespace=namespace)
    return await Runner.restore(RunnerParts(
        spec, redis=redis, keys=Keys(prefix), exchange=exchange,
        market=ReplaySource({"BTC/USDT": load_candles(csv)}, clock, 0),
        clock=clock, limits=LIMITS,
        options=RunnerOptions(reconcile_interval_s=0, paper=False)))


def _held(runner: Runner) -> Decimal:
    assert runner.engine is not None
    pos = runner.engine.positions.get("BTC/USDT")
    return pos.quantity if pos else Decimal(0)


async def test_same_strategy_name_in_two_namespaces_never_shares_orders(
    redis_client: Redis, fake_binance: FakeBinance
) -> None:
    clock = WallClock()
    a = await _runner(redis_client, fake_binance, "team-a", "kt-a", clock)
    b = await _runner(redis_client, fake_binance, "team-b", "kt-b", clock)
    stream_a, stream_b = a.market.candles(a.cursor), b.market.candles(b.cursor)
    for _ in range(500):  # both decide on the same candles, as two pods would
        sym, candle = await anext(stream_a)
        await a.process_candle(sym, candle)
        sym, candle = await anext(stream_b)
        await b.process_candle(sym, candle)
        if len(a.orders) >= 3:
            break
    ids_a, ids_b = set(a.orders), set(b.orders)
    assert ids_a and ids_b and not ids_a & ids_b
    accepted = fake_binance.state.accepted_client_ids
    assert len(accepted) == len(set(accepted)) == len(ids_a) + len(ids_b)
    assert all(o.status is OrderStatus.FILLED for o in [*a.orders.values(), *b.orders.values()])
    # each runner booked exactly the exchange's trades of its own orders, none of the other's
    with fake_binance.state.lock:
        trades = [(str(t.trade_id), t.client_order_id) for t in fake_binance.state.trades]
    for ids, prefix in ((ids_a, "kt-a"), (ids_b, "kt-b")):
        booked = set(await redis_client.smembers(Keys(prefix).fills_seen("btc-sma")))
        assert booked == {tid for tid, cid in trades if cid in ids}
    assert _held(a) > 0 and _held(b) > 0
    # (balances are not reconciled here: each runner's baseline assumes it is the only
    # strategy trading BTC on the account, which this test breaks on purpose)
    # the displayed strategy name and the Redis keys stay the bare name
    assert {o.strategy for o in a.orders.values()} == {"btc-sma"}
    assert await redis_client.hlen(Keys("kt-a").orders("btc-sma")) == len(ids_a)  # type: ignore[misc]
    for r in (a, b):
        await r.exchange.close()


async def test_restart_with_namespace_keeps_orders_persisted_under_bare_name(
    redis_client: Redis, fake_binance: FakeBinance
) -> None:
    """A runner upgraded to namespace-qualified ids resolves and reconciles the orders it
    persisted before, then trades on with the new ids."""
    clock = WallClock()
    old = await _runner(redis_client, fake_binance, None, "kt", clock)
    async for sym, candle in old.market.candles(old.cursor):
        await old.process_candle(sym, candle)
        if _held(old) > 0:
            break
    legacy = set(old.orders)
    assert legacy and _held(old) > 0
    await old.exchange.close()

    new = await _runner(redis_client, fake_binance, "team-a", "kt", clock)
    assert set(new.orders) == legacy and _held(new) == _held(old)
    assert new.last_reconciliation is not None and new.last_reconciliation.ok
    async for sym, candle in new.market.candles(new.cursor):
        await new.process_candle(sym, candle)
        if set(new.orders) - legacy:
            break
    fresh = set(new.orders) - legacy
    assert fresh and all(new.orders[c].status is OrderStatus.FILLED for c in fresh)
    assert not {c.split("-")[1] for c in fresh} & {c.split("-")[1] for c in legacy}
    assert (await new.reconcile_now("test")).ok
    await new.exchange.close()
