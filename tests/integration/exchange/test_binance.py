"""BinanceExchange over the real ccxt client against the fake server: what the runner
relies on (exact Decimals, closed candles only, orders by client id, fills carrying
client ids) and that each failure arrives as our error type, never a ccxt one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from kubetrade.domain.clock import ManualClock
from kubetrade.domain.models import Order, OrderStatus, OrderType, Side
from kubetrade.exchange.base import (
    AuthenticationFailed,
    BadSymbol,
    DuplicateOrder,
    InsufficientFunds,
    OrderNotFound,
    OrderRejected,
    OutcomeUnknown,
    RateLimited,
    TransientError,
)
from kubetrade.exchange.binance import BinanceExchange
from tests.fakes.binance import FakeBinance

T0 = 1726876800000  # 2024-09-21 00:00 UTC


def make(fake: FakeBinance, clock: ManualClock | None = None, **kw: object) -> BinanceExchange:
    return BinanceExchange(
        api_key=str(kw.pop("api_key", fake.api_key)),
        secret=str(kw.pop("secret", fake.secret)),
        testnet=True,
        base_url=fake.url,
        clock=clock or ManualClock(T0 + 3_600_000),
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
async def binance(fake_binance: FakeBinance) -> AsyncIterator[BinanceExchange]:
    fake_binance.set_market_time(T0 + 3_600_000)
    ex = make(fake_binance)
    try:
        yield ex
    finally:
        await ex.close()


def order(cid: str, qty: str = "0.01", side: Side = Side.BUY, type_: OrderType = OrderType.MARKET,
          price: str | None = None, symbol: str = "BTC/USDT") -> Order:
    return Order(client_order_id=cid, strategy="s1", symbol=symbol, side=side, type=type_,
                 quantity=Decimal(qty), price=Decimal(price) if price else None)


async def test_markets_are_exact_decimals(binance: BinanceExchange) -> None:
    m = (await binance.load_markets())["BTC/USDT"]
    assert (m.price_step, m.qty_step, m.min_qty, m.min_notional) == (
        Decimal("0.01"), Decimal("0.00001"), Decimal("0.00001"), Decimal("5"))
    assert m.base == "BTC" and m.quote == "USDT"


async def test_candles_closed_only_and_exact(fake_binance: FakeBinance) -> None:
    clock = ManualClock(T0 + 5 * 60_000 + 20_000)
    fake_binance.set_market_time(clock.now_ms())
    ex = make(fake_binance, clock)
    try:
        candles = await ex.fetch_candles("BTC/USDT", "1m", since_ms=T0)
        assert [c.ts_ms for c in candles] == [T0 + i * 60_000 for i in range(5)]
        assert candles[0].open == Decimal("63201.05") and candles[0].volume == Decimal("10.91101")
        assert await ex.fetch_last_price("BTC/USDT") == Decimal("63143.09")  # bar 00:05 close
    finally:
        await ex.close()


async def test_order_lifecycle_by_client_id(fake_binance: FakeBinance,
                                            binance: BinanceExchange) -> None:
    placed = await binance.create_order(order("kt-1"))
    assert placed.status is OrderStatus.FILLED
    assert placed.filled_quantity == Decimal("0.01")
    assert placed.average_price == Decimal("63183.99")
    assert placed.exchange_order_id is not None
    again = await binance.fetch_order("kt-1", "BTC/USDT")
    assert again is not None and again.exchange_order_id == placed.exchange_order_id
    assert again.strategy == "s1"
    assert await binance.fetch_order("never-sent", "BTC/USDT") is None
    with pytest.raises(DuplicateOrder):
        await binance.create_order(order("kt-1"))
    fills = await binance.fetch_fills("BTC/USDT")
    assert [(f.client_order_id, f.quantity, f.fee_asset) for f in fills] == [
        ("kt-1", Decimal("0.01"), "BTC")]
    bal = await binance.fetch_balances()
    assert bal["BTC"].free == Decimal("0.00999")  # 0.1% fee taken in the bought asset
    assert bal["USDT"].free == Decimal("10000") - Decimal("631.8399")


async def test_limit_rest_cancel_and_open_orders(fake_binance: FakeBinance,
                                                 binance: BinanceExchange) -> None:
    lim = await binance.create_order(order("kt-l", type_=OrderType.LIMIT, price="50000"))
    assert lim.status is OrderStatus.OPEN and lim.price == Decimal("50000")
    open_ = await binance.fetch_open_orders("BTC/USDT")
    assert [o.client_order_id for o in open_] == ["kt-l"]
    assert [o.client_order_id for o in await binance.fetch_open_orders()] == ["kt-l"]
    cancelled = await binance.cancel_order("kt-l", "BTC/USDT")
    assert cancelled.status is OrderStatus.CANCELED and cancelled.client_order_id == "kt-l"
    with pytest.raises(OrderNotFound):
        await binance.cancel_order("kt-l", "BTC/USDT")
    assert await binance.fetch_open_orders("BTC/USDT") == []


async def test_rejections_are_typed(fake_binance: FakeBinance, binance: BinanceExchange) -> None:
    with pytest.raises(InsufficientFunds):
        await binance.create_order(order("big", qty="5"))
    with pytest.raises(OrderRejected) as info:
        await binance.create_order(order("tiny", qty="0.00001"))  # < 5 USDT notional
    assert info.value.reason == "filter"
    with pytest.raises(BadSymbol):
        await binance.create_order(order("bad", symbol="NOPE/USDT"))
    assert fake_binance.state.orders == {}


async def test_auth_failures_are_not_transient(fake_binance: FakeBinance) -> None:
    for kw in ({"api_key": "wrong"}, {"secret": "wrong"}):
        ex = make(fake_binance, None, **kw)
        try:
            with pytest.raises(AuthenticationFailed) as info:
                await ex.fetch_balances()
            assert not isinstance(info.value, TransientError)
            assert "wrong" not in str(info.value)
            assert fake_binance.secret not in str(info.value)
        finally:
            await ex.close()


async def test_lost_answers_are_outcome_unknown(fake_binance: FakeBinance) -> None:
    ex = make(fake_binance, timeout_ms=300)
    try:
        await ex.load_markets()
        for mode in ("timeout", "disconnect", "5xx"):
            fake_binance.fail_orders_after_accept(count=1, mode=mode, hang_seconds=3)
            with pytest.raises(OutcomeUnknown):
                await ex.create_order(order(f"lost-{mode}", qty="0.001"))
            found = await ex.fetch_order(f"lost-{mode}", "BTC/USDT")
            assert found is not None and found.status is OrderStatus.FILLED
        fake_binance.fail_requests(status=503, count=1)
        with pytest.raises(TransientError) as info:
            await ex.fetch_balances()
        assert not isinstance(info.value, OutcomeUnknown)
    finally:
        await ex.close()


async def test_rate_limit_carries_retry_after(fake_binance: FakeBinance,
                                              binance: BinanceExchange) -> None:
    fake_binance.rate_limit(count=1, retry_after=9, status=429)
    with pytest.raises(RateLimited) as info:
        await binance.server_time_ms()
    assert info.value.retry_after == 9
    fake_binance.rate_limit(count=1, retry_after=60, status=418)
    with pytest.raises(RateLimited) as info:
        await binance.fetch_balances()
    assert info.value.retry_after == 60
    await binance.server_time_ms()
    assert binance.used_weight_1m is not None and binance.used_weight_1m >= 1


async def test_invalid_nonce_resyncs_time(fake_binance: FakeBinance,
                                          binance: BinanceExchange) -> None:
    fake_binance.set_clock_skew(-20_000)
    with pytest.raises(TransientError, match="-1021"):
        await binance.fetch_balances()
    assert (await binance.fetch_balances())["USDT"].free == Decimal("10000")


async def test_api_restrictions(fake_binance: FakeBinance, binance: BinanceExchange) -> None:
    r = await binance.api_restrictions()
    assert r["enableWithdrawals"] is False
    fake_binance.state.api_restrictions["enableWithdrawals"] = True
    assert (await binance.fetch_api_restrictions())["enableWithdrawals"] is True


async def test_fills_since_a_time_are_all_returned_once(fake_binance: FakeBinance,
                                                        binance: BinanceExchange) -> None:
    fake_binance.set_balance("USDT", "10000000")
    day = 86_400_000
    for i in range(4):  # trades spread over four days of market time
        fake_binance.set_market_time(T0 + 3_600_000 + i * day)
        await binance.create_order(order(f"kt-day-{i}", qty="0.001"))
    fills = await binance.fetch_fills("BTC/USDT", since_ms=T0)
    assert [f.client_order_id for f in fills] == [f"kt-day-{i}" for i in range(4)]
    assert fills[1].ts_ms == T0 + 3_600_000 + day  # stamped with market time
    later = await binance.fetch_fills("BTC/USDT", since_ms=T0 + 2 * day)
    assert [f.client_order_id for f in later] == ["kt-day-2", "kt-day-3"]
    assert await binance.fetch_fills("BTC/USDT", since_ms=T0 + 9 * day) == []


async def test_key_revoked_mid_run_is_authentication_failure(
    fake_binance: FakeBinance, binance: BinanceExchange
) -> None:
    await binance.fetch_balances()  # ccxt now believes the key is good
    fake_binance.api_key = "rotated-elsewhere"
    with pytest.raises(AuthenticationFailed):
        await binance.fetch_balances()


async def test_error_messages_carry_no_credentials(fake_binance: FakeBinance,
                                                   binance: BinanceExchange) -> None:
    import re

    fake_binance.fail_requests(status=502, count=1, path="/api/v3/account")
    with pytest.raises(TransientError) as info:
        await binance.fetch_balances()
    text = str(info.value)
    assert "/api/v3/account" in text  # still says what failed
    assert not re.search(r"signature=[0-9a-f]{16}", text)
    assert fake_binance.api_key not in text and fake_binance.secret not in text


async def test_partial_fills_of_a_resting_limit_order(fake_binance: FakeBinance,
                                                      binance: BinanceExchange) -> None:
    fake_binance.set_price("BTCUSDT", "60000")
    fake_binance.set_liquidity("BTCUSDT", "0.004")
    await binance.create_order(order("kt-part", type_=OrderType.LIMIT, price="59000"))
    fake_binance.set_price("BTCUSDT", "58900")
    part = await binance.fetch_order("kt-part", "BTC/USDT")
    assert part is not None and part.status is OrderStatus.PARTIALLY_FILLED
    assert part.filled_quantity == Decimal("0.004") and part.remaining == Decimal("0.006")
    fake_binance.set_price("BTCUSDT", "58800")
    fake_binance.set_price("BTCUSDT", "58700")
    done = await binance.fetch_order("kt-part", "BTC/USDT")
    assert done is not None and done.status is OrderStatus.FILLED
    fills = await binance.fetch_fills("BTC/USDT")
    assert [f.quantity for f in fills] == [Decimal("0.004"), Decimal("0.004"), Decimal("0.002")]
    assert {f.price for f in fills} == {Decimal("59000")}
    assert (await binance.fetch_balances())["USDT"].locked == 0
