"""Where emergency commands come from: Redis and, in a cluster, the Emergency CR.

Two independent paths on purpose: the operator mirrors the ``Emergency/default``
resource into Redis, but if Redis is down the kill switch must still work, so in a
cluster the runner also watches the resource itself. Both paths produce the same
:class:`EmergencyCommand`; the runner applies an action once per change, so seeing it
on both paths is harmless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kubetrade.domain.clock import Clock
from kubetrade.domain.emergency import EMERGENCY_ACTIONS, EmergencyAction
from kubetrade.runner.kube import raise_if_cancelling, watch_object
from kubetrade.state.channels import Subscription
from kubetrade.state.client import RedisClient
from kubetrade.state.keys import Keys
from kubetrade.state.runner_view import emergency_fields

EMERGENCY_NAME = "default"
PLURAL = "emergencies"


@dataclass(frozen=True)
class EmergencyCommand:
    action: str
    since_ms: int
    by: str
    reason: str
    source: str  # "redis" | "kubernetes" | "start"
    #: the Emergency's metadata.generation this command carries (None: unknown, e.g. a
    #: stop written to Redis alone); echoed in the ack so the operator counts acks of
    #: *this* change only
    generation: int | None = None


def _generation(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


Handler = Callable[[EmergencyCommand], Awaitable[None]]


def parse_redis_state(data: dict[str, Any], source: str) -> EmergencyCommand | None:
    """Hash or channel JSON ``{"action","since_ms","by","reason"}``; None if unusable."""
    action = str(data.get("action") or EmergencyAction.NONE)
    if action not in EMERGENCY_ACTIONS:
        return None
    try:
        since = int(data.get("since_ms") or 0)
    except (TypeError, ValueError):
        since = 0
    return EmergencyCommand(
        action=action,
        since_ms=since,
        by=str(data.get("by") or ""),
        reason=str(data.get("reason") or ""),
        source=source,
        generation=_generation(data.get("generation")),
    )


def parse_cr(obj: dict[str, Any], now_ms: int) -> EmergencyCommand | None:
    spec = obj.get("spec") or {}
    action = str(spec.get("action") or EmergencyAction.NONE)
    if action not in EMERGENCY_ACTIONS:
        return None
    return EmergencyCommand(
        action=action,
        since_ms=now_ms,
        by=str(spec.get("requestedBy") or spec.get("requested_by") or "kubernetes"),
        reason=str(spec.get("reason") or ""),
        source="kubernetes",
        generation=_generation((obj.get("metadata") or {}).get("generation")),
    )


async def read_redis_emergency(redis: RedisClient, keys: Keys) -> EmergencyCommand | None:
    data = await emergency_fields(redis, keys)
    if not data:
        return None
    return parse_redis_state(dict(data), "start")


async def listen_redis(
    redis: RedisClient, keys: Keys, handler: Handler, ready: asyncio.Event | None = None,
    on_subscribed: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Call ``handler`` for every message on the emergency channel until cancelled (or
    a Redis error: ``listeners.supervised`` starts it again); ``on_subscribed`` runs
    once subscribed (re-reading the state in force)."""
    async with Subscription(redis, keys.emergency_channel) as subscription:
        if ready is not None:
            ready.set()
        if on_subscribed is not None:
            await on_subscribed()
        async for data in subscription.json_values():
            cmd = parse_redis_state(data if isinstance(data, dict) else {}, "redis")
            if cmd is not None:
                await handler(cmd)
            raise_if_cancelling()


async def watch_kubernetes(
    namespace: str, handler: Handler, clock: Clock, api_client: Any | None = None
) -> None:
    """Apply every change of ``Emergency/default`` in ``namespace``; deletion means none."""
    async for obj in watch_object(namespace, PLURAL, EMERGENCY_NAME, api_client):
        cmd = parse_cr(obj or {"spec": {"action": "none", "requestedBy": "kubernetes"}},
                       clock.now_ms())
        if cmd is not None:
            await handler(cmd)
