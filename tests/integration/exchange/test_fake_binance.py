"""The fake Binance speaks the protocol the real ccxt client expects: markets, candles,
signed account calls, orders by client id, and every injectable fault surfaces as the
ccxt error a real Binance would cause."""

from __future__ import annotations

from decimal import Decimal

import ccxt.async_support as ccxt
import pytest

from tests.fakes.binance import FakeBinance

from .conftest import ccxt_client

T0 = 1726876800000  # 2024-09-21 00:00 UTC, first bar of the 1m BTCUSDT file


async def test_markets_carry_binance_filters(fake_binance: FakeBinance,
                                             raw_ccxt: ccxt.binance) -> None:
    markets = await raw_ccxt.load_markets()
    btc = markets["BTC/USDT"]
    assert btc["precision"]["price"] == 0.01
    assert btc["precision"]["amount"] == 0.00001
    assert btc["limits"]["cost"]["min"] == 5.0
    assert markets["ETH/BTC"]["limits"]["cost"]["min"] == 0.0001  # MIN_NOTIONAL filter
    assert fake_binance.count("GET", "/api/v3/exchangeInfo") == 1
    assert fake_binance.count("GET", "/sapi/v1/capital/config/getall") == 0


async def test_klines_honour_market_time_and_window(fake_binance: FakeBinance,
                                                    raw_ccxt: ccxt.binance) -> None:
    fake_binance.set_market_time(T0 + 10 * 60_000 + 30_000)  # 00:10:30
    bars = await raw_ccxt.fetch_ohlcv("BTC/USDT", "1m", limit=500)
    assert bars[0][0] == T0
    assert bars[-1][0] == T0 + 10 * 60_000  # the forming bar, nothing after it
    assert len(bars) == 11
    window = await raw_ccxt.fetch_ohlcv("BTC/USDT", "1m", since=T0 + 120_000, limit=3)
    assert [b[0] for b in window] == [T0 + 120_000, T0 + 180_000, T0 + 240_000]
    five = await raw_ccxt.fetch_ohlcv("BTC/USDT", "5m", since=T0, limit=2)
    ones = bars[:5]
    assert five[0][1] == ones[0][1] and five[0][4] == ones[4][4]
    assert five[0][2] == max(b[2] for b in ones)


async def test_signed_calls_check_key_signature_and_timestamp(fake_binance: FakeBinance) -> None:
    bad_key = ccxt_client(fake_binance, api_key="not-the-key")
    bad_sig = ccxt_client(fake_binance, secret="not-the-secret")
    try:
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await bad_key.fetch_balance()
        with pytest.raises(ccxt.AuthenticationError, match="-1022"):
            await bad_sig.fetch_balance()
    finally:
        await bad_key.close()
        await bad_sig.close()


async def test_clock_skew_is_invalid_nonce(fake_binance: FakeBinance,
                                           raw_ccxt: ccxt.binance) -> None:
    fake_binance.set_clock_skew(-30_000)  # server 30 s behind: the client looks ahead
    with pytest.raises(ccxt.InvalidNonce, match="-1021"):
        await raw_ccxt.fetch_balance()
    await raw_ccxt.load_time_difference()
    assert (await raw_ccxt.fetch_balance())["USDT"]["free"] == 10000.0
    fake_binance.timestamp_errors(count=1)
    with pytest.raises(ccxt.InvalidNonce, match="-1021"):
        await raw_ccxt.fetch_balance()


async def test_duplicate_client_id_and_lookup(fake_binance: FakeBinance,
                                              raw_ccxt: ccxt.binance) -> None:
    fake_binance.set_market_time(T0 + 3_600_000)
    o = await raw_ccxt.create_order("BTC/USDT", "market", "buy", 0.01,
                                    params={"newClientOrderId": "kt-a-1"})
    assert o["status"] == "closed" and o["filled"] == 0.01
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        await raw_ccxt.create_order("BTC/USDT", "market", "buy", 0.01,
                                    params={"newClientOrderId": "kt-a-1"})
    found = await raw_ccxt.fetch_order(None, "BTC/USDT", params={"origClientOrderId": "kt-a-1"})
    assert found["id"] == o["id"]
    with pytest.raises(ccxt.OrderNotFound):
        await raw_ccxt.fetch_order(None, "BTC/USDT", params={"origClientOrderId": "nope"})
    assert len(fake_binance.state.orders_by_client_id("kt-a-1")) == 1


