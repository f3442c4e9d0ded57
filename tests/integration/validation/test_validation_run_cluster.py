"""A ValidationRun in a real kube-apiserver, run the way its Job runs it.

The test bed has no kubelet, so the pod's command (`kubetrade validate --validation-run
NAME --namespace NS`) runs here as a local process with a kubeconfig; everything it
touches (the ValidationRun, Strategy and RiskPolicy objects, the status subresource,
the report ConfigMap) is the real API server's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.bed import ControlPlane
from tests.unit.validation._data import shared_data

pytestmark = pytest.mark.usefixtures("kubetrade_crds")


def manifests(data: Path, criteria: str = "{}") -> str:
    return f"""apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {{name: ltc-rsi}}
spec:
  algorithm: rsi-mean-reversion
  parameters: {{period: 5, oversold: 20, overbought: 60}}
  symbols: ["LTC/BTC"]
  timeframe: 5m
  mode: paper
  riskPolicyRef: default
---
apiVersion: kubetrade.io/v1alpha1
kind: RiskPolicy
metadata: {{name: default}}
spec: {{stopLossPct: 5, dailyLossLimitPct: 3}}
---
apiVersion: kubetrade.io/v1alpha1
kind: ValidationRun
metadata: {{name: ltc-check}}
spec:
  strategyRef: ltc-rsi
  replay: {data}
  criteria: {criteria}
