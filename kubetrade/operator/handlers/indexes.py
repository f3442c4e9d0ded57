"""Kopf's in-memory indexes: RiskPolicies, Strategies, and the Deployments and Jobs the
operator owns (by label), so a reconcile reads them without an API call.

A handler receives each index as the keyword argument of its name (``riskpolicy_idx``,
``strategy_idx``, ``deployment_idx``, ``job_idx``); the handlers declare them optional
only because Kopf's callback protocols do not name them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import kopf

from kubetrade.operator import render
from kubetrade.operator.plan import DeploymentObserved, JobObserved
from kubetrade.resources import GROUP, VERSION

K = TypeVar("K")
V = TypeVar("V")

OWNED = {"app.kubernetes.io/managed-by": render.MANAGED_BY}


@dataclass(frozen=True)
class StrategyRef:
    """What other kinds need to know of a Strategy."""

    name: str
    enabled: bool
    risk_policy_ref: str  #: as written in the spec ("default" when absent)


#: (namespace, name) -> the RiskPolicy's spec
RiskPolicyIndex = kopf.Index[tuple[str | None, str], dict[str, Any]]
#: namespace -> its Strategies
StrategyIndex = kopf.Index[str | None, StrategyRef]
#: (namespace, strategy) -> its runner Deployment
DeploymentIndex = kopf.Index[tuple[str | None, str], DeploymentObserved]
#: (namespace, "preflight" | "validation", owner) -> its Jobs
JobIndex = kopf.Index[tuple[str | None, str, str], JobObserved]


def first(index: kopf.Index[K, V] | None, key: K) -> V | None:
    """The single value an index holds for ``key`` (or None)."""
    if index is None or key not in index:
        return None
    for value in index[key]:
        return value
    return None


def strategies_in(index: StrategyIndex | None, namespace: str | None) -> list[StrategyRef]:
    """The Strategies of ``namespace`` (from ``strategy_idx``)."""
    if index is None or namespace not in index:
        return []
    return list(index[namespace])


def job_state(status: Mapping[str, Any]) -> str:
    """Pending, Running, Succeeded or Failed, from a Job's status.

    The Job controller's conditions decide; without one, a pod still active means
    Running (an Indexed Job with one index done, or a pod retried after a failure, is
    not finished), then the counts."""
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "Succeeded"
        if cond.get("type") in ("Failed", "FailureTarget"):
            return "Failed"
    if status.get("active"):
        return "Running"
    if status.get("succeeded"):
        return "Succeeded"
    if status.get("failed"):
        return "Failed"
    return "Pending"


def riskpolicy_idx(
    namespace: str | None, name: str, spec: kopf.Spec, **_: Any
) -> dict[tuple[str | None, str], dict[str, Any]]:
    return {(namespace, name): dict(spec)}


def strategy_idx(
    namespace: str | None, name: str, spec: kopf.Spec, **_: Any
) -> dict[str | None, StrategyRef]:
    return {
        namespace: StrategyRef(
            name=name,
            enabled=spec.get("enabled", True),
            risk_policy_ref=spec.get("riskPolicyRef", "default"),
        )
    }


def deployment_idx(
    namespace: str | None,
    labels: kopf.Labels,
    annotations: kopf.Annotations,
    spec: kopf.Spec,
    status: kopf.Status,
    **_: Any,
) -> dict[tuple[str | None, str], DeploymentObserved] | None:
    strategy = labels.get(render.STRATEGY_LABEL)
    if not strategy:
        return None
    return {
        (namespace, strategy): DeploymentObserved(
            replicas=spec.get("replicas"),
            config_hash=annotations.get(render.CONFIG_HASH),
            ready=status.get("readyReplicas") or 0,
        )
    }


def job_idx(
    namespace: str | None,
    name: str,
    labels: kopf.Labels,
    annotations: kopf.Annotations,
    status: kopf.Status,
    **_: Any,
) -> dict[tuple[str | None, str, str], JobObserved] | None:
    kind = labels.get(render.JOB_LABEL)
    owner = (
        labels.get(render.VALIDATION_LABEL)
        if kind == "validation"
        else labels.get(render.STRATEGY_LABEL)
    )
    if not kind or not owner:
        return None
    return {
        (namespace, kind, owner): JobObserved(
            name=name,
            config_hash=annotations.get(render.CONFIG_HASH),
            state=job_state(status),
            start_time=status.get("startTime"),
            completion_time=status.get("completionTime"),
        )
    }


def register(registry: kopf.OperatorRegistry) -> None:
    """Register the four indexes (their ids are the handlers' keyword names)."""
    kopf.index(GROUP, VERSION, "riskpolicies", registry=registry, id="riskpolicy_idx")(
        riskpolicy_idx
    )
    kopf.index(GROUP, VERSION, "strategies", registry=registry, id="strategy_idx")(strategy_idx)
    kopf.index("apps", "v1", "deployments", labels=OWNED, registry=registry, id="deployment_idx")(
        deployment_idx
    )
    kopf.index("batch", "v1", "jobs", labels=OWNED, registry=registry, id="job_idx")(job_idx)
