"""The Strategy reconcile decision, as a pure function: what the cluster should hold and
what the Strategy's status should say, from the spec and what was observed.

``plan_strategy(strategy, observed, settings) -> StrategyPlan`` does no I/O and reads no
clock: the handler (``operator/handlers/strategy.py``) gathers a :class:`StrategyObserved`
from Kopf's indexes and Redis, and executes the plan (create the pre-flight Job, apply
the runner's identity and Deployment, patch the status, set metrics, post events).

The rules, in order:

1. **RiskPolicy**: the referenced policy must exist; a live Strategy also needs it fit
   for live (``RiskPolicySpec.live_ready``). A live Strategy without one is *blocked*;
   a paper one runs with the default limits.
2. **Pre-flight** (live only): one Job per configuration hash; the runner waits for its
   PASS. Not required for paper; not started while blocked or disabled. A PASS is kept
   as long as the configuration it checked (``status.preflightPassedHash``), so an
   expired Job never re-runs it; while the pre-flight of a *new* configuration runs or
   fails, a runner started under the passed one keeps trading, untouched (hand-over).
3. **Replicas**: 1 when enabled and allowed to trade, else 0 -- except that disabling a
   running runner keeps its replica (bounded by ``settings.disable_timeout``) until its
   open orders are cancelled, or while Redis cannot tell.
4. **Deployment**: applied (identity first) when missing, when its configuration or
   replicas differ, or on any trigger other than the timer.
5. **Phase** and the ``Ready`` condition, from the above and the runner's Redis summary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from kubetrade.operator import render
from kubetrade.operator.capital import capital_check, set_capital_condition
from kubetrade.operator.checks import symbols_not_allowed
from kubetrade.operator.settings import OperatorSettings
from kubetrade.operator.status import Conditions, fold_summary
from kubetrade.resources import RiskPolicySpec, Strategy
from kubetrade.state.liveness import heard_ms

Manifest = dict[str, Any]

#: The conditions whose flip to False is posted as a warning event and audited.
WARNED_CONDITIONS = ("RiskPolicyValid", "PreflightPassed", "CapitalAllocated")

#: Phase -> reason of the ``Ready`` condition (any other phase: the runner reports).
_READY_REASON = {
    "Disabled": "Disabled",
    "Stopping": "Disabled",
    "Blocked": "RiskPolicyInvalid",
    "PreflightFailed": "PreflightFailed",
    "PreflightRunning": "PreflightRunning",
    "Starting": "RunnerStarting",
}


@dataclass(frozen=True)
class DeploymentObserved:
    """The runner Deployment as Kopf's index holds it."""

    replicas: int | None  #: spec.replicas (None when unset)
    config_hash: str | None  #: the ``kubetrade.io/config-hash`` annotation
    ready: int  #: status.readyReplicas (0 when unset)


@dataclass(frozen=True)
class JobObserved:
    """A pre-flight or validation Job as Kopf's index holds it."""

    name: str
    config_hash: str | None  #: the ``kubetrade.io/config-hash`` annotation
    state: str  #: Pending, Running, Succeeded or Failed (see :func:`job_state`)
    start_time: str | None = None  #: status.startTime, RFC 3339
    completion_time: str | None = None  #: status.completionTime, RFC 3339


@dataclass(frozen=True)
class StrategyObserved:
    """Everything the Strategy decision depends on besides its spec."""

    uid: str
    generation: int | None
    deleting: bool  #: metadata.deletionTimestamp is set
    status: Mapping[str, Any]  #: the Strategy's current status
    policy: Mapping[str, Any] | None  #: spec of the referenced RiskPolicy; None: absent
    deployment: DeploymentObserved | None  #: the runner Deployment; None: absent
    preflight_jobs: tuple[JobObserved, ...]  #: this Strategy's pre-flight Jobs, any config
    #: client ids of the runner's open orders; None: unknown (Redis unreachable). Read
    #: only when :func:`needs_open_orders`; ``()`` otherwise.
    open_orders: tuple[str, ...] | None
    summary: Mapping[str, str]  #: the runner's Redis summary ({}: none or unreachable)
    now_ms: int  #: the operator clock, epoch milliseconds
    trigger: str  #: create, update, resume or timer
    #: metadata.creationTimestamp, epoch ms: a summary older than the object is another
    #: (deleted) object's of the same name, never folded in
    created_ms: int | None = None
    #: the strategy's latest pre-flight report (Redis; None: none or unreachable)
    preflight_report: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class StrategyPlan:
    """What to do: writes in order, then the status fields, metrics and events."""

    config_hash: str
    replicas: int
    phase: str
    #: the pre-flight Job to create (by name, unless it exists); None: nothing to start
    preflight_job: Manifest | None
    #: ServiceAccount, Role, RoleBinding to apply before the Deployment (empty: shared
    #: identity, or the Deployment is up to date)
    identity: tuple[Manifest, ...]
    deployment: Manifest | None  #: the Deployment to apply; None: up to date
    rolled: bool  #: the applied Deployment replaces another configuration
    status: dict[str, Any]  #: status fields (the handler patches those that differ)
    blocked: Mapping[str, bool]  #: metric ``kubetrade_operator_strategy_blocked`` by rule
    warnings: tuple[dict[str, Any], ...]  #: conditions that flipped to False, to report


