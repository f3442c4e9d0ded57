"""Fees paid in a third asset (BNB), valued in the quote asset at the fill's time.

Binance takes the commission in BNB when "pay fees with BNB" is on; the books need
its value in the strategy's quote asset. The price is the exchange's own: the ticker
of ``<asset>/<quote>`` for a fill of the last minute, the 1-minute candle that holds
the fill's time for an older one (a fill read back after a restart). Every price is
cached with the time it is valid for. When the exchange cannot answer, the nearest
cached price is used and the value is marked as an estimate; with no price at all the
fee stays unvalued (``None``), and the books say so on the trade.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal

from kubetrade.domain.clock import Clock
from kubetrade.domain.models import Candle, MarketInfo
from kubetrade.exchange.base import ExchangeError

log = logging.getLogger(__name__)

#: A price this close (ms) to the fill's time is the price at the fill's time.
FRESH_MS = 60_000

Ticker = Callable[[str], Awaitable[Decimal]]
Candles = Callable[[str, str, int | None, int], Awaitable[list[Candle]]]


class FeePricer:
    """Quote value of a fee in another asset: ``await value(asset, quote, amount, ts_ms)``.

    ``ticker(symbol)`` is the exchange's last price, ``candles(symbol, "1m", since_ms,
    limit)`` its closed 1-minute candles; both raise ``ExchangeError`` on failure.
    """

    def __init__(self, ticker: Ticker, candles: Candles, clock: Clock) -> None:
        self._ticker = ticker
        self._candles = candles
        self._clock = clock
        #: symbol -> [(valid at ms, price)], kept sorted by time (a few per symbol)
        self._prices: dict[str, list[tuple[int, Decimal]]] = {}

    async def for_fill(
        self, market: MarketInfo, fee: Decimal, asset: str, ts_ms: int
    ) -> tuple[Decimal, bool] | None:
        """A fill's fee in ``market``: (quote value, estimated) when it is paid in a
        third asset, else None (a fee in base or quote is valued by the books)."""
        if fee <= 0 or not asset or asset in (market.base, market.quote):
            return None
        return await self.value(asset, market.quote, fee, ts_ms)

    async def value(
        self, asset: str, quote: str, amount: Decimal, ts_ms: int
    ) -> tuple[Decimal, bool] | None:
        """(``amount`` of ``asset`` in ``quote``, estimated) at ``ts_ms``; None: no price."""
        symbol = f"{asset}/{quote}"
        cached = self._nearest(symbol, ts_ms)
        if cached is not None and abs(cached[0] - ts_ms) <= FRESH_MS:
            return amount * cached[1], False
        try:
            price = await self._fetch(symbol, ts_ms)
        except ExchangeError as exc:
            log.warning("fee price %s at %d not known: %s", symbol, ts_ms, exc)
            price = None
        if price is not None:
            return amount * price, False
        if cached is None:
            return None
        return amount * cached[1], True

    async def _fetch(self, symbol: str, ts_ms: int) -> Decimal | None:
        """The exchange's price at ``ts_ms`` (cached); None when it has none."""
        now = self._clock.now_ms()
        if now - ts_ms <= FRESH_MS:
            price = await self._ticker(symbol)
            self._remember(symbol, now, price)
            return price
        minute = ts_ms - ts_ms % 60_000
        rows = await self._candles(symbol, "1m", minute, 1)
        if not rows or rows[0].ts_ms != minute:
            return None
        self._remember(symbol, ts_ms, rows[0].close)
        return rows[0].close

    def _nearest(self, symbol: str, ts_ms: int) -> tuple[int, Decimal] | None:
        known = self._prices.get(symbol)
        if not known:
            return None
        return min(known, key=lambda p: abs(p[0] - ts_ms))

    def _remember(self, symbol: str, ts_ms: int, price: Decimal) -> None:
        known = self._prices.setdefault(symbol, [])
        known.append((ts_ms, price))
        known.sort()
        del known[:-64]  # the latest 64 prices per symbol are plenty
