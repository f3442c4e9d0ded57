"""Paper trading: a simulated exchange with the live adapter's interface and errors.

``PaperBroker`` is the synchronous core, used directly by the full-speed replay loop;
``PaperExchange`` is the async ``ExchangeClient`` over it, used by the runner in paper
mode, so paper and live runners differ only in the object behind the interface.

Execution model (documented because validation results depend on it):

* The broker knows the market through the closed candles it is fed (``on_candle``);
  the last close is the current price.
* Market orders fill at once, in full, at last price moved against the taker by
  ``slippage_bps`` (buys higher, sells lower), rounded to the price tick.
* Limit orders that are marketable when placed fill at once at the better of the limit
  and the last price. Otherwise they rest; on each later candle whose range reaches
  the limit price they fill at the limit price, at most ``participation`` of that
  candle's volume per candle (partial fills), until done or cancelled.
* Fees: ``fee_rate`` of the traded value, charged in the quote asset on both sides,
  rounded up to 1e-8.
* Rejections mirror Binance: InsufficientFunds when free balance cannot pay (fees
  included), OrderRejected(reason="lot_size"/"min_notional") below the exchange
  minimums, DuplicateOrder for a reused client order id, BadSymbol for an unknown one.
  The broker remembers every open order and the last ``max_orders_kept`` orders (and
  ``max_fills_kept`` fills) for ``get_order``/``fills``/``snapshot`` and the duplicate
  check: Binance refuses a client order id again only among open orders, and answers
  for old orders from its history, which this bound stands for.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

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
    from_dict,
    to_dict,
)
from kubetrade.exchange.base import (
    BadSymbol,
    DuplicateOrder,
    InsufficientFunds,
    OrderNotFound,
    OrderRejected,
    TransientError,
)

FEE_QUANTUM = Decimal("0.00000001")
DEFAULT_FEE_RATE = Decimal("0.001")
DEFAULT_SLIPPAGE_BPS = Decimal("2")
DEFAULT_PARTICIPATION = Decimal("0.1")
_BPS = Decimal(10_000)


_FIAT_QUOTES = frozenset({"USDT", "USDC", "FDUSD", "BUSD", "USD", "EUR"})
#: (price step, quantity step = minimum quantity, minimum notional) of default_market
_FIAT_QUOTED = (Decimal("0.01"), Decimal("0.00001"), Decimal("5"))
_COIN_QUOTED = (Decimal("0.00000001"), Decimal("0.001"), Decimal("0.0001"))


def default_market(symbol: str) -> MarketInfo:
    """Binance-like spot trading rules for ``symbol`` (BASE/QUOTE) when the real ones
    are not at hand (offline paper trading, replay of recorded candles)."""
    base, _, quote = symbol.partition("/")
    if not base or not quote:
        raise ValueError(f"symbol must be BASE/QUOTE (e.g. BTC/USDT), got {symbol!r}")
    price_step, qty_step, min_notional = (
        _FIAT_QUOTED if quote in _FIAT_QUOTES else _COIN_QUOTED
    )
    return MarketInfo(
        symbol=symbol,
        base=base,
        quote=quote,
        price_step=price_step,
        qty_step=qty_step,
        min_qty=qty_step,
        min_notional=min_notional,
    )


def fee_for(notional: Decimal, fee_rate: Decimal) -> Decimal:
    return (notional * fee_rate).quantize(FEE_QUANTUM, rounding=ROUND_UP)


def _clone(o: Order) -> Order:
    """A copy of an order (dataclasses.replace is several times slower)."""
    return Order(o.client_order_id, o.strategy, o.symbol, o.side, o.type, o.quantity, o.price,
                 o.status, o.filled_quantity, o.average_price, o.exchange_order_id,
                 o.created_ms, o.updated_ms, o.reason)


def _tick(price: Decimal, step: Decimal) -> Decimal:
    if step <= 0:
        return price
    return (price / step).to_integral_value() * step


class PaperBroker:
    """Synchronous simulated exchange; see the module docstring for the model."""

    def __init__(
        self,
        markets: dict[str, MarketInfo],
        balances: dict[str, Decimal],
        *,
        fee_rate: Decimal = DEFAULT_FEE_RATE,
        slippage_bps: Decimal = DEFAULT_SLIPPAGE_BPS,
        participation: Decimal = DEFAULT_PARTICIPATION,
        max_fills_kept: int = 100_000,
        max_orders_kept: int = 100_000,
    ) -> None:
        if fee_rate < 0 or slippage_bps < 0:
            raise ValueError("fee_rate and slippage_bps must be >= 0")
        if not ZERO < participation <= 1:
            raise ValueError(f"participation must be in (0, 1], got {participation}")
        if max_orders_kept < 1:
            raise ValueError(f"max_orders_kept must be >= 1, got {max_orders_kept}")
        self.markets = dict(markets)
        self.fee_rate = fee_rate
        self.slippage_bps = slippage_bps
        self.participation = participation
        self._buy_mult = 1 + slippage_bps / _BPS
        self._sell_mult = 1 - slippage_bps / _BPS
        self._free: dict[str, Decimal] = dict(balances)
        self._locked: dict[str, Decimal] = {}
        self._last: dict[str, Candle] = {}
        self._orders: dict[str, Order] = {}
        self._resting: dict[str, Order] = {}
        self._fills: deque[Fill] = deque(maxlen=max_fills_kept)
        self._max_orders = max_orders_kept
        self._order_seq = 0
        self._trade_seq = 0
        self.now_ms = 0

    # ---------------------------------------------------------------- market data

    def on_candle(self, symbol: str, candle: Candle, now_ms: int | None = None) -> list[Fill]:
        """A candle closed: it becomes the current price, and resting limit orders that
        its range reached fill (partially, by volume). Returns those fills."""
        self._last[symbol] = candle
        if now_ms is not None:
            self.now_ms = now_ms
        elif candle.ts_ms > self.now_ms:
            self.now_ms = candle.ts_ms
        if not self._resting:
            return []
        return self._match_resting(symbol, candle)

    @property
    def has_resting(self) -> bool:
        """Whether limit orders wait for the market (the replay loop's fast path)."""
        return bool(self._resting)

    def last_price(self, symbol: str) -> Decimal | None:
        c = self._last.get(symbol)
        return None if c is None else c.close

    def _match_resting(self, symbol: str, candle: Candle) -> list[Fill]:
        fills: list[Fill] = []
        market = self.markets[symbol]
        cap = (candle.volume * self.participation / market.qty_step).to_integral_value(
            rounding=ROUND_DOWN
        ) * market.qty_step
        for cid, order in list(self._resting.items()):
            if order.symbol != symbol or order.price is None:
                continue
            price = order.price
            reached = candle.low <= price if order.side is Side.BUY else candle.high >= price
            if not reached or cap <= 0:
                continue
            qty = min(order.remaining, cap)
            fills.append(self._execute(order, qty, price, locked=True))
            if order.remaining <= 0:
                del self._resting[cid]
        return fills

    # ---------------------------------------------------------------- orders

    def submit(self, order: Order, now_ms: int | None = None) -> tuple[Order, list[Fill]]:
        """Accept (and maybe fill) ``order``; returns the broker's copy and its fills.

        Raises BadSymbol, DuplicateOrder, OrderRejected (lot_size, bad_price,
        min_notional), TransientError (no price yet) or InsufficientFunds, checked in
        that order, as Binance checks its filters before the balance.
        """
        now = self.now_ms if now_ms is None else now_ms
        market, last = self._admit(order)
        price = self._order_price(order, market, last)
        marketable = order.type is OrderType.MARKET or (
            last <= price if order.side is Side.BUY else last >= price
        )
        exec_price = price if order.type is OrderType.MARKET else last
        self._check_funds(order, market, exec_price if marketable else price)
        mine = _clone(order)
        mine.status = OrderStatus.OPEN
        mine.exchange_order_id = f"paper-{self._next_order_no()}"
        mine.created_ms = order.created_ms or now
        mine.updated_ms = now
        self._orders[mine.client_order_id] = mine
        if len(self._orders) > self._max_orders:
            for cid in list(self._oldest_done(len(self._orders) - self._max_orders)):
                del self._orders[cid]
        if marketable:
            fill = self._execute(mine, order.quantity, exec_price, locked=False, now=now)
            return _clone(mine), [fill]
        if order.side is Side.BUY:
            notional = order.quantity * price
            self._move(market.quote, notional + fee_for(notional, self.fee_rate), lock=True)
        else:
            self._move(market.base, order.quantity, lock=True)
        self._resting[mine.client_order_id] = mine
        return _clone(mine), []

    def _oldest_done(self, count: int) -> Iterator[str]:
        """The ids of the ``count`` oldest orders that are done (open ones are kept)."""
        for cid, order in self._orders.items():
            if count == 0:
                return
            if order.status.is_terminal:
                count -= 1
                yield cid

    def _admit(self, order: Order) -> tuple[MarketInfo, Decimal]:
        """The order's market and last price, after the symbol, id and lot checks."""
        market = self.markets.get(order.symbol)
        if market is None:
            raise BadSymbol(f"unknown symbol {order.symbol!r}")
        if order.client_order_id in self._orders:
            raise DuplicateOrder(f"client order id {order.client_order_id} already used")
        qty = order.quantity
        if qty < market.min_qty or qty <= 0:
            raise OrderRejected(
                f"quantity {qty} below minimum {market.min_qty} for {order.symbol}", "lot_size"
            )
        candle = self._last.get(order.symbol)
        if candle is None:
            raise TransientError(f"no price for {order.symbol} yet")
        return market, candle.close

    def _order_price(self, order: Order, market: MarketInfo, last: Decimal) -> Decimal:
        """The price the order trades at (market: last +/- slippage, on the tick), after
        the min-notional filter."""
        if order.type is OrderType.MARKET:
            mult = self._buy_mult if order.side is Side.BUY else self._sell_mult
            price = _tick(last * mult, market.price_step)
        else:
            if order.price is None or order.price <= 0:
                raise OrderRejected("limit order needs a positive price", "bad_price")
            price = order.price
        if order.quantity * price < market.min_notional:
            raise OrderRejected(
                f"order value {order.quantity * price} below min notional "
                f"{market.min_notional} for {order.symbol}",
                "min_notional",
            )
        return price

    def _check_funds(self, order: Order, market: MarketInfo, need_price: Decimal) -> None:
        """InsufficientFunds unless the free balance covers the order (a buy with its fee)."""
        if order.side is Side.BUY:
            notional = order.quantity * need_price
            need = notional + fee_for(notional, self.fee_rate)
            free = self._free.get(market.quote, ZERO)
            if free < need:
                raise InsufficientFunds(f"buy needs {need} {market.quote}, free is {free}")
        else:
            free = self._free.get(market.base, ZERO)
            if free < order.quantity:
                raise InsufficientFunds(
                    f"sell needs {order.quantity} {market.base}, free is {free}"
                )

    def _next_order_no(self) -> int:
        self._order_seq += 1
        return self._order_seq

    def _next_trade_no(self) -> int:
        self._trade_seq += 1
        return self._trade_seq

    def _move(self, asset: str, amount: Decimal, lock: bool) -> None:
        if lock:
            self._free[asset] = self._free.get(asset, ZERO) - amount
            self._locked[asset] = self._locked.get(asset, ZERO) + amount
        else:
            self._locked[asset] = self._locked.get(asset, ZERO) - amount
            self._free[asset] = self._free.get(asset, ZERO) + amount

    def _execute(
        self, order: Order, qty: Decimal, price: Decimal, locked: bool, now: int | None = None
    ) -> Fill:
        market = self.markets[order.symbol]
        base, quote = market.base, market.quote
        notional = qty * price
        fee = fee_for(notional, self.fee_rate)
        free = self._free
        if order.side is Side.BUY:
            if locked and order.price is not None:
                # Release what this part locked at the limit price, then pay.
                self._move(quote, qty * order.price + fee_for(qty * order.price, self.fee_rate),
                           lock=False)
            free[quote] = free.get(quote, ZERO) - notional - fee
            free[base] = free.get(base, ZERO) + qty
        else:
            if locked:
                self._move(base, qty, lock=False)
            free[base] = free.get(base, ZERO) - qty
            free[quote] = free.get(quote, ZERO) + notional - fee
        ts = self.now_ms if now is None else now
        prev_filled = order.filled_quantity
        order.filled_quantity = prev_filled + qty
        order.average_price = (
            price
            if order.average_price is None
            else (order.average_price * prev_filled + notional) / order.filled_quantity
        )
        order.status = (
            OrderStatus.FILLED if order.filled_quantity >= order.quantity
            else OrderStatus.PARTIALLY_FILLED
        )
        order.updated_ms = ts
        fill = Fill(
            trade_id=f"paper-t{self._next_trade_no()}",
            client_order_id=order.client_order_id,
            strategy=order.strategy,
            symbol=order.symbol,
            side=order.side,
            quantity=qty,
            price=price,
            fee=fee,
            fee_asset=quote,
            ts_ms=ts,
        )
        self._fills.append(fill)
        return fill

    def cancel(self, client_order_id: str) -> Order:
        order = self._orders.get(client_order_id)
        if order is None:
            raise OrderNotFound(f"no order {client_order_id}")
        if order.status.is_terminal:
            return _clone(order)
        resting = self._resting.pop(client_order_id, None)
        if resting is not None and order.price is not None:
            market = self.markets[order.symbol]
            rem = order.remaining
            if order.side is Side.BUY:
                self._move(market.quote, rem * order.price + fee_for(rem * order.price,
                                                                     self.fee_rate), lock=False)
            else:
                self._move(market.base, rem, lock=False)
        order.status = OrderStatus.CANCELED
        order.updated_ms = self.now_ms
        return _clone(order)

    def get_order(self, client_order_id: str) -> Order | None:
        order = self._orders.get(client_order_id)
        return None if order is None else _clone(order)

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return [
            _clone(o) for o in self._resting.values() if symbol is None or o.symbol == symbol
        ]

    def fills(self, symbol: str | None = None, since_ms: int | None = None) -> list[Fill]:
        return [
            f
            for f in self._fills
            if (symbol is None or f.symbol == symbol) and (since_ms is None or f.ts_ms >= since_ms)
        ]

    def balances(self) -> dict[str, Balance]:
        assets = set(self._free) | set(self._locked)
        free, locked = self._free, self._locked
        return {a: Balance(a, free.get(a, ZERO), locked.get(a, ZERO)) for a in sorted(assets)}

    # ---------------------------------------------------------------- persistence

    def snapshot(self, history: int = 1_000) -> dict[str, Any]:
        """Balances, open orders and the last ``history`` orders and fills (enough to
        answer fetch_order/fetch_fills after a restart without growing forever)."""
        orders = list(self._orders.values())
        kept = orders[-history:] if history else []
        kept_ids = {o.client_order_id for o in kept}
        kept = [o for o in orders if o.client_order_id in self._resting and
                o.client_order_id not in kept_ids] + kept
        fills = list(self._fills)[-history:] if history else []
        return {
            "free": {a: str(v) for a, v in self._free.items()},
            "locked": {a: str(v) for a, v in self._locked.items()},
            "orders": [to_dict(o) for o in kept],
            "resting": list(self._resting),
            "fills": [to_dict(f) for f in fills],
            "last": {s: to_dict(c) for s, c in self._last.items()},
            "order_seq": self._order_seq,
            "trade_seq": self._trade_seq,
            "now_ms": self.now_ms,
        }

    def restore(self, data: dict[str, Any]) -> None:
        self._free = {a: Decimal(v) for a, v in data.get("free", {}).items()}
        self._locked = {a: Decimal(v) for a, v in data.get("locked", {}).items()}
        self._orders = {o["client_order_id"]: from_dict(Order, o) for o in data.get("orders", [])}
        self._resting = {cid: self._orders[cid] for cid in data.get("resting", [])}
        self._fills = deque((from_dict(Fill, f) for f in data.get("fills", [])),
                            maxlen=self._fills.maxlen)
        self._last = {s: from_dict(Candle, c) for s, c in data.get("last", {}).items()}
        self._order_seq = int(data.get("order_seq", 0))
        self._trade_seq = int(data.get("trade_seq", 0))
        self.now_ms = int(data.get("now_ms", 0))


class PaperExchange:
    """``ExchangeClient`` over a PaperBroker. The runner feeds it the candles it trades
    on (``feed``), so paper fills use the same prices the strategy saw."""

    name = "paper"

    def __init__(
        self,
        broker: PaperBroker,
        clock: Clock | None = None,
        history: int = 5_000,
    ) -> None:
        self.broker = broker
        self.clock: Clock = clock or SystemClock()
        self._candles: dict[str, deque[Candle]] = {}
        self._history = history

    def feed(self, symbol: str, candle: Candle) -> list[Fill]:
        """A closed candle from the market-data feed; returns resting-order fills."""
        hist = self._candles.setdefault(symbol, deque(maxlen=self._history))
        if not hist or candle.ts_ms > hist[-1].ts_ms:
            hist.append(candle)
        return self.broker.on_candle(symbol, candle, self.clock.now_ms())

    async def load_markets(self) -> dict[str, MarketInfo]:
        return dict(self.broker.markets)

    async def fetch_candles(
        self, symbol: str, timeframe: str, since_ms: int | None = None, limit: int = 500
    ) -> list[Candle]:
        hist = self._candles.get(symbol, deque())
        out = [c for c in hist if since_ms is None or c.ts_ms >= since_ms]
        return out[:limit] if since_ms is not None else out[-limit:]

    async def fetch_last_price(self, symbol: str) -> Decimal:
        if symbol not in self.broker.markets:
            raise BadSymbol(f"unknown symbol {symbol!r}")
        price = self.broker.last_price(symbol)
        if price is None:
            raise TransientError(f"no price for {symbol} yet")
        return price

    async def fetch_balances(self) -> dict[str, Balance]:
        return self.broker.balances()

    async def create_order(self, order: Order) -> Order:
        mine, _ = self.broker.submit(order, self.clock.now_ms())
        return mine

    async def fetch_order(self, client_order_id: str, symbol: str) -> Order | None:
        return self.broker.get_order(client_order_id)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        return self.broker.open_orders(symbol)

    async def cancel_order(self, client_order_id: str, symbol: str) -> Order:
        return self.broker.cancel(client_order_id)

    async def fetch_fills(self, symbol: str, since_ms: int | None = None) -> list[Fill]:
        return self.broker.fills(symbol, since_ms)

    async def server_time_ms(self) -> int:
        return self.clock.now_ms()

    async def close(self) -> None:
        return None


__all__ = ["PaperBroker", "PaperExchange", "default_market", "fee_for"]
