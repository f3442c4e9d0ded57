"""ValidationRun handlers: one Job per run; its state and the run's decision in status.

The Job (``kubetrade validate`` in a pod) writes ``status.decision`` itself; the
operator creates the Job, follows it through ``job_idx`` and exports the decision as
the ``kubetrade_validation_go`` metric. A sweep's Job is an Indexed Job whose pods
each report a slice; the operator gathers them into ``status.sweep``, the progress,
the report ConfigMap and the decision (:mod:`kubetrade.operator.sweep_gather`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from kubetrade.operator import metrics, render_validation
from kubetrade.operator.clients import Clients, clients_of
from kubetrade.operator.handlers.indexes import JobIndex, StrategyIndex, first, strategies_in
from kubetrade.operator.handlers.support import (
    guarded,
    normal_event,
    on_changes,
    on_timer,
    write_status,
)
from kubetrade.operator.plan import JobObserved
from kubetrade.operator.render import label_value
from kubetrade.operator.status import Conditions
from kubetrade.operator.sweep_gather import follow_sweep
from kubetrade.resources import API_VERSION, ValidationRun
from kubetrade.state.client import RedisError
from kubetrade.state.validation_results import publish_report

log = logging.getLogger("kubetrade.operator")

PLURAL = "validationruns"

Indexes = tuple[JobIndex | None, StrategyIndex | None]


def job_status(job: JobObserved) -> dict[str, Any]:
    """The run's status fields that come from its Job."""
    new: dict[str, Any] = {"job": job.name}
    if job.start_time:
        new["startTime"] = job.start_time
    if job.completion_time:
        new["completionTime"] = job.completion_time
    return new


def complete(conds: Conditions, state: str, job: str, decision: str | None, now: int) -> None:
    """The ``Complete`` condition from the Job's state."""
    if state in ("Succeeded", "Failed"):
        conds.set(
            "Complete",
            True,
            "JobSucceeded" if state == "Succeeded" else "JobFailed",
            f"decision {decision or 'none written'}",
            now,
        )
    else:
        conds.set("Complete", False, f"Job{state}", f"Job {job} {state.lower()}", now)


def strategy_missing(conds: Conditions, ref: str, exists: bool, has_job: bool, now: int) -> bool:
    """The ``StrategyFound`` condition; True when the run must wait (no Job yet and its
    Strategy does not exist: a Job would fail on it)."""
    if exists:
        conds.set("StrategyFound", True, "StrategyFound", f"Strategy {ref!r}", now)
        return False
    conds.set(
        "StrategyFound",
        False,
        "StrategyNotFound",
        f"spec.strategyRef: Strategy {ref!r} does not exist in this namespace"
        + ("" if has_job else "; the run waits for it (no Job is created)"),
        now,
    )
    return not has_job


async def reconcile(
    c: Clients, body: kopf.Body, patch: kopf.Patch, indexes: Indexes, trigger: str
) -> None:
    """Create the run's Job unless it exists (and once its Strategy exists); report its
    state and the decision."""
    job_idx, strategy_idx = indexes
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    status: Mapping[str, Any] = dict(body.get("status") or {})
    conds = Conditions(status.get("conditions"), meta.get("generation"))
    now = c.clock.now_ms()
    run = ValidationRun.model_validate(
        {"metadata": {"name": name, "namespace": namespace}, "spec": dict(body["spec"])}
    )
    job = first(job_idx, (namespace, "validation", label_value(name)))
    new: dict[str, Any] = {"observedGeneration": meta.get("generation")}
    ref = run.spec.strategy_ref
    exists = any(s.name == ref for s in strategies_in(strategy_idx, namespace))
    if strategy_missing(conds, ref, exists, job is not None, now):
        for flipped in conds.flipped:
            if flipped["type"] == "StrategyFound":
                kopf.warn(body, reason=flipped["reason"], message=flipped["message"])
        new.update({"phase": "Pending", "conditions": conds.items})
        write_status(patch, status, new)
        return
    if job is None:
        new["job"] = await create_job(c, body, run, status, trigger)
        state = "Pending"
    else:
        new.update(job_status(job))
        state = job.state
    if job is not None and run.spec.sweep is not None:
        state = await sweep_state(c, run, meta, status, new, state)
    new["phase"] = state
    decision = new.get("decision") or status.get("decision")
    if decision in ("GO", "NO-GO"):
        metrics.VALIDATION_GO.labels(run.spec.strategy_ref, name).set(1 if decision == "GO" else 0)
    complete(conds, state, new["job"], decision, now)
    new["conditions"] = conds.items
    write_status(patch, status, new)


