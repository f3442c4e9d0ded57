"""Kopf handlers: Strategy -> runner Deployment (+ live pre-flight Job), Emergency ->
Redis, ValidationRun -> Job, runner summaries -> Strategy status.

Every handler is level-triggered and idempotent: it computes the whole desired state
from the object and Kopf's in-memory indexes (RiskPolicies, Deployments, Jobs), writes
only what differs, by name, with server-side apply. The create/update/resume handlers
and the per-object timer run the same reconcile, so a missed event, an operator
restart or a changed RiskPolicy converge within one timer interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from kubetrade.domain.clock import Clock, SystemClock
from kubetrade.domain.models import OrderStatus
from kubetrade.operator import metrics, render
from kubetrade.operator.kube import Kube
from kubetrade.operator.settings import OperatorSettings
from kubetrade.operator.status import Conditions, fold_summary, iso
from kubetrade.resources import (
    EMERGENCY_NAME,
    GROUP,
    VERSION,
    RiskPolicySpec,
    Strategy,
    ValidationRun,
)
from kubetrade.state.audit import AuditEntry, write_audit
from kubetrade.state.keys import Keys

log = logging.getLogger("kubetrade.operator")

ACTOR = "operator"
FINALIZER = "kubetrade.io/finalizer"
_TERMINAL = {s.value for s in OrderStatus if s.is_terminal}
_SEVERITY = {"none": 0, "stop": 1, "close-all": 2}


@dataclass
class Context:
    """What handlers share; built at operator start-up (clients need the event loop)."""

    settings: OperatorSettings
    kube: Kube
    redis: Redis | None
    keys: Keys
    clock: Clock = field(default_factory=SystemClock)

    async def audit(self, action: str, strategy: str = "", **detail: Any) -> None:
        if self.redis is None:
            return
        try:
            await write_audit(
                self.redis,
                self.keys,
                AuditEntry(self.clock.now_ms(), ACTOR, action, strategy, detail),
            )
        except RedisError as exc:
            log.warning("audit not written (%s): %s %s", exc, action, strategy)

    async def open_orders(self, strategy: str) -> list[str]:
        """Client ids of the runner's orders that are not terminal (from its Redis state)."""
        if self.redis is None:
            return []
        raw: Any = await self.redis.hgetall(self.keys.orders(strategy))  # type: ignore[misc]
        open_ids = []
        for cid, text in raw.items():
            try:
                status = json.loads(text).get("status")
            except (TypeError, ValueError):
                continue
            if status not in _TERMINAL:
                open_ids.append(cid)
        return sorted(open_ids)

    async def positions(self, strategy: str) -> list[str]:
        if self.redis is None:
            return []
        raw: Any = await self.redis.hgetall(self.keys.positions(strategy))  # type: ignore[misc]
        return sorted(raw)

    async def summary(self, strategy: str) -> dict[str, str]:
        if self.redis is None:
            return {}
        try:
            data: Any = await self.redis.hgetall(self.keys.summary(strategy))  # type: ignore[misc]
        except RedisError:
            return {}
        return dict(data)


def _strategy(body: Mapping[str, Any]) -> Strategy:
    meta = body["metadata"]
    return Strategy.model_validate(
        {
            "metadata": {"name": meta["name"], "namespace": meta.get("namespace")},
            "spec": dict(body.get("spec") or {}),
        }
    )


def _job_state(status: Mapping[str, Any]) -> str:
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "Succeeded"
        if cond.get("type") in ("Failed", "FailureTarget"):
            return "Failed"
    if status.get("succeeded"):
        return "Succeeded"
    if status.get("failed"):
        return "Failed"
    if status.get("active"):
        return "Running"
    return "Pending"


def _pick(index: Any, key: Any, chash: str) -> Any:
    """The indexed Job of this configuration (older configurations may have Jobs too)."""
    if index is None or key not in index:
        return None
    return next((v for v in index[key] if v.get("hash") == chash), None)


