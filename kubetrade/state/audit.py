"""The audit log: who did what, when, and why, for every decision and every change.

One Redis stream for all components, so the API's ``/api/audit`` and an incident
review read one ordered history. Entries are never rewritten.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from kubetrade.state.keys import Keys

AUDIT_MAXLEN = 1_000_000


@dataclass(frozen=True)
class AuditEntry:
    ts_ms: int
    actor: str
    action: str
    strategy: str = ""
    detail: dict[str, Any] | None = None
    id: str = ""

    def fields(self) -> dict[FieldT, EncodableT]:
        return {
            "ts_ms": str(self.ts_ms),
            "actor": self.actor,
            "action": self.action,
            "strategy": self.strategy,
            "detail": json.dumps(self.detail or {}, default=str, sort_keys=True),
        }

    @classmethod
    def from_stream(cls, entry_id: str, fields: dict[str, str]) -> AuditEntry:
        return cls(
            ts_ms=int(fields.get("ts_ms", "0")),
            actor=fields.get("actor", ""),
            action=fields.get("action", ""),
            strategy=fields.get("strategy", ""),
            detail=json.loads(fields.get("detail") or "{}"),
            id=entry_id,
        )


async def write_audit(redis: Redis, keys: Keys, entry: AuditEntry) -> str:
    """Append ``entry``; returns its stream id. Callers must not put secrets in ``detail``."""
    entry_id = await redis.xadd(
        keys.audit, entry.fields(), maxlen=AUDIT_MAXLEN, approximate=True
    )
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
