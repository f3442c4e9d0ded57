"""ResilientExchange around the real ccxt client and the fake Binance: no duplicate
orders whatever answers get lost, the breaker keeps orders off a failing exchange and
holds trading until reconciliation, Retry-After stops every call, and only transient
read failures are retried. Backoff, cool-downs and pauses run on a ManualClock, so a
5-minute outage takes well under a second of waiting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import pytest

from kubetrade.domain.clock import ManualClock
from kubetrade.domain.models import Order, OrderStatus, OrderType, Side
from kubetrade.exchange.base import (
    AuthenticationFailed,
    CircuitOpen,
    ExchangeEvent,
    InsufficientFunds,
    OutcomeUnknown,
)
from kubetrade.exchange.binance import BinanceExchange
from kubetrade.exchange.breaker import BreakerState
from kubetrade.exchange.resilient import ResilientExchange
from tests.fakes.binance import FakeBinance

T0 = 1726876800000 + 3_600_000  # 2024-09-21 01:00 UTC, inside the 1m BTCUSDT data


@dataclass
class Rig:
    fake: FakeBinance
    clock: ManualClock
    ex: ResilientExchange
    events: list[ExchangeEvent]

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]


async def make_rig(fake: FakeBinance, *, timeout_ms: int = 3000, api_key: str | None = None,
                   **kw: object) -> Rig:
    fake.set_market_time(T0)
    clock = ManualClock(T0)
    events: list[ExchangeEvent] = []
    inner = BinanceExchange(api_key=api_key or fake.api_key, secret=fake.secret, testnet=True,
                            base_url=fake.url, clock=clock, timeout_ms=timeout_ms)
    ex = ResilientExchange(inner, clock, on_event=events.append, **kw)  # type: ignore[arg-type]
    return Rig(fake, clock, ex, events)


@pytest.fixture
async def rig(fake_binance: FakeBinance) -> AsyncIterator[Rig]:
    r = await make_rig(fake_binance)
    try:
        yield r
    finally:
        await r.ex.close()


def order(cid: str, qty: str = "0.001", type_: OrderType = OrderType.MARKET,
          price: str | None = None, side: Side = Side.BUY) -> Order:
    return Order(client_order_id=cid, strategy="s1", symbol="BTC/USDT", side=side, type=type_,
                 quantity=Decimal(qty), price=Decimal(price) if price else None)


def assert_matches_exchange(fake: FakeBinance, o: Order) -> None:
    """Our view of the order equals the fake exchange's, and it exists exactly once."""
    on_exchange = fake.state.orders_by_client_id(o.client_order_id)
    assert len(on_exchange) == 1, o.client_order_id
    truth = on_exchange[0]
    assert o.exchange_order_id == str(truth.order_id)
    assert o.filled_quantity == truth.executed_qty
    assert o.status.value == {"NEW": "open"}.get(truth.status, truth.status.lower())


async def test_100_timeouts_after_acceptance_make_no_duplicates(fake_binance: FakeBinance) -> None:
    # Binance lets a closed order's client id be used again: the fake does the same here,
    # so only our look-up-before-resend stands between a lost answer and a double order.
    fake_binance.state.client_id_reuse = "after_close"
    fake_binance.set_balance("USDT", "1000000")
    r = await make_rig(fake_binance, timeout_ms=150)
    try:
        await r.ex.load_markets()
        results: list[Order] = []
        for i in range(100):
            fake_binance.fail_orders_after_accept(count=1, mode="timeout", hang_seconds=1)
            o = (order(f"kt-to-{i}") if i % 2 == 0
                 else order(f"kt-to-{i}", type_=OrderType.LIMIT, price="50000"))
            results.append(await r.ex.create_order(o))
        assert fake_binance.faults_fired["after_accept"] == 100
        assert fake_binance.state.duplicate_client_ids() == []
        assert len(fake_binance.state.orders) == 100
        for o in results:
            assert_matches_exchange(fake_binance, o)
        assert {o.status for o in results} == {OrderStatus.FILLED, OrderStatus.OPEN}
        assert r.kinds().count("order_outcome_unknown") == 100
        assert r.kinds().count("order_recovered") == 100
        assert "order_resent" not in r.kinds()
        # the fills are all there once, with our client ids
        fills = await r.ex.fetch_fills("BTC/USDT")
        assert sorted(f.client_order_id for f in fills) == sorted(
            o.client_order_id for o in results if o.status is OrderStatus.FILLED)
    finally:
        await r.ex.close()


@pytest.mark.parametrize("mode", ["disconnect", "5xx"])
async def test_other_lost_answers_are_recovered(fake_binance: FakeBinance, mode: str) -> None:
    fake_binance.state.client_id_reuse = "after_close"
    r = await make_rig(fake_binance, timeout_ms=1000)
    try:
        for i in range(10):
            fake_binance.fail_orders_after_accept(count=1, mode=mode)
            got = await r.ex.create_order(order(f"kt-{mode}-{i}"))
            assert_matches_exchange(fake_binance, got)
        assert fake_binance.state.duplicate_client_ids() == []
    finally:
        await r.ex.close()


