"""The Strategy decision: every case of ``plan_strategy``, without a cluster or Redis."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from kubetrade.operator import render
from kubetrade.operator.plan import (
    DeploymentObserved,
    JobObserved,
    StrategyObserved,
    StrategyPlan,
    invalid_spec_status,
    needs_open_orders,
    plan_strategy,
)
from kubetrade.operator.settings import OperatorSettings
from kubetrade.resources import Strategy
from tests.unit.operator.builders import strategy

SETTINGS = OperatorSettings(namespace="trading", redis_url="redis://r:6379/0")
NOW = 1_700_000_000_000
FIT = {"stopLossPct": "5", "dailyLossLimitPct": "3"}


def observed(**change: Any) -> StrategyObserved:
    base = StrategyObserved(
        uid="uid-1",
        generation=3,
        deleting=False,
        status={},
        policy=dict(FIT),
        deployment=None,
        preflight_jobs=(),
        open_orders=(),
        summary={},
        now_ms=NOW,
        trigger="create",
    )
    return replace(base, **change)


def chash(s: Strategy) -> str:
    return render.config_hash(s, SETTINGS)


def cond(plan: StrategyPlan, type_: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in plan.status["conditions"] if c["type"] == type_)
    return found


def up_to_date(s: Strategy, replicas: int = 1, ready: int = 1) -> DeploymentObserved:
    return DeploymentObserved(replicas=replicas, config_hash=chash(s), ready=ready)


def live_passed(s: Strategy) -> tuple[JobObserved, ...]:
    return (JobObserved("kubetrade-preflight-x", chash(s), "Succeeded"),)


# -- rule 1: the RiskPolicy ---------------------------------------------------------------


def test_paper_with_its_policy_runs() -> None:
    s = strategy()
    plan = plan_strategy(s, observed(), SETTINGS)
    assert plan.replicas == 1 and plan.phase == "Starting"
    assert cond(plan, "RiskPolicyValid")["reason"] == "RiskPolicyFound"
    assert cond(plan, "PreflightPassed")["reason"] == "NotRequired"
    assert plan.preflight_job is None
    assert plan.blocked == {"RiskPolicy": False, "PreflightFailed": False}
    assert plan.warnings == ()


def test_paper_without_its_policy_runs_on_default_limits() -> None:
    plan = plan_strategy(strategy(), observed(policy=None), SETTINGS)
    c = cond(plan, "RiskPolicyValid")
    assert (c["status"], c["reason"]) == ("False", "RiskPolicyNotFound")
    assert "default limits" in c["message"] and "spec.riskPolicyRef" in c["message"]
    assert plan.replicas == 1 and plan.phase == "Starting"
    assert plan.blocked["RiskPolicy"] is False
    assert [w["type"] for w in plan.warnings] == ["RiskPolicyValid"]


def test_live_without_its_policy_is_blocked() -> None:
    plan = plan_strategy(strategy(mode="live"), observed(policy=None), SETTINGS)
    assert "a live runner will not start" in cond(plan, "RiskPolicyValid")["message"]
    assert plan.phase == "Blocked" and plan.replicas == 0
    assert cond(plan, "PreflightPassed")["reason"] == "Blocked"
    assert cond(plan, "Ready")["reason"] == "RiskPolicyInvalid"
    assert plan.preflight_job is None
    assert plan.blocked == {"RiskPolicy": True, "PreflightFailed": False}


def test_live_with_a_policy_unfit_for_live_is_blocked() -> None:
    policy = {"stopLossPct": "0", "dailyLossLimitPct": "3"}
    plan = plan_strategy(strategy(mode="live"), observed(policy=policy), SETTINGS)
    c = cond(plan, "RiskPolicyValid")
    assert c["reason"] == "LiveRiskPolicyIncomplete" and "spec.stopLossPct" in c["message"]
    assert plan.phase == "Blocked"


def test_live_with_an_invalid_policy_is_blocked() -> None:
    plan = plan_strategy(strategy(mode="live"), observed(policy={"stopLossPct": "500"}), SETTINGS)
    c = cond(plan, "RiskPolicyValid")
    assert c["reason"] == "LiveRiskPolicyIncomplete" and "is invalid" in c["message"]
    assert plan.phase == "Blocked"


def test_paper_ignores_live_fitness() -> None:
    policy = {"stopLossPct": "0", "dailyLossLimitPct": "0"}
    plan = plan_strategy(strategy(), observed(policy=policy), SETTINGS)
    assert cond(plan, "RiskPolicyValid")["status"] == "True"


# -- rule 2: the pre-flight ---------------------------------------------------------------


def test_live_starts_the_preflight_job_of_its_configuration() -> None:
    s = strategy(mode="live")
    stale = JobObserved("kubetrade-preflight-old", "other-config", "Succeeded")
    plan = plan_strategy(s, observed(preflight_jobs=(stale,)), SETTINGS)
    assert plan.preflight_job is not None
    assert plan.preflight_job["metadata"]["name"] == render.preflight_job_name("btc-sma", chash(s))
    assert cond(plan, "PreflightPassed")["reason"] == "PreflightRunning"
    assert plan.phase == "PreflightRunning" and plan.replicas == 0
    assert "preflight" not in plan.status


@pytest.mark.parametrize("state", ["Pending", "Running"])
def test_live_waits_for_a_running_preflight(state: str) -> None:
    s = strategy(mode="live")
    job = JobObserved("kubetrade-preflight-x", chash(s), state)
    plan = plan_strategy(s, observed(preflight_jobs=(job,)), SETTINGS)
    assert plan.preflight_job is None
    assert cond(plan, "PreflightPassed")["status"] == "Unknown"
    assert plan.phase == "PreflightRunning" and plan.replicas == 0


def test_live_runs_after_preflight_pass() -> None:
    s = strategy(mode="live")
    plan = plan_strategy(s, observed(preflight_jobs=live_passed(s)), SETTINGS)
    assert plan.status["preflight"] == "PASS"
    assert cond(plan, "PreflightPassed")["status"] == "True"
    assert plan.replicas == 1 and plan.phase == "Starting"


def test_live_stays_stopped_after_preflight_fail() -> None:
    s = strategy(mode="live")
    job = JobObserved("kubetrade-preflight-x", chash(s), "Failed")
    plan = plan_strategy(s, observed(preflight_jobs=(job,)), SETTINGS)
    assert plan.status["preflight"] == "FAIL"
    c = cond(plan, "PreflightPassed")
    assert c["reason"] == "PreflightFailed"
    assert "kubectl logs job/kubetrade-preflight-x" in c["message"]
    assert plan.phase == "PreflightFailed" and plan.replicas == 0
    assert plan.blocked == {"RiskPolicy": False, "PreflightFailed": True}
    assert [w["type"] for w in plan.warnings] == ["PreflightPassed"]


def test_disabled_live_starts_no_preflight() -> None:
    plan = plan_strategy(strategy(mode="live", enabled=False), observed(), SETTINGS)
    assert plan.preflight_job is None
    assert cond(plan, "PreflightPassed")["reason"] == "Disabled"
    assert plan.phase == "Disabled" and plan.replicas == 0


# -- rule 3: replicas, and draining a disabled runner ------------------------------------


def test_open_orders_are_needed_only_to_drain_a_running_runner() -> None:
    on, off = strategy(), strategy(enabled=False)
    assert not needs_open_orders(on, up_to_date(on))
    assert not needs_open_orders(off, None)
    assert not needs_open_orders(off, up_to_date(off, replicas=0))
    assert needs_open_orders(off, up_to_date(off))


@pytest.mark.parametrize("open_orders", [("o-1",), None])
def test_disabling_keeps_the_runner_while_orders_are_open_or_unknown(
    open_orders: tuple[str, ...] | None,
) -> None:
    s = strategy(enabled=False)
    plan = plan_strategy(s, observed(deployment=up_to_date(s), open_orders=open_orders), SETTINGS)
    assert plan.replicas == 1 and plan.phase == "Stopping"
    assert plan.status["disableRequestedMs"] == NOW
    assert cond(plan, "Ready")["reason"] == "Disabled"


def test_disabling_keeps_when_it_started() -> None:
    s = strategy(enabled=False)
    since = NOW - 5_000
    plan = plan_strategy(
        s,
        observed(
            deployment=up_to_date(s),
            open_orders=("o-1",),
            status={"disableRequestedMs": since},
        ),
        SETTINGS,
    )
    assert plan.status["disableRequestedMs"] == since and plan.replicas == 1


def test_disabling_scales_to_zero_once_orders_are_cancelled() -> None:
    s = strategy(enabled=False)
    plan = plan_strategy(
        s,
        observed(deployment=up_to_date(s), open_orders=(), status={"disableRequestedMs": NOW - 1}),
        SETTINGS,
    )
    assert plan.replicas == 0 and plan.phase == "Disabled"
    assert plan.status["disableRequestedMs"] is None
    assert cond(plan, "Deployed")["reason"] == "ScaledToZero"


def test_disabling_gives_up_waiting_after_the_timeout() -> None:
    s = strategy(enabled=False)
    since = NOW - int(SETTINGS.disable_timeout * 1000)
    plan = plan_strategy(
        s,
        observed(
            deployment=up_to_date(s),
            open_orders=("o-1",),
            status={"disableRequestedMs": since},
        ),
        SETTINGS,
    )
    assert plan.replicas == 0 and plan.phase == "Disabled"
    assert plan.status["disableRequestedMs"] is None


# -- rule 4: the Deployment ---------------------------------------------------------------


def test_a_missing_deployment_is_applied_with_its_identity_first() -> None:
    plan = plan_strategy(strategy(), observed(trigger="timer"), SETTINGS)
    assert plan.deployment is not None and plan.deployment["spec"]["replicas"] == 1
    assert [m["kind"] for m in plan.identity] == ["ServiceAccount", "Role", "RoleBinding"]
    assert plan.rolled is False
    assert cond(plan, "Deployed")["reason"] == "DeploymentApplied"


def test_shared_identity_applies_no_account() -> None:
    shared = replace(SETTINGS, runner_rbac="shared")
    plan = plan_strategy(strategy(), observed(), shared)
    assert plan.deployment is not None and plan.identity == ()


def test_the_timer_leaves_an_up_to_date_deployment_alone() -> None:
    s = strategy()
    plan = plan_strategy(s, observed(deployment=up_to_date(s), trigger="timer"), SETTINGS)
    assert plan.deployment is None and plan.identity == () and plan.rolled is False


@pytest.mark.parametrize("trigger", ["create", "update", "resume"])
def test_events_reapply_the_deployment(trigger: str) -> None:
    s = strategy()
    plan = plan_strategy(s, observed(deployment=up_to_date(s), trigger=trigger), SETTINGS)
    assert plan.deployment is not None and plan.rolled is False


def test_a_new_configuration_rolls_the_runner() -> None:
    s = strategy()
    old = DeploymentObserved(replicas=1, config_hash="old", ready=1)
    plan = plan_strategy(s, observed(deployment=old, trigger="timer"), SETTINGS)
    assert plan.deployment is not None and plan.rolled is True
    assert plan.status["configHash"] == plan.config_hash == chash(s)


def test_other_replicas_are_reapplied() -> None:
    s = strategy()
    plan = plan_strategy(
        s, observed(deployment=up_to_date(s, replicas=0), trigger="timer"), SETTINGS
    )
    assert plan.deployment is not None and plan.deployment["spec"]["replicas"] == 1


# -- rule 5: phase and Ready --------------------------------------------------------------


def test_the_runner_summary_gives_phase_and_figures() -> None:
    s = strategy()
    summary = {"phase": "Halted", "pnl": "12.346", "trades": "4", "updated_ms": str(NOW)}
    plan = plan_strategy(s, observed(deployment=up_to_date(s), summary=summary), SETTINGS)
    assert plan.phase == "Halted"
    assert plan.status["pnl"] == "12.35" and plan.status["trades"] == 4
    ready = cond(plan, "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "RunnerReporting")


def test_a_summary_without_phase_means_running() -> None:
    s = strategy()
    summary = {"trades": "1", "updated_ms": str(NOW)}
    plan = plan_strategy(s, observed(deployment=up_to_date(s), summary=summary), SETTINGS)
    assert plan.phase == "Running" and cond(plan, "Ready")["status"] == "True"


def test_a_scaled_down_runner_summary_is_not_shown() -> None:
    s = strategy(enabled=False)
    plan = plan_strategy(s, observed(summary={"phase": "Running", "pnl": "1"}), SETTINGS)
    assert plan.phase == "Disabled" and "pnl" not in plan.status
    assert cond(plan, "Ready")["status"] == "False"


@pytest.mark.parametrize("ready", [1, 0])
def test_ready_pods_without_summary_are_starting(ready: int) -> None:
    # issue 19: a ready pod is not enough, Ready also needs a word from the runner
    s = strategy()
    plan = plan_strategy(s, observed(deployment=up_to_date(s, ready=ready)), SETTINGS)
    assert plan.phase == "Starting"
    c = cond(plan, "Ready")
    assert (c["status"], c["reason"]) == ("False", "RunnerStarting")


# -- status truth (issue 19): fresh heartbeat, ready replicas, no inherited numbers -------


def test_a_fresh_summary_of_a_deployment_not_ready_is_not_ready() -> None:
    s = strategy()
    summary = {"phase": "Running", "updated_ms": str(NOW - 5_000)}
    plan = plan_strategy(s, observed(deployment=up_to_date(s, ready=0), summary=summary), SETTINGS)
    c = cond(plan, "Ready")
    assert (c["status"], c["reason"]) == ("False", "RunnerNotReady")
    assert c["message"] == "Deployment 0/1 ready"


def test_an_old_summary_shows_as_stale_never_running() -> None:
    s = strategy()
    summary = {"phase": "Running", "pnl": "5", "updated_ms": str(NOW - 3_600_000)}
    plan = plan_strategy(s, observed(deployment=up_to_date(s), summary=summary), SETTINGS)
    assert plan.phase == "Stale"
    c = cond(plan, "Ready")
    assert (c["status"], c["reason"]) == ("False", "RunnerHeartbeatStale")
    assert "3600s ago (limit 60s)" in c["message"]
    assert plan.status["summaryUpdated"]  # the numbers stay, dated


def test_a_heartbeat_keeps_a_quiet_runner_fresh() -> None:
    s = strategy(timeframe="1h")  # one summary an hour, a heartbeat every 10 s
    summary = {"phase": "Running", "updated_ms": str(NOW - 1_800_000), "heartbeat_ms": str(NOW)}
    plan = plan_strategy(s, observed(deployment=up_to_date(s), summary=summary), SETTINGS)
    assert plan.phase == "Running" and cond(plan, "Ready")["status"] == "True"


def test_a_recreated_strategy_does_not_inherit_the_old_numbers() -> None:
    s = strategy()
    old = {"phase": "Running", "pnl": "99", "trades": "7", "updated_ms": str(NOW - 10_000)}
    seen = observed(deployment=up_to_date(s), summary=old, created_ms=NOW - 2_000)
    plan = plan_strategy(s, seen, SETTINGS)
    assert plan.phase == "Starting" and "pnl" not in plan.status and "trades" not in plan.status
    assert cond(plan, "Ready")["status"] == "False"


def test_a_deleted_strategy_is_terminating() -> None:
    plan = plan_strategy(strategy(), observed(deleting=True), SETTINGS)
    assert plan.phase == "Terminating"


def test_status_names_the_deployment_and_generation() -> None:
    plan = plan_strategy(strategy(), observed(), SETTINGS)
    assert plan.status["deployment"] == render.runner_name("btc-sma")
    assert plan.status["observedGeneration"] == 3
    assert all(c["observedGeneration"] == 3 for c in plan.status["conditions"])


def test_warnings_only_when_a_condition_flips() -> None:
    first = plan_strategy(strategy(), observed(policy=None), SETTINGS)
    again = plan_strategy(
        strategy(), observed(policy=None, status=first.status, now_ms=NOW + 1000), SETTINGS
    )
    assert first.warnings and again.warnings == ()
    before = cond(first, "RiskPolicyValid")["lastTransitionTime"]
    assert cond(again, "RiskPolicyValid")["lastTransitionTime"] == before


def test_an_invalid_spec_fails_the_strategy() -> None:
    status = invalid_spec_status("bad\nspec", {}, 2, NOW)
    assert status["phase"] == "Failed"
    (ready,) = status["conditions"]
    assert ready["reason"] == "InvalidSpec" and ready["message"] == "bad spec"
    assert ready["status"] == "False" and ready["observedGeneration"] == 2


# -- rule 2: a pre-flight PASS lasts as long as its configuration (issue 19) ----------------


def test_a_pass_is_recorded_with_the_hash_it_checked() -> None:
    s = strategy(mode="live")
    plan = plan_strategy(s, observed(preflight_jobs=live_passed(s)), SETTINGS)
    assert plan.status["preflightPassedHash"] == chash(s)


def test_an_expired_preflight_job_neither_reruns_nor_stops_the_runner() -> None:
    s = strategy(mode="live")
    seen = observed(
        status={"preflightPassedHash": chash(s)},
        deployment=up_to_date(s),
        preflight_jobs=(),  # the Job's TTL ran out
        trigger="timer",
    )
    plan = plan_strategy(s, seen, SETTINGS)
    assert plan.preflight_job is None
    assert plan.replicas == 1 and plan.deployment is None
    assert cond(plan, "PreflightPassed")["status"] == "True"


@pytest.mark.parametrize("state", ["Pending", "Running", "Failed", None])
def test_the_runner_of_a_passed_config_keeps_trading_while_a_new_one_is_checked(
    state: str | None,
) -> None:
    old = strategy(mode="live")
    new = strategy(mode="live", symbols=["ETH/USDT"])
    jobs = () if state is None else (JobObserved("preflight-new", chash(new), state),)
    seen = observed(
        status={"preflightPassedHash": chash(old)},
        deployment=up_to_date(old),
        preflight_jobs=jobs,
        trigger="update",
    )
    plan = plan_strategy(new, seen, SETTINGS)
    assert plan.deployment is None and plan.identity == ()  # the runner is not touched
    assert plan.replicas == 1
    assert plan.status["configHash"] == chash(old)
    assert "preflightPassedHash" not in plan.status  # the old PASS stays recorded
    assert cond(plan, "Deployed")["reason"] == "HeldForPreflight"
    assert f"keeps trading with config {chash(old)}" in cond(plan, "PreflightPassed")["message"]
    assert (plan.preflight_job is not None) == (state is None)


def test_the_new_config_rolls_once_its_preflight_passes() -> None:
    old = strategy(mode="live")
    new = strategy(mode="live", symbols=["ETH/USDT"])
    seen = observed(
        status={"preflightPassedHash": chash(old)},
        deployment=up_to_date(old),
        preflight_jobs=live_passed(new),
        trigger="timer",
    )
    plan = plan_strategy(new, seen, SETTINGS)
    assert plan.deployment is not None and plan.rolled
    assert plan.status["preflightPassedHash"] == chash(new)


def test_disabling_a_held_runner_is_not_held() -> None:
    old = strategy(mode="live")
    new = strategy(mode="live", symbols=["ETH/USDT"], enabled=False)
    seen = observed(
        status={"preflightPassedHash": chash(old)}, deployment=up_to_date(old), open_orders=()
    )
    plan = plan_strategy(new, seen, SETTINGS)
    assert plan.replicas == 0 and plan.deployment is not None


def test_symbols_the_policy_excludes_are_reported_not_blocking() -> None:
    s = strategy(mode="live")
    policy = {**FIT, "allowedSymbols": ["ETH/USDT"]}
    plan = plan_strategy(s, observed(policy=policy, preflight_jobs=live_passed(s)), SETTINGS)
    c = cond(plan, "RiskPolicyValid")
    assert (c["status"], c["reason"]) == ("False", "SymbolsNotAllowed")
    assert "spec.symbols BTC/USDT not in RiskPolicy 'default' spec.allowedSymbols" in c["message"]
    assert plan.replicas == 1 and not plan.blocked["RiskPolicy"]
    assert [w["reason"] for w in plan.warnings] == ["SymbolsNotAllowed"]
