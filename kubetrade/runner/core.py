"""The runner: one strategy trading, crash-safe.

Per candle: (paper: feed the candle to the paper broker, apply any fills of resting
orders) -> ``TradingEngine.on_candle`` -> the orders it wants are written to Redis with
status CREATED together with the engine snapshot and the candle cursor (one MULTI) ->
each order is sent -> the exchange's answer and its fills go through the engine and
are written in one MULTI with the new engine snapshot (and paper broker snapshot) ->
events, audit, alerts, metrics.

Because every change is one transaction and every order is persisted before it is
sent, a SIGKILL anywhere leaves Redis consistent; at start the runner restores the
engine (and paper broker), looks up every order that was CREATED/UNKNOWN/open by its
client order id on the exchange before anything else, applies fills it has not seen
(trade ids are remembered, so none is applied twice), then reconciles with the
exchange's balances and open orders.

Halting: an emergency stop/close-all, a disabled Strategy and an open circuit breaker
all stop new orders. The breaker rule: after the breaker closes again, trading only
resumes once a reconciliation finds no mismatch.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from kubetrade.domain.algorithms import create_algorithm
from kubetrade.domain.clock import Clock
from kubetrade.domain.engine import HALT_DRAWDOWN, HALT_MANUAL, TradingEngine
from kubetrade.domain.models import (
    Balance,
    Candle,
    ClosedTrade,
    Fill,
    MarketInfo,
    Order,
    OrderStatus,
    Side,
    make_client_order_id,
    to_dict,
)
from kubetrade.domain.risk import RiskLimits
from kubetrade.exchange.base import (
    CircuitOpen,
    DuplicateOrder,
    ExchangeClient,
    ExchangeError,
    OrderRejected,
    TransientError,
)
from kubetrade.exchange.paper import PaperExchange
from kubetrade.logs import get_logger
from kubetrade.runner.emergency import EmergencyCommand
from kubetrade.runner.market import MarketSource, timeframe_ms
from kubetrade.runner.metrics import RunnerMetrics, runner_metrics
from kubetrade.runner.reconcile import ReconciliationResult, client_id_prefix, reconcile
from kubetrade.state.alerts import Alert, AlertKind, Severity, raise_alert
from kubetrade.state.audit import AuditEntry, write_audit
from kubetrade.state.events import EventType, publish_event
from kubetrade.state.keys import Keys
from kubetrade.state.store import Changes, StateStore

ACTOR = "runner"
#: Orders that reduce risk: they go out while reconciliation is pending (an unprotected
#: losing position is the larger risk), though never to an exchange whose breaker is open.
PROTECTIVE_EXIT_REASONS = frozenset({"stop_loss", "close_all"})


@dataclass
class RunnerSpec:
    """What the runner needs from the Strategy manifest."""

    name: str
    algorithm: str
    parameters: dict[str, Any]
    symbols: list[str]
    timeframe: str = "1m"
    mode: str = "paper"
    initial_capital: Decimal = Decimal(10000)
    enabled: bool = True
    risk_policy_ref: str = "default"
    testnet: bool = True
    #: The Strategy's namespace when the runner trades from a cluster (None otherwise).
    namespace: str | None = None

    @property
    def quote_asset(self) -> str:
        return self.symbols[0].split("/")[1] if self.symbols else "USDT"

    @property
    def order_id_source(self) -> str:
        """What client order ids are derived from. Strategy names are unique only within
        a namespace, and two namespaces may trade one exchange account: with the bare
        name their ids would collide, the exchange would refuse one runner's order as a
        duplicate and that runner would adopt the other's order and fills."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @classmethod
    def from_manifest(
        cls, manifest: dict[str, Any], namespace: str | None = None
    ) -> RunnerSpec:
        """Validate with the Strategy resource model, so the runner refuses what the API
        server would refuse, with the same messages."""
        from kubetrade.resources import Strategy

        model = Strategy.model_validate(manifest)
        spec = model.spec
        return cls(
            namespace=namespace,
            name=model.metadata.name,
            algorithm=spec.algorithm,
            parameters=spec.validated_parameters(),
            symbols=list(spec.symbols),
            timeframe=spec.timeframe,
            mode=spec.mode,
            initial_capital=Decimal(str(spec.initial_capital)),
            enabled=spec.enabled,
            risk_policy_ref=spec.risk_policy_ref,
            testnet=spec.exchange.testnet,
        )


def limits_from_manifest(manifest: dict[str, Any] | None) -> RiskLimits:
    return RiskLimits.model_validate((manifest or {}).get("spec") or {})


@dataclass
class RunnerOptions:
    reconcile_interval_s: float = 300.0
    #: In paper mode the broker state is persisted with every commit.
    paper: bool = True
    #: Stop after this many candles (tests and benchmarks); None runs forever.
    max_candles: int | None = None