async def test_request_lost_before_the_exchange_is_sent_again_once(
    fake_binance: FakeBinance,
) -> None:
    r = await make_rig(fake_binance, timeout_ms=200)
    try:
        await r.ex.load_markets()
        fake_binance.hang_requests(count=1, method="POST", path="/api/v3/order", hang_seconds=1)
        got = await r.ex.create_order(order("kt-lost-in"))
        assert got.status is OrderStatus.FILLED
        assert_matches_exchange(fake_binance, got)
        assert "order_resent" in r.kinds()
        # looked up twice (absent), then sent again under the same id
        assert fake_binance.count("GET", "/api/v3/order") == 2
        assert fake_binance.count("POST", "/api/v3/order") == 2
    finally:
        await r.ex.close()


async def test_duplicate_on_send_returns_the_existing_order(rig: Rig) -> None:
    first = await rig.ex.create_order(order("kt-dup"))
    again = await rig.ex.create_order(order("kt-dup"))  # e.g. re-sent after a restart
    assert again.exchange_order_id == first.exchange_order_id
    assert len(rig.fake.state.orders) == 1


async def test_five_minute_outage_opens_breaker_and_holds_orders(fake_binance: FakeBinance) -> None:
    r = await make_rig(fake_binance, failure_threshold=3, cooldown_s=30, lookup_attempts=3)
    fake = fake_binance
    try:
        await r.ex.load_markets()
        start = r.clock.now_ms()
        fake.start_outage("503")
        outage_end = start + 5 * 60_000
        orders_at_open: int | None = None
        refused = unknown = 0
        i = 0
        while r.clock.now_ms() < outage_end:
            if r.ex.breaker.state is BreakerState.OPEN and orders_at_open is None:
                orders_at_open = fake.count("POST", "/api/v3/order")
            try:
                await r.ex.fetch_candles("BTC/USDT", "1m", limit=5)
            except Exception:  # noqa: S110 - the strategy loop skips this candle
                pass
            try:
                await r.ex.create_order(order(f"kt-out-{i}"))
            except CircuitOpen:
                refused += 1
            except OutcomeUnknown:
                unknown += 1
            i += 1
            await r.clock.sleep(10)
        assert orders_at_open is not None, "breaker never opened"
        # nothing reached the exchange's order endpoint once the breaker was open
        assert fake.count("POST", "/api/v3/order") == orders_at_open
        assert orders_at_open <= 1
        assert refused > 20 and unknown <= 1
        assert r.ex.breaker.trips >= 2  # probes failed and re-opened it
        fake.end_outage()
        # recovery: the next read after the cool-down is the probe
        while r.ex.breaker.state is not BreakerState.CLOSED:
            await r.clock.sleep(10)
            await r.ex.probe()
        assert r.kinds().count("reconciliation_required") == 1
        with pytest.raises(CircuitOpen, match="reconciliation"):
            await r.ex.create_order(order("kt-too-early"))
        assert fake.count("POST", "/api/v3/order") == orders_at_open
        # the runner reconciles: any order whose answer was lost is resolved first
        for j in range(i):
            pending = order(f"kt-out-{j}")
            found = await r.ex.resolve_order(pending)
            assert found is None  # 503 during an outage: never executed
        r.ex.mark_reconciled()
        done = await r.ex.create_order(order("kt-after"))
        assert done.status is OrderStatus.FILLED
        transitions = [(e.data["from"], e.data["to"]) for e in r.events if e.kind == "breaker"]
        assert transitions[0] == ("closed", "open")
        assert transitions[-1] == ("half_open", "closed")
        assert "reconciled" in r.kinds()
    finally:
        await r.ex.close()


async def test_connection_refused_outage_trips_and_recovers(fake_binance: FakeBinance) -> None:
    r = await make_rig(fake_binance, failure_threshold=2, cooldown_s=20, read_attempts=2)
    try:
        await r.ex.load_markets()
        fake_binance.start_outage("refuse")
        with pytest.raises(Exception):  # noqa: B017 - transient, then CircuitOpen
            await r.ex.fetch_balances()
        assert r.ex.breaker.state is BreakerState.OPEN
        with pytest.raises(CircuitOpen):
            await r.ex.create_order(order("kt-refused"))
        fake_binance.end_outage()
        await r.clock.sleep(20)
        assert await r.ex.probe()
        assert r.ex.breaker.state is BreakerState.CLOSED
        assert not r.ex.trading_allowed
        r.ex.mark_reconciled()
        assert (await r.ex.create_order(order("kt-back"))).status is OrderStatus.FILLED
        assert fake_binance.state.orders_by_client_id("kt-refused") == []
    finally:
        await r.ex.close()


