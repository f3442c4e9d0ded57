"""A live Strategy applied with kubectl: the operator's pre-flight Job runs
`kubetrade preflight` against the (fake) exchange with the keys from the Strategy's
Secret; a FAIL keeps the runner at 0 replicas, a later PASS (WARNs only) starts it, and
every WARN/FAIL is an alert and the report is what /api/preflight serves.

As in the validation e2e, the test plays kubelet and Job controller: it runs the Job's
container as a local process with the Job's env, service account and mounted Secret.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import redis

from kubetrade.state.keys import Keys
from tests.e2e.validation.test_validation_run_operator import finish_job, run_job_pod
from tests.fakes.binance import FakeBinance
from tests.fixtures.kubetrade_operator import OperatorBed, wait_for

MANIFESTS = """apiVersion: v1
kind: Secret
metadata: {{name: binance-keys}}
stringData: {{apiKey: {key}, secretKey: {secret}}}
---
apiVersion: kubetrade.io/v1alpha1
kind: RiskPolicy
metadata: {{name: default}}
spec: {{stopLossPct: 5, dailyLossLimitPct: 3}}
---
apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {{name: btc-live}}
spec:
  algorithm: sma-crossover
  parameters: {{fastPeriod: {fast}, slowPeriod: 30}}
  symbols: ["BTC/USDT"]
  mode: live
  initialCapital: 400
  exchange: {{testnet: true, credentialsSecret: binance-keys}}
"""


def mount_secret(bed: OperatorBed, job: dict[str, Any], root: Path) -> None:
    """The Job's Secret volume, as files, where the pod's env says the keys are."""
    pod = job["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "secret" in v]
    secret = bed.get("secret", volume["secret"]["secretName"])
    assert secret is not None
    root.mkdir(parents=True, exist_ok=True)
    for k, value in secret["data"].items():
        (root / k).write_bytes(base64.b64decode(value))
    for item in pod["containers"][0]["env"]:
        if item["name"] == "KUBETRADE_SECRETS_DIR":
            item["value"] = str(root)


def preflight_job(bed: OperatorBed, exclude: set[str]) -> dict[str, Any]:
    def fresh() -> dict[str, Any] | None:
        jobs = [j for j in bed.items("jobs", "kubetrade.io/job=preflight")
                if j["metadata"]["name"] not in exclude]
        return jobs[0] if jobs else None

    job: dict[str, Any] = wait_for(fresh, 30, "pre-flight Job")
    return job


def start_live_strategy(bed: OperatorBed, fake: FakeBinance, usdt: str) -> None:
    """The operator on the bed, reaching the fake Binance whose account holds ``usdt``
    USDT free, and the live Strategy ``btc-live`` applied (its pre-flight Job follows)."""
    fake.set_balance("USDT", usdt)
    bed.start(KUBETRADE_EXCHANGE_URL=fake.url)
    bed.apply(MANIFESTS.format(key=fake.api_key, secret=fake.secret, fast=10))


def strategy_status(bed: OperatorBed) -> dict[str, Any]:
    return dict((bed.get("strategy", "btc-live") or {}).get("status") or {})


def replicas(bed: OperatorBed) -> int | None:
    d = bed.get("deployment", "kubetrade-runner-btc-live")
    return None if d is None else int(d["spec"]["replicas"])


def test_preflight_fail_blocks_the_live_runner_and_pass_starts_it(
    operator_bed: OperatorBed, fake_binance: FakeBinance, tmp_path: Path
) -> None:
    bed = operator_bed
    start_live_strategy(bed, fake_binance, "50")
    r: Any = redis.Redis.from_url(bed.redis_url, decode_responses=True)
    keys = Keys(bed.prefix)

    job = preflight_job(bed, set())
    mount_secret(bed, job, tmp_path / "keys-1")
    assert run_job_pod(bed, job, tmp_path) == 1  # FAIL: $50 < $100
    report = json.loads(r.get(keys.preflight) or "{}")
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["Sufficient Balance"] == "FAIL" and statuses["API Key Validity"] == "PASS"
    assert report["strategy"] == "btc-live" and report["namespace"] == bed.ns
    alerts = {(f["kind"], json.loads(f["data"])["check"]) for _, f in r.xrange(keys.alerts)}
    assert ("preflight_fail", "Sufficient Balance") in alerts
    assert ("preflight_warn", "Paper Validation") in alerts  # no GO validation yet
    finish_job(bed, job["metadata"]["name"], ok=False)
    wait_for(lambda: strategy_status(bed).get("phase") == "PreflightFailed", 30, "blocked")
    assert replicas(bed) in (None, 0)

    # funds arrive (enough for the strategy's 400 USDT budget, the Capital Allocation
    # check); a new configuration gets a fresh pre-flight, which passes with WARNs
    fake_binance.set_balance("USDT", "500")
    bed.kubectl("patch", "strategy", "btc-live", "--type=merge", "-p",
                '{"spec":{"parameters":{"fastPeriod":12,"slowPeriod":30}}}')
    second = preflight_job(bed, {job["metadata"]["name"]})
    mount_secret(bed, second, tmp_path / "keys-2")
    assert run_job_pod(bed, second, tmp_path) == 0
    report = json.loads(r.get(keys.preflight) or "{}")
    assert report["status"] == "WARN" and report["passed"] is True
    finish_job(bed, second["metadata"]["name"], ok=True)
    wait_for(lambda: replicas(bed) == 1, 30, "live runner started")
    assert strategy_status(bed)["preflight"] == "PASS"
