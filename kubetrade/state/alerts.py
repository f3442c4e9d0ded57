"""Raising an alert: append it to the durable alert stream.

Producers (runners, operator, API, validation, pre-flight) only append; the notifier
reads the stream through a consumer group, so an alert raised while Telegram is down
waits in Redis instead of being lost, and is sent once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from kubetrade.state.keys import Keys

ALERTS_MAXLEN = 100_000


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertKind(StrEnum):
    TRADE_OPENED = "trade_opened"
    TRADE_CLOSED = "trade_closed"
    DAILY_LOSS_LIMIT = "daily_loss_limit"
    MAX_DRAWDOWN_HALT = "max_drawdown_halt"
    CIRCUIT_OPEN = "circuit_open"
    CIRCUIT_CLOSED = "circuit_closed"
    STRATEGY_DISABLED = "strategy_disabled"
    STRATEGY_REENABLED = "strategy_reenabled"
    EMERGENCY_ENGAGED = "emergency_engaged"
    EMERGENCY_RESUMED = "emergency_resumed"
    PREFLIGHT_FAIL = "preflight_fail"
    PREFLIGHT_WARN = "preflight_warn"
    VALIDATION_RESULT = "validation_result"
    RECONCILIATION_MISMATCH = "reconciliation_mismatch"
    RUNNER_RESTARTING = "runner_restarting"
    TWIN_DIVERGED = "twin_diverged"  # live parted from its paper twin (issue 20)


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    severity: Severity
    title: str
    text: str
    ts_ms: int
    strategy: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def fields(self) -> dict[FieldT, EncodableT]:
        return {
            "kind": self.kind.value,
            "severity": self.severity.value,
            "title": self.title,
            "text": self.text,
            "ts_ms": str(self.ts_ms),
            "strategy": self.strategy,
            "data": json.dumps(self.data, default=str, sort_keys=True),
        }

    @classmethod
    def from_stream(cls, entry_id: str, fields: dict[str, str]) -> Alert:
        return cls(
            kind=AlertKind(fields["kind"]),
            severity=Severity(fields.get("severity", "info")),
            title=fields.get("title", ""),
            text=fields.get("text", ""),
            ts_ms=int(fields.get("ts_ms", "0")),
            strategy=fields.get("strategy", ""),
            data=json.loads(fields.get("data") or "{}"),
            id=entry_id,
        )


async def raise_alert(redis: Redis, keys: Keys, alert: Alert) -> str:
    entry_id = await redis.xadd(keys.alerts, alert.fields(), maxlen=ALERTS_MAXLEN, approximate=True)
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
