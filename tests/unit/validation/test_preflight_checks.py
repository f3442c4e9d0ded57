"""Each pre-flight check over injected inputs: the runbook's statuses, one at a time."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import pytest

from kubetrade.domain import preflight as pf
from kubetrade.domain.models import Balance, MarketInfo
from kubetrade.domain.preflight import CheckStatus as S

MARKET = MarketInfo("BTC/USDT", "BTC", "USDT", Decimal("0.01"), Decimal("0.00001"),
                    Decimal("0.00001"), Decimal("5"))
GO_REPORT = {"decision": "GO", "run": {"strategy": "btc-sma"}, "finished_ms": 2, "criteria": []}


def good() -> pf.PreflightInputs:
    return pf.PreflightInputs(
        strategy="btc-sma",
        mode="live",
        symbols=("BTC/USDT",),
        api_key=pf.ApiKeyProbe(has_credentials=True, ok=True),
        balances={"USDT": Balance("USDT", Decimal("250")), "BTC": Balance("BTC", Decimal("1"))},
        markets={"BTC/USDT": MARKET},
        rate_limit=pf.RateLimitConfig(True, 10, Decimal(60)),
        stop_loss_pct=Decimal("5.0"),
        daily_loss_limit_pct=Decimal("3.0"),
        dashboard_password="a-real-Passw0rd!",
        reports=(GO_REPORT,),
        permissions=pf.KeyPermissions(enable_withdrawals=False, enable_spot_trading=True),
        local_ms=1_000_000,
        server_ms=1_000_100,
    )


def test_all_good_passes_ten_checks_in_runbook_order() -> None:
    report = pf.run_checks(good(), ts_ms=5)
    assert [r.name for r in report.results] == [*pf.RUNBOOK_CHECKS, *pf.OUR_CHECKS]
    assert [r.name for r in report.results[:8]] == [
        "API Key Validity", "Sufficient Balance", "Symbol Availability",
        "Rate Limit Configured", "Stop-Loss Configured", "Daily Loss Limit",
        "Password Changed", "Paper Validation",
    ]
    assert all(r.status is S.PASS for r in report.results), report.table()
    assert report.passed and report.status is S.PASS
    assert [r.ours for r in report.results] == [False] * 8 + [True] * 2


CASES = [
    ("API Key Validity", S.FAIL, {"api_key": pf.ApiKeyProbe(True, False, "Invalid API-key")}),
    ("API Key Validity", S.FAIL, {"api_key": pf.ApiKeyProbe(False, False)}),
    ("Sufficient Balance", S.FAIL, {"balances": {"USDT": Balance("USDT", Decimal("99.99"))}}),
    ("Sufficient Balance", S.FAIL, {"balances": None, "balances_error": "auth"}),
    ("Symbol Availability", S.FAIL, {"symbols": ("BTC/USDT", "DOGE/XYZ")}),
    ("Rate Limit Configured", S.WARN, {"rate_limit": pf.RateLimitConfig(False, 10, Decimal(60))}),
    ("Rate Limit Configured", S.WARN, {"rate_limit": pf.RateLimitConfig(True, 0, Decimal(60))}),
    ("Stop-Loss Configured", S.FAIL, {"stop_loss_pct": Decimal(0)}),
    ("Daily Loss Limit", S.FAIL, {"daily_loss_limit_pct": Decimal(0)}),
    ("Password Changed", S.WARN, {"dashboard_password": None}),
    ("Password Changed", S.WARN, {"dashboard_password": "changeme"}),
    ("Password Changed", S.WARN, {"dashboard_password": " LetMeIn "}),  # one list with local
    ("Paper Validation", S.WARN, {"reports": ()}),
    ("Paper Validation", S.WARN, {"reports": ({**GO_REPORT, "run": {"strategy": "other"}},)}),
    ("Paper Validation", S.WARN, {"reports": (
        GO_REPORT, {"decision": "NO-GO", "run": {"strategy": "btc-sma"}, "finished_ms": 3,
                    "criteria": [{"name": "Win Rate", "passed": False}]})}),
    ("API Key Without Withdrawal", S.FAIL, {"permissions": pf.KeyPermissions(True, True)}),
    ("API Key Without Withdrawal", S.WARN, {"permissions": pf.KeyPermissions(None, error="404")}),
    ("Clock Skew", S.WARN, {"server_ms": 1_000_000 - 1500}),
    ("Clock Skew", S.FAIL, {"server_ms": 1_000_000 + 6000}),
]


@pytest.mark.parametrize(("name", "status", "change"), CASES)
def test_each_problem_trips_exactly_its_check(
    name: str, status: S, change: dict[str, object]
) -> None:
    report = pf.run_checks(replace(good(), **change), ts_ms=5)  # type: ignore[arg-type]
    tripped = [(r.name, r.status) for r in report.results if r.status is not S.PASS]
    assert tripped == [(name, status)], report.table()
    assert report.passed is (status is not S.FAIL)
    assert report.result(name).message


def test_password_never_appears_in_output() -> None:
    report = pf.run_checks(replace(good(), dashboard_password="changeme"), ts_ms=5)
    assert "changeme" not in report.to_json() and "changeme" not in report.table()
    report = pf.run_checks(good(), ts_ms=5)
    assert "a-real-Passw0rd!" not in report.to_json()


def test_balance_counts_only_usd_assets_and_boundary_is_inclusive() -> None:
    bal = {"USDC": Balance("USDC", Decimal(60)), "USDT": Balance("USDT", Decimal(40)),
           "BTC": Balance("BTC", Decimal(5))}
    assert pf.check_balance(bal).status is S.PASS
    assert pf.check_balance({"BTC": Balance("BTC", Decimal(5))}).status is S.FAIL


def test_json_and_table_forms() -> None:
    report = pf.run_checks(replace(good(), stop_loss_pct=Decimal(0)), ts_ms=5)
    data = json.loads(report.to_json())
    assert data["status"] == "FAIL" and data["passed"] is False
    assert data["summary"] == {"PASS": 9, "WARN": 0, "FAIL": 1}
    assert {c["name"]: c["status"] for c in data["checks"]}["Stop-Loss Configured"] == "FAIL"
    table = report.table()
    assert "Stop-Loss Configured" in table and "Clock Skew (ours)" in table
    assert "must not start" in table


def test_a_go_for_other_parameters_does_not_count() -> None:
    report = {**GO_REPORT, "run": {"strategy": "btc-sma", "algorithm": "sma-crossover",
                                   "parameters": {"fastPeriod": 10, "slowPeriod": 30},
                                   "timeframe": "1m"}}
    same = {"algorithm": "sma-crossover", "parameters": {"fastPeriod": 10, "slowPeriod": 30},
            "timeframe": "1m"}
    assert pf.check_paper_validation([report], "btc-sma", same).status is S.PASS
    other = {**same, "parameters": {"fastPeriod": 12, "slowPeriod": 30}}
    result = pf.check_paper_validation([report], "btc-sma", other)
    assert result.status is S.WARN and "different parameters" in result.message
    assert pf.check_paper_validation([report], "btc-sma", {**same, "timeframe": "5m"}).status \
        is S.WARN
    # a report that does not record what was run is judged by its decision alone
    assert pf.check_paper_validation([GO_REPORT], "btc-sma", other).status is S.PASS
