"""The runner: one strategy trading, crash-safe.

Per candle: (paper: feed the candle to the paper broker, apply any fills of resting
orders) -> ``TradingEngine.on_candle`` -> the orders it wants are written to Redis with
status CREATED together with the engine snapshot and the candle cursor (one MULTI) ->
each order is sent -> the exchange's answer and its fills go through the engine and
are written in one MULTI with the new engine snapshot (and paper broker snapshot) ->
events, audit, alerts, metrics.

Because every change is one transaction and every order is persisted before it is
sent, a SIGKILL anywhere leaves Redis consistent; ``Runner.restore`` restores the
engine (and paper broker), looks up every order that was CREATED/UNKNOWN/open by its
client order id on the exchange before anything else, applies fills it has not seen
(trade ids are remembered, so none is applied twice), then reconciles with the
exchange's balances and open orders.

The runner keeps the loop; its jobs are its parts, as NautilusTrader keeps data, risk
and execution apart:

- ``OrderRouter`` (orders.py): persist intent -> send -> resolve by client order id.
- ``HaltBook`` / ``HaltController`` (halts.py, halt_controller.py): why new orders
  stop (``HaltSource``: emergency, disabled, deleting, breaker, reconciliation) and
  the person-made changes applied.
- ``BreakerWatch`` (breaker.py): the exchange's circuit breaker. After the breaker
  closes again, trading only resumes once a reconciliation finds no mismatch.
- ``Reconciler`` (reconciler.py): the runner's state against the exchange's.
- ``RunnerOutputs`` (outputs.py): summary, events, audit, alerts, metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import time
import uuid
from collections.abc import Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any

from kubetrade.domain.algorithms import create_algorithm
from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.models import Candle, MarketInfo, Order, make_client_order_id
from kubetrade.domain.percentages import limits_fractions
from kubetrade.domain.risk import RiskLimits
from kubetrade.domain.timeframes import timeframe_ms
from kubetrade.exchange.base import ExchangeEvent, GuardedExchange
from kubetrade.logs import get_logger
from kubetrade.runner.account import account_check, starting_capital
from kubetrade.runner.breaker import BreakerWatch
from kubetrade.runner.emergency import EmergencyCommand
from kubetrade.runner.halt_controller import HaltController
from kubetrade.runner.halts import HaltBook, HaltSource
from kubetrade.runner.live_period import LivePeriod
from kubetrade.runner.market import recorder_of
from kubetrade.runner.metrics import runner_metrics
from kubetrade.runner.orders import OrderRouter
from kubetrade.runner.outputs import RunnerOutputs
from kubetrade.runner.reconcile import ReconciliationResult, client_id_prefix
from kubetrade.runner.reconciler import Reconciler
from kubetrade.runner.spec import RunnerOptions, RunnerParts, RunnerSpec, limits_from_manifest
from kubetrade.runner.stops import ExchangeStops
from kubetrade.state.accounts import AccountBooks
from kubetrade.state.alerts import AlertKind, Severity
from kubetrade.state.client import RedisError
from kubetrade.state.store import Changes, RestoredState, StateStore

#: Seconds between the runner's heartbeats (``summary.heartbeat_ms``).
HEARTBEAT_S = 10.0


class _Wiring:
    """The parts that exist before anything is restored: the store, the outputs, the
    halt book, the breaker watch (listening from the first exchange call on) and the
    lock that serialises the runner's changes."""

    def __init__(self, parts: RunnerParts) -> None:
        spec = parts.spec
        self.options = parts.options or RunnerOptions(paper=parts.paper is not None)
        self.store = StateStore(parts.redis, parts.keys, spec.name)
        self.outputs = RunnerOutputs(
            spec.name, spec.mode, redis=parts.redis, keys=parts.keys, store=self.store,
            clock=parts.clock, metrics=parts.metrics or runner_metrics(),
        )
        self.halts = HaltBook()
        self.lock = asyncio.Lock()
        self.breaker = BreakerWatch(spec.name, halts=self.halts, outputs=self.outputs,
                                    clock=parts.clock, lock=self.lock)
        if isinstance(parts.exchange, GuardedExchange):
            parts.exchange.on_event = self.breaker.on_exchange_event


