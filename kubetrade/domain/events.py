"""What the engine tells the outside world: audit decisions and alerts to raise.

The domain does no I/O, so it queues ``EngineEvent`` objects and the runner drains
them (``TradingEngine.drain_events``) into the audit stream and the alert stream. Every
event is an audit entry (actor, action, reason, detail); an event whose ``kind`` is not
``"audit"`` is also an alert, and its ``kind`` is then one of the values of
``kubetrade.state.alerts.AlertKind`` (the domain must not import state, so the names are
repeated here as plain strings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubetrade.domain.models import to_dict

AUDIT = "audit"

# Values of kubetrade.state.alerts.AlertKind that the engine raises.
TRADE_OPENED = "trade_opened"
TRADE_CLOSED = "trade_closed"
DAILY_LOSS_LIMIT = "daily_loss_limit"
MAX_DRAWDOWN_HALT = "max_drawdown_halt"
STRATEGY_DISABLED = "strategy_disabled"
STRATEGY_REENABLED = "strategy_reenabled"
EMERGENCY_ENGAGED = "emergency_engaged"
EMERGENCY_RESUMED = "emergency_resumed"
RECONCILIATION_MISMATCH = "reconciliation_mismatch"

ACTOR_RISK = "risk-engine"
ACTOR_ENGINE = "engine"


@dataclass(slots=True)
class EngineEvent:
    """One audited decision; also an alert when ``kind != "audit"``.

    ``severity`` is one of the values of ``kubetrade.state.alerts.Severity``: "info",
    "warning" or "critical". ``detail`` values are JSON types or Decimal (serialise with
    ``json.dumps(..., default=str)``, as AuditEntry and Alert do). Not frozen only because
    the replay loop creates many of these; treat it as immutable.
    """

    kind: str
    ts_ms: int
    actor: str
    action: str
    strategy: str
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    severity: str = "info"
    title: str = ""
    text: str = ""

    @property
    def is_alert(self) -> bool:
        return self.kind != AUDIT

    def audit_detail(self) -> dict[str, Any]:
        """``detail`` with the reason folded in, for ``AuditEntry.detail``."""
        out = dict(self.detail)
        if self.reason:
            out.setdefault("reason", self.reason)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Every field by name (``detail`` as it is, not copied)."""
        return to_dict(self)
