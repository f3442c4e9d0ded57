"""`kubectl apply` a ValidationRun with the operator running: it ends GO or NO-GO in its
status, with the report in the ConfigMap the status names.

The bed has no kubelet and no Job controller, so the test plays both: it runs the
operator-rendered Job's container command as a local process (with the Job's env and
the Job's service account, so RBAC is the real one), then writes the Job status the
Job controller would write from the exit code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from kubetrade.state.keys import Keys
from tests.fixtures.kubetrade_operator import OperatorBed, wait_for
from tests.unit.validation._data import shared_data

MANIFESTS = """apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {{name: {strategy}}}
spec:
  algorithm: {algorithm}
  parameters: {params}
  symbols: ["{symbol}"]
  timeframe: {timeframe}
  mode: paper
---
apiVersion: kubetrade.io/v1alpha1
kind: ValidationRun
metadata: {{name: {run}}}
spec:
  strategyRef: {strategy}
  replay: {replay}
"""


def run_job_pod(bed: OperatorBed, job: dict[str, Any], cwd: Path) -> int:
    """The Job's pod, as a local process: its command, its env, its service account."""
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "REDIS"))}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == (
            "metadata.namespace"
        ):
            env[item["name"]] = bed.ns
        elif item.get("valueFrom", {}).get("fieldRef"):
            env[item["name"]] = f"{job['metadata']['name']}-pod"
    env["KUBECONFIG"] = str(bed.apiserver.kubeconfig_for_service_account(
        bed.ns, pod["serviceAccountName"]))
    command = [*container.get("command", []), *container.get("args", [])]
    assert command[0] == "kubetrade"
    proc = subprocess.run([sys.executable, "-m", *command], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode


def finish_job(bed: OperatorBed, name: str, ok: bool) -> None:
    """What the Job controller writes when the pod exits."""
    t = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    bed.kubectl("patch", "job", name, "--subresource=status", "--type=merge", "-p",
                json.dumps({"status": {"startTime": t, "active": 1}}))
    types = ["SuccessCriteriaMet", "Complete"] if ok else ["FailureTarget", "Failed"]
    body: dict[str, Any] = {
        "active": 0,
        ("succeeded" if ok else "failed"): 1,
        "conditions": [{"type": c, "status": "True", "lastTransitionTime": t,
                        "lastProbeTime": t,
                        **({} if ok else {"reason": "BackoffLimitExceeded",
                                          "message": "exit code"})} for c in types],
    }
    if ok:
        body["completionTime"] = t
    bed.kubectl("patch", "job", name, "--subresource=status", "--type=merge", "-p",
                json.dumps({"status": body}))


def validate_in_cluster(
    bed: OperatorBed, tmp_path: Path, run: str, **fields: str
) -> dict[str, Any]:
    bed.start()
    bed.apply(MANIFESTS.format(run=run, **fields))
    job = wait_for(lambda: bed.get("job", f"validation-{run}"), 60, "validation Job")
    code = run_job_pod(bed, job, tmp_path)
    assert code == 0
    finish_job(bed, f"validation-{run}", ok=True)

    def done() -> dict[str, Any] | None:
        status = (bed.get("validationrun", run) or {}).get("status") or {}
        return status if status.get("phase") == "Succeeded" and status.get("decision") else None

    finished: dict[str, Any] = wait_for(done, 30, "ValidationRun Succeeded with a decision")
    return finished


def test_validation_run_applied_with_kubectl_ends_go_with_report(
    operator_bed: OperatorBed, tmp_path: Path
) -> None:
    bed = operator_bed
    status = validate_in_cluster(
        bed, tmp_path, "ltc-go", strategy="ltc-rsi", algorithm="rsi-mean-reversion",
        params="{period: 5, oversold: 20, overbought: 60}", symbol="LTC/BTC", timeframe="5m",
        replay=str(shared_data("freqtrade-LTCBTC-5m-2018-01.csv")),
    )
    assert status["decision"] == "GO" and status["progress"] == "100%"
    assert status["job"] == "validation-ltc-go"
    cm = bed.get("configmap", status["reportConfigMap"])
    assert cm is not None
    report = json.loads(cm["data"]["report.json"])
    assert report["decision"] == "GO" and report["run"]["strategy"] == "ltc-rsi"
    assert {c["name"] for c in report["criteria"]} == {
        "Min Trades", "Win Rate", "Sharpe Ratio", "Max Drawdown"}
    header, row = bed.kubectl("get", "validationrun", "ltc-go").strip().splitlines()
    assert "DECISION" in header and " GO " in f" {row} " and "Succeeded" in row
    # the pod had REDIS_URL from the operator: latest result and the Telegram alert
    r: Any = redis.Redis.from_url(bed.redis_url, decode_responses=True)
    keys = Keys(bed.prefix)
    latest = json.loads(r.get(keys.validation_latest) or "{}")
    assert latest["decision"] == "GO" and latest["strategy"] == "ltc-rsi"
    kinds = [f["kind"] for _, f in r.xrange(keys.alerts)]
    assert "validation_result" in kinds


def test_bundled_replay_ends_with_a_decision(operator_bed: OperatorBed, tmp_path: Path) -> None:
    bed = operator_bed
    status = validate_in_cluster(
        bed, tmp_path, "btc-bundled", strategy="btc-sma", algorithm="sma-crossover",
        params="{fastPeriod: 10, slowPeriod: 30}", symbol="BTC/USDT", timeframe="1m",
        replay="bundled",
    )
    assert status["decision"] in ("GO", "NO-GO")
    cm = bed.get("configmap", status["reportConfigMap"])
    assert cm is not None
    report = json.loads(cm["data"]["report.json"])
    assert report["decision"] == status["decision"]
    assert report["run"]["source"].endswith(".csv") and report["run"]["data"]["candles"] > 0
