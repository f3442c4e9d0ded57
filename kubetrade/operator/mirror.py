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

from kubetrade.domain.emergency import EMERGENCY_ACTIONS
from kubetrade.operator.status import Conditions, iso

SEVERITY = {action: rank for rank, action in enumerate(EMERGENCY_ACTIONS)}


@dataclass(frozen=True)
class Mirror:
    """The action in force, and what Redis needs."""

    action: str
    by: str
    reason: str
    since_ms: int  #: when ``action`` came into force (kept while it stays the same)
    ahead: str | None  #: a stronger action Redis holds that the resource never saw
    changed: bool  #: Redis must be written (and the runners told)
    #: the Emergency's metadata.generation this mirrors (None: a Redis-only stop)
    generation: int | None = None

    @property
    def message(self) -> dict[str, Any]:
        """The emergency hash and channel message the runners read; ``generation`` lets
        a runner acknowledge *this* change (see :func:`acknowledgements`)."""
        out: dict[str, Any] = {
            "action": self.action,
            "since_ms": self.since_ms,
            "by": self.by,
            "reason": self.reason,
        }
        if self.generation is not None:
            out["generation"] = self.generation
        return out


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
    gen = meta.get("generation") if ahead is None else None
    changed = ahead is None and (
        held.get("action") != action
        or held.get("by") != by
        or held.get("reason") != reason
        or held.get("generation") != (None if gen is None else str(gen))
    )
    since = int(held.get("since_ms") or 0)
    if held.get("action") != action or not since:
        since = now_ms
    return Mirror(action, by, reason, since, ahead, changed, gen)


def acks_this_change(text: str | None, m: Mirror) -> bool:
    """Whether one runner's stored acknowledgement is of the change in force: the same
    action *and* the same Emergency generation (the resource changed) or, for a stop
    that reached Redis alone, the same ``since_ms``. An ack of an earlier change of the
    same action does not count (it used to: a patch to ``stop`` could show every runner
    acknowledged while none had acked it)."""
    try:
        ack = json.loads(text or "")
    except (TypeError, ValueError):
        return False
    if not isinstance(ack, dict) or ack.get("action") != m.action:
        return False
    if m.generation is not None and ack.get("generation") == m.generation:
        return True
    return m.generation is None and ack.get("since_ms") == m.since_ms


def acknowledgements(
    acks: Mapping[str, str], m: Mirror, runners: list[str]
) -> tuple[list[str], list[str]]:
    """(acknowledged, waiting): the ``runners`` (Strategy names whose runner can ack)
    split by whether their ack in ``acks`` (name -> JSON) is of this change."""
    acked = [r for r in runners if acks_this_change(acks.get(r), m)]
    return acked, [r for r in runners if r not in acked]


def emergency_status(
    meta: Mapping[str, Any],
    status: Mapping[str, Any],
    m: Mirror,
    acked: int,
    waiting: list[str],
    now_ms: int,
) -> dict[str, Any]:
    """The Emergency's status fields: the action in force, who acknowledged it (and who
    not yet), and the ``Mirrored`` and ``Acknowledged`` conditions."""
    runners = acked + len(waiting)
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
        f"{acked} of {runners} runner(s) acknowledged {m.action}"
        + (f"; waiting for: {', '.join(waiting)}" if waiting else ""),
        now_ms,
    )
    return {
        "state": m.action,
        "since": iso(m.since_ms),
        "by": m.by,
        "acknowledged": acked,
        "runners": runners,
        "waitingFor": waiting,
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
