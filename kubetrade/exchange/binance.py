"""Binance spot through ccxt's async client, behind our ExchangeClient interface.

Why ccxt and not our own HTTP code: its request signing, market metadata and error
mapping are maintained against the live exchange. We call its implicit endpoints for
reads so that prices and quantities reach us as Binance's decimal strings (ccxt's
unified parsers turn them into floats), and its unified ``create_order`` for writes
(precision, time-in-force and response type handled there).

Every ccxt error leaves this module as one of ours (base.py), with any signature,
key or secret scrubbed from the message. Which errors are retryable, and what a lost
order answer means, is decided here once: a network failure while *placing* an order
becomes ``OutcomeUnknown``, never a plain retryable error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

import ccxt.async_support as ccxt

from kubetrade.domain.clock import Clock, SystemClock
from kubetrade.domain.models import (
    ZERO,
    Balance,
    Candle,
    Fill,
    MarketInfo,
    Order,
    OrderStatus,
    OrderType,
    Side,
)
from kubetrade.domain.timeframes import timeframe_ms
from kubetrade.exchange.base import (
    AuthenticationFailed,
    BadSymbol,
    DuplicateOrder,
    ExchangeError,
    InsufficientFunds,
    OrderNotFound,
    OrderRejected,
    OutcomeUnknown,
    RateLimited,
    TransientError,
)
from kubetrade.exchange.fee_prices import FeePricer

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Binance order status -> ours
_STATUS: dict[str, OrderStatus] = {
    "NEW": OrderStatus.OPEN,
    "PENDING_NEW": OrderStatus.OPEN,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "PENDING_CANCEL": OrderStatus.OPEN,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}

_SCRUB = re.compile(r"(signature|apiKey|secret|X-MBX-APIKEY)=?[\"':\s]*[A-Za-z0-9+/=_-]{8,}",
                    re.IGNORECASE)


def _dec(value: Any) -> Decimal:
    if value is None or value == "":
        return ZERO
    return Decimal(str(value))


def _order_type(info: dict[str, Any]) -> OrderType:
    """Our type of a Binance order answer (STOP_LOSS_LIMIT kept; other kinds: LIMIT)."""
    kind = str(info.get("type", "")).lower()
    return OrderType(kind) if kind in ("market", "limit", "stop_loss_limit") else OrderType.LIMIT


def _error_code(message: str) -> str | None:
    m = re.search(r'"code"\s*:\s*(-?\d+)', message)
    return m.group(1) if m else None


class BinanceExchange:
    """ExchangeClient over ``ccxt.async_support.binance``.

    ``testnet`` uses ccxt's sandbox URLs (testnet.binance.vision); ``base_url`` (e.g. the
    fake server in tests, env KUBETRADE_EXCHANGE_URL) replaces the host of *every* API
    URL entry and wins over ``testnet``. Keys are held by ccxt only; nothing here logs
    them, and error messages are scrubbed.
    """

    name = "binance"

    def __init__(
        self,
        api_key: str | None = None,
        secret: str | None = None,
        testnet: bool = True,
        base_url: str | None = None,
        clock: Clock | None = None,
        *,
        timeout_ms: int = 10_000,
        recv_window_ms: int = 5_000,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.testnet = testnet
        self.base_url = base_url.rstrip("/") if base_url else None
        self._secrets = [s for s in (api_key, secret) if s]
        self._ex = ccxt.binance({
            "apiKey": api_key or "",
            "secret": secret or "",
            "timeout": timeout_ms,
            # our ResilientExchange throttles by Binance weights with the injected clock
            "enableRateLimit": False,
            "options": {
                "defaultType": "spot",
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,  # /sapi capital/config: not needed, not on testnet
                "fetchMargins": False,
                "recvWindow": recv_window_ms,
                "warnOnFetchOpenOrdersWithoutSymbol": False,
            },
        })
        if self.base_url:
            api = self._ex.urls["api"]
            for key, url in list(api.items()):
                if isinstance(url, str) and "://" in url:
                    path = url.split("/", 3)[3] if url.count("/") >= 3 else ""
                    api[key] = f"{self.base_url}/{path}"
        elif testnet:
            self._ex.set_sandbox_mode(True)
        self._markets: dict[str, MarketInfo] = {}
        # orderId -> (client order id, strategy): myTrades does not carry client ids
        self._order_ids: dict[str, tuple[str, str]] = {}
        self._strategies: dict[str, str] = {}  # client order id -> strategy
        self.used_weight_1m: int | None = None
        self.on_weight: Callable[[int], None] | None = None
        self.on_order_count: Callable[[int], None] | None = None  # X-MBX-ORDER-COUNT-10S
        self.fee_pricer = FeePricer(self.fetch_last_price, self.fetch_candles, self.clock)

    # ---- plumbing ---------------------------------------------------------------
    @property
    def ccxt(self) -> ccxt.binance:
        """The underlying ccxt client (for tests and diagnostics)."""
        return self._ex

    def _scrub(self, text: str) -> str:
        text = _SCRUB.sub(lambda m: m.group(1) + "=***", text)
        for s in self._secrets:
            text = text.replace(s, "***")
        return text[:500]

    def _note_weight(self) -> None:
        headers = self._ex.last_response_headers or {}
        raw = None
        for k, v in headers.items():
            if k.lower() == "x-mbx-used-weight-1m":
                raw = v
        orders = next((v for k, v in headers.items() if k.lower() == "x-mbx-order-count-10s"),
                      None)
        if orders is not None and self.on_order_count is not None and str(orders).isdigit():
            self.on_order_count(int(orders))
        if raw is not None:
            try:
                self.used_weight_1m = int(raw)
            except ValueError:
                return
            if self.on_weight is not None:
                self.on_weight(self.used_weight_1m)

    def _retry_after(self) -> float | None:
        headers = self._ex.last_response_headers or {}
        for k, v in headers.items():
            if k.lower() == "retry-after":
                try:
                    return float(v)
                except ValueError:
                    return None
        return None

    def _map(self, e: Exception, placing: bool = False) -> ExchangeError:
        """Our error for a ccxt error. Order matters: subclasses before their bases."""
        msg = self._scrub(str(e))
        code = _error_code(msg)
        if code in ("-2015", "-2014", "-1022"):
            # ccxt turns -2015 after an earlier success into DDoSProtection (a temporary
            # ban, it guesses); a revoked or restricted key must stop trading, not wait
            return AuthenticationFailed(f"binance refused the API key or signature: {msg}")
        if isinstance(e, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
            return RateLimited(f"binance rate limit: {msg}", self._retry_after())
        if isinstance(e, ccxt.InvalidNonce):
            return TransientError(f"binance clock out of sync (-1021), re-synced: {msg}")
        if isinstance(e, ccxt.AuthenticationError):
            return AuthenticationFailed(f"binance refused the API key or signature: {msg}")
        if isinstance(e, ccxt.InsufficientFunds):
            return InsufficientFunds(f"binance: insufficient balance: {msg}")
        if isinstance(e, ccxt.DuplicateOrderId) or (
            code == "-2010" and "duplicate" in msg.lower()
        ):
            return DuplicateOrder(f"binance: client order id already used: {msg}")
        if isinstance(e, ccxt.OrderNotFound) or code in ("-2013", "-2011"):
            return OrderNotFound(f"binance: order not found: {msg}")
        if isinstance(e, ccxt.BadSymbol) or code == "-1121":
            return BadSymbol(f"binance: unknown symbol: {msg}")
        if isinstance(e, ccxt.InvalidOrder | ccxt.BadRequest | ccxt.OperationRejected):
            reason = "filter" if "Filter failure" in msg else (
                f"binance{code}" if code else "invalid"
            )
            return OrderRejected(f"binance rejected the request: {msg}", reason=reason)
        if isinstance(e, ccxt.OperationFailed):  # NetworkError family, 5xx, -1001/-1007
            if placing:
                return OutcomeUnknown(f"binance order outcome unknown ({type(e).__name__}): {msg}")
            return TransientError(f"binance unavailable ({type(e).__name__}): {msg}")
        if isinstance(e, ccxt.NotSupported):
            return ExchangeError(f"binance: not supported here: {msg}")
        return ExchangeError(f"binance error ({type(e).__name__}): {msg}")

    async def _call(self, fn: Callable[[], Awaitable[_T]], placing: bool = False) -> _T:
        try:
            result = await fn()
        except ccxt.BaseError as e:
            if isinstance(e, ccxt.InvalidNonce):
                await self.resync_time()
            raise self._map(e, placing) from None
        self._note_weight()
        return result

    async def resync_time(self) -> None:
        """Re-learn the offset to Binance's clock after -1021 (ccxt signs with
        ``now - timeDifference``)."""
        try:
            await self._ex.load_time_difference()
        except ccxt.BaseError as e:
            log.warning("binance time re-sync failed: %s", self._scrub(str(e)))

    def _market_id(self, symbol: str) -> str:
        try:
            return str(self._ex.market_id(symbol))
        except ccxt.BadSymbol:
            raise BadSymbol(f"symbol {symbol!r} is not a Binance spot market") from None

    async def _ensure_markets(self) -> None:
        if not self._markets:
            await self.load_markets()

    # ---- ExchangeClient -----------------------------------------------------------
    async def load_markets(self) -> dict[str, MarketInfo]:
        markets = await self._call(lambda: self._ex.load_markets(reload=bool(self._markets)))
        out: dict[str, MarketInfo] = {}
        for symbol, m in markets.items():
            if not m.get("spot") or not m.get("active", True):
                continue
            filters = {f["filterType"]: f for f in m["info"].get("filters", [])}
            price_f = filters.get("PRICE_FILTER", {})
            lot = filters.get("LOT_SIZE", {})
            notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
            max_qty = _dec(lot.get("maxQty"))
            out[symbol] = MarketInfo(
                symbol=symbol,
                base=m["base"],
                quote=m["quote"],
                price_step=_dec(price_f.get("tickSize")).normalize(),
                qty_step=_dec(lot.get("stepSize")).normalize(),
                min_qty=_dec(lot.get("minQty")).normalize(),
                min_notional=_dec(notional.get("minNotional")).normalize(),
                max_qty=max_qty.normalize() if max_qty else None,
            )
        self._markets = out
        return out

    async def fetch_candles(
        self, symbol: str, timeframe: str, since_ms: int | None = None, limit: int = 500
    ) -> list[Candle]:
        await self._ensure_markets()
        step = timeframe_ms(timeframe)
        req: dict[str, Any] = {
            "symbol": self._market_id(symbol),
            "interval": timeframe,
            "limit": max(1, min(limit, 1000)),
        }
        if since_ms is not None:
            req["startTime"] = since_ms
        rows = await self._call(lambda: self._ex.publicGetKlines(req))
        now = self.clock.now_ms()
        out: list[Candle] = []
        for r in rows:
            open_ms = int(r[0])
            if open_ms + step > now:  # still forming: not a closed candle
                continue
            out.append(Candle(open_ms, _dec(r[1]), _dec(r[2]), _dec(r[3]), _dec(r[4]),
                              _dec(r[5])))
        return out

    async def fetch_last_price(self, symbol: str) -> Decimal:
        await self._ensure_markets()
        req = {"symbol": self._market_id(symbol)}
        data = await self._call(lambda: self._ex.publicGetTickerPrice(req))
        return _dec(data["price"])

    async def fetch_balances(self) -> dict[str, Balance]:
        data = await self._call(lambda: self._ex.privateGetAccount({}))
        out: dict[str, Balance] = {}
        for b in data.get("balances", []):
            free, locked = _dec(b["free"]), _dec(b["locked"])
            out[b["asset"]] = Balance(b["asset"], free, locked)
        return out

    def _symbol_of(self, market_id: str) -> str:
        m = self._ex.markets_by_id.get(market_id) if self._ex.markets_by_id else None
        if m:
            first = m[0] if isinstance(m, list) else m
            return str(first["symbol"])
        return market_id

    def _to_order(self, info: dict[str, Any], template: Order | None = None) -> Order:
        cid = str(info.get("origClientOrderId") or info.get("clientOrderId") or "")
        executed = _dec(info.get("executedQty"))
        quote = _dec(info.get("cummulativeQuoteQty"))
        price = _dec(info.get("price"))
        oid = str(info.get("orderId"))
        strategy = template.strategy if template else self._strategies.get(cid, "")
        self._order_ids[oid] = (cid, strategy)
        if strategy:
            self._strategies[cid] = strategy
        created = int(info.get("time") or info.get("transactTime") or info.get("workingTime")
                      or 0)
        updated = int(info.get("updateTime") or info.get("transactTime") or created)
        return Order(
            client_order_id=cid,
            strategy=strategy,
            symbol=template.symbol if template else self._symbol_of(str(info.get("symbol"))),
            side=Side(str(info.get("side", "")).lower()),
            type=_order_type(info),
            quantity=_dec(info.get("origQty")),
            price=price if price > 0 else (template.price if template else None),
            status=_STATUS.get(str(info.get("status")), OrderStatus.OPEN),
            filled_quantity=executed,
            average_price=(quote / executed) if executed > 0 else None,
            exchange_order_id=oid,
            created_ms=template.created_ms if template and template.created_ms else created,
            updated_ms=updated,
            reason=template.reason if template else "",
            stop_price=_dec(info.get("stopPrice")) or (template.stop_price if template else None),
        )

    async def create_order(self, order: Order) -> Order:
        await self._ensure_markets()
        self._market_id(order.symbol)
        self._strategies[order.client_order_id] = order.strategy
        params: dict[str, Any] = {"newClientOrderId": order.client_order_id}
        if order.type is OrderType.STOP_LOSS_LIMIT:  # ccxt: a limit with a stop = STOP_LOSS_LIMIT
            params["stopLossPrice"] = str(order.stop_price)
        if order.type in (OrderType.LIMIT, OrderType.STOP_LOSS_LIMIT):
            if order.price is None:
                raise OrderRejected(
                    f"order {order.client_order_id}: a limit order needs a price", "invalid"
                )
            params["timeInForce"] = "GTC"
        price = str(order.price) if order.type is not OrderType.MARKET else None
        kind = "market" if order.type is OrderType.MARKET else "limit"
        result = await self._call(
            lambda: self._ex.create_order(
                order.symbol, kind, order.side.value, str(order.quantity), price,
                params,
            ),
            placing=True,
        )
        return self._to_order(result["info"], order)

    async def fetch_order(self, client_order_id: str, symbol: str) -> Order | None:
        await self._ensure_markets()
        req = {"symbol": self._market_id(symbol), "origClientOrderId": client_order_id}
        try:
            info = await self._call(lambda: self._ex.privateGetOrder(req))
        except OrderNotFound:
            return None
        return self._to_order(info)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        await self._ensure_markets()
        req: dict[str, Any] = {}
        if symbol is not None:
            req["symbol"] = self._market_id(symbol)
        rows = await self._call(lambda: self._ex.privateGetOpenOrders(req))
        return [self._to_order(r) for r in rows]

    async def cancel_order(self, client_order_id: str, symbol: str) -> Order:
        await self._ensure_markets()
        req = {"symbol": self._market_id(symbol), "origClientOrderId": client_order_id}
        info = await self._call(lambda: self._ex.privateDeleteOrder(req))
        return self._to_order(info)

    async def cancel_all_orders(self, symbol: str) -> list[Order]:
        """Cancel every open order of ``symbol`` in one request (Binance DELETE openOrders)."""
        await self._ensure_markets()
        req = {"symbol": self._market_id(symbol)}
        try:
            rows = await self._call(lambda: self._ex.privateDeleteOpenOrders(req))
        except OrderNotFound:  # -2011 when nothing was open
            return []
        return [self._to_order(r) for r in rows if "orderId" in r]

    async def _client_id_for(self, order_id: str, market_id: str) -> tuple[str, str]:
        if order_id not in self._order_ids:
            req = {"symbol": market_id, "orderId": order_id}
            info = await self._call(lambda: self._ex.privateGetOrder(req))
            self._to_order(info)
        return self._order_ids[order_id]

    async def fetch_fills(self, symbol: str, since_ms: int | None = None) -> list[Fill]:
        """Trades since ``since_ms`` (all of them, paged by trade id). Binance allows a
        time window of at most 24 h and no ``fromId`` together with a time, so: the
        first trade id from ``startTime``, then pages by ``fromId``; if the first day
        is empty, the most recent 1000 trades filtered by time."""
        await self._ensure_markets()
        market_id = self._market_id(symbol)
        limit = 1000

        async def page(extra: dict[str, Any]) -> list[dict[str, Any]]:
            req: dict[str, Any] = {"symbol": market_id, "limit": limit} | extra
            rows: list[dict[str, Any]] = await self._call(
                lambda: self._ex.privateGetMyTrades(req))
            return rows

        if since_ms is None:
            rows = await page({})
        else:
            first = await page({"startTime": since_ms, "limit": 1})
            if not first:
                rows = [t for t in await page({}) if int(t["time"]) >= since_ms]
            else:
                rows = last = await page({"fromId": int(first[0]["id"])})
                while len(last) == limit:
                    last = await page({"fromId": int(last[-1]["id"]) + 1})
                    rows = rows + last
        fills: list[Fill] = []
        seen: set[str] = set()
        for t in rows:
            tid = str(t["id"])
            if tid in seen:
                continue
            seen.add(tid)
            cid, strategy = await self._client_id_for(str(t["orderId"]), market_id)
            fee, fee_asset = _dec(t.get("commission")), str(t.get("commissionAsset", ""))
            valued = await self.fee_pricer.for_fill(
                self._markets[symbol], fee, fee_asset, int(t["time"]))
            fills.append(Fill(
                trade_id=tid,
                client_order_id=cid,
                strategy=strategy,
                symbol=symbol,
                side=Side.BUY if t.get("isBuyer") else Side.SELL,
                quantity=_dec(t["qty"]),
                price=_dec(t["price"]),
                fee=fee,
                fee_asset=fee_asset,
                ts_ms=int(t["time"]),
                fee_quote=valued[0] if valued else None,
                fee_estimated=valued[1] if valued else False,
            ))
        return fills

    async def server_time_ms(self) -> int:
        data = await self._call(lambda: self._ex.publicGetTime())
        return int(data["serverTime"])

    async def api_restrictions(self) -> dict[str, Any]:
        """The key's permissions (GET /sapi/v1/account/apiRestrictions) for pre-flight:
        ``enableWithdrawals`` must be false for a trading key. Not served by the spot
        testnet (raises ExchangeError there)."""
        if self.testnet and not self.base_url:
            raise ExchangeError("binance testnet does not serve /sapi/v1/account/apiRestrictions")
        data = await self._call(lambda: self._ex.sapiGetAccountApiRestrictions({}))
        return dict(data)

    fetch_api_restrictions = api_restrictions

    async def close(self) -> None:
        await self._ex.close()