def _first(index: Any, key: Any) -> Any:
    """The single value an index holds for ``key`` (or None)."""
    if index is None or key not in index:
        return None
    for value in index[key]:
        return value
    return None


def build_registry(context: Context) -> kopf.OperatorRegistry:
    """A registry with every handler bound to ``context`` (so tests and the CLI can
    run operators with their own configuration, not module globals)."""
    registry = kopf.OperatorRegistry()
    interval = context.settings.status_interval

    def ctx() -> Context:
        return context

    @kopf.on.startup(registry=registry, id="startup")  # type: ignore[arg-type]
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix="kubetrade.io"
        )
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="kubetrade.io", key="last-handled-configuration"
        )
        settings.posting.level = logging.WARNING
        # One namespace, named: no cluster-wide namespace/CRD scanning (and no RBAC for it).
        settings.scanning.disabled = True
        settings.watching.server_timeout = 120
        settings.watching.client_timeout = 150
        settings.networking.request_timeout = 30

    # -- indexes ------------------------------------------------------------------------

    @kopf.index(GROUP, VERSION, "riskpolicies", registry=registry, id="riskpolicy_idx")  # type: ignore[arg-type]
    def riskpolicy_idx(namespace: str, name: str, spec: Mapping[str, Any], **_: Any) -> Any:
        return {(namespace, name): dict(spec)}

    @kopf.index(GROUP, VERSION, "strategies", registry=registry, id="strategy_idx")  # type: ignore[arg-type]
    def strategy_idx(namespace: str, name: str, spec: Mapping[str, Any], **_: Any) -> Any:
        return {
            namespace: {
                "name": name,
                "enabled": spec.get("enabled", True),
                "riskPolicyRef": spec.get("riskPolicyRef", "default"),
            }
        }

    @kopf.index(  # type: ignore[arg-type]
        "apps",
        "v1",
        "deployments",
        labels={"app.kubernetes.io/managed-by": render.MANAGED_BY},
        registry=registry,
        id="deployment_idx",
    )
    def deployment_idx(
        namespace: str,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        spec: Mapping[str, Any],
        status: Mapping[str, Any],
        **_: Any,
    ) -> Any:
        strategy = labels.get(render.STRATEGY_LABEL)
        if not strategy:
            return None
        return {
            (namespace, strategy): {
                "replicas": spec.get("replicas"),
                "hash": annotations.get(render.CONFIG_HASH),
                "ready": status.get("readyReplicas") or 0,
            }
        }

    @kopf.index(  # type: ignore[arg-type]
        "batch",
        "v1",
        "jobs",
        labels={"app.kubernetes.io/managed-by": render.MANAGED_BY},
        registry=registry,
        id="job_idx",
    )
    def job_idx(
        namespace: str,
        name: str,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        status: Mapping[str, Any],
        **_: Any,
    ) -> Any:
        kind = labels.get(render.JOB_LABEL)
        owner = (
            labels.get(render.VALIDATION_LABEL)
            if kind == "validation"
            else labels.get(render.STRATEGY_LABEL)
        )
        if not kind or not owner:
            return None
        return {
            (namespace, kind, owner): {
                "name": name,
                "hash": annotations.get(render.CONFIG_HASH),
                "state": _job_state(status),
                "startTime": status.get("startTime"),
                "completionTime": status.get("completionTime"),
            }
        }

    # -- Strategy -----------------------------------------------------------------------

    async def reconcile_strategy(
        body: kopf.Body,
        patch: kopf.Patch,
        riskpolicy_idx: kopf.Index[Any, Any],
        deployment_idx: kopf.Index[Any, Any],
        job_idx: kopf.Index[Any, Any],
        trigger: str,
    ) -> None:
        c = ctx()
        meta = body["metadata"]
        name, namespace, uid = meta["name"], meta["namespace"], meta["uid"]
        generation = meta.get("generation")
        status = dict(body.get("status") or {})
        conds = Conditions(status.get("conditions"), generation)
        now = c.clock.now_ms()
        new: dict[str, Any] = {}
        try:
            strategy = _strategy(body)
        except ValidationError as exc:
            conds.set("Ready", False, "InvalidSpec", str(exc).replace("\n", " "), now)
            _write_status(patch, status, {"phase": "Failed", "conditions": conds.items})
            raise kopf.PermanentError(f"invalid Strategy spec: {exc}") from exc
        spec = strategy.spec
        live = spec.mode == "live"
        chash = render.config_hash(strategy, c.settings)

        # Rules across objects: the referenced RiskPolicy must exist; live needs its
        # stop-loss and daily loss limit.
        policy = _first(riskpolicy_idx, (namespace, spec.risk_policy_ref))
        risk_ok = True
        if policy is None:
            risk_ok = False
            conds.set(
                "RiskPolicyValid",
                False,
                "RiskPolicyNotFound",
                f"spec.riskPolicyRef: RiskPolicy {spec.risk_policy_ref!r} does not exist in "
                f"namespace {namespace}"
                + (
                    "; a live runner will not start without it"
                    if live
                    else "; the runner uses the default limits"
                ),
                now,
            )
        else:
            try:
                problems = RiskPolicySpec.model_validate(policy).live_ready if live else []
            except ValidationError as exc:
                problems = [f"RiskPolicy {spec.risk_policy_ref!r} is invalid: {exc}"]
            if problems:
                risk_ok = False
                conds.set(
                    "RiskPolicyValid",
                    False,
                    "LiveRiskPolicyIncomplete",
                    f"spec.riskPolicyRef: RiskPolicy {spec.risk_policy_ref!r} is not fit for "
                    f"live trading: {'; '.join(problems)}",
                    now,
                )
            else:
                conds.set(
                    "RiskPolicyValid",
                    True,
                    "RiskPolicyFound",
                    f"RiskPolicy {spec.risk_policy_ref!r} applies",
                    now,
                )
        blocked = live and not risk_ok

        # Live pre-flight: a Job per configuration; the runner waits for its PASS.
        preflight: str | None = None
        if not live:
            conds.set("PreflightPassed", True, "NotRequired", "paper mode needs no pre-flight", now)
        elif blocked:
            conds.set(
                "PreflightPassed", None, "Blocked", "waiting for a RiskPolicy fit for live", now
            )
        elif not spec.enabled:
            conds.set("PreflightPassed", None, "Disabled", "runs when the Strategy is enabled", now)
        else:
            job = _pick(job_idx, (namespace, "preflight", name), chash)
            if job is None:
                manifest = render.preflight_job(strategy, uid, chash, c.settings)
                if await c.kube.create(manifest):
                    kopf.info(
                        body,
                        reason="PreflightStarted",
                        message=f"Job {manifest['metadata']['name']}",
                    )
                preflight = "Running"
            else:
                preflight = job["state"]
            if preflight == "Succeeded":
                new["preflight"] = "PASS"
                conds.set("PreflightPassed", True, "PreflightPassed", f"Job {job['name']}", now)
            elif preflight == "Failed":
                new["preflight"] = "FAIL"
                conds.set(
                    "PreflightPassed",
                    False,
                    "PreflightFailed",
                    f"pre-flight FAIL (Job {job['name']}): the runner stays stopped; see "
                    "`kubectl logs job/" + str(job["name"]) + "` or GET /api/preflight",
                    now,
                )
            else:
                conds.set(
                    "PreflightPassed", None, "PreflightRunning", "pre-flight Job running", now
                )

        # Replicas: 1 when enabled and allowed to trade. Disabling waits (bounded) for
        # the runner to cancel its open orders before the pod goes away.
        allowed = spec.enabled and not blocked and (not live or preflight == "Succeeded")
        current = _first(deployment_idx, (namespace, name))
        replicas = 1 if allowed else 0
        disabling = None
        if not allowed and current and (current.get("replicas") or 0) > 0 and not spec.enabled:
            open_ids = await _safe(c.open_orders(name), None)  # None: Redis unreachable
            since = int(status.get("disableRequestedMs") or now)
            if (open_ids is None or open_ids) and now - since < c.settings.disable_timeout * 1000:
                replicas = current["replicas"]
                disabling = since
                new["disableRequestedMs"] = since
        if disabling is None and status.get("disableRequestedMs") is not None:
            new["disableRequestedMs"] = None
        deployment = render.runner_deployment(strategy, uid, replicas, c.settings)
        dname = deployment["metadata"]["name"]
        if (
            current is None
            or current.get("hash") != chash
            or current.get("replicas") != replicas
            or trigger != "timer"
        ):
            # the runner's identity first, so its pod never starts without it; the binding
            # after its Role (the API server checks the grant against the Role's rules)
            identity = render.runner_rbac(strategy, uid, c.settings)
            if identity:
                account, role, binding = identity
                await asyncio.gather(c.kube.apply(account), c.kube.apply(role))
                await c.kube.apply(binding)
            await c.kube.apply(deployment)
            metrics.WRITES.labels("Deployment").inc()
            if current is not None and current.get("hash") not in (None, chash):
                kopf.info(body, reason="RunnerRolled", message=f"config changed ({chash})")
        conds.set(
            "Deployed",
            True,
            "ScaledToZero" if replicas == 0 else "DeploymentApplied",
            f"Deployment {dname} with {replicas} replica(s), config {chash}",
            now,
        )

        summary = await c.summary(name) if replicas else {}
        new.update(fold_summary(summary) if summary else {})
        ready_pods = (current or {}).get("ready") or 0
        if meta.get("deletionTimestamp"):
            phase = "Terminating"
        elif not spec.enabled:
            phase = "Stopping" if disabling else "Disabled"
        elif blocked:
            phase = "Blocked"
        elif preflight == "Failed":
            phase = "PreflightFailed"
        elif live and preflight != "Succeeded":
            phase = "PreflightRunning"
        elif summary:
            phase = summary.get("phase") or "Running"
        else:
            phase = "Starting"
        running = replicas == 1 and (bool(summary) or ready_pods > 0)
        conds.set(
            "Ready",
            running,
            {
                "Disabled": "Disabled",
                "Stopping": "Disabled",
                "Blocked": "RiskPolicyInvalid",
                "PreflightFailed": "PreflightFailed",
                "PreflightRunning": "PreflightRunning",
                "Starting": "RunnerStarting",
            }.get(phase, "RunnerReporting"),
            f"phase {phase}",
            now,
        )
        new.update(
            {
                "phase": phase,
                "deployment": dname,
                "configHash": chash,
                "observedGeneration": generation,
                "conditions": conds.items,
            }
        )
        _write_status(patch, status, new)
        metrics.BLOCKED.labels(name, "RiskPolicy").set(1 if blocked else 0)
        metrics.BLOCKED.labels(name, "PreflightFailed").set(1 if preflight == "Failed" else 0)
        for flipped in conds.flipped:
            if flipped["status"] == "False" and flipped["type"] in (
                "RiskPolicyValid",
                "PreflightPassed",
            ):
                kopf.warn(body, reason=flipped["reason"], message=flipped["message"])
                await c.audit(
                    f"strategy.{flipped['reason']}",
                    name,
                    message=flipped["message"],
                )

    @kopf.on.resume(  # type: ignore[arg-type]
        GROUP, VERSION, "strategies", registry=registry, id="strategy_changed", backoff=5
    )
    @kopf.on.create(  # type: ignore[arg-type]
        GROUP, VERSION, "strategies", registry=registry, id="strategy_changed", backoff=5
    )
    @kopf.on.update(  # type: ignore[arg-type]
        GROUP, VERSION, "strategies", registry=registry, id="strategy_changed", backoff=5
    )
    async def strategy_changed(
        body: kopf.Body,
        patch: kopf.Patch,
        riskpolicy_idx: kopf.Index[Any, Any],
        deployment_idx: kopf.Index[Any, Any],
        job_idx: kopf.Index[Any, Any],
        reason: str,
        **_: Any,
    ) -> None:
        await _timed(
            "Strategy",
            str(reason),
            reconcile_strategy(body, patch, riskpolicy_idx, deployment_idx, job_idx, str(reason)),
        )

    @kopf.timer(  # type: ignore[arg-type]
        GROUP,
        VERSION,
        "strategies",
        interval=interval,
        initial_delay=interval,
        registry=registry,
        id="strategy_tick",
        backoff=5,
    )
    async def strategy_tick(
        body: kopf.Body,
        patch: kopf.Patch,
        riskpolicy_idx: kopf.Index[Any, Any],
        deployment_idx: kopf.Index[Any, Any],
        job_idx: kopf.Index[Any, Any],
        **_: Any,
    ) -> None:
        if body["metadata"].get("deletionTimestamp"):
            return
        await _timed(
            "Strategy",
            "timer",
            reconcile_strategy(body, patch, riskpolicy_idx, deployment_idx, job_idx, "timer"),
        )

    @kopf.on.delete(  # type: ignore[arg-type]
        GROUP, VERSION, "strategies", registry=registry, id="strategy_deleted", backoff=2
    )
    async def strategy_deleted(
        body: kopf.Body,
        name: str,
        namespace: str,
        spec: Mapping[str, Any],
        retry: int,
        runtime: Any,
        **_: Any,
    ) -> None:
        """Cancel open orders first (through the runner), keep positions unless asked
        to close them, remove the runner, and record what happened."""
        c = ctx()
        close = bool(spec.get("closePositionsOnDelete", False))
        if retry == 0:
            await c.audit("strategy.delete.requested", name, closePositions=close)
        if spec.get("enabled", True):
            # The runner watches its Strategy: disabled means halt and cancel open
            # orders, which it does with the exchange keys the operator never holds.
            await c.kube.merge_patch(
                f"{GROUP}/{VERSION}", "strategies", namespace, name, {"spec": {"enabled": False}}
            )
        # None = Redis unreachable: the outcome is unknown, so wait as for open orders
        open_ids = await _safe(c.open_orders(name), None)
        positions = await _safe(c.positions(name), None) if close else []
        waited = runtime.total_seconds()
        if (open_ids or positions or open_ids is None or positions is None) and (
            waited < c.settings.delete_timeout
        ):
            raise kopf.TemporaryError(
                "waiting for the runner: "
                + ("Redis unreachable" if open_ids is None else f"{len(open_ids)} open order(s)")
                + (f", positions to close: {positions}" if close else ""),
                delay=1,
            )
        for rule in ("RiskPolicy", "PreflightFailed"):
            with contextlib.suppress(KeyError):
                metrics.BLOCKED.remove(name, rule)
        runner = render.runner_name(name)
        await c.kube.delete("apps/v1", "deployments", namespace, runner)
        if c.settings.runner_rbac == "per-strategy":
            # owner references would do this with a garbage collector; do not rely on one
            await c.kube.delete("rbac.authorization.k8s.io/v1", "rolebindings", namespace, runner)
            await c.kube.delete("rbac.authorization.k8s.io/v1", "roles", namespace, runner)
            await c.kube.delete("v1", "serviceaccounts", namespace, runner)
        kept = await _safe(c.positions(name), None)
        if open_ids or positions or open_ids is None or positions is None:
            kopf.warn(
                body,
                reason="DeleteIncomplete",
                message=f"after {waited:.0f}s: open orders {open_ids}, positions {positions}",
            )
        await c.audit(
            "strategy.deleted",
            name,
            ordersLeftOpen=open_ids,
            positionsKept=[] if close else kept,
            positionsNotClosed=positions,
        )

    # -- RiskPolicy ---------------------------------------------------------------------

    @kopf.timer(  # type: ignore[arg-type]
        GROUP,
        VERSION,
        "riskpolicies",
        interval=interval,
        initial_delay=0.5,
        registry=registry,
        id="riskpolicy_tick",
        backoff=5,
    )
    async def riskpolicy_tick(
        body: kopf.Body, patch: kopf.Patch, strategy_idx: kopf.Index[Any, Any], **_: Any
    ) -> None:
        meta = body["metadata"]
        status = dict(body.get("status") or {})
        users = sorted(
            s["name"]
            for s in (strategy_idx.get(meta["namespace"], []) if strategy_idx else [])
            if s.get("riskPolicyRef") == meta["name"]
        )
        conds = Conditions(status.get("conditions"), meta.get("generation"))
        conds.set(
            "Ready", True, "Accepted", f"used by {len(users)} Strategy(ies)", ctx().clock.now_ms()
        )
        _write_status(
            patch,
            status,
            {
                "usedBy": users,
                "observedGeneration": meta.get("generation"),
                "conditions": conds.items,
            },
        )

    # -- Emergency ----------------------------------------------------------------------

    async def mirror_emergency(body: kopf.Body, patch: kopf.Patch, strategy_idx: Any) -> None:
        c = ctx()
        meta = body["metadata"]
        if meta["name"] != EMERGENCY_NAME:
            return
        spec = dict(body.get("spec") or {})
        action = spec.get("action", "none")
        by = spec.get("requestedBy") or "kubernetes"
        reason = spec.get("reason", "")
        status = dict(body.get("status") or {})
        conds = Conditions(status.get("conditions"), meta.get("generation"))
        now = c.clock.now_ms()
        if c.redis is None:
            conds.set(
                "Mirrored", False, "NoRedis", "REDIS_URL is not set; runners see the CR only", now
            )
            _write_status(patch, status, {"state": action, "conditions": conds.items})
            return
        ahead: str | None = None
        try:
            current: Any = await c.redis.hgetall(c.keys.emergency)  # type: ignore[misc]
            # The API and the Telegram bot deliver a kill switch through Redis alone when
            # the Kubernetes API is down, so Redis may hold a stop this resource never
            # saw. Unless the resource itself changed since we last mirrored it, its
            # older, milder action must not overwrite that: a resync or restart would
            # otherwise publish a stale "none" and resume every runner.
            resource_changed = meta.get("generation") != status.get("observedGeneration")
            held = current.get("action")
            if (
                not resource_changed
                and held in _SEVERITY
                and _SEVERITY[held] > _SEVERITY.get(action, 0)
            ):
                ahead, action = held, held
                by, reason = current.get("by") or by, current.get("reason") or ""
            changed = ahead is None and (
                current.get("action") != action
                or current.get("by") != by
                or current.get("reason") != reason
            )
            since = int(current.get("since_ms") or 0)
            if current.get("action") != action or not since:
                since = now
            if changed:
                message = {"action": action, "since_ms": since, "by": by, "reason": reason}
                async with c.redis.pipeline(transaction=True) as pipe:
                    pipe.hset(
                        c.keys.emergency,
                        mapping={k: str(v) for k, v in message.items()},
                    )
                    pipe.publish(c.keys.emergency_channel, json.dumps(message))
                    await pipe.execute()
                await c.audit(f"emergency.{action}.mirrored", by=by, reason=reason)
                if action != "none":
                    kopf.warn(body, reason="EmergencyAction", message=f"{action} by {by}: {reason}")
            acks: Any = await c.redis.hgetall(c.keys.emergency_acks)  # type: ignore[misc]
        except RedisError as exc:
            conds.set("Mirrored", False, "RedisUnavailable", f"Redis: {exc}", now)
            _write_status(patch, status, {"state": action, "conditions": conds.items})
            raise kopf.TemporaryError(f"Redis unavailable: {exc}", delay=2) from exc
        if ahead is not None:
            await _adopt_emergency(c, meta, ahead, by, reason)
        acked = 0
        for text in acks.values():
            try:
                ack = json.loads(text)
            except (TypeError, ValueError):
                continue
            # Only the action is compared: a replaying runner stamps acks with candle time.
            if ack.get("action") == action:
                acked += 1
        runners = sum(
            1
            for s in (strategy_idx.get(meta["namespace"], []) if strategy_idx else [])
            if s.get("enabled", True)
        )
        if ahead is not None:
            conds.set(
                "Mirrored",
                False,
                "RedisAhead",
                f"Redis holds {ahead} by {by} (delivered while this resource could not be "
                "written); it stays in force until spec.action is changed",
                now,
            )
        else:
            conds.set("Mirrored", True, "MirroredToRedis", f"action {action} published", now)
        for known in ("none", "stop", "close-all"):
            metrics.EMERGENCY_ACTION.labels(known).set(1 if known == action else 0)
        metrics.EMERGENCY_ACKS.set(acked)
        metrics.EMERGENCY_RUNNERS.set(runners)
        conds.set(
            "Acknowledged",
            acked >= runners,
            "AllRunnersAcknowledged" if acked >= runners else "WaitingForRunners",
            f"{acked} of {runners} runner(s) acknowledged {action}",
            now,
        )
        _write_status(
            patch,
            status,
            {
                "state": action,
                "since": iso(since),
                "by": by,
                "acknowledged": acked,
                "runners": runners,
                "observedGeneration": meta.get("generation"),
                "conditions": conds.items,
            },
        )

    @kopf.on.resume(  # type: ignore[arg-type]
        GROUP, VERSION, "emergencies", registry=registry, id="emergency_changed", backoff=2
    )
    @kopf.on.create(  # type: ignore[arg-type]
        GROUP, VERSION, "emergencies", registry=registry, id="emergency_changed", backoff=2
    )
    @kopf.on.update(  # type: ignore[arg-type]
        GROUP, VERSION, "emergencies", registry=registry, id="emergency_changed", backoff=2
    )
    async def emergency_changed(
        body: kopf.Body,
        patch: kopf.Patch,
        strategy_idx: kopf.Index[Any, Any],
        reason: str,
        **_: Any,
    ) -> None:
        await _timed("Emergency", str(reason), mirror_emergency(body, patch, strategy_idx))

    @kopf.timer(  # type: ignore[arg-type]
        GROUP,
        VERSION,
        "emergencies",
        interval=min(interval, 2.0),
        registry=registry,
        id="emergency_tick",
        backoff=5,
    )
    async def emergency_tick(
        body: kopf.Body, patch: kopf.Patch, strategy_idx: kopf.Index[Any, Any], **_: Any
    ) -> None:
        await mirror_emergency(body, patch, strategy_idx)

    @kopf.on.delete(  # type: ignore[arg-type]
        GROUP, VERSION, "emergencies", optional=True, registry=registry, id="emergency_deleted"
    )
    async def emergency_deleted(name: str, **_: Any) -> None:
        """No Emergency object means no emergency (runners read a deletion as none)."""
        c = ctx()
        if name != EMERGENCY_NAME or c.redis is None:
            return
        message = {
            "action": "none",
            "since_ms": c.clock.now_ms(),
            "by": "kubernetes",
            "reason": "Emergency deleted",
        }
        await c.redis.hset(c.keys.emergency, mapping={k: str(v) for k, v in message.items()})  # type: ignore[misc]
        await c.redis.publish(c.keys.emergency_channel, json.dumps(message))
        await c.audit("emergency.none.mirrored", by="kubernetes", reason="Emergency deleted")

    # -- ValidationRun ------------------------------------------------------------------

    async def reconcile_validation(
        body: kopf.Body, patch: kopf.Patch, job_idx: kopf.Index[Any, Any], trigger: str
    ) -> None:
        c = ctx()
        meta = body["metadata"]
        name, namespace = meta["name"], meta["namespace"]
        status = dict(body.get("status") or {})
        conds = Conditions(status.get("conditions"), meta.get("generation"))
        now = c.clock.now_ms()
        run = ValidationRun.model_validate(
            {"metadata": {"name": name, "namespace": namespace}, "spec": dict(body["spec"])}
        )
        job = _first(job_idx, (namespace, "validation", name))
        new: dict[str, Any] = {"observedGeneration": meta.get("generation")}
        if job is None:
            manifest = render.validation_job(run, meta["uid"], c.settings)
            if trigger != "timer" or not status.get("job"):
                if await c.kube.create(manifest):
                    kopf.info(body, reason="JobCreated", message=manifest["metadata"]["name"])
            new["job"] = manifest["metadata"]["name"]
            state = "Pending"
        else:
            new["job"] = job["name"]
            state = job["state"]
            if job.get("startTime"):
                new["startTime"] = job["startTime"]
            if job.get("completionTime"):
                new["completionTime"] = job["completionTime"]
        new["phase"] = state
        decision = status.get("decision")
        if decision in ("GO", "NO-GO"):
            metrics.VALIDATION_GO.labels(run.spec.strategy_ref, name).set(
                1 if decision == "GO" else 0
            )
        if state in ("Succeeded", "Failed"):
            conds.set(
                "Complete",
                True,
                "JobSucceeded" if state == "Succeeded" else "JobFailed",
                f"decision {decision or 'none written'}",
                now,
            )
        else:
            conds.set("Complete", False, f"Job{state}", f"Job {new['job']} {state.lower()}", now)
        new["conditions"] = conds.items
        _write_status(patch, status, new)

    @kopf.on.resume(  # type: ignore[arg-type]
        GROUP, VERSION, "validationruns", registry=registry, id="validation_created", backoff=5
    )
    @kopf.on.create(  # type: ignore[arg-type]
        GROUP, VERSION, "validationruns", registry=registry, id="validation_created", backoff=5
    )
    async def validation_created(
        body: kopf.Body, patch: kopf.Patch, job_idx: kopf.Index[Any, Any], reason: str, **_: Any
    ) -> None:
        await reconcile_validation(body, patch, job_idx, str(reason))

    @kopf.timer(  # type: ignore[arg-type]
        GROUP,
        VERSION,
        "validationruns",
        interval=interval,
        initial_delay=interval,
        registry=registry,
        id="validation_tick",
        backoff=5,
    )
    async def validation_tick(
        body: kopf.Body, patch: kopf.Patch, job_idx: kopf.Index[Any, Any], **_: Any
    ) -> None:
        await reconcile_validation(body, patch, job_idx, "timer")

    return registry


