"""The order router: every order's way from the engine to the exchange and back.

The rules that keep money safe, in the order they apply:

1. Persist the intent: an order is written to Redis (status CREATED) before it is sent
   (``persist_intents``, one MULTI with the engine snapshot and the candle cursor).
2. Send once (``submit``); never blindly re-send. A lost answer (timeout, 5xx, dropped
   connection) is written as UNKNOWN, then the order is looked up by its client order
   id; a ``DuplicateOrder`` means an earlier send arrived, so it is looked up too.
3. Resolve by client order id: orders left CREATED/UNKNOWN/open by a crash or an outage
   are looked up before anything else (``recover``), and resting ones are followed
   candle by candle (``sync_open``).
4. Apply atomically (``apply``): the exchange's answer and its fills go through the
   engine and are written in one MULTI with the new engine snapshot (and the paper
   broker's); trade ids are remembered, so no fill is applied twice.

The gates in front of the exchange (breaker, pending reconciliation) are the
``HaltBook``'s; the router asks it before each send.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from kubetrade.domain.clock import Clock
from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.models import ClosedTrade, Fill, Order, OrderStatus, OrderType
from kubetrade.exchange.base import (
    CircuitOpen,
    DuplicateOrder,
    ExchangeClient,
    ExchangeError,
    GuardedExchange,
    OrderRejected,
    TransientError,
)
from kubetrade.exchange.paper import PaperExchange
from kubetrade.logs import get_logger
from kubetrade.runner.halts import HaltBook, is_protective_exit
from kubetrade.runner.outputs import OutputPort
from kubetrade.state.store import Changes, StateStore

if TYPE_CHECKING:
    from kubetrade.runner.stops import ExchangeStops

#: Exit reason of a round trip closed by the on-exchange stop (``runner/stops.py``).
EXCHANGE_STOP_EXIT = "stop_loss_exchange"
#: Binance answers a trade look-up's start time with the 24 hours after it.
FILLS_WINDOW_MS = 23 * 3_600_000


def fills_since(order: Order, now_ms: int) -> int | None:
    """Start time (ms) to ask for ``order``'s fills: a minute before it was made or
    last changed; None (the latest trades) when that is more than 23 hours ago, as for
    an order stamped with replayed (old) market time."""
    since = max(0, min(order.created_ms, order.updated_ms or order.created_ms) - 60_000)
    return None if now_ms - since > FILLS_WINDOW_MS else since


class OrderRouter:
    """Orders of one strategy: persisted, sent, resolved, applied (see module doc).

    ``clock`` is wall time; ``market_clock`` the time orders carry. ``orders`` holds
    every order by client id; ``fills_seen`` the exchange trade ids already applied.
    """

    def __init__(
        self, name: str, engine: TradingEngine, *, exchange: ExchangeClient, store: StateStore,
        outputs: OutputPort, halts: HaltBook, clock: Clock, market_clock: Clock,
        paper: PaperExchange | None, orders: Mapping[str, Order], fills_seen: Iterable[str],
    ) -> None:
        self.engine = engine
        self.exchange = exchange
        self.store = store
        self.outputs = outputs
        self.halts = halts
        self.clock = clock
        self.mclock = market_clock
        self.paper = paper
        self.orders: dict[str, Order] = dict(orders)
        self._live = {c for c, o in self.orders.items() if not o.status.is_terminal}
        self.fills_seen: set[str] = set(fills_seen)
        #: The on-exchange stops (live, when the RiskPolicy asks): lifted before sells.
        self.stops: ExchangeStops | None = None
        self.log = get_logger("kubetrade.runner", strategy=name, mode=outputs.mode)

    # ---- bookkeeping --------------------------------------------------------------------
    def track(self, order: Order) -> None:
        self.orders[order.client_order_id] = order
        if order.status.is_terminal:
            self._live.discard(order.client_order_id)
        else:
            self._live.add(order.client_order_id)

    def live_orders(self) -> list[Order]:
        """Orders not yet terminal (a copy: callers change the set while iterating)."""
        return [self.orders[c] for c in sorted(self._live)]

    def snapshot(self) -> dict[str, Any]:
        """The engine snapshot as committed: with the halt sources beside it."""
        return self.halts.engine_snapshot(self.engine.snapshot())

    def paper_snapshot(self) -> dict[str, Any] | None:
        if self.paper is None:
            return None
        snap: dict[str, Any] = self.paper.broker.snapshot()
        return snap

    async def persist_intents(self, orders: list[Order], cursor: dict[str, int]) -> None:
        """Intents first: the order ids are durable before anything is sent. The paper
        broker is not written here: it changes only when orders or fills do, and those
        commits carry its snapshot."""
        for order in orders:
            self.track(order)
        await self.store.commit(
            Changes(orders=list(orders), engine_snapshot=self.snapshot(), cursor=cursor)
        )

    # ---- sending --------------------------------------------------------------------------
    async def submit(self, order: Order) -> None:
        """Send one persisted order; never blindly re-send."""
        blocked = self.halts.blocked_reason(order)
        if blocked:
            await self._refuse(order, blocked, blocked.split(":")[0])
            return
        if self.stops is not None and not await self.stops.sell_allowed(order):
            await self._refuse(order, "not sent: the on-exchange stop-loss sold first "
                               "(or could not be cancelled)", "stop_on_exchange")
            return
        try:
            if is_protective_exit(order):
                with self.unreconciled_exits_allowed():
                    result = await self.exchange.create_order(order)
            else:
                result = await self.exchange.create_order(order)
        except DuplicateOrder:
            # The exchange has it already (an earlier send whose answer was lost).
            result = await self.lookup_or_unknown(order)
        except CircuitOpen as exc:
            order.status = OrderStatus.REJECTED
            order.reason = "circuit_open"
            self.outputs.rejected("circuit_open")
            self.log.warning("order.refused", client_order_id=order.client_order_id, error=exc)
            await self.apply(order, [])
            return
        except OrderRejected as exc:
            self.log.warning(
                "order.rejected", client_order_id=order.client_order_id, reason=exc.reason,
                error=exc,
            )
            await self._refuse(order, exc.reason, exc.reason)
            return
        except (TransientError, ExchangeError) as exc:
            result = await self._outcome_unknown(order, exc)
        self.outputs.order_sent(order, result.status.value)
        await self.apply(result, await self.fills_for(result))

    async def _refuse(self, order: Order, reason: str, metric_reason: str) -> None:
        order.status = OrderStatus.REJECTED
        order.reason = reason
        order.updated_ms = self.mclock.now_ms()
        self.outputs.rejected(metric_reason)
        await self.apply(order, [])

    async def _outcome_unknown(self, order: Order, exc: Exception) -> Order:
        """Outcome unknown: persist that, then look it up by client id."""
        self.log.warning("order.outcome_unknown", client_order_id=order.client_order_id,
                         error=exc)
        order.status = OrderStatus.UNKNOWN
        order.updated_ms = self.mclock.now_ms()
        await self.store.commit(Changes(orders=[order]))
        return await self.lookup_or_unknown(order)

    def unreconciled_exits_allowed(self) -> contextlib.AbstractContextManager[Any]:
        """The exchange's own reconciliation gate (a ``GuardedExchange`` refuses orders
        with CircuitOpen until ``mark_reconciled``) opened for one protective exit."""
        if isinstance(self.exchange, GuardedExchange):
            return self.exchange.allow_unreconciled()
        return contextlib.nullcontext()

    async def send_unblocked(self, order: Order) -> None:
        """Exits of close-all go out even when the breaker gate would hold entries (the
        runner's gate and the exchange client's reconciliation gate)."""
        with self.halts.gates_lifted(), self.unreconciled_exits_allowed():
            await self.submit(order)

    # ---- resolving by client order id ----------------------------------------------------
    async def lookup_or_unknown(self, order: Order) -> Order:
        """The exchange's view of ``order``; EXPIRED when it never arrived; ``order``
        as UNKNOWN when the exchange could not be asked."""
        try:
            remote = await self.exchange.fetch_order(order.client_order_id, order.symbol)
        except ExchangeError as exc:
            self.log.warning(
                "order.lookup_failed", client_order_id=order.client_order_id, error=exc
            )
            order.status = OrderStatus.UNKNOWN
            return order
        if remote is None:
            # Not on the exchange: it never arrived. Nothing was traded.
            order.status = OrderStatus.EXPIRED
            order.reason = "not accepted by the exchange (lookup by client id found nothing)"
            order.updated_ms = self.mclock.now_ms()
            return order
        return remote

    async def fills_for(self, order: Order) -> list[Fill]:
        """``order``'s fills on the exchange ([] when none, or when it cannot answer)."""
        if order.filled_quantity <= 0 and order.status not in (
            OrderStatus.FILLED,
            OrderStatus.PARTIALLY_FILLED,
        ):
            return []
        try:
            since = fills_since(order, self.clock.now_ms())
            fills = await self.exchange.fetch_fills(order.symbol, since_ms=since)
        except ExchangeError as exc:
            self.log.warning("fills.fetch_failed", client_order_id=order.client_order_id,
                             error=exc)
            return []
        return [f for f in fills if f.client_order_id == order.client_order_id]

    async def recover(self) -> None:
        """Look up every order whose outcome we do not know, by client order id."""
        for order in sorted(self.live_orders(), key=lambda o: (o.created_ms, o.client_order_id)):
            try:
                remote = await self.exchange.fetch_order(order.client_order_id, order.symbol)
            except ExchangeError as exc:
                self.log.warning(
                    "recovery.lookup_failed", client_order_id=order.client_order_id, error=exc
                )
                continue
            if remote is None:
                never_sent = order.status in (OrderStatus.CREATED, OrderStatus.UNKNOWN)
                outcome = "never_sent" if never_sent else "missing"
                order.status = OrderStatus.EXPIRED
                order.reason = f"not found on the exchange at restart ({outcome})"
                order.updated_ms = self.mclock.now_ms()
                await self.apply(order, [])
            else:
                outcome = "found"
                await self.apply(remote, await self.fills_for(remote))
            self.outputs.recovered(outcome)
            await self.outputs.audit(
                "order.recovered",
                {"client_order_id": order.client_order_id, "outcome": outcome,
                 "status": self.orders[order.client_order_id].status.value},
            )
            self.log.info(
                "order.recovered", client_order_id=order.client_order_id, outcome=outcome
            )

    async def sync_open(self, symbol: str) -> None:
        """Bring resting orders up to date (partial fills of limits, cancellations), and
        settle orders left UNKNOWN by a lost answer as soon as the exchange answers."""
        for order in [o for o in self.live_orders() if o.symbol == symbol]:
            if order.status is OrderStatus.UNKNOWN:
                if self.halts.breaker_open:
                    continue
                settled = await self.lookup_or_unknown(order)
                if settled.status is not OrderStatus.UNKNOWN:
                    await self.apply(settled, await self.fills_for(settled))
                continue
            if order.status not in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED):
                continue
            try:
                remote = await self.exchange.fetch_order(order.client_order_id, order.symbol)
            except ExchangeError:
                continue
            if remote is None:
                continue
            if (
                remote.status != order.status
                or remote.filled_quantity != order.filled_quantity
            ):
                await self.apply(remote, await self.fills_for(remote))

    # ---- applying the exchange's answer ----------------------------------------------------
    async def apply(self, order: Order, fills: list[Fill]) -> None:
        """Order update + new fills -> engine -> one atomic commit -> outputs."""
        new, closed = self._feed_engine(fills)
        if order.type is not OrderType.STOP_LOSS_LIMIT:  # a stop is not the engine's order
            self.engine.on_order_update(order)
        self.track(order)
        await self.store.commit(
            Changes(
                orders=[order],
                fills=new,
                closed_trades=closed,
                engine_snapshot=self.snapshot(),
                positions=dict(self.engine.positions),
                paper_snapshot=self.paper_snapshot(),
            )
        )
        self.fills_seen.update(f.trade_id for f in new)
        await self.outputs.order_applied(self.engine, order, new, closed)
        if order.status is OrderStatus.REJECTED or order.status is OrderStatus.EXPIRED:
            await self.outputs.audit(
                "order." + order.status.value,
                {"client_order_id": order.client_order_id, "reason": order.reason,
                 "symbol": order.symbol, "side": order.side.value},
            )
        # alerts the fill raised (trade opened/closed, halts) go out now, not at the next
        # candle's drain: fills also arrive at start, after an outage and on cancels
        await self.outputs.drain(self.engine)

    def _feed_engine(self, fills: list[Fill]) -> tuple[list[Fill], list[ClosedTrade]]:
        """The fills not seen before, through the engine (before the order's terminal
        status, so a fill is never attributed to an order it already forgot)."""
        new = [f for f in fills if f.trade_id not in self.fills_seen]
        closed: list[ClosedTrade] = []
        applied: list[Fill] = []
        for fill in sorted(new, key=lambda f: (f.ts_ms, f.trade_id)):
            try:
                trades = self.engine.on_fill(fill)
                if fill.client_order_id in self.orders and (
                        self.orders[fill.client_order_id].type is OrderType.STOP_LOSS_LIMIT):
                    # the engine does not know the stop's order: its exit is named here
                    trades = [replace(t, exit_reason=t.exit_reason or EXCHANGE_STOP_EXIT)
                              for t in trades]
                closed.extend(trades)
            except ValueError as exc:
                # The engine raised a reconciliation alert; keep the fill unapplied so
                # reconciliation shows the difference instead of hiding it.
                self.log.error("fill.not_applied", trade_id=fill.trade_id, error=exc)
                continue
            applied.append(fill)
        return applied, closed

    # ---- cancelling and closing ------------------------------------------------------------
    async def cancel_open(self) -> list[str]:
        """Cancel every live order but the on-exchange stops (they protect what is
        held; a sell lifts them); the client ids the exchange confirmed cancelled."""
        cancelled: list[str] = []
        for order in self.live_orders():
            if order.type is OrderType.STOP_LOSS_LIMIT:
                continue
            try:
                result = await self.exchange.cancel_order(order.client_order_id, order.symbol)
            except ExchangeError as exc:
                self.log.warning(
                    "cancel.failed", client_order_id=order.client_order_id, error=exc
                )
                remote = await self.lookup_or_unknown(order)
                await self.apply(remote, await self.fills_for(remote))
                continue
            await self.apply(result, await self.fills_for(result))
            cancelled.append(order.client_order_id)
        return cancelled

    async def sell_everything(self) -> None:
        """Market sells for every position; each intent persisted before it is sent."""
        for order in self.engine.close_all(self.mclock.now_ms()):
            self.track(order)
            await self.store.commit(Changes(orders=[order], engine_snapshot=self.snapshot()))
            await self.send_unblocked(order)
        await self.outputs.drain(self.engine)
