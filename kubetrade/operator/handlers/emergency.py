"""Emergency handlers: mirror the namespace's kill switch (the Emergency named
``default``) into Redis for the runners, record on the resource a stop that reached
Redis alone, and report who acknowledged it. The decision is
:mod:`kubetrade.operator.mirror`'s; this module does the I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from kubetrade.domain.emergency import EMERGENCY_ACTIONS
from kubetrade.operator import metrics
from kubetrade.operator.clients import Clients, clients_of
from kubetrade.operator.handlers.indexes import (
    DeploymentIndex,
    StrategyIndex,
    first,
    strategies_in,
)
from kubetrade.operator.handlers.support import on_changes, on_timer, timed, write_status
from kubetrade.operator.mirror import (
    Mirror,
    acknowledgements,
    decide,
    emergency_status,
    unmirrored_status,
)
from kubetrade.resources import EMERGENCY_NAME, GROUP, VERSION
from kubetrade.state.client import RedisError

log = logging.getLogger("kubetrade.operator")

PLURAL = "emergencies"


async def publish(c: Clients, body: kopf.Body, m: Mirror) -> None:
    """Write the action to Redis and tell the runners; audit it."""
    await c.publish_emergency(m.message)
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


def set_metrics(action: str, acked: int, runners: int) -> None:
    """The Emergency gauges: the action in force, acknowledgements, expected runners."""
    for known in EMERGENCY_ACTIONS:
        metrics.EMERGENCY_ACTION.labels(known).set(1 if known == action else 0)
    metrics.EMERGENCY_ACKS.set(acked)
    metrics.EMERGENCY_RUNNERS.set(runners)


Indexes = tuple[StrategyIndex | None, DeploymentIndex | None]


async def mirror(c: Clients, body: kopf.Body, patch: kopf.Patch, indexes: Indexes) -> None:
    """Mirror the Emergency into Redis and report acknowledgements (other names: no-op)."""
    meta = body["metadata"]
    if meta["name"] != EMERGENCY_NAME:
        return
    spec = dict(body.get("spec") or {})
    status = dict(body.get("status") or {})
    now = c.clock.now_ms()
    action = spec.get("action", "none")
    if c.redis is None:
        why = "REDIS_URL is not set; runners see the CR only"
        write_status(patch, status, unmirrored_status(meta, status, action, "NoRedis", why, now))
        return
    try:
        m = decide(spec, meta, status, await c.emergency(), now)
        action = m.action
        if m.changed:
            await publish(c, body, m)
        acks = await c.emergency_acks()
    except RedisError as exc:
        new = unmirrored_status(meta, status, action, "RedisUnavailable", f"Redis: {exc}", now)
        write_status(patch, status, new)
        raise kopf.TemporaryError(f"Redis unavailable: {exc}", delay=2) from exc
    if m.ahead is not None:
        await adopt(c, meta, m)
    acked, waiting = acknowledgements(acks, m, able_to_ack(meta["namespace"], indexes))
    set_metrics(m.action, len(acked), len(acked) + len(waiting))
    write_status(patch, status, emergency_status(meta, status, m, len(acked), waiting, now))


def able_to_ack(namespace: str | None, indexes: Indexes) -> list[str]:
    """The Strategies of ``namespace`` whose runner Deployment has replicas > 0."""
    strategy_idx, deployment_idx = indexes
    names = []
    for s in strategies_in(strategy_idx, namespace):
        deployment = first(deployment_idx, (namespace, s.name))
        if deployment is not None and (deployment.replicas or 0) > 0:
            names.append(s.name)
    return sorted(names)


async def emergency_changed(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    reason: str,
    strategy_idx: StrategyIndex | None = None,
    deployment_idx: DeploymentIndex | None = None,
    **_: Any,
) -> None:
    """Created, changed, or seen again at operator start: mirror it."""
    work = mirror(clients_of(memo), body, patch, (strategy_idx, deployment_idx))
    await timed("Emergency", str(reason), work)


async def emergency_tick(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    strategy_idx: StrategyIndex | None = None,
    deployment_idx: DeploymentIndex | None = None,
    **_: Any,
) -> None:
    """Every interval (at most 2 s): mirror again and count acknowledgements."""
    await mirror(clients_of(memo), body, patch, (strategy_idx, deployment_idx))


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
    on_changes(registry, PLURAL, emergency_changed, id="emergency_changed", backoff=2)
    on_timer(registry, PLURAL, emergency_tick, id="emergency_tick", interval=min(interval, 2.0))
    kopf.on.delete(
        GROUP, VERSION, PLURAL, optional=True, registry=registry, id="emergency_deleted"
    )(emergency_deleted)