"""


def run_job_command(apiserver: ControlPlane, namespace: str, tmp_path: Path,
                    *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "KUBERNETES_SERVICE_HOST")}
    env["KUBECONFIG"] = str(apiserver.kubeconfig)
    return subprocess.run(
        [sys.executable, "-m", "kubetrade", "validate", "--strategy", "ltc-rsi",
         "--validation-run", "ltc-check", "--namespace", namespace,
         "--report-dir", str(tmp_path / "data"), *args],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )


def get(apiserver: ControlPlane, namespace: str, *what: str) -> Any:
    out = apiserver.kubectl("-n", namespace, "get", *what, "-o", "json").stdout
    return json.loads(out)


def test_validation_run_ends_go_with_report_in_its_config_map(
    apiserver: ControlPlane, k8s_namespace: str, tmp_path: Path
) -> None:
    data = shared_data("freqtrade-LTCBTC-5m-2018-01.csv")
    apiserver.kubectl("-n", k8s_namespace, "apply", "-f", "-", input=manifests(data))
    proc = run_job_command(apiserver, k8s_namespace, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "GO" in proc.stdout

    vr = get(apiserver, k8s_namespace, "validationrun", "ltc-check")
    status = vr["status"]
    assert status["decision"] == "GO"
    assert status["progress"] == "100%" and status["phase"] == "Succeeded"
    assert status["failedCriteria"] == []
    cm = get(apiserver, k8s_namespace, "configmap", status["reportConfigMap"])
    report = json.loads(cm["data"]["report.json"])
    assert report["decision"] == "GO"
    assert report["run"]["strategy"] == "ltc-rsi"
    assert report["run"]["namespace"] == k8s_namespace
    assert report["run"]["validation_run"] == "ltc-check"
    assert report["metrics"]["trades"] >= 10
    assert len(report["trades"]) == report["metrics"]["trades"]
    assert "GO" in cm["data"]["summary.txt"]
    owner = cm["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "ValidationRun", "ltc-check", vr["metadata"]["uid"])
    # the printer column shows the decision
    table = apiserver.kubectl("-n", k8s_namespace, "get", "validationrun", "ltc-check").stdout
    header, row = table.strip().splitlines()
    assert "DECISION" in header and " GO " in f" {row} "


def test_validation_run_criteria_from_its_spec_give_no_go(
    apiserver: ControlPlane, k8s_namespace: str, tmp_path: Path
) -> None:
    data = shared_data("freqtrade-LTCBTC-5m-2018-01.csv")
    apiserver.kubectl("-n", k8s_namespace, "apply", "-f", "-",
                      input=manifests(data, "{minTrades: 500, maxDrawdownPct: 15}"))
    proc = run_job_command(apiserver, k8s_namespace, tmp_path)
    # a NO-GO is a completed run: the Job must not fail and be retried
    assert proc.returncode == 0, proc.stderr
    status = get(apiserver, k8s_namespace, "validationrun", "ltc-check")["status"]
    assert status["decision"] == "NO-GO"
    (failed,) = status["failedCriteria"]
    assert failed.startswith("FAIL Min Trades:") and "short by" in failed
    report = json.loads(get(apiserver, k8s_namespace, "configmap",
                            status["reportConfigMap"])["data"]["report.json"])
    assert report["run"]["criteria"]["min_trades"] == 500
    assert [c["key"] for c in report["criteria"] if not c["passed"]] == ["min_trades"]


def test_a_run_that_cannot_complete_marks_the_validation_run_failed(
    apiserver: ControlPlane, k8s_namespace: str, tmp_path: Path
) -> None:
    apiserver.kubectl("-n", k8s_namespace, "apply", "-f", "-",
                      input=manifests(tmp_path / "missing.csv"))
    proc = run_job_command(apiserver, k8s_namespace, tmp_path)
    assert proc.returncode == 2
    assert "missing.csv is not a file" in proc.stderr
    status = get(apiserver, k8s_namespace, "validationrun", "ltc-check")["status"]
    assert status["phase"] == "Failed" and "missing.csv is not a file" in status["progress"]
    assert "decision" not in status


def test_preflight_reads_the_strategy_policy_and_validations_from_the_cluster(
    apiserver: ControlPlane, k8s_namespace: str, tmp_path: Path, fake_binance: Any
) -> None:
    data = shared_data("freqtrade-LTCBTC-5m-2018-01.csv")
    apiserver.kubectl("-n", k8s_namespace, "apply", "-f", "-",
                      input=manifests(data).replace("stopLossPct: 5", "stopLossPct: 0"))
    assert run_job_command(apiserver, k8s_namespace, tmp_path).returncode == 0
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)}
    env.update(KUBECONFIG=str(apiserver.kubeconfig), KUBETRADE_EXCHANGE_URL=fake_binance.url,
               BINANCE_API_KEY=fake_binance.api_key, BINANCE_SECRET_KEY=fake_binance.secret,
               DASHBOARD_PASSWORD="Corr3ct-Horse-Battery-Staple",
               KUBETRADE_SECRETS_DIR=str(tmp_path / "none"))
    proc = subprocess.run(
        [sys.executable, "-m", "kubetrade", "preflight", "--strategy", "ltc-rsi",
         "--namespace", k8s_namespace, "--report-dir", str(tmp_path / "empty"), "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    # the RiskPolicy in the cluster has no stop-loss; the GO comes from the ValidationRun
    assert statuses["Stop-Loss Configured"] == "FAIL"
    assert statuses["Paper Validation"] == "PASS"
    assert report["namespace"] == k8s_namespace
    assert [n for n, s in statuses.items() if s != "PASS"] == ["Stop-Loss Configured"]


def test_validate_a_strategy_read_from_the_cluster(
    apiserver: ControlPlane, k8s_namespace: str, tmp_path: Path
) -> None:
    data = shared_data("freqtrade-LTCBTC-5m-2018-01.csv")
    # the cluster's RiskPolicy is the one applied: an 80% position makes a deeper drawdown
    apiserver.kubectl("-n", k8s_namespace, "apply", "-f", "-", input=manifests(data).replace(
        "dailyLossLimitPct: 3}", "dailyLossLimitPct: 3, maxPositionSizePct: 80}"))
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)}
    env["KUBECONFIG"] = str(apiserver.kubeconfig)
    proc = subprocess.run(
        [sys.executable, "-m", "kubetrade", "validate", "--strategy", "ltc-rsi",
         "--namespace", k8s_namespace, "--replay", str(data),
         "--report-dir", str(tmp_path / "data")],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode in (0, 3), proc.stderr
    (path,) = (tmp_path / "data").glob("validation_report_*.json")
    report = json.loads(path.read_text())
    assert report["run"]["strategy"] == "ltc-rsi"
    assert report["run"]["namespace"] == k8s_namespace
    assert report["run"]["risk"]["maxPositionSizePct"] == "80"
    assert report["run"]["validation_run"] == ""
    # no ValidationRun was named, so none was touched
    vr = get(apiserver, k8s_namespace, "validationrun", "ltc-check")
    assert "decision" not in (vr.get("status") or {})


def test_terminated_forward_run_marks_the_validation_run_failed(
    apiserver: ControlPlane, k8s_namespace: str, tmp_path: Path, fake_binance: Any
) -> None:
    import signal
    import time

    forward = manifests(tmp_path / "unused.csv").replace(
        f"  replay: {tmp_path / 'unused.csv'}\n", "  duration: 48h\n")
    apiserver.kubectl("-n", k8s_namespace, "apply", "-f", "-", input=forward)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)}
    env.update(KUBECONFIG=str(apiserver.kubeconfig), KUBETRADE_EXCHANGE_URL=fake_binance.url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubetrade", "validate", "--strategy", "ltc-rsi",
         "--validation-run", "ltc-check", "--namespace", k8s_namespace,
         "--report-dir", str(tmp_path / "data")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        status: dict[str, Any] = {}
        while time.monotonic() < deadline and status.get("phase") != "Running":
            assert proc.poll() is None, proc.communicate()
            status = get(apiserver, k8s_namespace, "validationrun", "ltc-check").get("status", {})
            time.sleep(0.2)
        assert status["phase"] == "Running" and status["progress"].startswith("0%")
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    status = get(apiserver, k8s_namespace, "validationrun", "ltc-check")["status"]
    assert status["phase"] == "Failed" and "SIGTERM" in status["progress"]
    assert "decision" not in status
    assert not (tmp_path / "data").exists()