async def test_limit_order_rests_then_fills_when_price_crosses(
    fake_binance: FakeBinance, raw_ccxt: ccxt.binance
) -> None:
    fake_binance.set_price("BTCUSDT", "60000")
    o = await raw_ccxt.create_order("BTC/USDT", "limit", "buy", 0.01, 59000,
                                    params={"newClientOrderId": "lim-1"})
    assert o["status"] == "open"
    bal = await raw_ccxt.fetch_balance()
    assert bal["USDT"]["used"] == 590.0
    fake_binance.set_price("BTCUSDT", "58900")
    filled = await raw_ccxt.fetch_order(None, "BTC/USDT", params={"origClientOrderId": "lim-1"})
    assert filled["status"] == "closed"
    assert filled["average"] == 59000.0
    trades = await raw_ccxt.fetch_my_trades("BTC/USDT")
    assert [t["order"] for t in trades] == [o["id"]]


async def test_insufficient_balance_is_insufficient_funds(
    fake_binance: FakeBinance, raw_ccxt: ccxt.binance
) -> None:
    fake_binance.set_price("BTCUSDT", "60000")
    with pytest.raises(ccxt.InsufficientFunds):
        await raw_ccxt.create_order("BTC/USDT", "market", "buy", 1,
                                    params={"newClientOrderId": "big-1"})
    assert fake_binance.state.orders == {}


async def test_timeout_after_accept_creates_the_order(fake_binance: FakeBinance) -> None:
    ex = ccxt_client(fake_binance, timeout_ms=300)
    try:
        await ex.load_markets()
        fake_binance.fail_orders_after_accept(count=1, mode="timeout", hang_seconds=5)
        with pytest.raises(ccxt.RequestTimeout):
            await ex.create_order("BTC/USDT", "market", "buy", 0.001,
                                  params={"newClientOrderId": "lost-1"})
        assert [o.status for o in fake_binance.state.orders_by_client_id("lost-1")] == ["FILLED"]
        fake_binance.fail_orders_after_accept(count=1, mode="disconnect")
        with pytest.raises(ccxt.NetworkError):
            await ex.create_order("BTC/USDT", "market", "buy", 0.001,
                                  params={"newClientOrderId": "lost-2"})
        assert len(fake_binance.state.orders_by_client_id("lost-2")) == 1
        fake_binance.fail_orders_after_accept(count=1, mode="5xx")
        with pytest.raises(ccxt.ExchangeNotAvailable):
            await ex.create_order("BTC/USDT", "market", "buy", 0.001,
                                  params={"newClientOrderId": "lost-3"})
        assert len(fake_binance.state.orders_by_client_id("lost-3")) == 1
    finally:
        await ex.close()


async def test_rate_limit_and_ban_carry_retry_after(fake_binance: FakeBinance,
                                                    raw_ccxt: ccxt.binance) -> None:
    fake_binance.rate_limit(count=1, retry_after=7, status=429)
    with pytest.raises(ccxt.DDoSProtection, match="429"):
        await raw_ccxt.fetch_time()
    assert raw_ccxt.last_response_headers["Retry-After"] == "7"
    fake_binance.rate_limit(count=1, retry_after=120, status=418)
    with pytest.raises(ccxt.DDoSProtection, match="418"):
        await raw_ccxt.fetch_time()
    assert await raw_ccxt.fetch_time() > 0
    assert int(raw_ccxt.last_response_headers["X-MBX-USED-WEIGHT-1M"]) >= 3


async def test_5xx_and_outage(fake_binance: FakeBinance, raw_ccxt: ccxt.binance) -> None:
    fake_binance.fail_requests(status=502, count=1)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await raw_ccxt.fetch_time()
    assert await raw_ccxt.fetch_time() > 0  # kept-alive connection open
    fake_binance.start_outage("refuse")
    with pytest.raises(ccxt.NetworkError):
        await raw_ccxt.fetch_time()
    with pytest.raises(ccxt.NetworkError):
        await raw_ccxt.fetch_time()
    fake_binance.end_outage()
    assert await raw_ccxt.fetch_time() > 0
    fake_binance.start_outage("503")
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await raw_ccxt.fetch_time()
    fake_binance.end_outage()
    assert await raw_ccxt.fetch_time() > 0


