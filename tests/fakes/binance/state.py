"""The fake exchange's book-keeping: markets, balances, orders, trades and the matching
rules (market orders at the current bar's close, resting limit orders filled when the
price crosses them). Plain synchronous code behind one lock, so a test thread may read
it while the server thread mutates it.

Answers mirror Binance spot (rest-api.md, errors.md of binance/binance-spot-api-docs):
status names, field names, strings for decimals, error codes and messages.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from .data import INTERVAL_MS, MarketClock, Series, load_default_series

ZERO = Decimal(0)


class ApiError(Exception):
    """A Binance error answer: HTTP status + {"code", "msg"}."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status


@dataclass
class MarketSpec:
    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    min_price: Decimal = Decimal("0.00000001")
    max_price: Decimal = Decimal("1000000")
    default_price: Decimal | None = None


DEFAULT_MARKETS: list[MarketSpec] = [
    MarketSpec("BTCUSDT", "BTC", "USDT", Decimal("0.01"), Decimal("0.00001"),
               Decimal("0.00001"), Decimal("9000"), Decimal("5")),
    MarketSpec("ETHUSDT", "ETH", "USDT", Decimal("0.01"), Decimal("0.0001"),
               Decimal("0.0001"), Decimal("9000"), Decimal("5"), default_price=Decimal("2500")),
    MarketSpec("BNBUSDT", "BNB", "USDT", Decimal("0.01"), Decimal("0.001"),
               Decimal("0.001"), Decimal("9000"), Decimal("5"), default_price=Decimal("550")),
    MarketSpec("ETHBTC", "ETH", "BTC", Decimal("0.00001"), Decimal("0.0001"),
               Decimal("0.0001"), Decimal("100000"), Decimal("0.0001")),
    MarketSpec("LTCBTC", "LTC", "BTC", Decimal("0.000001"), Decimal("0.001"),
               Decimal("0.001"), Decimal("100000"), Decimal("0.0001")),
    MarketSpec("XRPETH", "XRP", "ETH", Decimal("0.00000001"), Decimal("1"),
               Decimal("1"), Decimal("9000000"), Decimal("0.001")),
]


def fmt(d: Decimal, places: int = 8) -> str:
    """Binance prints decimals as fixed strings with 8 places."""
    return f"{d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN):f}"


