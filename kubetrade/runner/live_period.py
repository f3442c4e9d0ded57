"""The initial live period of a live runner: its paper twin, the comparison, the size ramp.

The runbook's "Initial Live Period" asks to compare live results with paper
expectations and to raise position sizes gradually after confirming stability. For a
live Strategy the runner keeps a ``LivePeriod`` (None in paper mode). The runner calls:

- ``before_decision()`` before each ``engine.on_candle``: the live engine trades under
  the RiskPolicy's limits with ``maxPositionSizePct`` scaled to the ramp's step
  (the RiskPolicy may have changed since the last candle);
- ``after_candle(symbol, candle, now_ms, orders)`` once the live orders of the candle
  are sent: the twin decides on the same candle with the same ``now_ms``; the live
  orders' outcomes and the twin's are paired (``TwinLedger``); the comparison is set
  on the Prometheus series; the ramp moves (audited); the twin is stored in Redis with
  the summary fields the operator shows (``TwinStore``).

Incidents for the ramp (read, never changed, from the runner's parts): a
reconciliation that found a mismatch or failed, a reconciliation after an outage
(trigger ``breaker_closed``/``before_resume``: the breaker tripped or an order's
outcome was lost), the breaker open at the candle, and divergence past
``twinDivergencePct``. An incident lasting several candles counts once; the clean
period restarts at each candle it lasts.

Cost: the twin's engine and broker run after the live orders are out, so the live
decision latency does not include them; ``bench/twin.py`` measures the candle.
"""

from __future__ import annotations

import gc
from typing import Any, Protocol

from kubetrade.domain.algorithms import create_algorithm
from kubetrade.domain.clock import Clock
from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.models import Candle, Order
from kubetrade.domain.ramp import (
    LOWERED,
    RampPolicy,
    RampState,
    clamp,
    on_incident,
    on_tick,
    scaled_limits,
    size_pct,
)
from kubetrade.domain.risk import RiskLimits
from kubetrade.domain.twin import LIVE, Comparison, compare
from kubetrade.logs import get_logger
from kubetrade.runner.halts import HaltBook
from kubetrade.runner.metrics import RunnerMetrics
from kubetrade.runner.outputs import OutputPort
from kubetrade.runner.spec import RunnerSpec
from kubetrade.runner.twin import PaperTwin, book_figures, outcome_of
from kubetrade.runner.twin_metrics import TwinMetrics, for_registry
from kubetrade.state.alerts import AlertKind, Severity
from kubetrade.state.client import Redis, RedisError
from kubetrade.state.keys import Keys
from kubetrade.state.twin import TwinRecord, TwinStore, summary_fields

log = get_logger("kubetrade.runner")

#: reconciliation triggers that follow an outage (the breaker tripped, or an order's
#: outcome was lost): an incident for the ramp even when they pass
OUTAGE_TRIGGERS = frozenset({"breaker_closed", "before_resume"})


class LiveRunner(Protocol):
    """What the live period reads of the runner (``kubetrade.runner.core.Runner``)."""

    name: str
    spec: RunnerSpec
    engine: TradingEngine
    limits: RiskLimits
    redis: Redis
    keys: Keys
    clock: Clock
    halts: HaltBook
    metrics: RunnerMetrics
    reconciler: Any

    @property
    def outputs(self) -> OutputPort: ...

    @property
    def orders(self) -> dict[str, Order]: ...


