"""Capital on apply and the safe hand-over (issue 15 items 3 and 5), with the operator
on a real API server, the pre-flight Job's command run against the fake Binance (the
test plays kubelet and Job controller, as in test_preflight_operator.py):

- a live Strategy whose budget fits the account's free balance: CapitalAllocated True;
- its configuration changed to a budget the account cannot cover: the new pre-flight
  FAILs, CapitalAllocated turns False with a warning Event naming both amounts, and the
  runner of the configuration that passed keeps trading, untouched; the status says so
  and that open positions keep their stop-loss orders on the exchange.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.validation.test_preflight_operator import (
    mount_secret,
    preflight_job,
    replicas,
    start_live_strategy,
    strategy_status,
)
from tests.e2e.validation.test_validation_run_operator import finish_job, run_job_pod
from tests.fakes.binance import FakeBinance
from tests.fixtures.kubetrade_operator import OperatorBed, wait_for


def _capital(bed: OperatorBed) -> dict[str, Any]:
    return bed.condition("strategy", "btc-live", "CapitalAllocated") or {}


def test_a_budget_change_the_account_cannot_cover_keeps_the_old_runner(
    operator_bed: OperatorBed, fake_binance: FakeBinance, tmp_path: Path
) -> None:
    bed = operator_bed
    start_live_strategy(bed, fake_binance, "500")
    first = preflight_job(bed, set())
    mount_secret(bed, first, tmp_path / "keys-1")
    assert run_job_pod(bed, first, tmp_path) == 0  # 400 USDT fits in 500 (WARNs only)
    finish_job(bed, first["metadata"]["name"], ok=True)
    wait_for(lambda: replicas(bed) == 1, 30, "live runner started")
    wait_for(lambda: _capital(bed).get("reason") == "BudgetFits", 30, "CapitalAllocated True")
    assert _capital(bed)["status"] == "True"
    passed = strategy_status(bed)["preflightPassedHash"]

    # a new budget of 5,000 USDT: a new configuration, a new pre-flight, which FAILs
    bed.kubectl("patch", "strategy", "btc-live", "--type=merge", "-p",
                '{"spec":{"initialCapital":5000}}')
    second = preflight_job(bed, {first["metadata"]["name"]})
    mount_secret(bed, second, tmp_path / "keys-2")
    assert run_job_pod(bed, second, tmp_path) == 1
    finish_job(bed, second["metadata"]["name"], ok=False)
    wait_for(lambda: _capital(bed).get("status") == "False", 30, "CapitalAllocated False")
    capital = _capital(bed)
    assert capital["reason"] == "BudgetExceedsFreeBalance"
    assert "5000" in capital["message"] and "500" in capital["message"]
    events = json.loads(bed.kubectl("get", "events", "-o", "json"))["items"]
    warned = [e for e in events if e.get("reason") == "BudgetExceedsFreeBalance"]
    assert warned and warned[0]["type"] == "Warning"
    # the old protections stay: its runner trades on, untouched, and the status says so
    deployment = bed.get("deployment", "kubetrade-runner-btc-live")
    assert deployment is not None and deployment["spec"]["replicas"] == 1
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["kubetrade.io/config-hash"] == passed
    status = strategy_status(bed)
    assert status["configHash"] == passed and status["preflightPassedHash"] == passed
    deployed = bed.condition("strategy", "btc-live", "Deployed") or {}
    assert deployed["reason"] == "HeldForPreflight"
    # the Job's failure reaches PreflightPassed on the operator's next look at the Job,
    # which can come after CapitalAllocated (read from the stored report)
    wait_for(lambda: (bed.condition("strategy", "btc-live", "PreflightPassed") or {}).get(
        "status") == "False", 30, "PreflightPassed False")
    pre = bed.condition("strategy", "btc-live", "PreflightPassed") or {}
    assert f"keeps trading with config {passed}" in pre["message"]
    assert "open positions keep their stop-loss orders on the exchange" in pre["message"]
