"""Emergency handlers: mirror the namespace's kill switch (the Emergency named
``default``) into Redis for the runners, and report who acknowledged it.

Runners watch the resource and Redis; the API and the Telegram bot write both, or Redis
alone while the API server is down. So Redis may hold a stop the resource never saw:
unless the resource itself changed since it was last mirrored, its older, milder action
never overwrites that (a resync or restart would otherwise publish a stale ``none`` and
resume every runner), and the stop is recorded on the resource instead.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException
from redis.exceptions import RedisError

from kubetrade.operator import metrics
from kubetrade.operator.clients import Clients, clients_of
from kubetrade.operator.handlers.indexes import StrategyIndex
from kubetrade.operator.handlers.support import timed, write_status
from kubetrade.operator.status import Conditions, iso
from kubetrade.resources import EMERGENCY_NAME, GROUP, VERSION

log = logging.getLogger("kubetrade.operator")

PLURAL = "emergencies"
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


async def publish(c: Clients, body: kopf.Body, m: Mirror) -> None:
    """Write the action to Redis and tell the runners; audit it."""
    message = {"action": m.action, "since_ms": m.since_ms, "by": m.by, "reason": m.reason}
    await c.publish_emergency(message)
    await c.audit(f"emergency.{m.action}.mirrored", by=m.by, reason=m.reason)
    if m.action != "none":
        kopf.warn(body, reason="EmergencyAction", message=f"{m.action} by {m.by}: {m.reason}")


async def adopt(c: Clients, meta: Mapping[str, Any], m: Mirror) -> None:
    """Record on the Emergency resource a stop that reached Redis alone (the API server
    was unreachable for the API or the bot), so runners watching the resource and
    ``kubectl get emergency`` agree with Redis instead of reading the old action as a
    resume. Guarded by resourceVersion: a human change made meanwhile wins."""
    body = {
        "metadata": {"resourceVersion": meta.get("resourceVersion")},
        "spec": {"action": m.action, "requestedBy": m.by, "reason": m.reason},
    }
    try:
        await c.kube.merge_patch(
            f"{GROUP}/{VERSION}", PLURAL, meta["namespace"], meta["name"], body
        )
    except ApiException as exc:
        if exc.status != 409:  # 409: changed meanwhile; the next pass decides again
            log.warning(
                "could not record the Redis-only %s on the Emergency: %s", m.action, exc.status
            )
        return
    await c.audit(f"emergency.{m.action}.adopted", by=m.by, reason=m.reason)


def report(
    meta: Mapping[str, Any], m: Mirror, acked: int, runners: int, conds: Conditions, now: int
) -> dict[str, Any]:
    """Set the metrics and conditions; the status fields to write."""
    if m.ahead is not None:
        conds.set(
            "Mirrored",
            False,
            "RedisAhead",
            f"Redis holds {m.ahead} by {m.by} (delivered while this resource could not be "
            "written); it stays in force until spec.action is changed",
            now,
        )
    else:
        conds.set("Mirrored", True, "MirroredToRedis", f"action {m.action} published", now)
    for known in ACTIONS:
        metrics.EMERGENCY_ACTION.labels(known).set(1 if known == m.action else 0)
    metrics.EMERGENCY_ACKS.set(acked)
    metrics.EMERGENCY_RUNNERS.set(runners)
    conds.set(
        "Acknowledged",
        acked >= runners,
        "AllRunnersAcknowledged" if acked >= runners else "WaitingForRunners",
        f"{acked} of {runners} runner(s) acknowledged {m.action}",
        now,
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


async def mirror(
    c: Clients, body: kopf.Body, patch: kopf.Patch, strategy_idx: StrategyIndex | None
) -> None:
    """Mirror the Emergency into Redis and report acknowledgements (other names: no-op)."""
    meta = body["metadata"]
    if meta["name"] != EMERGENCY_NAME:
        return
    spec = dict(body.get("spec") or {})
    status = dict(body.get("status") or {})
    conds = Conditions(status.get("conditions"), meta.get("generation"))
    now = c.clock.now_ms()
    action = spec.get("action", "none")
    if c.redis is None:
        conds.set(
            "Mirrored", False, "NoRedis", "REDIS_URL is not set; runners see the CR only", now
        )
        write_status(patch, status, {"state": action, "conditions": conds.items})
        return
    try:
        m = decide(spec, meta, status, await c.emergency(), now)
        action = m.action
        if m.changed:
            await publish(c, body, m)
        acks = await c.emergency_acks()
    except RedisError as exc:
        conds.set("Mirrored", False, "RedisUnavailable", f"Redis: {exc}", now)
        write_status(patch, status, {"state": action, "conditions": conds.items})
        raise kopf.TemporaryError(f"Redis unavailable: {exc}", delay=2) from exc
    if m.ahead is not None:
        await adopt(c, meta, m)
    runners = sum(
        1 for s in (strategy_idx.get(meta["namespace"], []) if strategy_idx else []) if s.enabled
    )
    write_status(patch, status, report(meta, m, count_acks(acks, m.action), runners, conds, now))


async def emergency_changed(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    reason: str,
    strategy_idx: StrategyIndex | None = None,
    **_: Any,
) -> None:
    """Created, changed, or seen again at operator start: mirror it."""
    await timed("Emergency", str(reason), mirror(clients_of(memo), body, patch, strategy_idx))


async def emergency_tick(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    strategy_idx: StrategyIndex | None = None,
    **_: Any,
) -> None:
    """Every interval (at most 2 s): mirror again and count acknowledgements."""
    await mirror(clients_of(memo), body, patch, strategy_idx)


async def emergency_deleted(name: str, memo: kopf.Memo, **_: Any) -> None:
    """No Emergency object means no emergency (runners read a deletion as none)."""
    c = clients_of(memo)
    if name != EMERGENCY_NAME or c.redis is None:
        return
    message = {
        "action": "none",
        "since_ms": c.clock.now_ms(),
        "by": "kubernetes",
        "reason": "Emergency deleted",
    }
    await c.publish_emergency(message)
    await c.audit("emergency.none.mirrored", by="kubernetes", reason="Emergency deleted")


def register(registry: kopf.OperatorRegistry, interval: float) -> None:
    """Register the Emergency handlers; the timer ticks every min(``interval``, 2) s."""
    for cause in (kopf.on.update, kopf.on.create, kopf.on.resume):
        cause(GROUP, VERSION, PLURAL, registry=registry, id="emergency_changed", backoff=2)(
            emergency_changed
        )
    kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        interval=min(interval, 2.0),
        registry=registry,
        id="emergency_tick",
        backoff=5,
    )(emergency_tick)
    kopf.on.delete(
        GROUP, VERSION, PLURAL, optional=True, registry=registry, id="emergency_deleted"
    )(emergency_deleted)
