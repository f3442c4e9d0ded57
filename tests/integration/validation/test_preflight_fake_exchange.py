"""`kubetrade preflight` against the fake Binance server (real ccxt client, real signing).

Starting from a setup where every check passes, each runbook FAIL and WARN (and ours)
is triggered alone; the exit code is non-zero exactly when something FAILs. Results
land in Redis for /api/preflight and every WARN/FAIL raises an alert.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from kubetrade.cli import main
from kubetrade.state.alerts import Alert
from kubetrade.state.keys import Keys
from tests.fakes.binance import FakeBinance
from tests.unit.validation._data import shared_data

GOOD_PASSWORD = "Corr3ct-Horse-Battery-Staple"
RUNBOOK = ["API Key Validity", "Sufficient Balance", "Symbol Availability",
           "Rate Limit Configured", "Stop-Loss Configured", "Daily Loss Limit",
           "Password Changed", "Paper Validation"]
OURS = ["API Key Without Withdrawal", "Clock Skew", "Capital Allocation"]


def strategy_file(tmp_path: Path, symbols: str = '["BTC/USDT"]', risk: str = "{}") -> Path:
    path = tmp_path / "live.yaml"
    path.write_text(f"""apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {{name: btc-live}}
spec:
  algorithm: rsi-mean-reversion
  parameters: {{period: 7, oversold: 25, overbought: 75}}
  symbols: {symbols}
  timeframe: 1h
  mode: live
  exchange: {{name: binance, testnet: true, credentialsSecret: binance-keys}}
  riskPolicyRef: careful
---
apiVersion: kubetrade.io/v1alpha1
kind: RiskPolicy
metadata: {{name: careful}}
spec: {risk}
""")
    return path


@pytest.fixture
def setup(tmp_path: Path, fake_binance: FakeBinance, monkeypatch: pytest.MonkeyPatch,
          capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """Everything right: keys, funds, symbol, password, and a GO validation of this very
    strategy produced by `kubetrade validate --replay` over real BTC/USDT candles."""
    for var in ("REDIS_URL", "KUBETRADE_RATE_LIMIT", "BINANCE_TESTNET", "STOP_LOSS_PCT",
                "DAILY_LOSS_LIMIT_PCT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KUBETRADE_EXCHANGE_URL", fake_binance.url)
    monkeypatch.setenv("BINANCE_API_KEY", fake_binance.api_key)
    monkeypatch.setenv("BINANCE_SECRET_KEY", fake_binance.secret)
    monkeypatch.setenv("KUBETRADE_SECRETS_DIR", str(tmp_path / "no-secrets"))
    monkeypatch.setenv("DASHBOARD_PASSWORD", GOOD_PASSWORD)
    reports = tmp_path / "data"
    spec = strategy_file(tmp_path)
    code = main(["validate", "--strategy-file", str(spec), "--report-dir", str(reports),
                 "--replay", str(shared_data("binance-BTCUSDT-1h-2024-08.csv"))])
    assert code == 0, capsys.readouterr()
    capsys.readouterr()
    return {"tmp": tmp_path, "spec": spec, "reports": reports}


def preflight(setup: dict[str, Any], capsys: pytest.CaptureFixture[str],
              spec: Path | None = None) -> tuple[int, dict[str, Any]]:
    code = main(["preflight", "--strategy-file", str(spec or setup["spec"]),
                 "--report-dir", str(setup["reports"]), "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def not_passing(report: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"] if c["status"] != "PASS"}


def test_all_pass_against_the_fake_exchange(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = preflight(setup, capsys)
    assert [c["name"] for c in report["checks"]] == RUNBOOK + OURS
    assert not_passing(report) == {}, report
    assert code == 0 and report["status"] == "PASS"
    assert [c["ours"] for c in report["checks"]] == [False] * 8 + [True] * 3


def test_table_output(setup: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preflight", "--strategy-file", str(setup["spec"]),
                 "--report-dir", str(setup["reports"])]) == 0
    table = capsys.readouterr().out
    for name in RUNBOOK:
        assert name in table
    assert "Clock Skew (ours)" in table and "PASS" in table


def test_bad_api_key_fails(setup: dict[str, Any], capsys: pytest.CaptureFixture[str],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BINANCE_SECRET_KEY", "not-the-secret-0123456789")
    code, report = preflight(setup, capsys)
    assert code == 1
    # the balance and the key's permissions cannot be read with a refused key either
    assert not_passing(report) == {"API Key Validity": "FAIL", "Sufficient Balance": "FAIL",
                                   "API Key Without Withdrawal": "WARN",
                                   "Capital Allocation": "WARN"}
    text = json.dumps(report)
    assert "not-the-secret-0123456789" not in text and "Signature" in text


def test_an_unreachable_exchange_is_not_reported_as_a_refused_key(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trader told "the exchange refused the key" would rotate a good key; when nothing
    answered, the check says so and names the error."""
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("KUBETRADE_EXCHANGE_URL", f"http://127.0.0.1:{port}")
    code, report = preflight(setup, capsys)
    assert code == 1
    key = next(c for c in report["checks"] if c["name"] == "API Key Validity")
    assert key["status"] == "FAIL"
    assert "refused the key" not in key["message"], key
    assert key["message"].startswith("could not check the key, the exchange did not answer"), key