#: Sources of the runner's halt (the engine's single manual halt carries their text).
HALT_SOURCES = ("deleting", "disabled", "emergency")
EMERGENCY_HALTS = ("stop", "close-all")


def halt_sources(text: str) -> dict[str, str]:
    """Source -> reason, from the manual halt text ``_Halts.text()`` wrote. Text no
    source claims is put under "emergency": an emergency resume is the way out of it."""
    out: dict[str, str] = {}
    current: str | None = None
    for part in text.split("; ") if text else []:
        source, sep, reason = part.partition(": ")
        if sep and source in HALT_SOURCES and source not in out:
            out[source] = reason
            current = source
        elif current is not None:
            out[current] += "; " + part
        else:
            out["emergency"] = part
            current = "emergency"
    return out


@dataclass
class _Halts:
    """Why new orders are stopped, by source; trading runs when empty."""

    reasons: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        return "; ".join(f"{k}: {v}" for k, v in sorted(self.reasons.items()))


class Runner:
    def __init__(
        self,
        spec: RunnerSpec,
        *,
        redis: Redis,
        keys: Keys,
        exchange: ExchangeClient,
        market: MarketSource,
        clock: Clock,
        limits: RiskLimits,
        paper: PaperExchange | None = None,
        options: RunnerOptions | None = None,
        metrics: RunnerMetrics | None = None,
        market_clock: Clock | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.redis = redis
        self.keys = keys
        self.exchange = exchange
        self.market = market
        self.clock = clock
        # Orders and fills carry market time (the candles' time in a replay); audit,
        # summary and acks carry wall time.
        self.mclock: Clock = market_clock or clock
        self.limits = limits
        self.paper = paper
        self.options = options or RunnerOptions(paper=paper is not None)
        self.metrics = metrics or runner_metrics()
        self.store = StateStore(redis, keys, spec.name)
        self.log = get_logger("kubetrade.runner", strategy=spec.name, mode=spec.mode)
        self.engine: TradingEngine | None = None
        self.markets: dict[str, MarketInfo] = {}
        self.orders: dict[str, Order] = {}
        self._live: set[str] = set()  # client ids of orders not yet terminal
        self.fills_seen: set[str] = set()
        self.cursor: dict[str, int] = {}
        self.baseline: dict[str, Decimal] = {}
        self.halts = _Halts()
        self.last_emergency: str | None = None
        self.breaker_open = False
        self.awaiting_reconciliation = False
        self.candles_processed = 0
        self.last_reconciliation: ReconciliationResult | None = None
        self._prefix = client_id_prefix(make_client_order_id(spec.order_id_source, 0, 0))
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._marks: dict[str, Decimal] = {}
        self._peak_equity: Decimal | None = None

    # ------------------------------------------------------------------ start
    async def start(self) -> None:
        """Restore state, resolve in-doubt orders, reconcile. Must precede ``run``."""
        restored = await self.store.load()
        if self.paper is not None and restored.paper_snapshot is not None:
            self.paper.broker.restore(restored.paper_snapshot)
        self.markets = await self.exchange.load_markets()
        missing = [s for s in self.spec.symbols if s not in self.markets]
        if missing:
            raise ValueError(f"spec.symbols: {', '.join(missing)} not offered by the exchange")
        strategy = create_algorithm(self.spec.algorithm, self.spec.parameters)
        markets = {s: self.markets[s] for s in self.spec.symbols}
        engine: TradingEngine
        if restored.engine_snapshot is not None:
            engine = TradingEngine.restore(
                restored.engine_snapshot,
                strategy,
                limits=self.limits,
                markets=markets,
            )
        else:
            engine = TradingEngine(
                self.name,
                strategy,
                self.limits,
                markets,
                self.spec.initial_capital,
                quote_asset=self.spec.quote_asset,
                timeframe_ms=timeframe_ms(self.spec.timeframe),
            )
        # new orders get namespace-qualified ids; orders persisted before (bare-name ids)
        # are still looked up by the id stored with them
        engine.order_id_source = self.spec.order_id_source
        self.engine = engine
        self.engine.update_limits(self.limits)
        self.orders = dict(restored.orders)
        self._live = {c for c, o in self.orders.items() if not o.status.is_terminal}
        self.fills_seen = set(restored.fills_seen)
        self.cursor = dict(restored.cursor)
        self.baseline = await self._load_baseline(fresh=restored.fresh)
        # the emergency action this runner last applied: a later ``none`` is a resume
        # only when it follows a stop/close-all (see apply_emergency)
        self.last_emergency = await self.store.read_emergency_ack()
        # which of our sources hold the engine's manual halt, so the change that lifts
        # one after a restart (re-enabled, emergency resumed while down) finds it
        manual = self.engine.halts.get(HALT_MANUAL)
        self.halts.reasons = halt_sources(manual.reason) if manual is not None else {}
        if "emergency" in self.halts.reasons and self.last_emergency not in EMERGENCY_HALTS:
            self.last_emergency = "stop"  # halted by an emergency, ack not yet written
        self.log.info(
            "runner.restored" if not restored.fresh else "runner.fresh_start",
            orders=len(self.orders),
            pending=len(restored.pending_orders()),
            fills_seen=len(self.fills_seen),
            cursor=self.cursor,
            halted=self.engine.is_halted,
        )
        await self._audit("runner.start", {"fresh": restored.fresh})
        if not restored.fresh:
            pending = restored.pending_orders()
            await self._alert(
                AlertKind.RUNNER_RESTARTING,
                Severity.WARNING if pending else Severity.INFO,
                f"{self.name}: runner restarted",
                f"state restored from Redis; {len(pending)} order(s) to look up on the "
                "exchange before trading",
                self.clock.now_ms(),
                {"pending_orders": [o.client_order_id for o in pending]},
            )
        await self.recover_orders()
        await self.reconcile_now("start")
        await self._write_summary()
        # Everything loaded so far lives for the whole run: keep it out of the cyclic
        # GC's scans, whose full collections otherwise show up as decision-latency spikes.
        gc.freeze()

    async def _load_baseline(self, fresh: bool) -> dict[str, Decimal]:
        key = self.keys.reconciliation_baseline(self.name)
        raw: Any = await self.redis.hgetall(key)  # type: ignore[misc]
        if raw:
            return {a: Decimal(v) for a, v in raw.items()}
        if self.paper is not None:
            baseline: dict[str, Decimal] = {}
        else:
            balances = await self.exchange.fetch_balances()
            held = self.engine.positions if self.engine else {}
            baseline = {}
            for symbol in self.spec.symbols:
                base = self.markets[symbol].base
                bal = balances.get(base)
                pos = held.get(symbol)
                baseline[base] = (bal.total if bal else Decimal(0)) - (
                    pos.quantity if pos else Decimal(0)
                )
        if baseline:
            await self.redis.hset(key, mapping={a: str(v) for a, v in baseline.items()})  # type: ignore[misc]
        return baseline

    async def recover_orders(self) -> None:
        """Look up every order whose outcome we do not know, by client order id."""
        pending = self._live_orders()
        for order in sorted(pending, key=lambda o: (o.created_ms, o.client_order_id)):
            try:
                remote = await self.exchange.fetch_order(order.client_order_id, order.symbol)
            except ExchangeError as exc:
                self.log.warning(
                    "recovery.lookup_failed", client_order_id=order.client_order_id, error=exc
                )
                continue
            if remote is None:
                if order.status in (OrderStatus.CREATED, OrderStatus.UNKNOWN):
                    outcome = "never_sent"
                else:
                    outcome = "missing"
                order.status = OrderStatus.EXPIRED
                order.reason = f"not found on the exchange at restart ({outcome})"
                order.updated_ms = self.mclock.now_ms()
                await self._apply(order, [])
            else:
                outcome = "found"
                await self._apply(remote, await self._fills_for(remote))
            self.metrics.recovered_orders.labels(self.name, outcome).inc()
            await self._audit(
                "order.recovered",
                {
                    "client_order_id": order.client_order_id,
                    "outcome": outcome,
                    "status": self.orders[order.client_order_id].status.value,
                },
            )
            self.log.info(
                "order.recovered", client_order_id=order.client_order_id, outcome=outcome
            )

    # ------------------------------------------------------------------ loop
    async def run(self, extra_tasks: list[Coroutine[Any, Any, None]] | None = None) -> None:
        """Trade until cancelled (or ``options.max_candles``)."""
        tasks: list[asyncio.Task[None]] = [asyncio.create_task(t) for t in (extra_tasks or [])]
        if self.options.reconcile_interval_s > 0:
            tasks.append(asyncio.create_task(self._periodic_reconciliation()))
        try:
            async for symbol, candle in self.market.candles(self.cursor):
                await self.process_candle(symbol, candle)
                if (
                    self.options.max_candles is not None
                    and self.candles_processed >= self.options.max_candles
                ):
                    break
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

    async def process_candle(self, symbol: str, candle: Candle) -> None:
        assert self.engine is not None, "start() first"
        async with self._lock:
            t0 = time.perf_counter()
            if self.cursor.get(symbol, -1) >= candle.ts_ms:
                return
            if self.breaker_open:
                # market data may not touch the exchange (replay), so probe it: the
                # breaker's half-open probe is how it learns the exchange is back
                probe = getattr(self.exchange, "probe", None)
                if callable(probe):
                    await probe()
            if self.awaiting_reconciliation and not self.breaker_open:
                await self.recover_orders()
                await self.reconcile_now("before_resume")
            if self.paper is not None:
                await self._paper_candle(symbol, candle)
            await self._sync_open_orders(symbol)
            now_ms = self.clock.now_ms() if self.market.kind == "exchange" else None
            orders = self.engine.on_candle(symbol, candle, now_ms)
            self._marks[symbol] = candle.close
            self.cursor[symbol] = candle.ts_ms
            for order in orders:
                self._track(order)
            # Intents first: the order ids are durable before anything is sent. The paper
            # broker is not written here: it changes only when orders or fills do, and
            # those commits carry its snapshot.
            await self.store.commit(
                Changes(
                    orders=list(orders),
                    engine_snapshot=self.engine.snapshot(),
                    cursor={symbol: candle.ts_ms},
                )
            )
            for order in orders:
                await self._submit(order)
                self.metrics.decision_latency.labels(self.name).observe(
                    time.perf_counter() - t0
                )
            self.candles_processed += 1
            self.metrics.candles.labels(self.name, symbol).inc()
            if self.market.kind == "exchange":
                close_ms = candle.ts_ms + timeframe_ms(self.spec.timeframe)
                self.metrics.candle_lag.labels(self.name, symbol).set(
                    max(0.0, (self.clock.now_ms() - close_ms) / 1000)
                )
            await self._drain_engine_events()
            await self._write_summary(ts_ms=candle.ts_ms + timeframe_ms(self.spec.timeframe))

    # ------------------------------------------------------------------ orders
    async def _submit(self, order: Order) -> None:
        """Send one persisted order; never blindly re-send."""
        assert self.engine is not None
        blocked = self._blocked_reason(order)
        if blocked:
            order.status = OrderStatus.REJECTED
            order.reason = blocked
            order.updated_ms = self.mclock.now_ms()
            self.metrics.rejections.labels(self.name, blocked.split(":")[0]).inc()
            await self._apply(order, [])
            return
        try:
            if self._is_protective_exit(order):
                with self._unreconciled_exits_allowed():
                    result = await self.exchange.create_order(order)
            else:
                result = await self.exchange.create_order(order)
        except DuplicateOrder:
            # The exchange has it already (an earlier send whose answer was lost).
            result = await self._lookup_or_unknown(order)
        except CircuitOpen as exc:
            order.status = OrderStatus.REJECTED
            order.reason = "circuit_open"
            self.metrics.rejections.labels(self.name, "circuit_open").inc()
            self.log.warning("order.refused", client_order_id=order.client_order_id, error=exc)
            await self._apply(order, [])
            return
        except OrderRejected as exc:
            order.status = OrderStatus.REJECTED
            order.reason = exc.reason
            order.updated_ms = self.mclock.now_ms()
            self.metrics.rejections.labels(self.name, exc.reason).inc()
            self.log.warning(
                "order.rejected", client_order_id=order.client_order_id, reason=exc.reason,
                error=exc,
            )
            await self._apply(order, [])
            return
        except (TransientError, ExchangeError) as exc:
            # Outcome unknown: persist that, then look it up by client id.
            self.log.warning(
                "order.outcome_unknown", client_order_id=order.client_order_id, error=exc
            )
            order.status = OrderStatus.UNKNOWN
            order.updated_ms = self.mclock.now_ms()
            await self.store.commit(Changes(orders=[order]))
            result = await self._lookup_or_unknown(order)
        self.metrics.orders.labels(
            self.name, order.symbol, order.side.value, result.status.value
        ).inc()
        await self._apply(result, await self._fills_for(result))

    async def _lookup_or_unknown(self, order: Order) -> Order:
        try:
            remote = await self.exchange.fetch_order(order.client_order_id, order.symbol)
        except ExchangeError as exc:
            self.log.warning(
                "order.lookup_failed", client_order_id=order.client_order_id, error=exc
            )
            remote = None
            order.status = OrderStatus.UNKNOWN
            return order
        if remote is None:
            # Not on the exchange: it never arrived. Nothing was traded.
            order.status = OrderStatus.EXPIRED
            order.reason = "not accepted by the exchange (lookup by client id found nothing)"
            order.updated_ms = self.mclock.now_ms()
            return order
        return remote

    def _track(self, order: Order) -> None:
        self.orders[order.client_order_id] = order
        if order.status.is_terminal:
            self._live.discard(order.client_order_id)
        else:
            self._live.add(order.client_order_id)

    def _live_orders(self) -> list[Order]:
        """Orders not yet terminal (a copy: callers change the set while iterating)."""
        return [self.orders[c] for c in sorted(self._live)]

    def _blocked_reason(self, order: Order) -> str:
        if self.breaker_open:
            return "circuit_open"
        if self.awaiting_reconciliation and not self._is_protective_exit(order):
            return "awaiting_reconciliation"
        return ""

    @staticmethod
    def _is_protective_exit(order: Order) -> bool:
        return order.side is Side.SELL and order.reason in PROTECTIVE_EXIT_REASONS

    def _unreconciled_exits_allowed(self) -> contextlib.AbstractContextManager[Any]:
        """The exchange's own reconciliation gate (ResilientExchange refuses orders with
        CircuitOpen until ``mark_reconciled``) opened for one protective exit."""
        allow = getattr(self.exchange, "allow_unreconciled", None)
        if callable(allow):
            ctx: contextlib.AbstractContextManager[Any] = allow()
            return ctx
        return contextlib.nullcontext()

    async def _fills_for(self, order: Order) -> list[Fill]:
        if order.filled_quantity <= 0 and order.status not in (
            OrderStatus.FILLED,
            OrderStatus.PARTIALLY_FILLED,
        ):
            return []
        try:
            since: int | None = max(
                0, min(order.created_ms, order.updated_ms or order.created_ms) - 60_000
            )
            # Binance answers a start time with the 24 hours after it: an order stamped
            # with replayed (old) market time is looked up among the latest trades.
            if since is not None and self.clock.now_ms() - since > 23 * 3_600_000:
                since = None
            fills = await self.exchange.fetch_fills(order.symbol, since_ms=since)
        except ExchangeError as exc:
            self.log.warning("fills.fetch_failed", client_order_id=order.client_order_id,
                             error=exc)
            return []
        return [f for f in fills if f.client_order_id == order.client_order_id]

    async def _sync_open_orders(self, symbol: str) -> None:
        """Bring resting orders up to date (partial fills of limits, cancellations), and
        settle orders left UNKNOWN by a lost answer as soon as the exchange answers."""
        for order in [o for o in self._live_orders() if o.symbol == symbol]:
            if order.status is OrderStatus.UNKNOWN:
                if self.breaker_open:
                    continue
                settled = await self._lookup_or_unknown(order)
                if settled.status is not OrderStatus.UNKNOWN:
                    await self._apply(settled, await self._fills_for(settled))
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
                await self._apply(remote, await self._fills_for(remote))

    async def _apply(self, order: Order, fills: list[Fill]) -> None:
        """Order update + new fills -> engine -> one atomic commit -> events."""
        assert self.engine is not None
        new = [f for f in fills if f.trade_id not in self.fills_seen]
        # the engine is fed fills before the order's terminal status, so a fill is never
        # attributed to an order it already forgot.
        closed: list[ClosedTrade] = []
        applied: list[Fill] = []
        for fill in sorted(new, key=lambda f: (f.ts_ms, f.trade_id)):
            try:
                closed.extend(self.engine.on_fill(fill))
            except ValueError as exc:
                # The engine raised a reconciliation alert; keep the fill unapplied so
                # reconciliation shows the difference instead of hiding it.
                self.log.error("fill.not_applied", trade_id=fill.trade_id, error=exc)
                continue
            applied.append(fill)
        new = applied
        self.engine.on_order_update(order)
        self._track(order)
        await self.store.commit(
            Changes(
                orders=[order],
                fills=new,
                closed_trades=closed,
                engine_snapshot=self.engine.snapshot(),
                positions=dict(self.engine.positions),
                paper_snapshot=self._paper_snapshot(),
            )
        )
        self.fills_seen.update(f.trade_id for f in new)
        if new:
            self._risk_metrics()
        now = self.clock.now_ms()
        await self._event(EventType.ORDER, now, to_dict(order))
        for fill in new:
            self.metrics.fills.labels(self.name, fill.symbol, fill.side.value).inc()
            await self._event(EventType.FILL, now, to_dict(fill))
            self.log.info(
                "fill", client_order_id=fill.client_order_id, symbol=fill.symbol,
                side=fill.side.value, quantity=str(fill.quantity), price=str(fill.price),
                trade_id=fill.trade_id,
            )
        for trade in closed:
            self.metrics.trades.labels(self.name, "win" if trade.pnl > 0 else "loss").inc()
            await self._event(EventType.TRADE, now, to_dict(trade))
            self.log.info(
                "trade.closed", symbol=trade.symbol, pnl=str(trade.pnl),
                entry=str(trade.entry_price), exit=str(trade.exit_price),
                reason=trade.exit_reason,
            )
        if new:
            await self._event(
                EventType.POSITION, now,
                {"positions": {s: to_dict(p) for s, p in self.engine.positions.items()}},
            )
        if order.status is OrderStatus.REJECTED or order.status is OrderStatus.EXPIRED:
            await self._audit(
                "order." + order.status.value,
                {"client_order_id": order.client_order_id, "reason": order.reason,
                 "symbol": order.symbol, "side": order.side.value},
            )
        # alerts the fill raised (trade opened/closed, halts) go out now, not at the next
        # candle's drain: fills also arrive at start, after an outage and on cancels
        await self._drain_engine_events()

    # ------------------------------------------------------------------ halts
    async def _set_halt(self, source: str, reason: str | None, by: str) -> None:
        """Add (reason) or clear (None) one source of halting and sync the engine."""
        assert self.engine is not None
        if reason is None:
            self.halts.reasons.pop(source, None)
        else:
            self.halts.reasons[source] = reason
        if self.halts.reasons:
            self.engine.halt(self.halts.text(), by)
        elif self.engine.is_halted:
            self.engine.resume(by)
        self.metrics.halted.labels(self.name).set(1 if self.engine.is_halted else 0)
        await self._drain_engine_events()
        await self.store.commit(Changes(engine_snapshot=self.engine.snapshot()))
        await self._write_summary()

    async def apply_emergency(self, cmd: EmergencyCommand) -> None:
        """Stop / close-all / resume. Applied once per change of action.

        ``none`` resumes only on a real transition from stop/close-all (this runner's
        last acknowledged action, kept in Redis across restarts). The first event of a
        watch, or the state read at start, says ``none`` too; treating that as a resume
        would lift a max-drawdown halt restored from the snapshot, which only a person
        may lift.
        """
        assert self.engine is not None
        async with self._lock:
            if cmd.action == self.last_emergency and cmd.source != "start":
                return
            if cmd.action == "none" and cmd.source == "kubernetes" \
                    and await self._redis_holds_emergency():
                # The resource says none but Redis says stop: a stop delivered through
                # Redis while the resource could not be written. The older of the two
                # must not resume trading; a real resume reaches Redis too.
                self.log.warning("emergency.none_ignored", source=cmd.source,
                                 note="Redis still holds stop/close-all")
                return
            previous = self.last_emergency
            self.last_emergency = cmd.action
            cancelled: list[str] = []
            if cmd.action == "none" and previous not in EMERGENCY_HALTS:
                self.log.info("emergency.none_observed", by=cmd.by, source=cmd.source,
                              note="no stop/close-all to lift; halts stay as they are")
                await self.store.ack_emergency(cmd.action, self.clock.now_ms(), cancelled)
                return
            self.log.warning(
                "emergency", action=cmd.action, by=cmd.by, reason=cmd.reason, source=cmd.source
            )
            if cmd.action == "none":
                await self._set_halt("emergency", None, cmd.by or "emergency")
            else:
                await self._set_halt(
                    "emergency", f"{cmd.action} by {cmd.by}: {cmd.reason}".strip(), cmd.by
                )
                cancelled = await self._cancel_open_orders()
                if cmd.action == "close-all":
                    await self._sell_everything()
            self.metrics.emergency.labels(self.name, cmd.action).inc()
            await self.store.ack_emergency(cmd.action, self.clock.now_ms(), cancelled)
            await self._audit(
                f"emergency.{cmd.action}.applied",
                {"by": cmd.by, "reason": cmd.reason, "source": cmd.source,
                 "cancelled": cancelled},
            )
            await self._write_summary()

    async def _redis_holds_emergency(self) -> bool:
        """Does Redis hold stop/close-all? False when Redis cannot answer: the Kubernetes
        path must work while Redis is down."""
        try:
            state = await asyncio.wait_for(self.store.read_emergency(), 2.0)
        except (RedisError, OSError, TimeoutError) as exc:
            self.log.warning("emergency.redis_unreadable", error=str(exc))
            return False
        return state.get("action") in EMERGENCY_HALTS

    async def _sell_everything(self) -> None:
        """Market sells for every position; each intent persisted before it is sent."""
        assert self.engine is not None
        for order in self.engine.close_all(self.mclock.now_ms()):
            self._track(order)
            await self.store.commit(
                Changes(orders=[order], engine_snapshot=self.engine.snapshot())
            )
            await self._send_unblocked(order)
        await self._drain_engine_events()

    async def close_positions(self, reason: str, by: str) -> None:
        """Halt, cancel open orders and sell every position (Strategy deleted with
        ``closePositionsOnDelete``); the operator waits for the positions to be gone."""
        async with self._lock:
            await self._set_halt("deleting", reason, by)
            cancelled = await self._cancel_open_orders()
            await self._sell_everything()
            await self._audit("strategy.positions_closed",
                              {"by": by, "reason": reason, "cancelled": cancelled})
            await self._write_summary()

    async def _send_unblocked(self, order: Order) -> None:
        """Exits of close-all go out even when the breaker gate would hold entries (the
        runner's gate and the exchange client's reconciliation gate)."""
        gate = (self.breaker_open, self.awaiting_reconciliation)
        self.breaker_open = self.awaiting_reconciliation = False
        try:
            with self._unreconciled_exits_allowed():
                await self._submit(order)
        finally:
            self.breaker_open, self.awaiting_reconciliation = gate

    async def _cancel_open_orders(self) -> list[str]:
        cancelled: list[str] = []
        for order in self._live_orders():
            try:
                result = await self.exchange.cancel_order(order.client_order_id, order.symbol)
            except ExchangeError as exc:
                self.log.warning(
                    "cancel.failed", client_order_id=order.client_order_id, error=exc
                )
                remote = await self._lookup_or_unknown(order)
                await self._apply(remote, await self._fills_for(remote))
                continue
            await self._apply(result, await self._fills_for(result))
            cancelled.append(order.client_order_id)
        return cancelled

    async def set_enabled(self, enabled: bool, by: str) -> None:
        async with self._lock:
            if enabled == ("disabled" not in self.halts.reasons):
                return
            self.log.warning("strategy.enabled" if enabled else "strategy.disabled", by=by)
            await self._set_halt("disabled", None if enabled else "spec.enabled is false", by)
            if not enabled:
                await self._cancel_open_orders()
            await self._audit("strategy.enabled" if enabled else "strategy.disabled", {"by": by})

    async def update_limits(self, limits: RiskLimits, by: str) -> None:
        assert self.engine is not None
        async with self._lock:
            if limits == self.limits:
                return
            self.limits = limits
            self.engine.update_limits(limits)
            await self.store.commit(Changes(engine_snapshot=self.engine.snapshot()))
            self.log.info("risk.limits_updated", by=by)
            await self._audit(
                "risk.limits_updated", {"by": by, "limits": limits.model_dump(mode="json")}
            )

    # ------------------------------------------------------------------ breaker
    def on_exchange_event(self, event: Any) -> None:
        """Listener for ResilientExchange events (sync callback: schedules the work)."""
        kind = getattr(event, "kind", "")
        data = getattr(event, "data", {}) or {}
        if kind == "breaker":
            state = str(data.get("to", ""))
            self.metrics.set_breaker(self.name, state)
            if state in ("open", "closed"):
                self._spawn(self.on_breaker(state))
        elif kind == "reconciliation_required":
            self.awaiting_reconciliation = True
        elif kind in ("order_outcome_unknown", "order_unresolved", "order_resent",
                      "order_recovered", "rate_limited"):
            self.log.warning("exchange." + kind, **{k: str(v) for k, v in data.items()})

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def on_breaker(self, state: str) -> None:
        """Callback for the exchange's circuit breaker (closed/half_open/open)."""
        self.metrics.set_breaker(self.name, state)
        now = self.clock.now_ms()
        if state == "open" and not self.breaker_open:
            self.breaker_open = True
            self.awaiting_reconciliation = True
            self.log.error("breaker.open")
            await self._alert(AlertKind.CIRCUIT_OPEN, Severity.CRITICAL, "Exchange circuit open",
                              "No new orders until the exchange answers and reconciliation "
                              "passes.", now)
            await self._audit("breaker.open", {})
        elif state == "closed" and self.breaker_open:
            self.breaker_open = False
            self.log.warning("breaker.closed")
            await self._audit("breaker.closed", {})
            async with self._lock:
                # orders whose answers were lost during the outage are looked up first
                await self.recover_orders()
                await self.reconcile_now("breaker_closed")
            if self.awaiting_reconciliation:
                self.log.error("breaker.closed_but_reconciliation_failed")
            else:
                await self._alert(AlertKind.CIRCUIT_CLOSED, Severity.INFO,
                                  "Exchange circuit closed",
                                  "Reconciliation passed; trading resumed.", now)

    # ------------------------------------------------------------------ reconciliation
    async def reconcile_now(self, trigger: str) -> ReconciliationResult:
        assert self.engine is not None
        now = self.clock.now_ms()
        try:
            balances: dict[str, Balance] = await self.exchange.fetch_balances()
            remote_orders = await self.exchange.fetch_open_orders()
            result = reconcile(
                strategy=self.name,
                ts_ms=now,
                trigger=trigger,
                symbols=self.spec.symbols,
                markets=self.markets,
                positions=self.engine.positions,
                local_orders=self._live_orders(),
                balances=balances,
                exchange_orders=remote_orders,
                baseline=self.baseline,
                client_id_prefix=self._prefix,
                dust=dict(self.engine.portfolio.dust),
            )
        except ExchangeError as exc:
            result = ReconciliationResult(self.name, now, trigger, error=str(exc))
        self.last_reconciliation = result
        data = result.to_dict()
        await self.store.write_reconciliation(data)
        await self._event(EventType.RECONCILIATION, now, data)
        self.metrics.reconciliation_mismatches.labels(self.name).set(len(result.mismatches))
        self.metrics.reconciliations.labels(self.name, data["status"]).inc()
        if result.ok:
            mark = getattr(self.exchange, "mark_reconciled", None)
            if callable(mark) and not self.breaker_open:
                mark()
            if self.awaiting_reconciliation and not self.breaker_open:
                self.awaiting_reconciliation = False
                await self._audit("trading.resumed_after_reconciliation", {"trigger": trigger})
            self.log.info("reconciliation.ok", trigger=trigger)
        else:
            self.log.error("reconciliation.mismatch", trigger=trigger, result=data)
            await self._audit("reconciliation.mismatch", data)
            if result.mismatches:
                await self._alert(
                    AlertKind.RECONCILIATION_MISMATCH,
                    Severity.CRITICAL,
                    f"Reconciliation mismatch ({self.name})",
                    "; ".join(
                        f"{m.kind} {m.subject}: local {m.local}, exchange {m.exchange}"
                        for m in result.mismatches[:5]
                    ),
                    now,
                    data,
                )
        return result

    async def _periodic_reconciliation(self) -> None:
        while True:
            await asyncio.sleep(self.options.reconcile_interval_s)
            async with self._lock:
                await self.reconcile_now("periodic")

    # ------------------------------------------------------------------ paper
    async def _paper_candle(self, symbol: str, candle: Candle) -> None:
        """Let the paper broker see the candle first (resting limits may fill)."""
        assert self.paper is not None
        self.paper.feed(symbol, candle)

    def _paper_snapshot(self) -> dict[str, Any] | None:
        if self.paper is None:
            return None
        snap: dict[str, Any] = self.paper.broker.snapshot()
        return snap

    # ------------------------------------------------------------------ outputs
    async def _write_summary(self, ts_ms: int | None = None) -> None:
        assert self.engine is not None
        summary = dict(self.engine.summary())
        now = self.clock.now_ms()
        halted = self.engine.is_halted
        summary.setdefault("phase", "Halted" if halted else "Running")
        if halted:
            summary["phase"] = "Halted"
        summary["halted_reason"] = self.engine.halted_reason
        summary["updated_ms"] = now
        summary["mode"] = self.spec.mode
        summary["breaker"] = "open" if self.breaker_open else "closed"
        eq = summary.get("equity")
        changes = Changes(summary=summary)
        if ts_ms is not None and eq is not None:
            equity = Decimal(str(eq))
            changes.equity = (ts_ms, equity)
            self._peak_equity = max(self._peak_equity or equity, equity)
            self.metrics.equity.labels(self.name).set(float(equity))
            if self._peak_equity:
                self.metrics.drawdown.labels(self.name).set(
                    float((self._peak_equity - equity) / self._peak_equity)
                )
        if summary.get("pnl") is not None:
            self.metrics.pnl.labels(self.name).set(float(Decimal(str(summary["pnl"]))))
        self.metrics.open_positions.labels(self.name).set(len(self.engine.positions))
        self.metrics.halted.labels(self.name).set(1 if halted else 0)
        self._risk_metrics()
        await self.store.commit(changes)
        if changes.equity is not None:
            await self._event(EventType.EQUITY, now, {"ts": ts_ms, "equity": str(eq)})
        await self._event(EventType.STRATEGY, now, {k: str(v) for k, v in summary.items()})

    def _risk_metrics(self) -> None:
        """Gauges the chart's alert rules read: share of the daily loss limit used and
        whether the max-drawdown halt holds (every candle, fill and halt change)."""
        assert self.engine is not None
        risk = self.engine.risk_state()
        self.metrics.set_risk(
            self.name,
            float(risk["daily_loss_limit_used_ratio"]),
            HALT_DRAWDOWN in risk["halts"],
        )

    async def _drain_engine_events(self) -> None:
        assert self.engine is not None
        for ev in self.engine.drain_events():
            await write_audit(
                self.redis,
                self.keys,
                AuditEntry(ts_ms=ev.ts_ms, actor=ev.actor, action=ev.action,
                           strategy=self.name, detail=ev.audit_detail()),
            )
            if ev.action.startswith("order.refused") or ev.kind == "audit":
                rule = ev.detail.get("rule") if isinstance(ev.detail, dict) else None
                if rule and "refus" in ev.action:
                    self.metrics.rejections.labels(self.name, str(rule)).inc()
            if ev.is_alert:
                try:
                    kind = AlertKind(ev.kind)
                except ValueError:
                    continue
                await raise_alert(
                    self.redis,
                    self.keys,
                    Alert(kind=kind, severity=Severity(ev.severity), title=ev.title or ev.action,
                          text=ev.text or ev.reason, ts_ms=ev.ts_ms, strategy=self.name,
                          data=ev.detail),
                )

    async def _alert(
        self, kind: AlertKind, severity: Severity, title: str, text: str, ts_ms: int,
        data: dict[str, Any] | None = None,
    ) -> None:
        await raise_alert(
            self.redis, self.keys,
            Alert(kind=kind, severity=severity, title=title, text=text, ts_ms=ts_ms,
                  strategy=self.name, data=data or {}),
        )

    async def _audit(self, action: str, detail: dict[str, Any]) -> None:
        await write_audit(
            self.redis,
            self.keys,
            AuditEntry(ts_ms=self.clock.now_ms(), actor=ACTOR, action=action,
                       strategy=self.name, detail=detail),
        )

    async def _event(self, kind: EventType, ts_ms: int, data: dict[str, Any]) -> None:
        await publish_event(self.redis, self.keys, kind, ts_ms, data, self.name)


BreakerCallback = Callable[[str], Awaitable[None]]
