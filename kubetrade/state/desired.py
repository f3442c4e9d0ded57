"""Desired state: what the user wants (strategies, risk policy, emergency action).

In a cluster the custom resources are the one source of desired state
(``kubetrade.state.desired_k8s.KubernetesDesiredState``). ``kubetrade local`` has no
cluster, so :class:`LocalDesiredState` keeps the same manifests in Redis and tells
runners about changes with an ``EventType.DESIRED`` event instead of a watch. The API,
the Telegram bot and the runners code against :class:`DesiredState` and do not care
which one they have.

Manifests are plain dicts in the custom resources' shape (``apiVersion``, ``kind``,
``metadata``, camelCase ``spec``), so a Strategy YAML means the same thing everywhere.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError
from redis.asyncio import Redis

from kubetrade.domain.clock import Clock, SystemClock
from kubetrade.domain.risk import RiskLimits
from kubetrade.state.audit import AuditEntry, write_audit
from kubetrade.state.emergency import publish_emergency, read_emergency_state
from kubetrade.state.events import EventType, publish_event
from kubetrade.state.keys import Keys
from kubetrade.state.liveness import REMOVED
from kubetrade.state.schema import EmergencyState

API_VERSION = "kubetrade.io/v1alpha1"
DEFAULT_POLICY = "default"


class DesiredStateError(ValueError):
    """A requested change breaks a rule; the message names the field and the rule."""


class NotFoundError(KeyError):
    """No such object (strategy, risk policy)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


@runtime_checkable
class DesiredState(Protocol):
    """Read and change desired state. Every change is audited with its ``actor``."""

    async def list_strategies(self) -> list[dict[str, Any]]: ...

    async def get_strategy(self, name: str) -> dict[str, Any]:
        """The Strategy manifest; raises :class:`NotFoundError`."""
        ...

    async def put_strategy(self, manifest: dict[str, Any], actor: str) -> dict[str, Any]: ...

    async def set_strategy_enabled(
        self, name: str, enabled: bool, actor: str
    ) -> dict[str, Any]: ...

    async def get_risk_policy(self, name: str) -> dict[str, Any]:
        """The RiskPolicy manifest (defaults when none was ever stored)."""
        ...

    async def update_risk_policy(
        self, name: str, patch: dict[str, Any], actor: str
    ) -> dict[str, Any]: ...

    async def get_emergency(self) -> dict[str, Any]:
        """``{"action", "since_ms", "by", "reason"}``; action ``none`` when never set."""
        ...

    async def set_emergency(self, action: str, actor: str, reason: str) -> dict[str, Any]: ...