def _engine(
    spec: RunnerSpec, limits: RiskLimits, markets: dict[str, MarketInfo],
    snapshot: dict[str, Any] | None,
) -> TradingEngine:
    """The engine restored from ``snapshot`` (or new), under ``limits``. Raises
    ValueError when the exchange does not offer one of ``spec.symbols``."""
    missing = [s for s in spec.symbols if s not in markets]
    if missing:
        raise ValueError(f"spec.symbols: {', '.join(missing)} not offered by the exchange")
    algorithm = create_algorithm(spec.algorithm, spec.parameters)
    traded = {s: markets[s] for s in spec.symbols}
    if snapshot is not None:
        engine = TradingEngine.restore(snapshot, algorithm, limits=limits, markets=traded)
    else:
        engine = TradingEngine(
            spec.name, algorithm, limits, traded, spec.initial_capital,
            quote_asset=spec.quote_asset, timeframe_ms=timeframe_ms(spec.timeframe),
        )
    # new orders get namespace-qualified ids; orders persisted before (bare-name ids)
    # are still looked up by the id stored with them
    engine.order_id_source = spec.order_id_source
    engine.update_limits(limits)
    return engine


class Runner:
    """The trading loop of one strategy. Build it with ``await Runner.restore(parts)``:
    a runner always has its engine, restored and reconciled."""

    def __init__(
        self, parts: RunnerParts, wiring: _Wiring, engine: TradingEngine,
        markets: dict[str, MarketInfo], restored: RestoredState,
    ) -> None:
        self.spec = spec = parts.spec
        self.name = spec.name
        self.redis, self.keys = parts.redis, parts.keys
        self.exchange, self.market, self.paper = parts.exchange, parts.market, parts.paper
        self.clock = parts.clock
        # Orders and fills carry market time (the candles' time in a replay); audit,
        # summary and acks carry wall time.
        self.mclock = parts.market_clock or parts.clock
        self.limits = parts.limits
        self.options = wiring.options
        self.store, self.outputs, self.halts = wiring.store, wiring.outputs, wiring.halts
        self.metrics = wiring.outputs.metrics
        self.log = get_logger("kubetrade.runner", strategy=spec.name, mode=spec.mode)
        self._lock, self._breaker = wiring.lock, wiring.breaker
        self.engine = engine
        self.markets = markets
        self.cursor: dict[str, int] = dict(restored.cursor)
        self.candles_processed = 0
        self.router = OrderRouter(
            spec.name, engine, exchange=self.exchange, store=self.store, outputs=self.outputs,
            halts=self.halts, clock=self.clock, market_clock=self.mclock, paper=self.paper,
            orders=restored.orders, fills_seen=restored.fills_seen,
        )
        prefix = client_id_prefix(make_client_order_id(spec.order_id_source, 0, 0))
        books = None if self.paper is not None or spec.mode != "live" else AccountBooks(
            self.redis, self.keys, spec.account_id)  # live: the account's shared books
        self.reconciler = Reconciler(
            spec.name, spec.symbols, engine, exchange=self.exchange, markets=markets,
            store=self.store, outputs=self.outputs, halts=self.halts, clock=self.clock,
            local_orders=self.router.live_orders, client_id_prefix=prefix,
            account=account_check(books, spec.name, prefix, spec.symbols,
                                  exchange=self.exchange, markets=markets, clock=self.clock),
        )
        # live: each position's stop-loss also rests on the exchange (stops.py)
        self.stops = None if self.paper is not None or spec.mode != "live" else ExchangeStops(
            self.router, engine, markets, self.reconciler.prefix)
        self.halt_control = HaltController(
            spec.name, engine, halts=self.halts, router=self.router, store=self.store,
            outputs=self.outputs, clock=self.clock, lock=self._lock,
        )
        self._breaker.catch_up = self._catch_up
        #: live only: the paper twin and the size ramp (live_period.py)
        self.live_period: LivePeriod | None = None
        self._breaker.account = books  # a trip and a resume act on the whole account

    @classmethod
    async def restore(cls, parts: RunnerParts) -> Runner:
        """Restore state, resolve in-doubt orders, reconcile: a runner ready to ``run``.

        Raises ValueError when the exchange does not offer a symbol of the spec; lets
        exchange and Redis errors of the start through."""
        wiring = _Wiring(parts)
        restored = await wiring.store.load()
        if parts.paper is not None and restored.paper_snapshot is not None:
            parts.paper.broker.restore(restored.paper_snapshot)
        markets = await parts.exchange.load_markets()
        if restored.engine_snapshot is None:  # a fresh live budget may be a share of the account
            parts.spec.initial_capital = await starting_capital(
                parts.spec.mode, parts.spec.initial_capital, parts.spec.capital_pct,
                parts.spec.quote_asset, parts.exchange)
        engine = _engine(parts.spec, parts.limits, markets, restored.engine_snapshot)
        runner = cls(parts, wiring, engine, markets, restored)
        await runner._start(restored)
        runner.live_period = await LivePeriod.start(runner)
        return runner

    async def _start(self, restored: RestoredState) -> None:
        self._warn_fractions()
        await self.reconciler.load_baseline(paper=self.paper is not None)
        self.halt_control.last_emergency = await self.store.read_emergency_ack()
        self.halt_control.restore(restored.engine_snapshot)
        pending = restored.pending_orders()
        self.log.info(
            "runner.restored" if not restored.fresh else "runner.fresh_start",
            orders=len(self.orders), pending=len(pending), fills_seen=len(self.fills_seen),
            cursor=self.cursor, halted=self.engine.is_halted,
        )
        await self.outputs.audit("runner.start", {"fresh": restored.fresh})
        if not restored.fresh:
            await self.outputs.alert(
                AlertKind.RUNNER_RESTARTING,
                Severity.WARNING if pending else Severity.INFO,
                f"{self.name}: runner restarted",
                f"state restored from Redis; {len(pending)} order(s) to look up on the "
                "exchange before trading",
                self.clock.now_ms(),
                {"pending_orders": [o.client_order_id for o in pending]},
            )
        await self.recover_orders()
        await self.protect()
        await self.reconcile_now("start")
        await self._write_summary()
        # Everything loaded so far lives for the whole run: keep it out of the cyclic
        # GC's scans, whose full collections otherwise show up as decision-latency spikes.
        gc.freeze()

    # ------------------------------------------------------------------ loop
    async def run(self, extra_tasks: list[Coroutine[Any, Any, None]] | None = None) -> None:
        """Trade until cancelled (or ``options.max_candles``). First this runner claims
        the strategy (:meth:`StateStore.claim`): a runner of it still running elsewhere
        on this Redis (a second ``kubetrade local``, a ``kubetrade runner`` beside it)
        has every later commit refused, so it stops before its next order
        (``Superseded``, raised from here in that one)."""
        await self._claim()
        tasks: list[asyncio.Task[None]] = [asyncio.create_task(t) for t in (extra_tasks or [])]
        tasks.append(asyncio.create_task(self._heartbeat()))
        if self.options.reconcile_interval_s > 0:
            tasks.append(asyncio.create_task(
                self.reconciler.periodic(self.options.reconcile_interval_s, self._lock)
            ))
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

    def _warn_fractions(self) -> None:
        """A percentage written as a fraction (0.05 for 5 %) is allowed but said, each
        time the runner takes a policy (its start, a change from the API or cluster)."""
        for message in limits_fractions(self.limits):
            self.log.warning("risk.percent_as_fraction", message=f"RiskPolicy {message}")

    async def _claim(self) -> None:
        holder = {"id": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(),
                  "started_ms": self.clock.now_ms()}
        previous = await self.store.claim(holder)
        if previous is not None:
            self.log.info("runner.claimed", previous=previous, holder=holder,
                          note="a runner of this strategy still running there stops at "
                          "its next commit")

    async def _heartbeat(self) -> None:
        """Every ``HEARTBEAT_S``: wall time into the summary (the operator's ``Ready``
        needs it fresh; a 1h strategy writes its summary once an hour)."""
        beat_file = os.environ.get("KUBETRADE_HEARTBEAT_FILE")  # the readiness probe's
        while True:
            with contextlib.suppress(RedisError):
                await self.store.heartbeat(self.clock.now_ms())
            if beat_file:
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(Path(beat_file).touch)
            await asyncio.sleep(HEARTBEAT_S)

    async def process_candle(self, symbol: str, candle: Candle) -> None:
        """One closed candle: catch up after an outage, decide, persist, send, publish."""
        async with self._lock:
            t0 = time.perf_counter()
            if self.cursor.get(symbol, -1) >= candle.ts_ms:
                return
            await self._before_decision(symbol, candle)
            live = self.market.kind == "exchange"
            now = self.clock.now_ms() if live else None
            if self.live_period is not None:
                self.live_period.before_decision()
            orders = self.engine.on_candle(symbol, candle, now)
            self.cursor[symbol] = candle.ts_ms
            await self.router.persist_intents(orders, {symbol: candle.ts_ms})
            for order in orders:
                await self.router.submit(order)
                self.outputs.decision_latency(time.perf_counter() - t0)
            await self.protect()
            self.candles_processed += 1
            close_ms = candle.ts_ms + timeframe_ms(self.spec.timeframe)
            self.outputs.candle(symbol, (self.clock.now_ms() - close_ms) / 1000 if live else None)
            self.outputs.candle_seen(symbol, self.spec.timeframe, candle.ts_ms, live=live)
            if (recorder := recorder_of(self.market)) is not None:
                self.outputs.recorded(id(recorder), recorder.stats.recorded_total,
                                      (recorder.owner, recorder.stats.leader))
            await self.outputs.drain(self.engine)
            if self.live_period is not None:  # after the live orders are out
                await self.live_period.after_candle(symbol, candle, now, orders)
            await self._write_summary(ts_ms=close_ms)

    async def _before_decision(self, symbol: str, candle: Candle) -> None:
        await self._breaker.follow_account()
        if self.halts.breaker_open and isinstance(self.exchange, GuardedExchange):
            # market data may not touch the exchange (replay), so probe it: the
            # breaker's half-open probe is how it learns the exchange is back
            await self.exchange.probe()
        if self.halts.awaiting_reconciliation and not self.halts.breaker_open:
            await self.recover_orders()
            await self.reconcile_now("before_resume")
        if self.paper is not None:
            # the paper broker sees the candle first (resting limits may fill)
            self.paper.feed(symbol, candle)
        await self.router.sync_open(symbol)

    async def _catch_up(self) -> None:
        """After an outage: look up the orders whose answers it lost, then reconcile."""
        await self.recover_orders()
        await self.reconcile_now("breaker_closed")

    async def _write_summary(self, ts_ms: int | None = None) -> None:
        await self.outputs.write_summary(self.engine, breaker_open=self.halts.breaker_open,
                                         ts_ms=ts_ms)

    # ------------------------------------------------------------------ commands
    async def recover_orders(self) -> None:
        """Look up every order whose outcome we do not know, by client order id."""
        await self.router.recover()

    async def protect(self) -> None:
        """Live: the on-exchange stops follow the positions (``ExchangeStops``)."""
        if self.stops is not None and not self.halts.breaker_open:
            await self.stops.protect()

    async def reconcile_now(self, trigger: str) -> ReconciliationResult:
        """Reconcile with the exchange now (the caller holds the lock when trading)."""
        return await self.reconciler.run(trigger)

    async def apply_emergency(self, cmd: EmergencyCommand) -> None:
        """Stop / close-all / resume (``HaltController.apply_emergency``)."""
        await self.halt_control.apply_emergency(cmd)

    def halted_in_memory(self, action: str) -> bool:
        """Whether the emergency ``action`` (stop/close-all) holds the engine already:
        the in-memory half of ``apply_emergency``, done before any Redis write."""
        holds = self.halt_control.halts.holds(HaltSource.emergency(action))
        return holds and self.engine.is_halted

    async def set_enabled(self, enabled: bool, by: str) -> None:
        """``spec.enabled`` of the Strategy changed (or was read at start)."""
        await self.halt_control.set_enabled(enabled, by)

    async def close_positions(self, reason: str, by: str) -> None:
        """Halt, cancel and sell everything (Strategy deleted, closePositionsOnDelete)."""
        await self.halt_control.close_positions(reason, by)

    async def update_limits(self, limits: RiskLimits, by: str) -> None:
        """The RiskPolicy changed: the engine trades under ``limits`` from now on."""
        async with self._lock:
            if limits == self.limits:
                return
            self.limits = limits
            self.engine.update_limits(limits)
            await self.store.commit(Changes(engine_snapshot=self.router.snapshot()))
            self.log.info("risk.limits_updated", by=by)
            self._warn_fractions()
            await self.outputs.audit(
                "risk.limits_updated", {"by": by, "limits": limits.model_dump(mode="json")}
            )

    def on_exchange_event(self, event: ExchangeEvent) -> None:
        """Listener for the exchange's events (``Runner.restore`` connects it)."""
        self._breaker.on_exchange_event(event)

    async def on_breaker(self, state: str) -> None:
        """The exchange's circuit breaker changed (closed/half_open/open)."""
        await self._breaker.on_breaker(state)

    # ------------------------------------------------------------------ state, read-only
    @property
    def orders(self) -> dict[str, Order]:
        """Every order by client order id."""
        return self.router.orders

    @property
    def fills_seen(self) -> set[str]:
        return self.router.fills_seen

    @property
    def baseline(self) -> dict[str, Decimal]:
        return self.reconciler.baseline

    @property
    def last_reconciliation(self) -> ReconciliationResult | None:
        return self.reconciler.last

    @property
    def last_emergency(self) -> str | None:
        return self.halt_control.last_emergency

    @property
    def breaker_open(self) -> bool:
        return self.halts.breaker_open

    @property
    def awaiting_reconciliation(self) -> bool:
        return self.halts.awaiting_reconciliation

    @property
    def _background(self) -> set[asyncio.Task[None]]:
        """Reactions to breaker changes still running."""
        return self._breaker.background


__all__ = [
    "Runner",
    "RunnerOptions",
    "RunnerParts",
    "RunnerSpec",
    "limits_from_manifest",
]