def invalid_spec_status(
    message: str, status: Mapping[str, Any], generation: int | None, now_ms: int
) -> dict[str, Any]:
    """The status of a Strategy whose spec does not validate (the handler then gives up
    on it until the spec changes)."""
    conds = Conditions(status.get("conditions"), generation)
    conds.set("Ready", False, "InvalidSpec", message.replace("\n", " "), now_ms)
    return {"phase": "Failed", "conditions": conds.items}


def needs_open_orders(strategy: Strategy, deployment: DeploymentObserved | None) -> bool:
    """Whether the decision needs the runner's open orders: a disabled Strategy whose
    runner still has a replica waits for them to be cancelled."""
    return not strategy.spec.enabled and deployment is not None and (deployment.replicas or 0) > 0


def _risk(strategy: Strategy, observed: StrategyObserved, conds: Conditions) -> bool:
    """Rule 1: set ``RiskPolicyValid``; True when the policy allows this mode to run."""
    spec, now = strategy.spec, observed.now_ms
    ref, live = spec.risk_policy_ref, spec.mode == "live"
    if observed.policy is None:
        conds.set(
            "RiskPolicyValid",
            False,
            "RiskPolicyNotFound",
            f"spec.riskPolicyRef: RiskPolicy {ref!r} does not exist in namespace "
            f"{strategy.metadata.namespace}"
            + (
                "; a live runner will not start without it"
                if live
                else "; the runner uses the default limits"
            ),
            now,
        )
        return False
    try:
        problems = RiskPolicySpec.model_validate(observed.policy).live_ready if live else []
    except ValidationError as exc:
        problems = [f"RiskPolicy {ref!r} is invalid: {exc}"]
    if problems:
        conds.set(
            "RiskPolicyValid",
            False,
            "LiveRiskPolicyIncomplete",
            f"spec.riskPolicyRef: RiskPolicy {ref!r} is not fit for live trading: "
            f"{'; '.join(problems)}",
            now,
        )
        return False
    excluded = symbols_not_allowed(spec.symbols, observed.policy)
    if excluded:
        # reported, not blocking: the other symbols trade, and a policy edit must not
        # stop a live runner by itself
        conds.set(
            "RiskPolicyValid",
            False,
            "SymbolsNotAllowed",
            f"spec.symbols {', '.join(excluded)} not in RiskPolicy {ref!r} "
            f"spec.allowedSymbols {list(observed.policy.get('allowedSymbols') or [])}: "
            "every order for them will be refused",
            now,
        )
        return True
    conds.set("RiskPolicyValid", True, "RiskPolicyFound", f"RiskPolicy {ref!r} applies", now)
    return True


@dataclass(frozen=True)
class _Preflight:
    state: str | None  #: None: no pre-flight involved (paper, blocked or disabled)
    create: Manifest | None
    status: dict[str, Any]