async def test_open_orders_cancel_all_and_api_restrictions(
    fake_binance: FakeBinance, raw_ccxt: ccxt.binance
) -> None:
    fake_binance.set_price("BTCUSDT", "60000")
    for i in range(3):
        await raw_ccxt.create_order("BTC/USDT", "limit", "buy", 0.001, 50000 + i,
                                    params={"newClientOrderId": f"rest-{i}"})
    assert len(await raw_ccxt.fetch_open_orders("BTC/USDT")) == 3
    await raw_ccxt.cancel_all_orders("BTC/USDT")
    assert await raw_ccxt.fetch_open_orders("BTC/USDT") == []
    bal = await raw_ccxt.fetch_balance()
    assert bal["USDT"]["free"] == 10000.0 and bal["USDT"]["used"] == 0.0
    r = await raw_ccxt.sapi_get_account_apirestrictions()
    assert r["enableWithdrawals"] is False and r["enableSpotAndMarginTrading"] is True


@pytest.mark.fake_binance(client_id_reuse="after_close", balances={"USDT": Decimal("700")})
async def test_marker_options_and_binance_client_id_reuse(fake_binance: FakeBinance,
                                                          raw_ccxt: ccxt.binance) -> None:
    fake_binance.set_price("BTCUSDT", "60000")
    assert (await raw_ccxt.fetch_balance())["USDT"]["free"] == 700.0
    await raw_ccxt.create_order("BTC/USDT", "market", "buy", 0.001,
                                params={"newClientOrderId": "reuse-1"})
    # documented Binance behaviour: unique among *open* orders only
    await raw_ccxt.create_order("BTC/USDT", "market", "buy", 0.001,
                                params={"newClientOrderId": "reuse-1"})
    assert fake_binance.state.duplicate_client_ids() == ["reuse-1"]
    await raw_ccxt.create_order("BTC/USDT", "limit", "buy", 0.001, 50000,
                                params={"newClientOrderId": "open-1"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        await raw_ccxt.create_order("BTC/USDT", "limit", "buy", 0.001, 50000,
                                    params={"newClientOrderId": "open-1"})


async def test_control_endpoint_for_other_processes(fake_binance: FakeBinance) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as s:
        async with s.post(f"{fake_binance.url}/_fake/control",
                          json={"op": "set_price", "symbol": "BTCUSDT", "price": "12345"}) as r:
            assert r.status == 200
        async with s.post(f"{fake_binance.url}/_fake/control",
                          json={"op": "start_outage", "mode": "503"}) as r:
            assert r.status == 200
        async with s.get(f"{fake_binance.url}/api/v3/ping") as r:
            assert r.status == 503
        async with s.post(f"{fake_binance.url}/_fake/control", json={"op": "end_outage"}) as r:
            assert r.status == 200
        async with s.get(f"{fake_binance.url}/api/v3/ticker/price?symbol=BTCUSDT") as r:
            assert (await r.json())["price"] == "12345.00000000"
        async with s.get(f"{fake_binance.url}/_fake/state") as r:
            state = await r.json()
        assert state["requests"]["GET /api/v3/ping"] == 1
        assert state["outage"] is None and state["duplicates"] == []
        async with s.post(f"{fake_binance.url}/_fake/control", json={"op": "stop"}) as r:
            assert r.status == 400  # only the listed operations


async def test_outage_with_duration_ends_by_itself(fake_binance: FakeBinance,
                                                   raw_ccxt: ccxt.binance) -> None:
    import asyncio
    import time

    fake_binance.start_outage("refuse", duration_s=0.5)
    with pytest.raises(ccxt.NetworkError):
        await raw_ccxt.fetch_time()
    deadline = time.monotonic() + 10
    while fake_binance.in_outage:
        assert time.monotonic() < deadline, "outage did not end"
        await asyncio.sleep(0.05)
    assert await raw_ccxt.fetch_time() > 0


async def test_interval_built_from_the_recording_covering_market_time(
    fake_binance: FakeBinance, raw_ccxt: ccxt.binance
) -> None:
    # the 1h file is August; on 21 September the 1h bars come from the 1m file
    fake_binance.set_market_time(T0 + 2 * 3_600_000 + 90_000)
    bars = await raw_ccxt.fetch_ohlcv("BTC/USDT", "1h", limit=3)
    assert [b[0] for b in bars] == [T0, T0 + 3_600_000, T0 + 7_200_000]
    minute = await raw_ccxt.fetch_ohlcv("BTC/USDT", "1m", since=T0 + 7_200_000, limit=2)
    assert bars[-1][1] == minute[0][1]  # forming hour: opened with its first minute
    assert bars[-1][4] == minute[1][4]  # and its close is the latest minute so far
    fake_binance.set_market_time(1722470400000 + 5 * 3_600_000)  # 2024-08-01 05:00
    august = await raw_ccxt.fetch_ohlcv("BTC/USDT", "1h", limit=500)
    assert august[0][0] == 1722470400000 and len(august) == 6
