"""Strategy handlers: reconcile (create/update/resume and the timer) and delete.

The reconcile gathers what is observed (Kopf's indexes, the runner's Redis state),
asks :func:`kubetrade.operator.plan.plan_strategy` what to do, and does it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from typing import Any

import kopf
from pydantic import ValidationError

from kubetrade.operator import metrics, render
from kubetrade.operator.clients import Clients, clients_of, or_default
from kubetrade.operator.deletion import (
    ABANDON_ANNOTATION,
    DeleteObserved,
    DeleteStep,
    delete_step,
)
from kubetrade.operator.handlers.indexes import (
    DeploymentIndex,
    JobIndex,
    RiskPolicyIndex,
    first,
)
from kubetrade.operator.handlers.support import (
    guarded,
    normal_event,
    on_changes,
    on_timer,
    readable,
    timed,
    write_status,
)
from kubetrade.operator.plan import (
    StrategyObserved,
    StrategyPlan,
    invalid_spec_status,
    needs_open_orders,
    plan_strategy,
)
from kubetrade.operator.status import Conditions
from kubetrade.resources import GROUP, VERSION, Strategy

log = logging.getLogger("kubetrade.operator")

PLURAL = "strategies"
BLOCKING_RULES = ("RiskPolicy", "PreflightFailed")


def parse(body: kopf.Body) -> Strategy:
    """The Strategy model of ``body``; raises pydantic's ValidationError."""
    meta = body["metadata"]
    return Strategy.model_validate(
        {
            "metadata": {"name": meta["name"], "namespace": meta.get("namespace")},
            "spec": dict(body.get("spec") or {}),
        }
    )


async def observe(
    c: Clients,
    body: kopf.Body,
    strategy: Strategy,
    trigger: str,
    riskpolicy_idx: RiskPolicyIndex | None,
    deployment_idx: DeploymentIndex | None,
    job_idx: JobIndex | None,
) -> StrategyObserved:
    """What :func:`plan_strategy` needs, from the indexes and Redis."""
    meta = body["metadata"]
    name, namespace = strategy.name, meta["namespace"]
    deployment = first(deployment_idx, (namespace, name))
    open_orders: tuple[str, ...] | None = ()
    if needs_open_orders(strategy, deployment):
        ids = await or_default(c.open_orders(name), None)  # None: Redis unreachable
        open_orders = None if ids is None else tuple(ids)
    jobs_key = (namespace, "preflight", name)
    return StrategyObserved(
        uid=meta["uid"],
        generation=meta.get("generation"),
        deleting=bool(meta.get("deletionTimestamp")),
        status=dict(body.get("status") or {}),
        policy=first(riskpolicy_idx, (namespace, strategy.spec.risk_policy_ref)),
        deployment=deployment,
        preflight_jobs=tuple(job_idx[jobs_key]) if job_idx and jobs_key in job_idx else (),
        open_orders=open_orders,
        summary=await c.summary(name),
        now_ms=c.clock.now_ms(),
        trigger=trigger,
        created_ms=created_ms(meta.get("creationTimestamp")),
        preflight_report=(await c.preflight_report(name)
                          if strategy.spec.mode == "live" else None),
    )


def created_ms(stamp: str | None) -> int | None:
    """An RFC 3339 timestamp (metadata.creationTimestamp) as epoch ms; None if absent."""
    if not stamp:
        return None
    when = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return int(when.timestamp() * 1000)


