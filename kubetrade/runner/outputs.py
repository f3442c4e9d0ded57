"""Everything a runner tells the world, behind one port: the strategy summary and
equity point, events on the Redis channel (dashboard, WebSocket), the audit log,
alerts, and the Prometheus metrics.

The runner's other parts (order router, halt controller, reconciler, breaker watch)
call only the :class:`OutputPort` (``RunnerOutputs`` implements it); none of them
touches a metric, a stream or a channel directly. What the summary says is
:func:`summary_record` (pure).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from kubetrade.domain.clock import Clock
from kubetrade.domain.engine import HALT_DRAWDOWN, TradingEngine
from kubetrade.domain.models import ClosedTrade, Fill, Order, to_dict
from kubetrade.domain.timeframes import timeframe_ms
from kubetrade.logs import get_logger
from kubetrade.runner.metrics import RunnerMetrics
from kubetrade.state.alerts import Alert, AlertKind, Severity, raise_alert
from kubetrade.state.audit import AuditEntry, write_audit
from kubetrade.state.client import Redis
from kubetrade.state.events import EventType, publish_event
from kubetrade.state.keys import Keys
from kubetrade.state.schema import encode_last_candles
from kubetrade.state.store import Changes, StateStore

ACTOR = "runner"


def summary_record(
    engine_summary: dict[str, Any], *, halted: bool, halted_reason: str, mode: str,
    breaker_open: bool, now_ms: int,
) -> dict[str, Any]:
    """The ``summary`` hash of a strategy: the engine's summary plus phase (Halted
    whenever any halt holds), halted_reason, updated_ms (wall ms), mode and breaker
    (``open``/``closed``)."""
    summary = dict(engine_summary)
    summary.setdefault("phase", "Halted" if halted else "Running")
    if halted:
        summary["phase"] = "Halted"
    summary["halted_reason"] = halted_reason
    summary["updated_ms"] = now_ms
    summary["mode"] = mode
    summary["breaker"] = "open" if breaker_open else "closed"
    return summary


class OutputPort(Protocol):
    """What the runner's parts may tell the world (``RunnerOutputs`` writes it to
    Redis and Prometheus; tests may record it)."""

    name: str
    mode: str

    async def audit(self, action: str, detail: dict[str, Any]) -> None: ...

    async def alert(
        self, kind: AlertKind, severity: Severity, title: str, text: str, ts_ms: int,
        data: dict[str, Any] | None = None,
    ) -> None: ...

    async def event(self, kind: EventType, ts_ms: int, data: dict[str, Any]) -> None: ...

    async def drain(self, engine: TradingEngine) -> None: ...

    async def write_summary(
        self, engine: TradingEngine, *, breaker_open: bool, ts_ms: int | None = None
    ) -> None: ...

    async def order_applied(
        self, engine: TradingEngine, order: Order, fills: list[Fill], closed: list[ClosedTrade]
    ) -> None: ...

    def risk(self, engine: TradingEngine) -> None: ...

    def rejected(self, reason: str) -> None: ...

    def order_sent(self, order: Order, status: str) -> None: ...

    def recovered(self, outcome: str) -> None: ...

    def candle(self, symbol: str, lag_s: float | None) -> None: ...

    def candle_seen(self, symbol: str, timeframe: str, open_ms: int, *, live: bool) -> None: ...

    def recorded(self, source: int, totals: Mapping[str, int]) -> None: ...

    def decision_latency(self, seconds: float) -> None: ...

    def set_halted(self, halted: bool) -> None: ...

    def set_breaker(self, state: str) -> None: ...

    def emergency_applied(self, action: str) -> None: ...

    def reconciled(self, mismatches: int, outcome: str) -> None: ...


@dataclass(eq=False)
class RunnerOutputs(OutputPort):
    """Summary, events, audit, alerts and metrics of one strategy's runner."""

    name: str
    mode: str
    _: KW_ONLY
    redis: Redis
    keys: Keys
    store: StateStore
    clock: Clock
    metrics: RunnerMetrics
    log: Any = field(init=False)
    _peak_equity: Decimal | None = field(default=None, init=False)
    _last_candles: dict[str, int] = field(default_factory=dict, init=False)
    _market: dict[str, str] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.log = get_logger("kubetrade.runner", strategy=self.name, mode=self.mode)

    # ---- audit, alerts, events ------------------------------------------------------------
    async def audit(self, action: str, detail: dict[str, Any]) -> None:
        """One audit entry by the runner, at wall time."""
        await write_audit(
            self.redis, self.keys,
            AuditEntry(ts_ms=self.clock.now_ms(), actor=ACTOR, action=action,
                       strategy=self.name, detail=detail),
        )

    async def alert(
        self, kind: AlertKind, severity: Severity, title: str, text: str, ts_ms: int,
        data: dict[str, Any] | None = None,
    ) -> None:
        await raise_alert(
            self.redis, self.keys,
            Alert(kind=kind, severity=severity, title=title, text=text, ts_ms=ts_ms,
                  strategy=self.name, data=data or {}),
        )

    async def event(self, kind: EventType, ts_ms: int, data: dict[str, Any]) -> None:
        await publish_event(self.redis, self.keys, kind, ts_ms, data, self.name)

    async def drain(self, engine: TradingEngine) -> None:
        """The engine's events: each audited; refusals counted by rule; alerts raised."""
        for ev in engine.drain_events():
            await write_audit(
                self.redis, self.keys,
                AuditEntry(ts_ms=ev.ts_ms, actor=ev.actor, action=ev.action,
                           strategy=self.name, detail=ev.audit_detail()),
            )
            if ev.action.startswith("order.refused") or ev.kind == "audit":
                rule = ev.detail.get("rule") if isinstance(ev.detail, dict) else None
                if rule and "refus" in ev.action:
                    self.rejected(str(rule))
            if ev.is_alert:
                try:
                    kind = AlertKind(ev.kind)
                except ValueError:
                    continue
                await raise_alert(
                    self.redis, self.keys,
                    Alert(kind=kind, severity=Severity(ev.severity), title=ev.title or ev.action,
                          text=ev.text or ev.reason, ts_ms=ev.ts_ms, strategy=self.name,
                          data=ev.detail),
                )

    # ---- the summary -------------------------------------------------------------------------
    async def write_summary(
        self, engine: TradingEngine, *, breaker_open: bool, ts_ms: int | None = None
    ) -> None:
        """Summary hash (+ an equity point at ``ts_ms``, the candle's close) and gauges."""
        now = self.clock.now_ms()
        halted = engine.is_halted
        summary = summary_record(
            engine.summary(), halted=halted,
            halted_reason=engine.halted_reason or engine.tracker.pause_reason(),
            mode=self.mode, breaker_open=breaker_open, now_ms=now,
        )
        if self._last_candles:  # optional fields (issue 13): readers tolerate their absence
            summary.update(self._market, last_candle_ms=encode_last_candles(self._last_candles))
        eq = summary.get("equity")
        changes = Changes(summary=summary)
        if ts_ms is not None and eq is not None:
            equity = Decimal(str(eq))
            changes.equity = (ts_ms, equity)
            self._equity_gauges(equity)
        if summary.get("pnl") is not None:
            self.metrics.pnl.labels(self.name).set(float(Decimal(str(summary["pnl"]))))
        self.metrics.open_positions.labels(self.name).set(len(engine.positions))
        self.set_halted(halted)
        self.risk(engine)
        await self.store.commit(changes)
        if changes.equity is not None:
            await self.event(EventType.EQUITY, now, {"ts": ts_ms, "equity": str(eq)})
        await self.event(EventType.STRATEGY, now, {k: str(v) for k, v in summary.items()})

    def _equity_gauges(self, equity: Decimal) -> None:
        self._peak_equity = max(self._peak_equity or equity, equity)
        self.metrics.equity.labels(self.name).set(float(equity))
        if self._peak_equity:
            self.metrics.drawdown.labels(self.name).set(
                float((self._peak_equity - equity) / self._peak_equity)
            )

    # ---- orders, fills, trades -----------------------------------------------------------
    async def order_applied(
        self, engine: TradingEngine, order: Order, fills: list[Fill], closed: list[ClosedTrade]
    ) -> None:
        """An order update and the fills and round trips it brought: events, counts,
        log lines, and the risk gauges when anything was filled."""
        if fills:
            self.risk(engine)
        now = self.clock.now_ms()
        await self.event(EventType.ORDER, now, to_dict(order))
        for fill in fills:
            self.metrics.fills.labels(self.name, fill.symbol, fill.side.value).inc()
            await self.event(EventType.FILL, now, to_dict(fill))
            self.log.info(
                "fill", client_order_id=fill.client_order_id, symbol=fill.symbol,
                side=fill.side.value, quantity=str(fill.quantity), price=str(fill.price),
                trade_id=fill.trade_id,
            )
        for trade in closed:
            self.metrics.trades.labels(self.name, "win" if trade.pnl > 0 else "loss").inc()
            await self.event(EventType.TRADE, now, to_dict(trade))
            self.log.info(
                "trade.closed", symbol=trade.symbol, pnl=str(trade.pnl),
                entry=str(trade.entry_price), exit=str(trade.exit_price),
                reason=trade.exit_reason,
            )
        if fills:
            await self.event(
                EventType.POSITION, now,
                {"positions": {s: to_dict(p) for s, p in engine.positions.items()}},
            )

    # ---- metrics -------------------------------------------------------------------------------
    def risk(self, engine: TradingEngine) -> None:
        """Gauges the chart's alert rules read: share of the daily loss limit used and
        whether the max-drawdown halt holds (every candle, fill and halt change)."""
        state = engine.risk_state()
        self.metrics.set_risk(
            self.name, float(state["daily_loss_limit_used_ratio"]), HALT_DRAWDOWN in state["halts"]
        )

    def rejected(self, reason: str) -> None:
        self.metrics.rejections.labels(self.name, reason).inc()

    def order_sent(self, order: Order, status: str) -> None:
        self.metrics.orders.labels(self.name, order.symbol, order.side.value, status).inc()

    def recovered(self, outcome: str) -> None:
        self.metrics.recovered_orders.labels(self.name, outcome).inc()

    def candle(self, symbol: str, lag_s: float | None) -> None:
        """One candle processed; ``lag_s``: now minus its close (live data only)."""
        self.metrics.candles.labels(self.name, symbol).inc()
        if lag_s is not None:
            self.metrics.candle_lag.labels(self.name, symbol).set(max(0.0, lag_s))

    def candle_seen(self, symbol: str, timeframe: str, open_ms: int, *, live: bool) -> None:
        """A candle of ``symbol`` opening at ``open_ms`` was consumed: the summary's
        ``last_candle_ms`` from now on; an exchange one (``live``) also feeds
        ``kubetrade_last_candle_age_seconds`` (age of its close, read at scrape)."""
        self._market = {"timeframe": timeframe, "market_data": "exchange" if live else "replay"}
        self._last_candles[symbol] = max(open_ms, self._last_candles.get(symbol, open_ms))
        if live:
            tf_ms = timeframe_ms(timeframe)
            self.metrics.candle_consumed(symbol, timeframe, tf_ms, open_ms + tf_ms, self.clock)

    def recorded(self, source: int, totals: Mapping[str, int],
                 leader: tuple[str, Mapping[str, bool]] | None = None) -> None:
        """A candle recorder's cumulative written counts per symbol (``source``: its id)
        and ``leader``: (its name, symbol -> holds the writer lease, kept live)."""
        self.metrics.candles_written(source, totals)
        if leader is not None:
            self.metrics.recorder_leading(*leader)

    def decision_latency(self, seconds: float) -> None:
        self.metrics.decision_latency.labels(self.name).observe(seconds)

    def set_halted(self, halted: bool) -> None:
        self.metrics.halted.labels(self.name).set(1 if halted else 0)

    def set_breaker(self, state: str) -> None:
        self.metrics.set_breaker(self.name, state)

    def emergency_applied(self, action: str) -> None:
        self.metrics.emergency.labels(self.name, action).inc()

    def reconciled(self, mismatches: int, outcome: str) -> None:
        self.metrics.reconciliation_mismatches.labels(self.name).set(mismatches)
        self.metrics.reconciliations.labels(self.name, outcome).inc()
