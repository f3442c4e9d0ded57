"""Hot changes of desired state reaching a running runner.

- In a cluster: watches on the runner's own ``Strategy`` (the ``enabled`` flag) and on
  the ``RiskPolicy`` it references (limits apply at once, no restart).
- In ``kubetrade local``: ``LocalDesiredState`` publishes an ``EventType.DESIRED`` event
  on every change; the runner re-reads the object it cares about (the event is only a
  nudge, the state in Redis is the truth).
- Emergency: both paths (Redis channel always; the Emergency CR in a cluster).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from kubetrade.domain.clock import SystemClock
from kubetrade.logs import get_logger
from kubetrade.runner.core import Runner
from kubetrade.runner.emergency import listen_redis, read_redis_emergency, watch_kubernetes
from kubetrade.runner.kube import watch_object
from kubetrade.runner.listeners import Resync, supervised
from kubetrade.runner.spec import limits_from_manifest
from kubetrade.state.channels import Subscription
from kubetrade.state.client import RedisClient
from kubetrade.state.desired import DesiredState
from kubetrade.state.keys import Keys

log = get_logger("kubetrade.runner.watch")


async def apply_strategy_manifest(runner: Runner, manifest: dict[str, Any], by: str) -> None:
    spec = manifest.get("spec") or {}
    await runner.set_enabled(bool(spec.get("enabled", True)), by)
    deleting = bool((manifest.get("metadata") or {}).get("deletionTimestamp"))
    if deleting and spec.get("closePositionsOnDelete") and runner.engine.positions:
        await runner.close_positions("Strategy deleted with closePositionsOnDelete", by)


async def apply_risk_manifest(runner: Runner, manifest: dict[str, Any] | None, by: str) -> None:
    try:
        limits = limits_from_manifest(manifest)
    except ValidationError as exc:
        # The API server / desired state validate first; a bad object is logged, the
        # runner keeps the limits it has rather than trading without any.
        log.error("risk.invalid_policy", strategy=runner.name, error=str(exc))
        return
    await runner.update_limits(limits, by)


async def watch_local_desired(
    redis: RedisClient, keys: Keys, desired: DesiredState, runner: Runner,
    on_subscribed: Resync | None = None,
) -> None:
    """Follow ``EventType.DESIRED`` events for this runner's Strategy and RiskPolicy;
    ``on_subscribed`` runs once subscribed."""
    async with Subscription(redis, keys.events_channel) as subscription:
        if on_subscribed is not None:
            await on_subscribed()
        async for event in subscription.json_values():
            if event.get("type") != "desired":
                continue
            data = event.get("data") or {}
            kind, name = data.get("kind"), data.get("name")
            if kind == "Strategy" and name == runner.name:
                await apply_strategy_manifest(runner, await desired.get_strategy(name), "desired")
            elif kind == "RiskPolicy" and name == runner.spec.risk_policy_ref:
                await apply_risk_manifest(runner, await desired.get_risk_policy(name), "desired")


async def watch_cluster_desired(namespace: str, runner: Runner, api_client: Any) -> None:
    """Watch this runner's Strategy (enabled flag) and its RiskPolicy."""
    async def strategy() -> None:
        async for obj in watch_object(namespace, "strategies", runner.name, api_client):
            if obj is not None:
                await apply_strategy_manifest(runner, obj, "kubernetes")

    async def policy() -> None:
        async for obj in watch_object(
            namespace, "riskpolicies", runner.spec.risk_policy_ref, api_client
        ):
            await apply_risk_manifest(runner, obj, "kubernetes")

    await asyncio.gather(strategy(), policy())


def background_tasks(
    runner: Runner,
    *,
    desired: DesiredState | None = None,
    namespace: str | None = None,
    api_client: Any | None = None,
) -> list[Any]:
    """The coroutines that run beside the candle loop: every listener supervised
    (restarted with backoff forever, the state in force re-read once subscribed), on
    the runner's own Redis and keys; the cluster's watch backs off in wall time."""
    redis, keys = runner.redis, runner.keys

    async def resync_emergency() -> None:
        cmd = await read_redis_emergency(redis, keys)
        if cmd is not None:
            await runner.apply_emergency(replace(cmd, source="redis"))

    async def nothing() -> None:
        return None

    name = runner.name
    tasks: list[Any] = [supervised(
        "emergency", name, lambda sub: listen_redis(redis, keys, runner.apply_emergency,
                                                    on_subscribed=sub),
        resync_emergency, first_resync=True,
    )]
    if desired is not None:
        tasks.append(supervised(
            "desired", name, lambda sub: watch_local_desired(redis, keys, desired, runner, sub),
            lambda: resync_desired(runner, desired), first_resync=True,
        ))
    if namespace is not None:
        tasks.append(supervised(
            "emergency-resource", name,
            lambda _sub: watch_kubernetes(
                namespace, runner.apply_emergency, SystemClock(), api_client
            ),
            nothing,
        ))
        tasks.append(supervised(
            "desired-resources", name,
            lambda _sub: watch_cluster_desired(namespace, runner, api_client), nothing,
        ))
    return tasks


async def resync_desired(runner: Runner, desired: DesiredState) -> None:
    """Re-read this runner's Strategy and RiskPolicy and apply them (after a reconnect:
    a change made while the runner was not listening)."""
    await apply_strategy_manifest(runner, await desired.get_strategy(runner.name), "desired")
    await apply_risk_manifest(
        runner, await desired.get_risk_policy(runner.spec.risk_policy_ref), "desired"
    )