async def _timed(kind: str, trigger: str, work: Any) -> None:
    """Count and time one reconcile; errors are re-raised for Kopf to retry."""
    started = time.perf_counter()
    try:
        await work
    except Exception:
        metrics.RECONCILES.labels(kind, trigger, "error").inc()
        raise
    finally:
        metrics.RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - started)
    metrics.RECONCILES.labels(kind, trigger, "ok").inc()


async def _adopt_emergency(
    c: Context, meta: Mapping[str, Any], action: str, by: str, reason: str
) -> None:
    """Record on the Emergency resource a stop that reached Redis alone (the API server
    was unreachable for the API or the bot), so runners watching the resource and
    ``kubectl get emergency`` agree with Redis instead of reading the old action as a
    resume. Guarded by resourceVersion: a human change made meanwhile wins."""
    body = {
        "metadata": {"resourceVersion": meta.get("resourceVersion")},
        "spec": {"action": action, "requestedBy": by, "reason": reason},
    }
    try:
        await c.kube.merge_patch(
            f"{GROUP}/{VERSION}", "emergencies", meta["namespace"], meta["name"], body
        )
    except ApiException as exc:
        if exc.status != 409:  # 409: changed meanwhile; the next pass decides again
            log.warning("could not record the Redis-only %s on the Emergency: %s",
                        action, exc.status)
        return
    await c.audit(f"emergency.{action}.adopted", by=by, reason=reason)


def _write_status(patch: kopf.Patch, current: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """Only the fields that changed: status writes bump resourceVersion and wake watchers."""
    for key, value in new.items():
        if current.get(key) != value:
            patch.status[key] = value


async def _safe(coro: Any, default: Any) -> Any:
    try:
        return await coro
    except RedisError as exc:
        log.warning("redis unavailable: %s", exc)
        return default