def _preflight(
    strategy: Strategy,
    observed: StrategyObserved,
    chash: str,
    blocked: bool,
    conds: Conditions,
    settings: OperatorSettings,
) -> _Preflight:
    """Rule 2: set ``PreflightPassed``; the Job of this configuration and its state."""
    spec, now = strategy.spec, observed.now_ms
    if spec.mode != "live":
        conds.set("PreflightPassed", True, "NotRequired", "paper mode needs no pre-flight", now)
        return _Preflight(None, None, {})
    if blocked:
        conds.set("PreflightPassed", None, "Blocked", "waiting for a RiskPolicy fit for live", now)
        return _Preflight(None, None, {})
    if not spec.enabled:
        conds.set("PreflightPassed", None, "Disabled", "runs when the Strategy is enabled", now)
        return _Preflight(None, None, {})
    if observed.status.get("preflightPassedHash") == chash:
        # passed for exactly this configuration: the Job may have expired since
        conds.set("PreflightPassed", True, "PreflightPassed", f"passed for config {chash}", now)
        return _Preflight("Succeeded", None, {"preflight": "PASS"})
    job = next((j for j in observed.preflight_jobs if j.config_hash == chash), None)
    if job is None:
        manifest = render.preflight_job(strategy, observed.uid, chash, settings)
        conds.set("PreflightPassed", None, "PreflightRunning", "pre-flight Job running", now)
        return _Preflight("Running", manifest, {})
    if job.state == "Succeeded":
        conds.set("PreflightPassed", True, "PreflightPassed", f"Job {job.name}", now)
        return _Preflight(job.state, None, {"preflight": "PASS", "preflightPassedHash": chash})
    if job.state == "Failed":
        conds.set(
            "PreflightPassed",
            False,
            "PreflightFailed",
            f"pre-flight FAIL (Job {job.name}): the runner stays stopped; see "
            "`kubectl logs job/" + job.name + "` or GET /api/preflight; "
            + _protection(observed.policy),
            now,
        )
        return _Preflight(job.state, None, {"preflight": "FAIL"})
    conds.set("PreflightPassed", None, "PreflightRunning", "pre-flight Job running", now)
    return _Preflight(job.state, None, {})


def _protection(policy: Mapping[str, Any] | None) -> str:
    """What protects open positions while no runner of the new configuration runs."""
    if policy is not None and policy.get("stopLossOnExchange") is False:
        return ("open positions have NO stop-loss on the exchange (RiskPolicy "
                "stopLossOnExchange is false)")
    return "open positions keep their stop-loss orders on the exchange"


def _replicas(
    strategy: Strategy, observed: StrategyObserved, allowed: bool, settings: OperatorSettings
) -> tuple[int, int | None, dict[str, Any]]:
    """Rule 3: (replicas, since when a disable has been draining or None, status)."""
    status, now = observed.status, observed.now_ms
    current = observed.deployment
    new: dict[str, Any] = {}
    replicas, disabling = (1 if allowed else 0), None
    if not allowed and current is not None and needs_open_orders(strategy, current):
        since = int(status.get("disableRequestedMs") or now)
        open_ids = observed.open_orders
        if (open_ids is None or open_ids) and now - since < settings.disable_timeout * 1000:
            replicas = current.replicas or 0
            disabling = since
            new["disableRequestedMs"] = since
    if disabling is None and status.get("disableRequestedMs") is not None:
        new["disableRequestedMs"] = None
    return replicas, disabling, new


def _phase(
    strategy: Strategy,
    observed: StrategyObserved,
    blocked: bool,
    preflight: str | None,
    disabling: int | None,
    summary: Mapping[str, str],
) -> str:
    """Rule 5: the phase ``kubectl get strategies`` shows."""
    spec = strategy.spec
    if observed.deleting:
        return "Terminating"
    if not spec.enabled:
        return "Stopping" if disabling else "Disabled"
    if blocked:
        return "Blocked"
    if preflight == "Failed":
        return "PreflightFailed"
    if spec.mode == "live" and preflight != "Succeeded":
        return "PreflightRunning"
    if summary:
        return summary.get("phase") or "Running"
    return "Starting"


def held_runner(
    strategy: Strategy, observed: StrategyObserved, preflight: str | None, blocked: bool
) -> DeploymentObserved | None:
    """Hand-over (rule 2): the runner Deployment to keep as it is -- one trading under a
    configuration whose pre-flight passed (``status.preflightPassedHash``) while the
    pre-flight of a new configuration runs or has failed. None: nothing to hold."""
    spec, current = strategy.spec, observed.deployment
    if spec.mode != "live" or not spec.enabled or blocked or observed.deleting:
        return None
    if preflight in (None, "Succeeded") or current is None or not current.replicas:
        return None
    passed = observed.status.get("preflightPassedHash")
    return current if passed and current.config_hash == passed else None


def _deployed(
    conds: Conditions,
    dname: str,
    replicas: int,
    chash: str,
    held: DeploymentObserved | None,
    now: int,
) -> None:
    """The ``Deployed`` condition (and, when a runner is held, why in ``PreflightPassed``)."""
    if held is None:
        message = f"Deployment {dname} with {replicas} replica(s), config {chash}"
        conds.set(
            "Deployed", True, "ScaledToZero" if replicas == 0 else "DeploymentApplied", message, now
        )
        return
    keep = f"the runner keeps trading with config {held.config_hash}, which passed"
    conds.set(
        "Deployed",
        True,
        "HeldForPreflight",
        f"Deployment {dname} unchanged: {keep}; config {chash} waits for its pre-flight",
        now,
    )
    pre = conds.get("PreflightPassed")
    if pre is not None:
        status = {"True": True, "False": False}.get(str(pre["status"]))
        conds.set("PreflightPassed", status, str(pre["reason"]), f"{pre['message']}; {keep}", now)


