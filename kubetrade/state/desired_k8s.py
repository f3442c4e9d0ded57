"""Desired state on the custom resources (``kubetrade api`` in a cluster).

The cluster is the one source of desired state: toggles, risk-limit edits and the kill
switch are merge patches on the ``Strategy``, ``RiskPolicy`` and ``Emergency``
objects, so ``kubectl get`` and the dashboard never disagree. The official client is
synchronous; calls run in a worker thread with a timeout so a slow API server never
blocks the event loop.

The kill switch has a second path: ``set_emergency`` also writes the action to Redis
(``keys.emergency`` + ``keys.emergency_channel``, the format runners listen to), so a
stop reaches runners even while the Kubernetes API is down. For ``stop``/``close-all``
Redis and the resource are written at once (halting fast matters most: neither path
waits on the other, so a Redis that hangs does not hold back the resource the operator
acts on); for ``none`` (resume) the custom resource is written first, so a failed
resume never lets runners trade while the resource still says stop. The Redis write
is bounded (``REDIS_WAIT_S``): the operator mirrors the resource to Redis too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from redis.asyncio import Redis
from redis.exceptions import RedisError

from kubetrade.domain.clock import Clock, SystemClock
from kubetrade.domain.emergency import EMERGENCY_ACTIONS, REDIS_WAIT_S
from kubetrade.state.audit import AuditEntry, write_audit
from kubetrade.state.desired import (
    API_VERSION,
    DEFAULT_POLICY,
    DesiredStateError,
    NotFoundError,
    risk_policy_manifest,
    validate_risk_spec,
    write_emergency,
)
from kubetrade.state.emergency import read_emergency_state
from kubetrade.state.events import EventType, publish_event
from kubetrade.state.keys import Keys, keys_from_env
from kubetrade.state.schema import EmergencyState

log = logging.getLogger("kubetrade.state.desired_k8s")

GROUP = "kubetrade.io"
VERSION = "v1alpha1"
STRATEGIES = "strategies"
RISKPOLICIES = "riskpolicies"
EMERGENCIES = "emergencies"
EMERGENCY_NAME = "default"
MERGE_PATCH = "application/merge-patch+json"
TIMEOUT = 10.0


class DesiredStateUnavailable(RuntimeError):
    """The store of desired state (the Kubernetes API) could not be reached; the
    message says what did and did not happen and is safe to show."""


def _api_message(exc: ApiException) -> str:
    """The API server's own explanation (names the field for schema/CEL failures)."""
    try:
        body = json.loads(exc.body or "{}")
        message = body.get("message")
        if message:
            return str(message)
    except (ValueError, AttributeError):
        pass
    return f"{exc.status} {exc.reason}"


