"""CandleFeed over BinanceExchange and the fake server, with the test clock driving the
fake's market time: each closed bar exactly once and only after its close, a missed
stretch back-filled in order, holes in the exchange's data recorded, stale data refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from kubetrade.domain.clock import ManualClock
from kubetrade.domain.models import Candle, Order, OrderType, Side
from kubetrade.exchange.binance import BinanceExchange
from kubetrade.exchange.feed import CandleFeed, Gap, StaleData
from kubetrade.exchange.resilient import ResilientExchange
from tests.fakes.binance import FakeBinance
from tests.fakes.binance.data import Series

T0 = 1726876800000  # 2024-09-21 00:00 UTC, first 1m BTCUSDT bar
M = 60_000


class MarketClock(ManualClock):
    """The test's clock is also the fake exchange's market clock."""

    def __init__(self, fake: FakeBinance, start_ms: int) -> None:
        super().__init__(start_ms)
        self.fake = fake
        self.follow = True  # False: the exchange's market stops while time goes on
        fake.set_market_time(start_ms)

    def advance(self, seconds: float) -> None:
        super().advance(seconds)
        if self.follow:
            self.fake.set_market_time(self.now_ms())


@pytest.fixture
async def env(fake_binance: FakeBinance) -> AsyncIterator[tuple[FakeBinance, MarketClock,
                                                                BinanceExchange]]:
    clock = MarketClock(fake_binance, T0 + 30 * M + 5_000)
    ex = BinanceExchange(api_key=fake_binance.api_key, secret=fake_binance.secret,
                         base_url=fake_binance.url, clock=clock, timeout_ms=1000)
    try:
        yield fake_binance, clock, ex
    finally:
        await ex.close()


async def take(feed: CandleFeed, n: int, clock: ManualClock) -> list[Candle]:
    out = []
    for _ in range(n):
        c = await feed.next()
        assert clock.now_ms() >= c.ts_ms + feed.tf_ms, "yielded before the bar closed"
        out.append(c)
    return out


async def test_closed_bars_in_order_exactly_once(env: tuple[FakeBinance, MarketClock,
                                                            BinanceExchange]) -> None:
    fake, clock, ex = env
    feed = CandleFeed(ex, "BTC/USDT", "1m", clock, since_ms=T0)
    bars = await take(feed, 60, clock)  # 30 back-filled, then 30 live
    assert [c.ts_ms for c in bars] == [T0 + i * M for i in range(60)]
    assert bars[0].open == Decimal("63201.05")
    assert feed.gaps == []
    assert not feed.is_fresh(bars[0]) and feed.is_fresh(bars[-1])
    assert feed.last_lag_ms is not None and 0 <= feed.last_lag_ms <= 2_000
    # one klines call per live bar, not a busy loop
    assert fake.count("GET", "/api/v3/klines") <= 32


async def test_starts_from_now_with_warmup_history(env: tuple[FakeBinance, MarketClock,
                                                              BinanceExchange]) -> None:
    _, clock, ex = env
    feed = CandleFeed(ex, "BTC/USDT", "5m", clock, history=3)
    bars = await take(feed, 4, clock)
    # at 00:30:05 the closed 5m bars end with 00:25; then the 00:30 bar once it closes
    assert [c.ts_ms for c in bars] == [T0 + 15 * M, T0 + 20 * M, T0 + 25 * M, T0 + 30 * M]
    assert clock.now_ms() >= T0 + 35 * M


async def test_outage_is_backfilled_in_order_and_flagged_stale(
    env: tuple[FakeBinance, MarketClock, BinanceExchange],
) -> None:
    fake, clock, ex = env
    feed = CandleFeed(ex, "BTC/USDT", "1m", clock, retry_s=20)
    first = await feed.next()
    fake.start_outage("refuse")
    stale: list[StaleData] = []
    while clock.now_ms() < first.ts_ms + 12 * M:
        try:
            await feed.next()
            pytest.fail("no bar can arrive during the outage")
        except StaleData as e:
            stale.append(e)
    assert stale and stale[0].lag_ms > 3 * M
    fake.end_outage()
    after = [await feed.next() for _ in range(12)]
    assert [c.ts_ms for c in after] == [first.ts_ms + (i + 1) * M for i in range(12)]
    assert feed.backfilled >= 10
    assert not feed.is_fresh(after[0]) and feed.is_fresh(after[-1])
    assert feed.errors > 0


async def test_exchange_holes_are_recorded_as_gaps(env: tuple[FakeBinance, MarketClock,
                                                              BinanceExchange]) -> None:
    fake, clock, ex = env
    series = fake.state.series["BTCUSDT"]
    holed = Series()
    holed.add("1m", [b for b in series.base["1m"]
                     if not (T0 + 5 * M <= b.open_ms < T0 + 8 * M)])
    fake.state.series["BTCUSDT"] = holed
    seen: list[Gap] = []
    feed = CandleFeed(ex, "BTC/USDT", "1m", clock, since_ms=T0, on_gap=seen.append)
    bars = await take(feed, 10, clock)
    assert [c.ts_ms for c in bars][4:6] == [T0 + 4 * M, T0 + 8 * M]
    assert feed.gaps == seen == [Gap(T0 + 5 * M, T0 + 8 * M)]


async def test_frozen_exchange_data_is_refused_as_stale(
    env: tuple[FakeBinance, MarketClock, BinanceExchange],
) -> None:
    _, clock, ex = env
    feed = CandleFeed(ex, "BTC/USDT", "1m", clock, max_stale_intervals=3, retry_s=30)
    await feed.next()
    clock.follow = False  # the exchange stops producing bars; our time goes on
    with pytest.raises(StaleData, match="timeframes"):
        for _ in range(20):
            await feed.next()
    assert feed.lag_ms is not None and feed.lag_ms > 3 * M


async def test_feed_over_resilient_exchange(env: tuple[FakeBinance, MarketClock,
                                                       BinanceExchange]) -> None:
    fake, clock, ex = env
    res = ResilientExchange(ex, clock)
    feed = CandleFeed(res, "BTC/USDT", "1m", clock, since_ms=T0 + 20 * M)
    fake.fail_requests(status=502, count=2, path="/api/v3/klines")
    bars = await take(feed, 15, clock)
    assert [c.ts_ms for c in bars] == [T0 + (20 + i) * M for i in range(15)]


async def test_live_replay_mode_serves_recorded_bars_as_current(
    fake_binance: FakeBinance,
) -> None:
    from kubetrade.domain.clock import SystemClock

    clock = SystemClock()
    fake_binance.run_market_live(warmup_minutes=30)
    ex = BinanceExchange(api_key=fake_binance.api_key, secret=fake_binance.secret,
                         base_url=fake_binance.url, clock=clock)
    try:
        feed = CandleFeed(ex, "BTC/USDT", "1m", clock, history=5)
        bars = await take(feed, 5, clock)  # type: ignore[arg-type]
        assert [b.ts_ms - bars[0].ts_ms for b in bars] == [i * M for i in range(5)]
        assert feed.is_fresh(bars[-1]) and 0 <= (feed.last_lag_ms or 0) < 2 * M
        shift = fake_binance.state.market_clock.shift_ms
        recorded = fake_binance.state.series["BTCUSDT"].base["1m"]
        first = next(b for b in recorded if b.open_ms == bars[0].ts_ms - shift)
        assert bars[0].close == first.close  # the recording, moved to the present
        placed = await ex.create_order(Order("kt-live", "s", "BTC/USDT", Side.BUY,
                                             OrderType.MARKET, Decimal("0.001")))
        fills = await ex.fetch_fills("BTC/USDT", since_ms=bars[0].ts_ms)
        assert [f.client_order_id for f in fills] == ["kt-live"]
        assert abs(fills[0].ts_ms - clock.now_ms()) < 60_000  # stamped in the present
        assert placed.status.value == "filled"
    finally:
        await ex.close()
