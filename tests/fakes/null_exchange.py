"""An ExchangeClient that answers everything at once with nothing: the base for
in-memory exchanges that script only the calls a test or benchmark is about."""

from __future__ import annotations

from decimal import Decimal

from kubetrade.domain.models import Balance, Candle, Fill, MarketInfo, Order, OrderStatus


class NullExchange:
    name = "null"

    async def load_markets(self) -> dict[str, MarketInfo]:
        return {}

    async def fetch_candles(
        self, symbol: str, timeframe: str, since_ms: int | None = None, limit: int = 500
    ) -> list[Candle]:
        return []

    async def fetch_last_price(self, symbol: str) -> Decimal:
        return Decimal(1)

    async def fetch_balances(self) -> dict[str, Balance]:
        return {}

    async def create_order(self, order: Order) -> Order:
        order.status = OrderStatus.FILLED
        return order

    async def fetch_order(self, client_order_id: str, symbol: str) -> Order | None:
        return None

    async def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        return []

    async def cancel_order(self, client_order_id: str, symbol: str) -> Order:
        raise NotImplementedError

    async def fetch_fills(self, symbol: str, since_ms: int | None = None) -> list[Fill]:
        return []

    async def server_time_ms(self) -> int:
        return 0

    async def close(self) -> None:
        return None