class KubernetesDesiredState:
    """:class:`kubetrade.state.desired.DesiredState` on the kubetrade.io custom resources."""

    def __init__(
        self,
        namespace: str,
        api_client: k8s.ApiClient,
        redis: Redis | None = None,
        keys: Keys | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.namespace = namespace
        self._api = k8s.CustomObjectsApi(api_client)
        self._redis = redis
        self._keys = keys or keys_from_env()
        self._clock: Clock = clock or SystemClock()

    # -- plumbing ---------------------------------------------------------------------
    async def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            async with asyncio.timeout(TIMEOUT + 2):
                return await asyncio.to_thread(fn, *args, _request_timeout=TIMEOUT, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                raise NotFoundError(f"{what} not found") from None
            if exc.status in (400, 422):
                raise DesiredStateError(f"{what}: {_api_message(exc)}") from None
            if exc.status in (401, 403):
                raise DesiredStateUnavailable(
                    f"{what}: the API's service account may not do this ({exc.status})"
                ) from None
            raise DesiredStateUnavailable(f"{what}: Kubernetes API error {exc.status}") from None
        except (OSError, TimeoutError) as exc:
            raise DesiredStateUnavailable(
                f"{what}: Kubernetes API unreachable ({type(exc).__name__})"
            ) from None
        except Exception as exc:  # urllib3 errors are not OSError subclasses
            if type(exc).__module__.startswith("urllib3"):
                raise DesiredStateUnavailable(
                    f"{what}: Kubernetes API unreachable ({type(exc).__name__})"
                ) from None
            raise

    async def _get(self, plural: str, name: str, what: str) -> dict[str, Any]:
        obj: dict[str, Any] = await self._call(
            what,
            self._api.get_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            plural,
            name,
        )
        return obj

    async def _patch(
        self, plural: str, name: str, body: dict[str, Any], what: str
    ) -> dict[str, Any]:
        obj: dict[str, Any] = await self._call(
            what,
            self._api.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            plural,
            name,
            body,
            _content_type=MERGE_PATCH,
        )
        return obj

    async def _create(self, plural: str, body: dict[str, Any], what: str) -> dict[str, Any]:
        obj: dict[str, Any] = await self._call(
            what,
            self._api.create_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            plural,
            body,
        )
        return obj

    async def _audit(self, action: str, actor: str, strategy: str, detail: dict[str, Any]) -> None:
        if self._redis is None:
            return
        now = self._clock.now_ms()
        try:
            await write_audit(
                self._redis,
                self._keys,
                AuditEntry(ts_ms=now, actor=actor, action=action, strategy=strategy, detail=detail),
            )
            await publish_event(self._redis, self._keys, EventType.DESIRED, now, detail, strategy)
        except RedisError:
            log.error("audit of %s by %s could not be written (Redis unavailable)", action, actor)

    async def ping(self) -> bool:
        """Can we reach the API server and read our resources (health check)?"""
        try:
            await self._strategy_list(limit=1)
        except (DesiredStateUnavailable, NotFoundError, DesiredStateError):
            return False
        return True

    async def _strategy_list(self, **options: Any) -> Any:
        """The namespace's Strategy list (the API server's answer)."""
        return await self._call(
            "Strategy list", self._api.list_namespaced_custom_object,
            GROUP, VERSION, self.namespace, STRATEGIES, **options,
        )

    # -- strategies -------------------------------------------------------------------
    async def list_strategies(self) -> list[dict[str, Any]]:
        result = await self._strategy_list()
        items: list[dict[str, Any]] = list(result.get("items") or [])
        return sorted(items, key=lambda m: (m.get("metadata") or {}).get("name", ""))

    async def get_strategy(self, name: str) -> dict[str, Any]:
        return await self._get(STRATEGIES, name, f"strategy {name!r}")

    async def put_strategy(self, manifest: dict[str, Any], actor: str) -> dict[str, Any]:
        name = (manifest.get("metadata") or {}).get("name")
        if not name:
            raise DesiredStateError("metadata.name: required")
        body = {
            "apiVersion": API_VERSION,
            "kind": "Strategy",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": manifest.get("spec") or {},
        }
        what = f"strategy {name!r}"
        try:
            await self._get(STRATEGIES, name, what)
        except NotFoundError:
            stored = await self._create(STRATEGIES, body, what)
        else:
            stored = await self._patch(STRATEGIES, name, {"spec": body["spec"]}, what)
        await self._audit("strategy.put", actor, name, {"kind": "Strategy", "name": name})
        return stored

    async def set_strategy_enabled(self, name: str, enabled: bool, actor: str) -> dict[str, Any]:
        what = f"strategy {name!r}"
        before = (await self._get(STRATEGIES, name, what)).get("spec", {}).get("enabled", True)
        stored = await self._patch(STRATEGIES, name, {"spec": {"enabled": bool(enabled)}}, what)
        await self._audit(
            "strategy.enabled",
            actor,
            name,
            {"kind": "Strategy", "name": name, "enabled": bool(enabled), "before": bool(before)},
        )
        return stored

    # -- risk policies ----------------------------------------------------------------
    async def get_risk_policy(self, name: str = DEFAULT_POLICY) -> dict[str, Any]:
        try:
            return await self._get(RISKPOLICIES, name, f"risk policy {name!r}")
        except NotFoundError:
            return risk_policy_manifest(name, validate_risk_spec({}))

    async def update_risk_policy(
        self, name: str, patch: dict[str, Any], actor: str
    ) -> dict[str, Any]:
        if not isinstance(patch, dict):
            raise DesiredStateError("RiskPolicy.spec: patch must be a mapping")
        what = f"risk policy {name!r}"
        try:
            current = await self._get(RISKPOLICIES, name, what)
            exists = True
        except NotFoundError:
            current, exists = {"spec": {}}, False
        # Validate the merged result with the engine's rules before the API server sees
        # it, so the error names our field even where the CRD schema is looser.
        validate_risk_spec({**(current.get("spec") or {}), **patch})
        if exists:
            stored = await self._patch(RISKPOLICIES, name, {"spec": patch}, what)
        else:
            body = risk_policy_manifest(name, patch)
            body["metadata"]["namespace"] = self.namespace
            stored = await self._create(RISKPOLICIES, body, what)
        await self._audit(
            "riskpolicy.update", actor, "", {"kind": "RiskPolicy", "name": name, "patch": patch}
        )
        return stored

    # -- emergency --------------------------------------------------------------------
    async def get_emergency(self) -> dict[str, Any]:
        try:
            obj = await self._get(EMERGENCIES, EMERGENCY_NAME, "emergency 'default'")
        except NotFoundError:
            return {"action": "none", "since_ms": 0, "by": "", "reason": ""}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        action = spec.get("action") or "none"
        since_ms = 0
        if self._redis is not None:
            try:
                async with asyncio.timeout(REDIS_WAIT_S):
                    mirrored = await read_emergency_state(self._redis, self._keys)
                if mirrored is not None and mirrored.action == action:
                    since_ms = mirrored.since_ms
            except (RedisError, ValueError, TimeoutError):
                pass
        if not since_ms and status.get("since"):
            try:
                since = datetime.fromisoformat(str(status["since"]).replace("Z", "+00:00"))
                since_ms = int(since.timestamp() * 1000)
            except ValueError:
                pass
        return {
            "action": action,
            "since_ms": since_ms,
            "by": spec.get("requestedBy", ""),
            "reason": spec.get("reason", ""),
        }

    async def _write_emergency_cr(self, action: str, actor: str, reason: str) -> None:
        spec = {"action": action, "reason": reason, "requestedBy": actor}
        what = "emergency 'default'"
        try:
            await self._patch(EMERGENCIES, EMERGENCY_NAME, {"spec": spec}, what)
        except NotFoundError:
            await self._create(
                EMERGENCIES,
                {
                    "apiVersion": API_VERSION,
                    "kind": "Emergency",
                    "metadata": {"name": EMERGENCY_NAME, "namespace": self.namespace},
                    "spec": spec,
                },
                what,
            )

    async def _mirror(self, action: str, actor: str, reason: str) -> dict[str, Any] | None:
        """The action written to Redis for runners, within ``REDIS_WAIT_S``; None
        when Redis is absent, down or did not answer in time."""
        if self._redis is None:
            return None
        try:
            async with asyncio.timeout(REDIS_WAIT_S):
                return await write_emergency(
                    self._redis, self._keys, action, actor, reason, self._clock
                )
        except (RedisError, TimeoutError) as exc:
            log.error("emergency %s could not be mirrored to Redis: %s", action,
                      type(exc).__name__)
            return None

    async def set_emergency(self, action: str, actor: str, reason: str) -> dict[str, Any]:
        if action not in EMERGENCY_ACTIONS:
            raise DesiredStateError(
                f"Emergency.spec.action: must be one of {', '.join(EMERGENCY_ACTIONS)}, "
                f"got {action!r}"
            )
        reason = reason[:1024]
        if action == "none":
            await self._write_emergency_cr(action, actor, reason)
            state = await self._mirror(action, actor, reason)
        else:
            # both at once: the resource write does not wait on a Redis that hangs
            mirror = asyncio.create_task(self._mirror(action, actor, reason))
            try:
                await self._write_emergency_cr(action, actor, reason)
            except DesiredStateUnavailable as exc:
                if await mirror is None:
                    raise
                raise DesiredStateUnavailable(
                    f"{exc}; the {action} was delivered to runners through Redis only, "
                    "retry to record it on the Emergency resource"
                ) from None
            state = await mirror
            if state is None:
                log.warning("emergency %s written to the Emergency resource only", action)
        if state is None:
            state = EmergencyState(action, self._clock.now_ms(), actor, reason).as_dict()
        return state
