"""FeePricer: a third-asset fee valued at the exchange's price at the fill's time, from
the ticker (fresh fill), the fill's 1-minute candle (old fill) or, when the exchange
cannot answer, the nearest cached price marked as an estimate; no price: None."""

from __future__ import annotations

from decimal import Decimal as D

from kubetrade.domain.clock import ManualClock
from kubetrade.domain.models import Candle
from kubetrade.exchange.base import TransientError
from kubetrade.exchange.fee_prices import FeePricer
from kubetrade.exchange.paper import default_market

T = 1_700_000_040_000  # a minute boundary


class Exchange:
    """The two reads FeePricer makes, answering from ``ticker`` / ``candles`` or failing."""

    def __init__(self) -> None:
        self.ticker_price: D | None = D("600")
        self.candles: dict[int, D] = {}
        self.calls: list[str] = []

    async def ticker(self, symbol: str) -> D:
        self.calls.append(f"ticker {symbol}")
        if self.ticker_price is None:
            raise TransientError("down")
        return self.ticker_price

    async def klines(self, symbol: str, tf: str, since: int | None, limit: int) -> list[Candle]:
        self.calls.append(f"klines {symbol} {tf} {since} {limit}")
        if since not in self.candles:
            raise TransientError("down")
        c = self.candles[since]
        return [Candle(since, c, c, c, c, D(1))]


def pricer(ex: Exchange, now: int) -> FeePricer:
    return FeePricer(ex.ticker, ex.klines, ManualClock(now))


async def test_fresh_fill_uses_the_ticker_once_then_the_cache() -> None:
    ex = Exchange()
    p = pricer(ex, T + 1_000)
    assert await p.value("BNB", "USDT", D("0.0075"), T) == (D("4.5000"), False)
    assert await p.value("BNB", "USDT", D("0.01"), T + 30_000) == (D("6.00"), False)
    assert ex.calls == ["ticker BNB/USDT"]


async def test_old_fill_uses_its_minute_candle() -> None:
    ex = Exchange()
    ex.candles[T] = D("550")
    p = pricer(ex, T + 3_600_000)
    assert await p.value("BNB", "USDT", D("0.01"), T + 12_345) == (D("5.50"), False)
    assert ex.calls == [f"klines BNB/USDT 1m {T} 1"]


async def test_exchange_down_stale_cache_is_an_estimate_and_nothing_is_none() -> None:
    ex = Exchange()
    p = pricer(ex, T)
    assert await p.value("BNB", "USDT", D("1"), T) == (D("600"), False)
    ex.ticker_price = None
    later = FeePricer(ex.ticker, ex.klines, ManualClock(T + 3_600_000))
    assert await later.value("BNB", "USDT", D("1"), T + 3_600_000) is None
    later._prices = p._prices  # the same cache, an hour on: only a stale price is known
    assert await later.value("BNB", "USDT", D("1"), T + 3_600_000) == (D("600"), True)


async def test_fees_in_base_or_quote_are_left_to_the_books() -> None:
    ex = Exchange()
    p = pricer(ex, T)
    m = default_market("BTC/USDT")
    assert await p.for_fill(m, D("0.1"), "USDT", T) is None
    assert await p.for_fill(m, D("0.001"), "BTC", T) is None
    assert await p.for_fill(m, D("0"), "BNB", T) is None
    assert await p.for_fill(m, D("0.001"), "BNB", T) == (D("0.600"), False)
    assert ex.calls == ["ticker BNB/USDT"]