@pytest.mark.parametrize("status,retry_after", [(429, 7), (418, 120)])
async def test_retry_after_pauses_all_calls(rig: Rig, status: int, retry_after: int) -> None:
    fake = rig.fake
    await rig.ex.load_markets()
    fake.reset_counters()
    t0 = rig.clock.now_ms()
    fake.rate_limit(count=1, retry_after=retry_after, status=status)
    assert not await rig.ex.probe()  # answered 429/418: pause everything
    assert rig.ex.limiter.paused_for_s == retry_after
    balances = await rig.ex.fetch_balances()  # a different call waits out the pause too
    assert balances["USDT"].free == Decimal("10000")
    assert rig.clock.now_ms() - t0 >= retry_after * 1000
    assert fake.count("GET", "/api/v3/account") == 1
    assert [e.data["retry_after"] for e in rig.events if e.kind == "rate_limited"] == [
        retry_after]
    assert rig.ex.breaker.state is BreakerState.CLOSED  # throttling is not an outage


async def test_rate_limited_read_is_retried_after_the_pause(rig: Rig) -> None:
    t0 = rig.clock.now_ms()
    rig.fake.rate_limit(count=1, retry_after=5, path="/api/v3/time")
    assert await rig.ex.server_time_ms() > 0
    assert rig.fake.count("GET", "/api/v3/time") == 2
    assert rig.clock.now_ms() - t0 >= 5000


async def test_reads_retry_transient_failures_only(fake_binance: FakeBinance) -> None:
    r = await make_rig(fake_binance, api_key="not-our-key")
    try:
        with pytest.raises(AuthenticationFailed):
            await r.ex.fetch_balances()
        assert fake_binance.count("GET", "/api/v3/account") == 1  # never retried
        assert "retry" not in r.kinds()
        assert r.ex.breaker.failures == 0
    finally:
        await r.ex.close()
    r = await make_rig(fake_binance)
    try:
        fake_binance.reset_counters()
        fake_binance.fail_requests(status=502, count=2, path="/api/v3/account")
        assert (await r.ex.fetch_balances())["USDT"].free == Decimal("10000")
        assert fake_binance.count("GET", "/api/v3/account") == 3
        assert r.kinds().count("retry") == 2
        with pytest.raises(InsufficientFunds):
            await r.ex.create_order(order("kt-big", qty="1"))
        assert fake_binance.count("POST", "/api/v3/order") == 1
    finally:
        await r.ex.close()


async def test_timestamp_rejection_resyncs_and_sends_once_more(rig: Rig) -> None:
    await rig.ex.load_markets()
    rig.fake.timestamp_errors(count=1, path="/api/v3/order")
    got = await rig.ex.create_order(order("kt-ts"))
    assert got.status is OrderStatus.FILLED
    assert rig.fake.count("POST", "/api/v3/order") == 2
    assert len(rig.fake.state.orders) == 1


async def test_emergency_exits_may_skip_pending_reconciliation(rig: Rig) -> None:
    await rig.ex.load_markets()
    bought = await rig.ex.create_order(order("kt-entry", qty="0.01"))
    rig.ex.require_reconciliation("test: restarted after an outage")
    exit_ = order("kt-exit", qty="0.009", side=Side.SELL)
    with pytest.raises(CircuitOpen, match="reconciliation"):
        await rig.ex.create_order(exit_)
    with rig.ex.allow_unreconciled():
        sold = await rig.ex.create_order(exit_)
    assert bought.status is sold.status is OrderStatus.FILLED
    with pytest.raises(CircuitOpen):
        await rig.ex.create_order(order("kt-entry-2"))


async def test_clock_drift_is_resynced_and_the_read_retried(rig: Rig) -> None:
    rig.fake.set_clock_skew(-25_000)  # our signatures now look 25 s early to the server
    assert (await rig.ex.fetch_balances())["USDT"].free == Decimal("10000")
    assert rig.fake.count("GET", "/api/v3/account") == 2
    assert rig.fake.count("GET", "/api/v3/time") >= 1  # the re-sync
    assert rig.kinds().count("retry") == 1


async def test_order_refused_by_rate_limit_is_looked_up_then_sent(rig: Rig) -> None:
    await rig.ex.load_markets()
    t0 = rig.clock.now_ms()
    rig.fake.rate_limit(count=1, retry_after=3, method="POST", path="/api/v3/order")
    got = await rig.ex.create_order(order("kt-429"))
    assert got.status is OrderStatus.FILLED
    assert rig.fake.count("GET", "/api/v3/order") == 1  # looked up (absent) before resending
    assert rig.fake.count("POST", "/api/v3/order") == 2
    assert rig.clock.now_ms() - t0 >= 3000
    assert len(rig.fake.state.orders) == 1