async def execute(c: Clients, body: kopf.Body, patch: kopf.Patch, plan: StrategyPlan) -> None:
    """Carry out ``plan``: the pre-flight Job, the runner's identity and Deployment, the
    status, metrics, events and audit entries, in that order."""
    name = body["metadata"]["name"]
    if plan.preflight_job is not None and await c.kube.create(plan.preflight_job):
        job = plan.preflight_job["metadata"]["name"]
        normal_event(body, "PreflightStarted", f"pre-flight Job {job} created")
    if plan.deployment is not None:
        # the runner's identity first, so its pod never starts without it; the binding
        # after its Role (the API server checks the grant against the Role's rules)
        if plan.identity:
            account, role, binding = plan.identity
            await asyncio.gather(c.kube.apply(account), c.kube.apply(role))
            await c.kube.apply(binding)
        await c.kube.apply(plan.deployment)
        metrics.WRITES.labels("Deployment").inc()
        if plan.rolled:
            normal_event(body, "RunnerRolled", f"config changed ({plan.config_hash})")
    write_status(patch, body.get("status") or {}, plan.status)
    for rule, blocked in plan.blocked.items():
        metrics.BLOCKED.labels(name, rule).set(1 if blocked else 0)
    for flipped in plan.warnings:
        kopf.warn(body, reason=flipped["reason"], message=flipped["message"])
        await c.audit(f"strategy.{flipped['reason']}", name, message=flipped["message"])


async def reconcile(
    c: Clients,
    body: kopf.Body,
    patch: kopf.Patch,
    trigger: str,
    riskpolicy_idx: RiskPolicyIndex | None,
    deployment_idx: DeploymentIndex | None,
    job_idx: JobIndex | None,
) -> None:
    """Observe, plan, execute; an invalid spec fails permanently (until it changes)."""
    try:
        strategy = parse(body)
    except ValidationError as exc:
        meta = body["metadata"]
        status = dict(body.get("status") or {})
        message = readable(exc)
        new = invalid_spec_status(message, status, meta.get("generation"), c.clock.now_ms())
        write_status(patch, status, new)
        raise kopf.PermanentError(f"invalid Strategy spec: {message}") from exc
    observed = await observe(c, body, strategy, trigger, riskpolicy_idx, deployment_idx, job_idx)
    await execute(c, body, patch, plan_strategy(strategy, observed, c.settings))


async def strategy_changed(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    reason: str,
    riskpolicy_idx: RiskPolicyIndex | None = None,
    deployment_idx: DeploymentIndex | None = None,
    job_idx: JobIndex | None = None,
    **_: Any,
) -> None:
    """Created, changed, or seen again at operator start: reconcile."""
    c = clients_of(memo)
    work = reconcile(c, body, patch, str(reason), riskpolicy_idx, deployment_idx, job_idx)
    await timed("Strategy", str(reason), guarded(c, body, patch, "Strategy", str(reason), work))


async def strategy_tick(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    riskpolicy_idx: RiskPolicyIndex | None = None,
    deployment_idx: DeploymentIndex | None = None,
    job_idx: JobIndex | None = None,
    **_: Any,
) -> None:
    """Every interval: reconcile again (a changed RiskPolicy, Job or summary)."""
    if body["metadata"].get("deletionTimestamp"):
        return
    c = clients_of(memo)
    work = reconcile(c, body, patch, "timer", riskpolicy_idx, deployment_idx, job_idx)
    await timed("Strategy", "timer", guarded(c, body, patch, "Strategy", "timer", work))


async def _remove_runner(c: Clients, namespace: str, name: str) -> None:
    for rule in BLOCKING_RULES:
        with contextlib.suppress(KeyError):
            metrics.BLOCKED.remove(name, rule)
    runner = render.runner_name(name)
    await c.kube.delete("apps/v1", "deployments", namespace, runner)
    await or_default(c.forget_acks(name), None)
    if c.settings.runner_rbac == "per-strategy":
        # owner references would do this with a garbage collector; do not rely on one
        await c.kube.delete("rbac.authorization.k8s.io/v1", "rolebindings", namespace, runner)
        await c.kube.delete("rbac.authorization.k8s.io/v1", "roles", namespace, runner)
        await c.kube.delete("v1", "serviceaccounts", namespace, runner)