def test_a_redis_that_does_not_answer_leaves_the_verdict_and_says_so(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis is an input of the pre-flight Job (latest validation, shared budgets) and
    where it stores results; a blip must not turn a PASS into a traceback and a FAIL."""
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{port}/0")
    code = main(["preflight", "--strategy-file", str(setup["spec"]),
                 "--report-dir", str(setup["reports"]), "--json"])
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert code == 0 and report["status"] == "PASS", out.err
    assert "preflight.not_published" in out.err and "Traceback" not in out.err


def test_missing_api_key_fails(setup: dict[str, Any], capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BINANCE_API_KEY")
    monkeypatch.delenv("BINANCE_SECRET_KEY")
    code, report = preflight(setup, capsys)
    assert code == 1 and not_passing(report)["API Key Validity"] == "FAIL"


def test_keys_from_the_secrets_dir_are_used(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    fake_binance: FakeBinance,
) -> None:
    monkeypatch.delenv("BINANCE_API_KEY")
    monkeypatch.delenv("BINANCE_SECRET_KEY")
    secrets = setup["tmp"] / "secrets"
    secrets.mkdir()
    (secrets / "apiKey").write_text(fake_binance.api_key + "\n")
    (secrets / "secretKey").write_text(fake_binance.secret + "\n")
    monkeypatch.setenv("KUBETRADE_SECRETS_DIR", str(secrets))
    code, report = preflight(setup, capsys)
    assert code == 0 and not_passing(report) == {}


def test_balance_below_100_usd_fails(setup: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                     fake_binance: FakeBinance) -> None:
    # a budget of 100 (initialCapital), so only the runbook's $100 minimum is in play
    spec = setup["tmp"] / "small.yaml"
    spec.write_text(
        setup["spec"].read_text().replace("mode: live", "mode: live\n  initialCapital: 100"))
    fake_binance.set_balance("USDT", "99.99")
    code, report = preflight(setup, capsys, spec)
    assert code == 1 and not_passing(report) == {"Sufficient Balance": "FAIL",
                                                 "Capital Allocation": "FAIL"}
    fake_binance.set_balance("USDT", "100")
    code, report = preflight(setup, capsys, spec)
    assert code == 0 and not_passing(report) == {}


def test_budget_over_the_free_balance_fails(setup: dict[str, Any],
                                            capsys: pytest.CaptureFixture[str],
                                            fake_binance: FakeBinance) -> None:
    """Capital Allocation (issue 15 item 3): initialCapital 10000 on an account with 9000
    USDT free is refused, naming both amounts; the runbook's balance check passes."""
    fake_binance.set_balance("USDT", "9000")
    code, report = preflight(setup, capsys)
    assert code == 1 and not_passing(report) == {"Capital Allocation": "FAIL"}
    [check] = [c for c in report["checks"] if c["name"] == "Capital Allocation"]
    assert "budget 10000 USDT (initialCapital" in check["message"]
    assert "free 9000" in check["message"] and check["ours"] is True


def test_missing_symbol_fails(setup: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    spec = strategy_file(setup["tmp"], symbols='["BTC/USDT", "DOGE/USDT"]')
    code, report = preflight(setup, capsys, spec)
    assert code == 1 and not_passing(report) == {"Symbol Availability": "FAIL"}
    assert "DOGE/USDT" in next(c["message"] for c in report["checks"]
                               if c["name"] == "Symbol Availability")


def test_rate_limiter_off_warns(setup: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBETRADE_RATE_LIMIT", "off")
    code, report = preflight(setup, capsys)
    assert code == 0 and not_passing(report) == {"Rate Limit Configured": "WARN"}


def test_zero_stop_loss_fails(setup: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    spec = strategy_file(setup["tmp"], risk="{stopLossPct: 0}")
    code, report = preflight(setup, capsys, spec)
    assert code == 1 and not_passing(report) == {"Stop-Loss Configured": "FAIL"}


def test_zero_daily_loss_limit_fails(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    spec = strategy_file(setup["tmp"], risk="{dailyLossLimitPct: 0}")
    code, report = preflight(setup, capsys, spec)
    assert code == 1 and not_passing(report) == {"Daily Loss Limit": "FAIL"}


@pytest.mark.parametrize("password", [None, "", "changeme", "admin"])
def test_default_or_unset_password_warns(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    password: str | None,
) -> None:
    if password is None:
        monkeypatch.delenv("DASHBOARD_PASSWORD")
    else:
        monkeypatch.setenv("DASHBOARD_PASSWORD", password)
    code, report = preflight(setup, capsys)
    assert code == 0 and not_passing(report) == {"Password Changed": "WARN"}


def test_no_go_report_warns(setup: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    for path in setup["reports"].glob("*.json"):
        path.unlink()
    code, report = preflight(setup, capsys)
    assert code == 0 and not_passing(report) == {"Paper Validation": "WARN"}


def test_latest_report_no_go_warns(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # a later validation of the same strategy with a stricter bar says NO-GO
    assert main(["validate", "--strategy-file", str(setup["spec"]),
                 "--report-dir", str(setup["reports"]), "--min-trades", "500",
                 "--replay", str(shared_data("binance-BTCUSDT-1h-2024-08.csv"))]) == 3
    capsys.readouterr()
    code, report = preflight(setup, capsys)
    assert code == 0 and not_passing(report) == {"Paper Validation": "WARN"}
    msg = next(c["message"] for c in report["checks"] if c["name"] == "Paper Validation")
    assert "NO-GO" in msg and "Min Trades" in msg


def test_withdrawal_enabled_key_fails(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str], fake_binance: FakeBinance
) -> None:
    fake_binance.state.api_restrictions["enableWithdrawals"] = True
    code, report = preflight(setup, capsys)
    assert code == 1 and not_passing(report) == {"API Key Without Withdrawal": "FAIL"}


@pytest.mark.parametrize(("skew_ms", "status"),
                         [(2500, "WARN"), (-2500, "WARN"), (-6000, "FAIL")])
def test_clock_skew_warns_then_fails(setup: dict[str, Any], capsys: pytest.CaptureFixture[str],
                          fake_binance: FakeBinance, skew_ms: int, status: str) -> None:
    fake_binance.set_clock_skew(skew_ms)
    code, report = preflight(setup, capsys)
    assert not_passing(report) == {"Clock Skew": status}, report
    assert code == (1 if status == "FAIL" else 0)


async def test_results_stored_for_the_api_and_alerts_raised(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    redis_client: Any, redis_url: str, fake_binance: FakeBinance,  # Any: untyped replies
) -> None:
    prefix = "pf-test"
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("KUBETRADE_REDIS_PREFIX", prefix)
    monkeypatch.setenv("DASHBOARD_PASSWORD", "changeme")
    fake_binance.set_balance("USDT", "5")
    keys = Keys(prefix)
    import asyncio

    # main() runs its own event loop; run it off this test's loop
    code = await asyncio.to_thread(main, ["preflight", "--strategy-file", str(setup["spec"]),
                                          "--report-dir", str(setup["reports"]), "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 1
    stored = json.loads(await redis_client.get(keys.preflight))
    assert stored == printed
    entries = await redis_client.xrange(keys.alerts)
    alerts = [Alert.from_stream(i, f) for i, f in entries]
    assert sorted((a.kind.value, a.data["check"]) for a in alerts) == [
        ("preflight_fail", "Capital Allocation"), ("preflight_fail", "Sufficient Balance"),
        ("preflight_warn", "Password Changed")]
    assert all(a.strategy == "btc-live" for a in alerts)
    assert "changeme" not in json.dumps([a.text for a in alerts]) + json.dumps(stored)
    audit = await redis_client.xrange(keys.audit)
    assert any(f["action"] == "preflight" for _, f in audit)


def test_without_a_risk_policy_the_runbook_env_settings_apply(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = setup["tmp"] / "no-policy.yaml"
    spec.write_text(setup["spec"].read_text().split("---")[0])
    monkeypatch.setenv("STOP_LOSS_PCT", "0")
    monkeypatch.setenv("DAILY_LOSS_LIMIT_PCT", "0")
    code, report = preflight(setup, capsys, spec)
    assert code == 1
    assert not_passing(report) == {"Stop-Loss Configured": "FAIL", "Daily Loss Limit": "FAIL"}
    monkeypatch.setenv("STOP_LOSS_PCT", "5.0")
    monkeypatch.setenv("DAILY_LOSS_LIMIT_PCT", "3.0")
    code, report = preflight(setup, capsys, spec)
    assert code == 0 and not_passing(report) == {}


def test_exchange_down_fails_what_cannot_be_verified(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str], fake_binance: FakeBinance
) -> None:
    fake_binance.start_outage()
    try:
        code, report = preflight(setup, capsys)
    finally:
        fake_binance.end_outage()
    assert code == 1
    assert not_passing(report) == {
        "API Key Validity": "FAIL", "Sufficient Balance": "FAIL", "Symbol Availability": "FAIL",
        "API Key Without Withdrawal": "WARN", "Clock Skew": "WARN", "Capital Allocation": "WARN"}


async def test_api_serves_the_latest_preflight_and_validation(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    redis_url: str, make_api: Any,
) -> None:
    import asyncio

    api = await make_api()
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("KUBETRADE_REDIS_PREFIX", api.keys.prefix)
    assert await asyncio.to_thread(main, [
        "validate", "--strategy-file", str(setup["spec"]), "--report-dir", str(setup["reports"]),
        "--replay", str(shared_data("binance-BTCUSDT-1h-2024-08.csv"))]) == 0
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["preflight", "--strategy-file", str(setup["spec"]),
                                          "--report-dir", str(setup["reports"]), "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0
    r = await api.client.get("/api/preflight", headers=await api.auth())
    assert r.status_code == 200
    body = r.json()
    assert body["available"] is True and body["report"] == printed
    assert [c["name"] for c in body["report"]["checks"]][:8] == RUNBOOK
    assert body["validation"]["decision"] == "GO"
    assert body["validation"]["strategy"] == "btc-live"


def test_go_for_other_parameters_warns(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    spec = setup["tmp"] / "retuned.yaml"
    spec.write_text(setup["spec"].read_text().replace("period: 7,", "period: 9,"))
    code, report = preflight(setup, capsys, spec)
    assert code == 0 and not_passing(report) == {"Paper Validation": "WARN"}
    msg = next(c["message"] for c in report["checks"] if c["name"] == "Paper Validation")
    assert "different parameters" in msg
