"""Stop-losses on the exchange: each live position carries a STOP_LOSS_LIMIT sell there,
so it stays protected while the runner is down (restart, a rolled pod, an outage).

The rules:

- After every step (a candle, a start, a recovery) ``protect`` makes the exchange hold
  exactly one stop per held position: quantity and stop price as the engine's books
  say (``risk.stop_limit_for``). None yet: one is placed. The position changed (added
  to, partly sold, the RiskPolicy moved the stop): the old one is cancelled first, then
  the new one placed. No position: it is cancelled.
- Before any other sell of a symbol goes out (a signal exit, the engine's own stop,
  close-all) the stop is lifted: cancelled, and what it filled meanwhile booked. A
  sell larger than what is then held is not sent (the stop sold first).
- Client order ids are deterministic: ``kt-<digest>-x<position opened ms>-<n>``, the
  strategy's prefix (reconciliation attributes it) and the n-th stop of that position.
  The intent is written to Redis before it is sent, so after a crash the order router
  looks it up by that id like any other order, and its fills are booked like any other.
- The stop is not the engine's order: the engine's ledger never holds it (so it does
  not hold back the strategy's exits); the router feeds its fills to the engine only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.models import MarketInfo, Order, OrderStatus, OrderType, Side
from kubetrade.domain.risk import floor_to_step, stop_limit_for
from kubetrade.exchange.base import ExchangeError
from kubetrade.logs import get_logger
from kubetrade.runner.orders import OrderRouter

#: The reason the stop orders carry (a protective exit: it passes a pending
#: reconciliation, as the engine's own stop-loss does).
STOP_REASON = "stop_loss"

#: (quantity, stop price, limit price) of a stop order.
StopTerms = tuple[Decimal, Decimal, Decimal]


def is_exchange_stop(order: Order) -> bool:
    """An on-exchange stop of ours (not an order the engine decided)."""
    return order.type is OrderType.STOP_LOSS_LIMIT


def stop_client_id(prefix: str, opened_ms: int, n: int) -> str:
    """The ``n``-th stop of the position opened at ``opened_ms`` (fits Binance's 36)."""
    return f"{prefix}x{opened_ms:x}-{n:x}"


def terms_of(order: Order) -> StopTerms:
    """What a stop order on the exchange says."""
    return order.quantity, order.stop_price or Decimal(0), order.price or Decimal(0)


@dataclass(eq=False)
class ExchangeStops:
    """The on-exchange stops of one live strategy (see the module doc). ``router`` is
    the strategy's ``OrderRouter`` (it sends, persists and books); ``prefix`` its client
    order id prefix (``kt-<digest>-``). Attached to the router (``router.stops``)."""

    router: OrderRouter
    engine: TradingEngine
    markets: Mapping[str, MarketInfo]
    prefix: str
    log: Any = field(init=False)

    def __post_init__(self) -> None:
        self.log = get_logger("kubetrade.runner.stops", strategy=self.engine.name)
        self.router.stops = self

    def active(self, symbol: str) -> Order | None:
        """The stop of ``symbol`` not yet terminal (the newest when several)."""
        live = [o for o in self.router.live_orders() if o.symbol == symbol and is_exchange_stop(o)]
        return max(live, key=lambda o: o.created_ms) if live else None

    def wanted(self, symbol: str) -> StopTerms | None:
        """The stop the books ask for on ``symbol`` now (None: none)."""
        pos = self.engine.positions.get(symbol)
        market = self.markets.get(symbol)
        limits = self.engine.limits  # the RiskPolicy in force (it may change hot)
        if pos is None or market is None or not limits.stop_loss_on_exchange:
            return None
        return stop_limit_for(pos.quantity, pos.stop_price, market, limits)

    async def protect(self) -> None:
        """One stop per held position, as the books say; none where nothing is held."""
        for symbol in sorted(self.markets):
            await self.protect_symbol(symbol)

    async def protect_symbol(self, symbol: str) -> None:
        current = self.active(symbol)
        if current is not None and current.status in (OrderStatus.CREATED, OrderStatus.UNKNOWN):
            return  # in doubt: the router settles it first; a second one could oversell
        want = self.wanted(symbol)
        if current is not None and want is not None and terms_of(current) == want:
            return
        if current is not None:
            await self.lift(symbol)
            want = self.wanted(symbol)  # the cancel may have booked fills of the stop
            if self.active(symbol) is not None:
                return  # not cancelled (the exchange did not answer): try next step
        if want is not None:
            await self._place(symbol, want)

    async def lift(self, symbol: str) -> None:
        """Cancel ``symbol``'s stop (before another sell, or to replace it); fills it
        made meanwhile are booked. An answer lost leaves it live (looked up later)."""
        current = self.active(symbol)
        if current is None:
            return
        router = self.router
        try:
            result = await router.exchange.cancel_order(current.client_order_id, symbol)
        except ExchangeError as exc:
            self.log.warning("stop.cancel_failed", client_order_id=current.client_order_id,
                             error=exc)
            result = await router.lookup_or_unknown(current)
            if result.status is OrderStatus.UNKNOWN:
                return
        await router.apply(result, await router.fills_for(result))

    async def sell_allowed(self, order: Order) -> bool:
        """Lift the stop before ``order`` (a sell) goes out; False when what is held no
        longer covers it (the stop sold first)."""
        if order.side is not Side.SELL or is_exchange_stop(order):
            return True
        await self.lift(order.symbol)
        if self.active(order.symbol) is not None:
            return False  # still on the exchange: selling too would sell twice
        pos = self.engine.positions.get(order.symbol)
        market = self.markets.get(order.symbol)
        step = market.qty_step if market else Decimal(0)
        return pos is not None and floor_to_step(pos.quantity, step) >= order.quantity

    async def _place(self, symbol: str, want: StopTerms) -> None:
        pos = self.engine.positions[symbol]
        of_position = f"{self.prefix}x{pos.opened_ms:x}-"
        n = sum(1 for cid in self.router.orders if cid.startswith(of_position))
        qty, trigger, limit = want
        now = self.router.mclock.now_ms()
        order = Order(
            client_order_id=stop_client_id(self.prefix, pos.opened_ms, n),
            strategy=self.engine.name, symbol=symbol, side=Side.SELL,
            type=OrderType.STOP_LOSS_LIMIT, quantity=qty, price=limit, stop_price=trigger,
            created_ms=now, updated_ms=now, reason=STOP_REASON,
        )
        self.log.info("stop.place", client_order_id=order.client_order_id, quantity=str(qty),
                      stop=str(trigger), limit=str(limit))
        await self.router.persist_intents([order], {})
        await self.router.submit(order)