class LivePeriod:
    """One live runner's twin and ramp; build it with ``await LivePeriod.start(runner)``."""

    def __init__(self, runner: LiveRunner, twin: PaperTwin, store: TwinStore,
                 record: TwinRecord | None) -> None:
        self.runner = runner
        self.twin = twin
        self.store = store
        self.metrics: TwinMetrics = for_registry(runner.metrics.registry)
        self.base = runner.limits
        self.policy = RampPolicy.from_limits(self.base)
        self.ramp: RampState | None = None
        self.last_change: dict[str, Any] | None = None
        self.started_ms = runner.clock.now_ms()
        self.comparison: Comparison | None = None
        #: live orders not yet terminal: client order id -> decision time
        self.live_open: dict[str, int] = {}
        self._in_incident = False
        self._seen_reconciliation_ms = -1
        #: past the divergence threshold at the last candle (alerted once per crossing)
        self.diverged = False
        #: why the twin stopped (None while it runs)
        self.failed: str | None = None
        if record is not None:
            self.diverged = bool((record.comparison or {}).get("diverged"))
            self.started_ms = record.started_ms or self.started_ms
            self.last_change = record.ramp_change
            self.live_open = {str(k): int(v) for k, v in
                              (record.ledger.get("live_open") or {}).items()}
            if record.ramp is not None:
                self.ramp = RampState.from_dict(record.ramp)
        self._follow_policy()

    @classmethod
    async def start(cls, runner: LiveRunner) -> LivePeriod | None:
        """The live period of ``runner`` (None unless it trades live): the twin restored
        from Redis, else begun from the live state now; the size step applied."""
        if runner.spec.mode != "live":
            return None
        store = TwinStore(runner.redis, runner.keys, runner.name)
        record = await store.load()
        algorithm = create_algorithm(runner.spec.algorithm, runner.spec.parameters)
        twin: PaperTwin | None = None
        if record is not None:
            try:
                twin = PaperTwin.from_snapshots(record.engine, record.broker, record.ledger,
                                                algorithm, runner.engine.limits,
                                                runner.engine.markets)
            except RedisError:
                raise
            except Exception as exc:  # a twin it cannot continue begins anew, live goes on
                await runner.outputs.audit("twin.unreadable", {"error": str(exc)})
                record, algorithm = None, create_algorithm(runner.spec.algorithm,
                                                           runner.spec.parameters)
        if twin is None:
            twin = PaperTwin.from_live(runner.engine, algorithm)
        period = cls(runner, twin, store, record)
        await runner.outputs.audit("twin.start", {
            "from": "redis" if record is not None else "live state",
            "equity": str(twin.engine.equity), "size_pct": period.size_pct})
        # the twin lives as long as the runner: out of the cyclic GC's scans, as the
        # runner keeps what it loaded at start (its full collections showed up in the
        # live decision latency)
        gc.freeze()
        return period

    # ---------------------------------------------------------------- the size step
    @property
    def size_pct(self) -> int:
        """The percent of the full position size in force."""
        return 100 if self.ramp is None else size_pct(self.policy, self.ramp)

    def _follow_policy(self) -> None:
        """The RiskPolicy in force (``runner.limits``) with the ramp's step, on both
        engines; a ramp first seen starts at its first step."""
        self.base = self.runner.limits
        self.policy = RampPolicy.from_limits(self.base)
        if not self.policy.enabled:
            self.ramp = None
        elif self.ramp is None:
            self.ramp = RampState(0, -1)  # the period begins at the next decision
        else:
            self.ramp = clamp(self.policy, self.ramp)
        scaled = scaled_limits(self.base, self.size_pct)
        if self.runner.engine.limits != scaled:
            self.runner.engine.update_limits(scaled)
        self.twin.follow_limits(scaled)

    def before_decision(self) -> None:
        """Before the live engine decides: the policy's limits at the ramp's step."""
        if self.runner.limits is not self.base:
            self._follow_policy()

    # ---------------------------------------------------------------- each candle
    async def after_candle(self, symbol: str, candle: Candle, now_ms: int | None,
                           orders: list[Order]) -> Comparison | None:
        """The candle the live engine decided on (``now_ms`` as it was given, ``orders``
        as it returned them, sent by now): the twin's turn, the comparison, the ramp,
        Redis. Returns the comparison (None once the twin has failed).

        The twin never stops live trading: an error of its own (not Redis: the live
        runner's own writes fail alike) is logged, audited (``twin.failed``) and ends
        the twin until the runner restarts, when it begins again from the live state;
        the ramp goes on without the divergence incident."""
        runner = self.runner
        comparison: Comparison | None = None
        if self.failed is None:
            try:
                comparison = self._compare(symbol, candle, now_ms, orders)
            except RedisError:
                raise
            except Exception as exc:  # the twin never stops live trading (docstring)
                await self._fail(exc)
        await self._step_ramp(self.twin.decision_ms(candle, now_ms), comparison)
        self.metrics.size.labels(runner.name).set(self.size_pct)
        if comparison is None:
            await self.store.save_summary(summary_fields(None, self.size_pct))
            return None
        await self._alert_divergence(comparison)
        self.metrics.show(runner.name, comparison)
        await self._save(candle.ts_ms + (self.twin.engine.timeframe_ms or 0), comparison)
        return comparison

    def _compare(self, symbol: str, candle: Candle, now_ms: int | None,
                 orders: list[Order]) -> Comparison:
        """The twin decides on ``candle``; live and twin outcomes paired; compared."""
        twin, ledger = self.twin, self.twin.ledger
        decided = twin.on_candle(symbol, candle, now_ms)
        for order in orders:
            self.live_open[order.client_order_id] = order.created_ms
        self._collect_live()
        ledger.close_decisions(decided)
        self.comparison = compare(book_figures(self.runner.engine), twin.figures(),
                                  ledger.totals, self.base.twin_divergence_pct)
        return self.comparison

    async def _fail(self, exc: Exception) -> None:
        self.failed = f"{type(exc).__name__}: {exc}"
        log.error("twin.failed", strategy=self.runner.name, error=self.failed)
        await self.runner.outputs.audit("twin.failed", {"error": self.failed})
        await self.store.reset()  # the next start begins the twin from the live state

    def _collect_live(self) -> None:
        """The live orders' outcomes as the router has them now (kept until terminal)."""
        known = self.runner.orders
        for cid, decided in list(self.live_open.items()):
            order = known.get(cid)
            if order is None:
                continue
            self.twin.ledger.record(LIVE, outcome_of(order, decided))
            if order.status.is_terminal:
                del self.live_open[cid]

    def incidents(self, comparison: Comparison | None) -> list[str]:
        """What makes this candle's period not clean (see the module docstring)."""
        out: list[str] = []
        rec = self.runner.reconciler.last
        if rec is not None and rec.ts_ms > self._seen_reconciliation_ms:
            self._seen_reconciliation_ms = rec.ts_ms
            if getattr(rec, "status", "") == "pending":
                pass  # other runners' books moved meanwhile: neither clean nor a mismatch
            elif not rec.ok:
                what = rec.error or f"{len(rec.mismatches)} mismatch(es)"
                out.append(f"reconciliation ({rec.trigger}): {what}")
            elif rec.trigger in OUTAGE_TRIGGERS:
                out.append(f"breaker trip or lost order answer (reconciliation {rec.trigger})")
        if self.runner.halts.breaker_open:
            out.append("exchange breaker open")
        if comparison is not None and comparison.diverged:
            out.append(f"divergence from the paper twin {comparison.divergence_pct}% > "
                       f"{comparison.threshold_pct}%")
        return out

    async def _step_ramp(self, now_ms: int, comparison: Comparison | None) -> None:
        incidents = self.incidents(comparison)
        if self.ramp is None:
            return
        state = self.ramp
        if state.period_start_ms < 0:
            state = RampState(state.step, now_ms)
        if incidents and self._in_incident:  # the same incident goes on: period restarts
            new, change = RampState(state.step, now_ms), None
        elif incidents:
            new, change = on_incident(self.policy, state, "; ".join(incidents), now_ms)
        else:
            new, change = on_tick(self.policy, state, now_ms)
        self._in_incident = bool(incidents)
        before = self.size_pct
        self.ramp = new
        if change is not None:
            self.last_change = change.to_dict()
            await self.runner.outputs.audit(f"size_ramp.{change.action}", self.last_change)
            if change.action == LOWERED or self.size_pct != before:
                self._follow_policy()

    async def _alert_divergence(self, comparison: Comparison) -> None:
        """One alert when live moves past the threshold (not again until back within)."""
        if comparison.diverged and not self.diverged:
            c = comparison
            await self.runner.outputs.alert(
                AlertKind.TWIN_DIVERGED, Severity.WARNING,
                f"{self.runner.name}: live {c.divergence_pct} % away from its paper twin",
                f"live P&L {c.live.pnl}, paper twin P&L {c.twin.pnl} (threshold "
                f"{c.threshold_pct} % of the starting equity); see GET /api/live-vs-paper",
                self.runner.clock.now_ms(), c.to_dict())
        self.diverged = comparison.diverged

    async def _save(self, close_ms: int, comparison: Comparison) -> None:
        engine, broker, ledger = self.twin.snapshots()
        ledger["live_open"] = dict(self.live_open)
        record = TwinRecord(engine=engine, broker=broker or {}, ledger=ledger,
                            ramp=None if self.ramp is None else self.ramp.to_dict(),
                            comparison=comparison.to_dict(), size_pct=self.size_pct,
                            started_ms=self.started_ms, updated_ms=self.runner.clock.now_ms(),
                            ramp_change=self.last_change)
        await self.store.save(record, (close_ms, self.twin.engine.equity),
                              summary_fields(comparison.divergence_pct, self.size_pct,
                                             comparison.twin.pnl),
                              broker_changed=broker is not None)


__all__ = ["OUTAGE_TRIGGERS", "LivePeriod", "LiveRunner"]