def current_summary(observed: StrategyObserved, replicas: int) -> Mapping[str, str]:
    """The summary to fold: none while scaled to 0, none written before this object
    was created (a Strategy re-created under an old name starts from nothing)."""
    if not replicas or not observed.summary:
        return {}
    if observed.created_ms is not None and heard_ms(observed.summary) < observed.created_ms:
        return {}
    return observed.summary


def _ready(
    conds: Conditions,
    phase: str,
    replicas: int,
    current: DeploymentObserved | None,
    age_ms: int | None,
    settings: OperatorSettings,
    now: int,
) -> None:
    """``Ready``: one replica wanted, the Deployment's pod ready, and the runner heard
    of within ``settings.heartbeat_max_age`` seconds (``age_ms``: None = never)."""
    ready_pods = current.ready if current is not None else 0
    limit = int(settings.heartbeat_max_age * 1000)
    if replicas != 1 or phase in _READY_REASON:
        conds.set("Ready", False, _READY_REASON.get(phase, "ScaledToZero"), f"phase {phase}", now)
    elif ready_pods < 1:
        conds.set("Ready", False, "RunnerNotReady", f"Deployment {ready_pods}/1 ready", now)
    elif age_ms is None:
        conds.set("Ready", False, "NoHeartbeat", "the runner has not reported yet", now)
    elif age_ms > limit:
        conds.set(
            "Ready",
            False,
            "RunnerHeartbeatStale",
            f"last heard from the runner {age_ms // 1000}s ago (limit {limit // 1000}s)",
            now,
        )
    else:
        conds.set("Ready", True, "RunnerReporting", f"phase {phase}, 1/1 ready", now)


def plan_strategy(
    strategy: Strategy, observed: StrategyObserved, settings: OperatorSettings
) -> StrategyPlan:
    """The whole decision for one Strategy (see the module's rules)."""
    spec, now = strategy.spec, observed.now_ms
    conds = Conditions(observed.status.get("conditions"), observed.generation)
    chash = render.config_hash(strategy, settings)
    risk_ok = _risk(strategy, observed, conds)  # the condition is set in either mode
    blocked = spec.mode == "live" and not risk_ok
    pre = _preflight(strategy, observed, chash, blocked, conds, settings)
    set_capital_condition(conds, live=spec.mode == "live",
                          check=capital_check(observed.preflight_report, chash), now_ms=now)
    held = held_runner(strategy, observed, pre.state, blocked)
    allowed = spec.enabled and not blocked and (spec.mode != "live" or pre.state == "Succeeded")
    replicas, disabling, drain_status = _replicas(strategy, observed, allowed, settings)
    replicas = (held.replicas or 0) if held is not None else replicas
    deployment = render.runner_deployment(strategy, observed.uid, replicas, settings)
    dname = deployment["metadata"]["name"]
    current = observed.deployment
    apply = held is None and (
        current is None
        or current.config_hash != chash
        or current.replicas != replicas
        or observed.trigger != "timer"
    )
    _deployed(conds, dname, replicas, chash, held, now)
    summary = current_summary(observed, replicas)
    age = now - heard_ms(summary) if summary else None
    stale = age is not None and age > settings.heartbeat_max_age * 1000
    pre_state = "Succeeded" if held is not None else pre.state
    phase = _phase(strategy, observed, blocked, pre_state, disabling, summary)
    phase = "Stale" if stale and phase not in _READY_REASON else phase
    _ready(conds, phase, replicas, current, age, settings, now)
    status: dict[str, Any] = {**pre.status, **drain_status}
    status.update(fold_summary(dict(summary)) if summary else {})
    status.update(
        {
            "phase": phase,
            "deployment": dname,
            "configHash": held.config_hash if held is not None else chash,
            "observedGeneration": observed.generation,
            "conditions": conds.items,
        }
    )
    return StrategyPlan(
        config_hash=chash,
        replicas=replicas,
        phase=phase,
        preflight_job=pre.create,
        identity=tuple(render.runner_rbac(strategy, observed.uid, settings)) if apply else (),
        deployment=deployment if apply else None,
        rolled=apply and current is not None and current.config_hash not in (None, chash),
        status=status,
        blocked={"RiskPolicy": blocked, "PreflightFailed": pre.state == "Failed"},
        warnings=tuple(
            c for c in conds.flipped if c["status"] == "False" and c["type"] in WARNED_CONDITIONS
        ),
    )