def validate_risk_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Validate a RiskPolicy spec with the engine's own ``RiskLimits`` and return it in
    camelCase JSON form. Raises :class:`DesiredStateError` naming the field."""
    try:
        limits = RiskLimits.model_validate(spec)
    except ValidationError as exc:
        raise DesiredStateError(_pydantic_message("RiskPolicy.spec", exc)) from None
    dumped: dict[str, Any] = limits.model_dump(mode="json", by_alias=True)
    return dumped


def risk_spec_fields_set(spec: dict[str, Any]) -> dict[str, Any]:
    """The fields a RiskPolicy spec sets (not those left to defaults), in the stored form
    of :func:`validate_risk_spec`. Raises :class:`DesiredStateError` naming the field."""
    try:
        limits = RiskLimits.model_validate(spec)
    except ValidationError as exc:
        raise DesiredStateError(_pydantic_message("RiskPolicy.spec", exc)) from None
    dumped: dict[str, Any] = limits.model_dump(
        mode="json", by_alias=True, include=limits.model_fields_set)
    return dumped


StrategyCheck = Callable[[dict[str, Any]], dict[str, Any]]
"""Validates a Strategy manifest and returns it with defaults filled in; raises
``pydantic.ValidationError``. The resource model's check lives in
``kubetrade.resources.loader.strategy_with_defaults`` (state/ does not import resources:
the assembler in cli/ passes it in)."""


def strategy_shape(manifest: dict[str, Any]) -> dict[str, Any]:
    """The check without the resource model: ``apiVersion`` and ``kind`` filled in."""
    out = dict(manifest)
    out.setdefault("apiVersion", API_VERSION)
    out.setdefault("kind", "Strategy")
    return out


def validate_strategy_manifest(
    manifest: dict[str, Any], check: StrategyCheck = strategy_shape
) -> dict[str, Any]:
    """Check a Strategy manifest with ``check`` (the resource model's, when the assembler
    gave one) and the algorithm's parameter model; returns the manifest with defaults
    filled in. Raises :class:`DesiredStateError` naming the field."""
    if not isinstance(manifest, dict):
        raise DesiredStateError("Strategy: manifest must be a mapping")
    if manifest.get("kind", "Strategy") != "Strategy":
        raise DesiredStateError(f"kind: expected 'Strategy', got {manifest.get('kind')!r}")
    name = (manifest.get("metadata") or {}).get("name")
    if not name:
        raise DesiredStateError("metadata.name: required")
    try:
        return check(manifest)
    except ValidationError as exc:
        raise DesiredStateError(_pydantic_message("Strategy", exc)) from None


def _pydantic_message(prefix: str, exc: Any) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{prefix}.{loc}: {err.get('msg')}" if loc else f"{prefix}: {err.get('msg')}")
    return "; ".join(parts)


def risk_policy_manifest(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "RiskPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


class LocalDesiredState:
    """Desired state in Redis for ``kubetrade local`` (no cluster).

    ``check_strategy`` validates a stored Strategy (the assembler passes the resource
    model's check, ``kubetrade.resources.loader.strategy_with_defaults``; without it only
    the manifest's shape is checked)."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        clock: Clock | None = None,
        check_strategy: StrategyCheck = strategy_shape,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.clock: Clock = clock or SystemClock()
        self.check_strategy = check_strategy

    # -- strategies -----------------------------------------------------------------
    async def list_strategies(self) -> list[dict[str, Any]]:
        raw: Any = await self.redis.hgetall(self.keys.desired_strategies)  # type: ignore[misc]
        return [json.loads(raw[n]) for n in sorted(raw)]

    async def get_strategy(self, name: str) -> dict[str, Any]:
        raw = await self.redis.hget(self.keys.desired_strategies, name)  # type: ignore[misc]
        if raw is None:
            raise NotFoundError(f"strategy {name!r} not found")
        data: dict[str, Any] = json.loads(raw)
        return data

    async def put_strategy(self, manifest: dict[str, Any], actor: str) -> dict[str, Any]:
        checked = validate_strategy_manifest(manifest, self.check_strategy)
        name = checked["metadata"]["name"]
        await self.redis.hset(self.keys.desired_strategies, name, json.dumps(checked))  # type: ignore[misc]
        await self._changed("strategy.put", actor, name, {"kind": "Strategy", "name": name})
        return checked

    async def set_strategy_enabled(self, name: str, enabled: bool, actor: str) -> dict[str, Any]:
        manifest = await self.get_strategy(name)
        before = bool(manifest.get("spec", {}).get("enabled", True))
        manifest.setdefault("spec", {})["enabled"] = bool(enabled)
        await self.redis.hset(self.keys.desired_strategies, name, json.dumps(manifest))  # type: ignore[misc]
        await self._changed(
            "strategy.enabled",
            actor,
            name,
            {"kind": "Strategy", "name": name, "enabled": bool(enabled), "before": before},
        )
        return manifest

    async def remove_strategy(self, name: str, actor: str) -> None:
        """Forget Strategy ``name`` (its file is gone): no longer configured, its
        summary's phase ``Removed`` (not a ``Running`` that goes ``Stale``); its books,
        trades and audit stay in Redis for reading."""
        await self.redis.hdel(self.keys.desired_strategies, name)  # type: ignore[misc]
        if await self.redis.exists(self.keys.summary(name)):
            await self.redis.hset(self.keys.summary(name), mapping={  # type: ignore[misc]
                "phase": REMOVED, "updated_ms": str(self.clock.now_ms())})
        await self._changed("strategy.removed", actor, name, {"kind": "Strategy", "name": name})

    # -- risk policies --------------------------------------------------------------
    async def get_risk_policy(self, name: str = DEFAULT_POLICY) -> dict[str, Any]:
        raw = await self.redis.hget(self.keys.desired_riskpolicies, name)  # type: ignore[misc]
        if raw is not None:
            data: dict[str, Any] = json.loads(raw)
            return data
        return risk_policy_manifest(name, validate_risk_spec({}))

    async def has_risk_policy(self, name: str) -> bool:
        """Whether a RiskPolicy was stored (``get_risk_policy`` answers defaults if not)."""
        return bool(await self.redis.hexists(self.keys.desired_riskpolicies, name))  # type: ignore[misc]

    async def put_risk_policy(self, manifest: dict[str, Any], actor: str) -> dict[str, Any]:
        """Store a whole RiskPolicy manifest (``kubetrade local`` seeds it from YAML)."""
        name = (manifest.get("metadata") or {}).get("name") or DEFAULT_POLICY
        spec = validate_risk_spec(manifest.get("spec") or {})
        stored = risk_policy_manifest(name, spec)
        await self.redis.hset(self.keys.desired_riskpolicies, name, json.dumps(stored))  # type: ignore[misc]
        await self._changed("riskpolicy.put", actor, "", {"kind": "RiskPolicy", "name": name})
        return stored

    async def update_risk_policy(
        self, name: str, patch: dict[str, Any], actor: str
    ) -> dict[str, Any]:
        if not isinstance(patch, dict):
            raise DesiredStateError("RiskPolicy.spec: patch must be a mapping")
        current = await self.get_risk_policy(name)
        merged = {**current.get("spec", {}), **patch}
        spec = validate_risk_spec(merged)
        stored = risk_policy_manifest(name, spec)
        await self.redis.hset(self.keys.desired_riskpolicies, name, json.dumps(stored))  # type: ignore[misc]
        await self._changed(
            "riskpolicy.update",
            actor,
            "",
            {"kind": "RiskPolicy", "name": name, "patch": patch},
        )
        return stored

    # -- the files of the last start -------------------------------------------------
    async def last_applied(self, kind: str, name: str) -> dict[str, Any] | None:
        """The spec fields the files set for ``kind``/``name`` at the last start (None
        when no start recorded them)."""
        raw = await self.redis.hget(self.keys.desired_last_applied, f"{kind}/{name}")  # type: ignore[misc]
        if raw is None:
            return None
        data: dict[str, Any] = json.loads(raw)
        return data

    async def record_applied(self, kind: str, name: str, fields: dict[str, Any]) -> None:
        """Remember the spec fields this start's files set for ``kind``/``name``."""
        await self.redis.hset(self.keys.desired_last_applied, f"{kind}/{name}",  # type: ignore[misc]
                              json.dumps(fields, sort_keys=True))

    # -- emergency ------------------------------------------------------------------
    async def get_emergency(self) -> dict[str, Any]:
        state = await read_emergency_state(self.redis, self.keys)
        return (state or EmergencyState()).as_dict()

    async def set_emergency(self, action: str, actor: str, reason: str) -> dict[str, Any]:
        return await write_emergency(self.redis, self.keys, action, actor, reason, self.clock)

    async def _changed(
        self, action: str, actor: str, strategy: str, detail: dict[str, Any]
    ) -> None:
        now = self.clock.now_ms()
        await write_audit(
            self.redis,
            self.keys,
            AuditEntry(ts_ms=now, actor=actor, action=action, strategy=strategy, detail=detail),
        )
        await publish_event(self.redis, self.keys, EventType.DESIRED, now, detail, strategy)


async def write_emergency(
    redis: Redis,
    keys: Keys,
    action: str,
    actor: str,
    reason: str,
    clock: Clock | None = None,
) -> dict[str, Any]:
    """Set the emergency action in Redis, audit it, and tell runners on the channel.

    Shared by local desired state and the cluster path (the operator and the API
    mirror the Emergency CR here), so runners see one format either way.
    """
    now = (clock or SystemClock()).now_ms() if clock else time.time_ns() // 1_000_000
    try:
        record = EmergencyState.new(action, now, actor, reason)
    except ValueError as exc:
        raise DesiredStateError(str(exc)) from None
    state = record.as_dict()
    await publish_emergency(redis, keys, record)
    await write_audit(
        redis,
        keys,
        AuditEntry(ts_ms=now, actor=actor, action=f"emergency.{action}", detail=dict(state)),
    )
    await publish_event(redis, keys, EventType.EMERGENCY, now, state)
    return state