async def sweep_state(
    c: Clients, run: ValidationRun, meta: Mapping[str, Any], status: Mapping[str, Any],
    new: dict[str, Any], state: str,
) -> str:
    """Gather a sweep's slices into ``new`` (status fields) and say its phase: Succeeded
    once the reports decided (even before the Job's last pod is reaped), Running while
    pods have exited but a report is missing, Failed when the Job failed or no
    combination could run. A decided sweep is not gathered again."""
    sweep = run.spec.sweep
    if sweep is None:
        return state
    if status.get("decision") in ("GO", "NO-GO"):
        return "Failed" if state == "Failed" else "Succeeded"
    followed = await follow_sweep(c.kube, run.name, meta["namespace"], meta["uid"], sweep,
                                  status)
    new.update(followed.status)
    if followed.report is not None:
        await publish_decision(c, followed.report, followed.location, followed.summary)
    if str(status.get("progress", "")).startswith("failed"):
        new.pop("progress")  # a slice's reason for failing stays readable
    g = followed.gathered
    if g.winner is not None:
        return "Failed" if state == "Failed" else "Succeeded"
    if state == "Succeeded":
        return "Failed" if g.complete else "Running"
    return state


async def publish_decision(
    c: Clients, report: Mapping[str, Any], location: str, summary: str
) -> None:
    """A gathered sweep's verdict in Redis, as a ``kubetrade validate`` pod publishes its
    own: the latest result, the notifier's alert, audit. Best effort: the decision in the
    status and the report ConfigMap stand without it."""
    if c.redis is None:
        return
    try:
        await publish_report(c.redis, c.keys, report, location, summary)
    except RedisError as exc:
        log.warning("could not publish the sweep's decision to Redis: %s", exc)


async def create_job(
    c: Clients, body: kopf.Body, run: ValidationRun, status: Mapping[str, Any], trigger: str
) -> str:
    """Create the run's Job (once: a timer does not recreate a Job that ran and was
    deleted); its name. A download step needs the Strategy's symbol and timeframe."""
    market = None
    store = run.spec.store_range
    if store is not None and store.download:
        strategy = await c.kube.get(API_VERSION, "strategies", body["metadata"]["namespace"],
                                    run.spec.strategy_ref)
        spec = (strategy or {}).get("spec") or {}
        market = (str(spec["symbols"][0]), str(spec.get("timeframe", "1m")))
    manifest = render_validation.validation_job(run, body["metadata"]["uid"], c.settings,
                                                market)
    if trigger != "timer" or not status.get("job"):
        if await c.kube.create(manifest):
            normal_event(body, "JobCreated", f"Job {manifest['metadata']['name']}")
    return str(manifest["metadata"]["name"])


async def validation_created(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    reason: str,
    job_idx: JobIndex | None = None,
    strategy_idx: StrategyIndex | None = None,
    **_: Any,
) -> None:
    """Created, or seen again at operator start: reconcile."""
    c = clients_of(memo)
    work = reconcile(c, body, patch, (job_idx, strategy_idx), str(reason))
    await guarded(c, body, patch, "ValidationRun", str(reason), work)


async def validation_tick(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    job_idx: JobIndex | None = None,
    strategy_idx: StrategyIndex | None = None,
    **_: Any,
) -> None:
    """Every interval: follow the Job (or wait for the Strategy)."""
    c = clients_of(memo)
    work = reconcile(c, body, patch, (job_idx, strategy_idx), "timer")
    await guarded(c, body, patch, "ValidationRun", "timer", work)


def register(registry: kopf.OperatorRegistry, interval: float) -> None:
    """Register the ValidationRun handlers; the timer ticks every ``interval`` seconds."""
    on_changes(
        registry, PLURAL, validation_created, id="validation_created", backoff=5, update=False
    )
    on_timer(
        registry, PLURAL, validation_tick, id="validation_tick", interval=interval,
        initial_delay=interval,
    )