async def _report_delete(c: Clients, body: kopf.Body, step: DeleteStep) -> None:
    """Phase ``Terminating`` and the ``Ready`` condition on the Strategy's status (written
    now, not when the handler ends), and an Event."""
    meta = body["metadata"]
    status = dict(body.get("status") or {})
    conds = Conditions(status.get("conditions"), meta.get("generation"))
    conds.set("Ready", False, step.reason, step.message, c.clock.now_ms())
    patch = {"status": {"phase": "Terminating", "conditions": conds.items}}
    await c.kube.merge_patch(
        f"{GROUP}/{VERSION}", PLURAL, meta["namespace"], meta["name"], patch, "status"
    )
    if step.reason == "RunnerStopped":
        normal_event(body, step.reason, step.message)
    else:
        kopf.warn(body, reason=step.reason, message=step.message)
    log.info("Strategy %s/%s: %s", meta["namespace"], meta["name"], step.message)


async def _wait_for_runner(c: Clients, body: kopf.Body, close: bool) -> tuple[DeleteStep, Any]:
    """Poll (every second, bounded by ``settings.delete_timeout``) until the runner has
    cancelled its orders (closed its positions), or the abandon annotation is set.
    Returns the last step and the open order ids seen (None: unknown)."""
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    started, first = time.monotonic(), True
    while True:
        current = await c.kube.get(f"{GROUP}/{VERSION}", PLURAL, namespace, name) or {}
        annotations = (current.get("metadata") or {}).get("annotations") or {}
        open_ids = await or_default(c.open_orders(name), None)
        positions = await or_default(c.positions(name), None) if close else []
        step = delete_step(
            DeleteObserved(
                name=name,
                open_orders=None if open_ids is None else tuple(open_ids),
                positions=None if positions is None else tuple(positions),
                waited_s=time.monotonic() - started,
                timeout_s=c.settings.delete_timeout,
                abandon=annotations.get(ABANDON_ANNOTATION) == "true",
            )
        )
        if first or step.done:
            await _report_delete(c, body, step)
        if step.done:
            return step, open_ids
        first = False
        await asyncio.sleep(1)


async def strategy_deleted(
    body: kopf.Body,
    meta: kopf.Meta,
    spec: kopf.Spec,
    memo: kopf.Memo,
    retry: int,
    **_: Any,
) -> None:
    """Cancel open orders first (through the runner), keep positions unless asked
    to close them, remove the runner, and record what happened. The wait is bounded
    and shown from its first second (see ``operator/deletion.py``)."""
    c = clients_of(memo)
    name, namespace = meta["name"], meta["namespace"]
    close = bool(spec.get("closePositionsOnDelete", False))
    if retry == 0:
        await c.audit("strategy.delete.requested", name, closePositions=close)
    if spec.get("enabled", True):
        # The runner watches its Strategy: disabled means halt and cancel open
        # orders, which it does with the exchange keys the operator never holds.
        await c.kube.merge_patch(
            f"{GROUP}/{VERSION}", PLURAL, namespace, name, {"spec": {"enabled": False}}
        )
    step, open_ids = await _wait_for_runner(c, body, close)
    await _remove_runner(c, namespace, name)
    kept = await or_default(c.positions(name), None)
    await c.audit(
        "strategy.deleted",
        name,
        ordersLeftOpen=open_ids if step.pending else [],
        positionsKept=[] if close else kept,
        positionsNotClosed=kept if close and step.pending else [],
        outcome=step.reason,
    )


def register(registry: kopf.OperatorRegistry, interval: float) -> None:
    """Register the Strategy handlers; the timer ticks every ``interval`` seconds."""
    on_changes(registry, PLURAL, strategy_changed, id="strategy_changed", backoff=5)
    on_timer(
        registry, PLURAL, strategy_tick, id="strategy_tick", interval=interval,
        initial_delay=interval,
    )
    kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry, id="strategy_deleted", backoff=2)(
        strategy_deleted
    )
