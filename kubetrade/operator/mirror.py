"""The Emergency mirror decision, as pure functions: which action is in force, whether
Redis must be written, and what the Emergency's status says.

Runners watch the Emergency resource and Redis; the API and the Telegram bot write both,
or Redis alone while the API server is down. So Redis may hold a stop the resource never
saw: unless the resource itself changed since it was last mirrored (its generation is
not the status' ``observedGeneration``), its older, milder action never overwrites that
(a resync or restart would otherwise publish a stale ``none`` and resume every runner);
the handler records the stronger action on the resource instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubetrade.operator.status import Conditions, iso

ACTIONS = ("none", "stop", "close-all")
SEVERITY = {action: rank for rank, action in enumerate(ACTIONS)}


@dataclass(frozen=True)
class Mirror:
    """The action in force, and what Redis needs."""

    action: str
    by: str
    reason: str
    since_ms: int  #: when ``action`` came into force (kept while it stays the same)
    ahead: str | None  #: a stronger action Redis holds that the resource never saw
    changed: bool  #: Redis must be written (and the runners told)

    @property
    def message(self) -> dict[str, Any]:
        """The emergency hash and channel message the runners read."""
        return {
            "action": self.action,
            "since_ms": self.since_ms,
            "by": self.by,
            "reason": self.reason,
        }


def decide(
    spec: Mapping[str, Any],
    meta: Mapping[str, Any],
    status: Mapping[str, Any],
    held: Mapping[str, str],
    now_ms: int,
) -> Mirror:
    """The action to mirror, from the resource and the emergency hash Redis ``held``."""
    action = spec.get("action", "none")
    by = spec.get("requestedBy") or "kubernetes"
    reason = spec.get("reason", "")
    ahead: str | None = None
    resource_changed = meta.get("generation") != status.get("observedGeneration")
    strongest = held.get("action")
    if (
        not resource_changed
        and strongest in SEVERITY
        and SEVERITY[strongest] > SEVERITY.get(action, 0)
    ):
        ahead, action = strongest, strongest
        by, reason = held.get("by") or by, held.get("reason") or ""
    changed = ahead is None and (
        held.get("action") != action or held.get("by") != by or held.get("reason") != reason
    )
    since = int(held.get("since_ms") or 0)
    if held.get("action") != action or not since:
        since = now_ms
    return Mirror(action, by, reason, since, ahead, changed)


def count_acks(acks: Mapping[str, str], action: str) -> int:
    """Runners whose acknowledgement names ``action`` (only the action is compared: a
    replaying runner stamps acks with candle time)."""
    acked = 0
    for text in acks.values():
        try:
            ack = json.loads(text)
        except (TypeError, ValueError):
            continue
        if ack.get("action") == action:
            acked += 1
    return acked


def emergency_status(
    meta: Mapping[str, Any],
    status: Mapping[str, Any],
    m: Mirror,
    acked: int,
    runners: int,
    now_ms: int,
) -> dict[str, Any]:
    """The Emergency's status fields: the action in force, who acknowledged it, and the
    ``Mirrored`` and ``Acknowledged`` conditions."""
    conds = Conditions(status.get("conditions"), meta.get("generation"))
    if m.ahead is not None:
        conds.set(
            "Mirrored",
            False,
            "RedisAhead",
            f"Redis holds {m.ahead} by {m.by} (delivered while this resource could not be "
            "written); it stays in force until spec.action is changed",
            now_ms,
        )
    else:
        conds.set("Mirrored", True, "MirroredToRedis", f"action {m.action} published", now_ms)
    conds.set(
        "Acknowledged",
        acked >= runners,
        "AllRunnersAcknowledged" if acked >= runners else "WaitingForRunners",
        f"{acked} of {runners} runner(s) acknowledged {m.action}",
        now_ms,
    )
    return {
        "state": m.action,
        "since": iso(m.since_ms),
        "by": m.by,
        "acknowledged": acked,
        "runners": runners,
        "observedGeneration": meta.get("generation"),
        "conditions": conds.items,
    }


def unmirrored_status(
    meta: Mapping[str, Any],
    status: Mapping[str, Any],
    action: str,
    reason: str,
    message: str,
    now_ms: int,
) -> dict[str, Any]:
    """The status when Redis could not be written (``reason`` NoRedis or
    RedisUnavailable): the action asked for, and ``Mirrored`` False."""
    conds = Conditions(status.get("conditions"), meta.get("generation"))
    conds.set("Mirrored", False, reason, message, now_ms)
    return {"state": action, "conditions": conds.items}