@dataclass
class FakeOrder:
    order_id: int
    symbol: str
    client_order_id: str
    side: str  # BUY / SELL
    type: str  # MARKET / LIMIT / STOP_LOSS_LIMIT
    orig_qty: Decimal
    price: Decimal  # 0 for market
    time_in_force: str
    status: str = "NEW"
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO
    time_ms: int = 0
    update_ms: int = 0
    fills: list[dict[str, Any]] = field(default_factory=list)
    stop_price: Decimal = ZERO  # STOP_LOSS_LIMIT: the trigger
    triggered: bool = False  # STOP_LOSS_LIMIT: the price reached stop_price (now a limit)

    @property
    def rests(self) -> bool:
        """A limit (or a triggered stop-limit) waiting in the book."""
        return self.type == "LIMIT" or (self.type == "STOP_LOSS_LIMIT" and self.triggered)

    def as_binance(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": fmt(self.price),
            "origQty": fmt(self.orig_qty),
            "executedQty": fmt(self.executed_qty),
            "cummulativeQuoteQty": fmt(self.cum_quote),
            "status": self.status,
            "timeInForce": self.time_in_force,
            "type": self.type,
            "side": self.side,
            "stopPrice": fmt(self.stop_price),
            "icebergQty": "0.00000000",
            "time": self.time_ms,
            "updateTime": self.update_ms,
            "isWorking": self.status in ("NEW", "PARTIALLY_FILLED")
            and (self.type != "STOP_LOSS_LIMIT" or self.triggered),
            "workingTime": self.time_ms,
            "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }


@dataclass
class FakeTrade:
    trade_id: int
    order_id: int
    symbol: str
    client_order_id: str
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time_ms: int
    is_maker: bool

    def as_binance(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "id": self.trade_id,
            "orderId": self.order_id,
            "orderListId": -1,
            "price": fmt(self.price),
            "qty": fmt(self.qty),
            "quoteQty": fmt(self.price * self.qty),
            "commission": fmt(self.commission),
            "commissionAsset": self.commission_asset,
            "time": self.time_ms,
            "isBuyer": self.side == "BUY",
            "isMaker": self.is_maker,
            "isBestMatch": True,
        }


def _stop_price(p: dict[str, str]) -> Decimal:
    """The ``stopPrice`` of a STOP_LOSS_LIMIT request (-1102 when missing)."""
    try:
        return Decimal(p["stopPrice"])
    except (KeyError, ArithmeticError, ValueError):
        raise ApiError(
            -1102, "Mandatory parameter 'stopPrice' was not sent, was empty/null, or malformed."
        ) from None


def _stop_crossed(side: str, last: Decimal, stop: Decimal) -> bool:
    """Whether ``last`` has reached a stop: a sell's from above, a buy's from below."""
    return last <= stop if side == "SELL" else last >= stop


class ExchangeState:
    """Markets, balances, orders and trades of one fake account.

    ``client_id_reuse``: Binance documents ``newClientOrderId`` as "a unique id among open
    orders", so a *filled* order's id can be used again. ``"never"`` (the default here)
    refuses any reuse with -2010 "Duplicate order sent."; ``"after_close"`` is the
    documented Binance behaviour, the stricter test of a client that must not rely on
    the exchange to catch its resends.
    """

    def __init__(
        self,
        balances: dict[str, Decimal] | None = None,
        markets: list[MarketSpec] | None = None,
        fee_rate: Decimal = Decimal("0.001"),
        client_id_reuse: str = "never",
        fee_asset: str | None = None,
    ) -> None:
        self.lock = threading.RLock()
        # "pay fees with BNB": commission in this asset at 75 % of fee_rate, valued at
        # its price against the quote asset (the normal fee when the balance is short)
        self.fee_asset = fee_asset
        self.markets: dict[str, MarketSpec] = {m.symbol: m for m in (markets or DEFAULT_MARKETS)}
        self.series: dict[str, Series] = load_default_series()
        self.market_clock = MarketClock()
        self.balances: dict[str, Decimal] = dict(
            balances if balances is not None else {"USDT": Decimal("10000"), "BTC": ZERO}
        )
        self.locked: dict[str, Decimal] = {}
        self.orders: dict[int, FakeOrder] = {}
        self.trades: list[FakeTrade] = []
        self.fee_rate = fee_rate
        self.client_id_reuse = client_id_reuse
        self.prices: dict[str, Decimal] = {}
        # max quantity a resting limit order gets per crossing (partial fills); unset = all
        self.liquidity: dict[str, Decimal] = {}
        self.accepted_client_ids: list[str] = []  # every accepted order, in order
        self._next_order_id = 1000
        self._next_trade_id = 5000
        self.can_trade = True
        self.api_restrictions: dict[str, Any] = {
            "ipRestrict": False,
            "createTime": 1_700_000_000_000,
            "enableInternalTransfer": False,
            "enableFutures": False,
            "enablePortfolioMarginTrading": False,
            "enableVanillaOptions": False,
            "permitsUniversalTransfer": False,
            "enableReading": True,
            "enableSpotAndMarginTrading": True,
            "enableWithdrawals": False,
            "enableMargin": False,
        }

    # ---- market data -------------------------------------------------------------
    def market(self, symbol: str | None) -> MarketSpec:
        if not symbol or symbol not in self.markets:
            raise ApiError(-1121, "Invalid symbol.")
        return self.markets[symbol]

    def market_now(self) -> int | None:
        return self.market_clock.now_ms()

    def price(self, symbol: str) -> Decimal:
        with self.lock:
            if symbol in self.prices:
                return self.prices[symbol]
            s = self.series.get(symbol)
            p = s.price_at(self.market_now()) if s is not None else None
            if p is not None:
                return p
            spec = self.market(symbol)
            return spec.default_price or Decimal("1")

    def klines(
        self,
        symbol: str,
        interval: str,
        start: int | None,
        end: int | None,
        limit: int,
    ) -> list[list[Any]]:
        self.market(symbol)
        if interval not in INTERVAL_MS:
            raise ApiError(-1120, "Invalid interval.")
        if limit < 1 or limit > 1000:
            raise ApiError(
                -1100, "Illegal characters found in parameter 'limit'; legal range is '1-1000'."
            )
        step = INTERVAL_MS[interval]
        shift = self.market_clock.shift_ms
        if start is not None:
            start -= shift
        if end is not None:
            end -= shift
        with self.lock:
            s = self.series.get(symbol)
            bars = s.bars_at(interval, self.market_now()) if s is not None else []
        sel = [
            b
            for b in bars
            if (start is None or b.open_ms >= start) and (end is None or b.open_ms <= end)
        ]
        sel = sel[:limit] if start is not None else sel[-limit:]
        return [
            [
                b.open_ms + shift,
                fmt(b.open),
                fmt(b.high),
                fmt(b.low),
                fmt(b.close),
                fmt(b.volume),
                b.open_ms + shift + step - 1,
                fmt(b.volume * b.close),
                100,
                fmt(b.volume / 2),
                fmt(b.volume * b.close / 2),
                "0",
            ]
            for b in sel
        ]

    # ---- balances ----------------------------------------------------------------
    def _free(self, asset: str) -> Decimal:
        return self.balances.get(asset, ZERO)

    def _add(self, asset: str, amount: Decimal) -> None:
        self.balances[asset] = self._free(asset) + amount

    def _lock(self, asset: str, amount: Decimal) -> None:
        self.balances[asset] = self._free(asset) - amount
        self.locked[asset] = self.locked.get(asset, ZERO) + amount

    def _unlock(self, asset: str, amount: Decimal) -> None:
        self.locked[asset] = self.locked.get(asset, ZERO) - amount
        self.balances[asset] = self._free(asset) + amount

    def account_balances(self) -> list[dict[str, str]]:
        with self.lock:
            assets = sorted(set(self.balances) | set(self.locked))
            return [
                {
                    "asset": a,
                    "free": fmt(self._free(a)),
                    "locked": fmt(self.locked.get(a, ZERO)),
                }
                for a in assets
            ]

    # ---- orders ------------------------------------------------------------------
    def find(self, symbol: str, order_id: int | None, client_id: str | None) -> FakeOrder:
        with self.lock:
            if order_id is not None:
                o = self.orders.get(order_id)
                if o is not None and o.symbol == symbol:
                    return o
            elif client_id is not None:
                # the most recent order with that client id (ids may be reused after close)
                for o in reversed(list(self.orders.values())):
                    if o.client_order_id == client_id and o.symbol == symbol:
                        return o
            raise ApiError(-2013, "Order does not exist.")

    def new_order(self, p: dict[str, str], now_ms: int) -> FakeOrder:
        spec = self.market(p.get("symbol"))
        side = (p.get("side") or "").upper()
        otype = (p.get("type") or "").upper()
        if side not in ("BUY", "SELL"):
            raise ApiError(
                -1102, "Mandatory parameter 'side' was not sent, was empty/null, or malformed."
            )
        if otype not in ("MARKET", "LIMIT", "STOP_LOSS_LIMIT"):
            raise ApiError(-1116, "Invalid orderType.")
        try:
            qty = Decimal(p["quantity"])
        except (KeyError, ArithmeticError, ValueError):
            raise ApiError(
                -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed."
            ) from None
        price = ZERO
        tif = p.get("timeInForce", "GTC" if otype == "LIMIT" else "")
        stop = _stop_price(p) if otype == "STOP_LOSS_LIMIT" else ZERO
        if otype != "MARKET":
            if "price" not in p:
                raise ApiError(
                    -1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed."
                )
            price = Decimal(p["price"])
            if price < spec.min_price or price > spec.max_price or price % spec.tick_size:
                raise ApiError(-1013, "Filter failure: PRICE_FILTER")
        if qty < spec.min_qty or qty > spec.max_qty or (qty - spec.min_qty) % spec.step_size:
            raise ApiError(-1013, "Filter failure: LOT_SIZE")
        cid = p.get("newClientOrderId") or f"fake-{now_ms}-{self._next_order_id}"
        with self.lock:
            if not self.can_trade:
                raise ApiError(-2010, "This action is disabled on this account.")
            for o in self.orders.values():
                if o.client_order_id != cid:
                    continue
                if self.client_id_reuse == "never" or o.status in ("NEW", "PARTIALLY_FILLED"):
                    raise ApiError(-2010, "Duplicate order sent.")
            last = self.price(spec.symbol)
            ref = last if otype == "MARKET" else price
            if otype == "STOP_LOSS_LIMIT" and _stop_crossed(side, last, stop):
                raise ApiError(-2010, "Stop price would trigger immediately.")
            if qty * ref < spec.min_notional:
                raise ApiError(-1013, "Filter failure: NOTIONAL")
            # funds: a buy needs quote (limit: at its price), a sell needs base
            if side == "BUY":
                need, asset = qty * ref, spec.quote
            else:
                need, asset = qty, spec.base
            if self._free(asset) < need:
                raise ApiError(-2010, "Account has insufficient balance for requested action.")
            o = FakeOrder(
                order_id=self._next_order_id,
                symbol=spec.symbol,
                client_order_id=cid,
                side=side,
                type=otype,
                orig_qty=qty,
                price=price,
                time_in_force=tif,
                time_ms=now_ms,
                update_ms=now_ms,
                stop_price=stop,
            )
            self._next_order_id += 1
            self.orders[o.order_id] = o
            self.accepted_client_ids.append(cid)
            if otype == "MARKET":
                self._fill(o, qty, last, now_ms, maker=False)
            elif otype == "STOP_LOSS_LIMIT":  # waits for its trigger, funds locked
                self._lock(*((spec.quote, qty * price) if side == "BUY" else (spec.base, qty)))
            else:
                marketable = (side == "BUY" and last <= price) or (side == "SELL" and last >= price)
                if side == "BUY":
                    self._lock(spec.quote, qty * price)
                else:
                    self._lock(spec.base, qty)
                if marketable:
                    self._fill(o, qty, last, now_ms, maker=False)
                elif tif in ("IOC", "FOK"):
                    self._release(o)
                    o.status = "EXPIRED"
            return o

    def _release(self, o: FakeOrder) -> None:
        """Give back what a resting limit order still holds locked."""
        spec = self.markets[o.symbol]
        rest = o.orig_qty - o.executed_qty
        if o.type == "MARKET" or rest <= 0:
            return
        if o.side == "BUY":
            self._unlock(spec.quote, rest * o.price)
        else:
            self._unlock(spec.base, rest)

    def _fill(self, o: FakeOrder, qty: Decimal, price: Decimal, now_ms: int, maker: bool) -> None:
        spec = self.markets[o.symbol]
        quote = qty * price
        if o.type != "MARKET":
            # the locked amount at the limit price is spent; any price improvement refunds
            if o.side == "BUY":
                self.locked[spec.quote] = self.locked.get(spec.quote, ZERO) - qty * o.price
                self._add(spec.quote, qty * o.price - quote)
            else:
                self.locked[spec.base] = self.locked.get(spec.base, ZERO) - qty
        else:
            if o.side == "BUY":
                self._add(spec.quote, -quote)
            else:
                self._add(spec.base, -qty)
        third = self._third_asset_fee(spec, quote)
        if third is not None:
            commission, asset = third
            self._add(asset, -commission)
            self._add(spec.base if o.side == "BUY" else spec.quote,
                      qty if o.side == "BUY" else quote)
        elif o.side == "BUY":
            commission, asset = qty * self.fee_rate, spec.base
            self._add(spec.base, qty - commission)
        else:
            commission, asset = quote * self.fee_rate, spec.quote
            self._add(spec.quote, quote - commission)
        t = FakeTrade(
            trade_id=self._next_trade_id,
            order_id=o.order_id,
            symbol=o.symbol,
            client_order_id=o.client_order_id,
            side=o.side,
            price=price,
            qty=qty,
            commission=commission,
            commission_asset=asset,
            time_ms=now_ms,
            is_maker=maker,
        )
        self._next_trade_id += 1
        self.trades.append(t)
        o.executed_qty += qty
        o.cum_quote += quote
        o.update_ms = now_ms
        o.status = "FILLED" if o.executed_qty >= o.orig_qty else "PARTIALLY_FILLED"
        o.fills.append(
            {
                "price": fmt(price),
                "qty": fmt(qty),
                "commission": fmt(commission),
                "commissionAsset": asset,
                "tradeId": t.trade_id,
            }
        )

    def _third_asset_fee(self, spec: MarketSpec, quote: Decimal) -> tuple[Decimal, str] | None:
        """(commission, asset) when fees are paid in ``fee_asset`` and it can pay."""
        asset = self.fee_asset
        if not asset or asset in (spec.base, spec.quote):
            return None
        pair = f"{asset}{spec.quote}"
        if pair not in self.markets:
            return None
        value = quote * self.fee_rate * Decimal("0.75")
        commission = (value / self.price(pair)).quantize(Decimal("0.00000001"))
        if commission <= 0 or self._free(asset) < commission:
            return None
        return commission, asset

    def cancel(self, o: FakeOrder, now_ms: int) -> FakeOrder:
        with self.lock:
            if o.status not in ("NEW", "PARTIALLY_FILLED"):
                raise ApiError(-2011, "Unknown order sent.")
            self._release(o)
            o.status = "CANCELED"
            o.update_ms = now_ms
            return o

    def open_orders(self, symbol: str | None) -> list[FakeOrder]:
        with self.lock:
            return [
                o
                for o in self.orders.values()
                if o.status in ("NEW", "PARTIALLY_FILLED")
                and (symbol is None or o.symbol == symbol)
            ]

    def match(self, now_ms: int) -> int:
        """Trigger stop-limit orders the current price has reached (each becomes a limit
        order: filled at once, as a taker at the current price, when that is marketable),
        then fill resting limit orders the current price has crossed; returns fills made."""
        n = 0
        with self.lock:
            for o in list(self.orders.values()):
                if o.status not in ("NEW", "PARTIALLY_FILLED"):
                    continue
                last = self.price(o.symbol)
                if o.type == "STOP_LOSS_LIMIT" and not o.triggered:
                    if not _stop_crossed(o.side, last, o.stop_price):
                        continue
                    o.triggered = True
                    o.update_ms = now_ms
                    if (o.side == "SELL" and last >= o.price) or (
                        o.side == "BUY" and last <= o.price
                    ):
                        self._fill(o, o.orig_qty - o.executed_qty, last, now_ms, maker=False)
                        n += 1
                    continue
                if not o.rests:
                    continue
                if (o.side == "BUY" and last <= o.price) or (o.side == "SELL" and last >= o.price):
                    qty = o.orig_qty - o.executed_qty
                    if o.symbol in self.liquidity:
                        qty = min(qty, self.liquidity[o.symbol])
                    self._fill(o, qty, o.price, now_ms, maker=True)
                    n += 1
        return n

    def my_trades(
        self,
        symbol: str,
        order_id: int | None,
        start: int | None,
        end: int | None,
        from_id: int | None,
        limit: int,
    ) -> list[FakeTrade]:
        with self.lock:
            out = [
                t
                for t in self.trades
                if t.symbol == symbol
                and (order_id is None or t.order_id == order_id)
                and (start is None or t.time_ms >= start)
                and (end is None or t.time_ms <= end)
                and (from_id is None or t.trade_id >= from_id)
            ]
        return out[:limit] if (start is not None or from_id is not None) else out[-limit:]

    # ---- test helpers ------------------------------------------------------------
    def duplicate_client_ids(self) -> list[str]:
        """Client ids accepted more than once: each is an order sent twice."""
        with self.lock:
            seen: dict[str, int] = {}
            for cid in self.accepted_client_ids:
                seen[cid] = seen.get(cid, 0) + 1
            return sorted(c for c, n in seen.items() if n > 1)

    def orders_by_client_id(self, client_id: str) -> list[FakeOrder]:
        with self.lock:
            return [o for o in self.orders.values() if o.client_order_id == client_id]

    def snapshot(self) -> dict[str, Any]:
        """JSON view for the control endpoint and subprocess tests."""
        with self.lock:
            return {
                "balances": {a["asset"]: {"free": a["free"], "locked": a["locked"]}
                             for a in self.account_balances()},
                "orders": [o.as_binance() for o in self.orders.values()],
                "trades": [t.as_binance() | {"clientOrderId": t.client_order_id}
                           for t in self.trades],
                "duplicates": self.duplicate_client_ids(),
                "market_now_ms": self.market_now(),
            }
