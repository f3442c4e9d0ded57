"""The CapitalAllocated condition (issue 15 item 3) and what a failed pre-flight of a
new configuration says about the positions' protection (item 5), in the plan."""

from __future__ import annotations

from typing import Any

from kubetrade.operator.plan import JobObserved, plan_strategy
from tests.unit.operator.builders import strategy
from tests.unit.operator.test_plan import FIT, NOW, SETTINGS, chash, cond, observed, up_to_date


def _report(status: str, message: str, config_hash: str) -> dict[str, Any]:
    return {"strategy": "btc-sma", "ts_ms": NOW, "status": status, "config_hash": config_hash,
            "checks": [{"name": "API Key", "status": "PASS", "message": "ok"},
                       {"name": "Capital Allocation", "status": status, "message": message}]}


def test_paper_needs_no_allocation() -> None:
    plan = plan_strategy(strategy(), observed(), SETTINGS)
    assert cond(plan, "CapitalAllocated")["reason"] == "NotRequired"


def test_live_waits_for_its_preflight_to_read_the_balance() -> None:
    s = strategy(mode="live")
    plan = plan_strategy(s, observed(), SETTINGS)
    c = cond(plan, "CapitalAllocated")
    assert (c["status"], c["reason"]) == ("Unknown", "WaitingForPreflight")


def test_a_budget_above_the_free_balance_is_a_false_condition_and_an_event() -> None:
    s = strategy(mode="live", initialCapital=5000)
    msg = ("budget 5000 USDT (initialCapital; 5000 still to spend) is more than the "
           "account's free 500 USDT: lower the budget or fund the account")
    job = JobObserved("preflight-btc-sma", chash(s), "Failed")
    report = _report("FAIL", msg, chash(s))
    plan = plan_strategy(s, observed(preflight_jobs=(job,), preflight_report=report), SETTINGS)
    c = cond(plan, "CapitalAllocated")
    assert (c["status"], c["reason"], c["message"]) == ("False", "BudgetExceedsFreeBalance", msg)
    # the flip to False is posted as a warning Event (and audited) by the handler
    assert "BudgetExceedsFreeBalance" in [w["reason"] for w in plan.warnings]


def test_a_budget_that_fits_is_true() -> None:
    s = strategy(mode="live", capitalPctOfAccount=25)
    msg = "budget 125 USDT (25% of the account) fits in the free 500 USDT"
    plan = plan_strategy(s, observed(status={"preflightPassedHash": chash(s)},
                                     preflight_report=_report("PASS", msg, chash(s))),
                         SETTINGS)
    c = cond(plan, "CapitalAllocated")
    assert (c["status"], c["reason"], c["message"]) == ("True", "BudgetFits", msg)


def test_the_report_of_another_configuration_does_not_count() -> None:
    s = strategy(mode="live")
    earlier = strategy(mode="live", initialCapital=50)
    job = JobObserved("preflight-btc-sma", chash(s), "Running")
    old = _report("PASS", "fits", chash(earlier))  # an earlier configuration's
    plan = plan_strategy(s, observed(preflight_jobs=(job,), preflight_report=old), SETTINGS)
    assert cond(plan, "CapitalAllocated")["reason"] == "WaitingForPreflight"


def test_a_failed_preflight_of_a_new_config_says_what_protects_the_positions() -> None:
    old = strategy(mode="live")
    new = strategy(mode="live", symbols=["ETH/USDT"])
    failed = (JobObserved("preflight-new", chash(new), "Failed"),)
    # the old runner passed: it keeps trading, and the status says both
    held = plan_strategy(new, observed(status={"preflightPassedHash": chash(old)},
                                       deployment=up_to_date(old), preflight_jobs=failed,
                                       trigger="update"), SETTINGS)
    msg = cond(held, "PreflightPassed")["message"]
    assert held.replicas == 1 and held.deployment is None
    assert f"keeps trading with config {chash(old)}" in msg
    assert "open positions keep their stop-loss orders on the exchange" in msg
    # no passed runner to keep: scaled to 0, the exchange's stops protect what is held
    stopped = plan_strategy(new, observed(deployment=up_to_date(old), preflight_jobs=failed,
                                          trigger="update"), SETTINGS)
    assert stopped.replicas == 0 and stopped.phase == "PreflightFailed"
    assert "open positions keep their stop-loss orders on the exchange" in cond(
        stopped, "PreflightPassed")["message"]
    # ... unless the policy turned them off: said as plainly
    bare = plan_strategy(new, observed(policy={**FIT, "stopLossOnExchange": False},
                                       deployment=up_to_date(old), preflight_jobs=failed),
                         SETTINGS)
    assert "NO stop-loss on the exchange" in cond(bare, "PreflightPassed")["message"]
