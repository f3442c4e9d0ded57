"""The operator against the real API server and Redis: Deployments, conditions,
pre-flight, the kill switch mirror, ValidationRun Jobs, and a restart mid-reconcile.

No kubelet or controllers run in the bed, so the tests play their part: they write
the runner's summary/orders into Redis and set Job status the way the Job controller
would.
"""

from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import redis

from kubetrade.operator.render import CONFIG_HASH
from kubetrade.state.keys import Keys
from tests.fixtures.kubetrade_operator import OperatorBed, wait_for

STRATEGY = """
apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {{name: {name}}}
spec:
  algorithm: sma-crossover
  parameters: {{fastPeriod: {fast}, slowPeriod: 30}}
  symbols: ["BTC/USDT"]
  mode: {mode}
  exchange: {{testnet: true, credentialsSecret: binance-keys}}
  riskPolicyRef: {policy}
"""

POLICY = """
apiVersion: kubetrade.io/v1alpha1
kind: RiskPolicy
metadata: {{name: {name}}}
spec: {{stopLossPct: {stop}, dailyLossLimitPct: 3}}
"""


def strategy(name: str, fast: int = 10, mode: str = "paper", policy: str = "default") -> str:
    return STRATEGY.format(name=name, fast=fast, mode=mode, policy=policy)


def sync_redis(bed: OperatorBed) -> Any:
    """A sync client (typed Any: redis-py's sync stubs make every reply optional)."""
    return redis.Redis.from_url(bed.redis_url, decode_responses=True)


def deployment(bed: OperatorBed, name: str) -> dict[str, Any] | None:
    return bed.get("deployment", f"kubetrade-runner-{name}")


def replicas(bed: OperatorBed, name: str) -> int | None:
    d = deployment(bed, name)
    return None if d is None else int(d["spec"]["replicas"])


def template_hash(bed: OperatorBed, name: str) -> str:
    d = deployment(bed, name)
    assert d is not None
    return str(d["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH])


def status(bed: OperatorBed, name: str) -> dict[str, Any]:
    return dict((bed.get("strategy", name) or {}).get("status") or {})


def audit_actions(r: Any, keys: Keys, strategy: str) -> list[str]:
    return [f["action"] for _, f in r.xrange(keys.audit) if f.get("strategy") == strategy]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def finish_job(bed: OperatorBed, job: str, ok: bool) -> None:
    """What the Job controller would write when the pod exits."""
    t = now_iso()
    bed.kubectl(
        "patch",
        "job",
        job,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"startTime": t, "active": 1}}),
    )
    cond = ["SuccessCriteriaMet", "Complete"] if ok else ["FailureTarget", "Failed"]
    body = {
        "active": 0,
        ("succeeded" if ok else "failed"): 1,
        "conditions": [
            {
                "type": c,
                "status": "True",
                "lastTransitionTime": t,
                "lastProbeTime": t,
                **({} if ok else {"reason": "BackoffLimitExceeded", "message": "exit 1"}),
            }
            for c in cond
        ],
    }
    if ok:
        body["completionTime"] = t
    bed.kubectl(
        "patch",
        "job",
        job,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": body}),
    )


def ready_pod(bed: OperatorBed, name: str) -> None:
    """What the Deployment controller writes once the runner's pod is ready."""
    bed.kubectl(
        "patch",
        "deployment",
        f"kubetrade-runner-{name}",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}}),
    )


def test_strategy_apply_patch_disable_delete(operator_bed: OperatorBed) -> None:
    bed = operator_bed
    r = sync_redis(bed)
    keys = Keys(bed.prefix)
    bed.apply(POLICY.format(name="default", stop=5))
    bed.start()
    bed.apply(strategy("btc-sma"))

    # apply -> Deployment with 1 replica owned by the Strategy, conditions reported
    wait_for(lambda: replicas(bed, "btc-sma") == 1, 30, "runner Deployment")
    obj = bed.get("strategy", "btc-sma")
    assert obj is not None
    d = deployment(bed, "btc-sma")
    assert d is not None
    assert d["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    wait_for(
        lambda: (bed.condition("strategy", "btc-sma", "Deployed") or {}).get("status") == "True",
        15,
        "Deployed=True",
    )
    assert (bed.condition("strategy", "btc-sma", "RiskPolicyValid") or {})["status"] == "True"
    assert status(bed, "btc-sma")["phase"] == "Starting"

    # the runner's own identity: reads its Strategy, its RiskPolicy, the Emergency only
    pod = d["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "kubetrade-runner-btc-sma"
    role = bed.get("role", "kubetrade-runner-btc-sma")
    assert role is not None
    assert {(r["resources"][0], r["resourceNames"][0]) for r in role["rules"]} == {
        ("strategies", "btc-sma"),
        ("riskpolicies", "default"),
        ("emergencies", "default"),
    }
    assert all(set(r["verbs"]) == {"get", "list", "watch"} for r in role["rules"])

    # the runner's summary is folded into status and shown by kubectl get
    r.hset(
        keys.summary("btc-sma"),
        mapping={
            "phase": "Running",
            "pnl": "12.3456",
            "equity": "10012.35",
            "trades": "7",
            "win_rate": "0.5714",
            "open_positions": "1",
            "halted_reason": "",
            "updated_ms": str(int(time.time() * 1000)),
        },
    )
    table = wait_for(
        lambda: (out := bed.kubectl("get", "strategies")) and "12.35" in out and out,
        15,
        "P&L in kubectl get strategies",
    )
    assert "Running" in table and "57.1%" in table and "paper" in table
    ready_pod(bed, "btc-sma")  # the Deployment controller's part (no controllers here)
    wait_for(
        lambda: (bed.condition("strategy", "btc-sma", "Ready") or {}).get("status") == "True",
        10,
        "Ready=True",
    )

    # a RiskPolicy change reaches the runner live (it watches it): no roll
    before = template_hash(bed, "btc-sma")
    bed.kubectl(
        "patch", "riskpolicy", "default", "--type=merge", "-p", '{"spec":{"maxDrawdownPct":12}}'
    )
    wait_for(
        lambda: (
            (bed.get("riskpolicy", "default") or {}).get("status", {}).get("observedGeneration")
            == 2
        ),
        15,
        "operator saw the RiskPolicy change",
    )
    assert template_hash(bed, "btc-sma") == before  # the hash has no RiskPolicy input

    # patch a field the runner reads only at start -> the pod template changes (rolls)
    bed.kubectl(
        "patch",
        "strategy",
        "btc-sma",
        "--type=merge",
        "-p",
        '{"spec":{"parameters":{"fastPeriod":12}}}',
    )
    after = wait_for(lambda: (h := template_hash(bed, "btc-sma")) != before and h, 15, "roll")
    wait_for(lambda: status(bed, "btc-sma").get("configHash") == after, 10, "status hash")
    assert d["spec"]["strategy"] == {"type": "Recreate"}

    # disable with an open order: the pod stays until the runner cancelled it
    r.hset(keys.orders("btc-sma"), "o-1", json.dumps({"status": "open"}))
    bed.kubectl("patch", "strategy", "btc-sma", "--type=merge", "-p", '{"spec":{"enabled":false}}')
    wait_for(lambda: status(bed, "btc-sma").get("phase") == "Stopping", 15, "phase Stopping")
    assert replicas(bed, "btc-sma") == 1
    r.hset(keys.orders("btc-sma"), "o-1", json.dumps({"status": "canceled"}))
    wait_for(lambda: replicas(bed, "btc-sma") == 0, 15, "scaled to 0")
    wait_for(lambda: status(bed, "btc-sma").get("phase") == "Disabled", 10, "phase Disabled")
    assert template_hash(bed, "btc-sma") == after  # enabled is taken live: no roll
    assert status(bed, "btc-sma")["pnl"] == "12.35"  # state kept

    bed.kubectl("patch", "strategy", "btc-sma", "--type=merge", "-p", '{"spec":{"enabled":true}}')
    wait_for(lambda: replicas(bed, "btc-sma") == 1, 15, "scaled back to 1")

    # delete: held by the finalizer while an order is open, positions kept
    r.hset(keys.orders("btc-sma"), "o-2", json.dumps({"status": "open"}))
    r.hset(keys.positions("btc-sma"), "BTC/USDT", json.dumps({"quantity": "0.1"}))
    bed.kubectl("delete", "strategy", "btc-sma", "--wait=false")
    wait_for(
        lambda: (bed.get("strategy", "btc-sma") or {}).get("spec", {}).get("enabled") is False,
        15,
        "runner told to stop (spec.enabled false)",
    )
    assert bed.get("strategy", "btc-sma") is not None  # finalizer holds it
    r.hset(keys.orders("btc-sma"), "o-2", json.dumps({"status": "canceled"}))
    wait_for(lambda: bed.get("strategy", "btc-sma") is None, 20, "Strategy gone")
    assert deployment(bed, "btc-sma") is None
    assert bed.get("role", "kubetrade-runner-btc-sma") is None
    assert bed.get("serviceaccount", "kubetrade-runner-btc-sma") is None
    assert r.hexists(keys.positions("btc-sma"), "BTC/USDT")
    actions = audit_actions(r, keys, "btc-sma")
    assert actions[-2:] == ["strategy.delete.requested", "strategy.deleted"]
    deleted = [f for _, f in r.xrange(keys.audit) if f["action"] == "strategy.deleted"][-1]
    assert json.loads(deleted["detail"])["positionsKept"] == ["BTC/USDT"]


def test_live_needs_fit_risk_policy_and_preflight(operator_bed: OperatorBed) -> None:
    bed = operator_bed
    bed.apply(POLICY.format(name="loose", stop=0))
    bed.start()
    bed.apply(strategy("live-1", mode="live", policy="loose"))

    cond = wait_for(lambda: bed.condition("strategy", "live-1", "RiskPolicyValid"), 30, "cond")
    assert cond["status"] == "False" and cond["reason"] == "LiveRiskPolicyIncomplete"
    assert "spec.stopLossPct must be > 0" in cond["message"]
    assert replicas(bed, "live-1") == 0
    assert status(bed, "live-1")["phase"] == "Blocked"
    events = wait_for(
        lambda: [
            e
            for e in bed.items("events")
            if e["involvedObject"]["name"] == "live-1" and e["type"] == "Warning"
        ],
        15,
        "Warning Event",
    )
    assert any(e["reason"] == "LiveRiskPolicyIncomplete" for e in events)

    # fixing the policy starts the pre-flight; the runner still waits for it
    bed.kubectl("patch", "riskpolicy", "loose", "--type=merge", "-p", '{"spec":{"stopLossPct":5}}')
    jobs = wait_for(lambda: bed.items("jobs", "kubetrade.io/job=preflight"), 15, "pre-flight Job")
    (job,) = jobs
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][:4] == [
        "kubetrade",
        "preflight",
        "--strategy",
        "live-1",
    ]
    wait_for(lambda: status(bed, "live-1").get("phase") == "PreflightRunning", 10, "running")
    assert replicas(bed, "live-1") == 0

    finish_job(bed, job["metadata"]["name"], ok=False)
    wait_for(lambda: status(bed, "live-1").get("phase") == "PreflightFailed", 15, "FAIL shown")
    cond = bed.condition("strategy", "live-1", "PreflightPassed")
    assert cond is not None and cond["status"] == "False" and cond["reason"] == "PreflightFailed"
    assert status(bed, "live-1")["preflight"] == "FAIL"
    assert replicas(bed, "live-1") == 0

    # a new configuration gets a fresh pre-flight; PASS starts the runner
    bed.kubectl(
        "patch", "strategy", "live-1", "--type=merge", "-p", '{"spec":{"symbols":["ETH/USDT"]}}'
    )
    fresh = wait_for(
        lambda: [
            j
            for j in bed.items("jobs", "kubetrade.io/job=preflight")
            if j["metadata"]["name"] != job["metadata"]["name"]
        ],
        15,
        "second pre-flight Job",
    )
    finish_job(bed, fresh[0]["metadata"]["name"], ok=True)
    wait_for(lambda: replicas(bed, "live-1") == 1, 15, "live runner started")
    assert status(bed, "live-1")["preflight"] == "PASS"


def test_emergency_is_mirrored_to_redis_with_acks(operator_bed: OperatorBed) -> None:
    bed = operator_bed
    r = sync_redis(bed)
    keys = Keys(bed.prefix)
    pubsub = r.pubsub()
    pubsub.subscribe(keys.emergency_channel)
    bed.apply(POLICY.format(name="default", stop=5))
    bed.apply(strategy("a") + "---\n" + strategy("b"))
    bed.apply("apiVersion: kubetrade.io/v1alpha1\nkind: Emergency\nmetadata: {name: default}\n")
    bed.start()
    wait_for(lambda: r.hget(keys.emergency, "action") == "none", 30, "initial mirror")
    # only runners with a replica can ack (issue 19): wait for both Deployments
    wait_for(lambda: replicas(bed, "a") == 1 and replicas(bed, "b") == 1, 30, "runners")

    bed.kubectl(
        "patch",
        "emergency",
        "default",
        "--type=merge",
        "-p",
        '{"spec":{"action":"stop","reason":"drill","requestedBy":"alice"}}',
    )

    def message() -> dict[str, Any] | None:
        msg = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if msg:
            data: dict[str, Any] = json.loads(msg["data"])
            return data if data["action"] == "stop" else None
        return None

    published = wait_for(message, 15, "stop published on the emergency channel")
    assert published["by"] == "alice" and published["reason"] == "drill"
    assert r.hgetall(keys.emergency)["action"] == "stop"
    wait_for(
        lambda: (bed.get("emergency", "default") or {}).get("status", {}).get("state") == "stop",
        10,
        "status.state",
    )
    st = (bed.get("emergency", "default") or {})["status"]
    assert st["by"] == "alice" and st["runners"] == 2 and st["acknowledged"] == 0

    generation = (bed.get("emergency", "default") or {})["metadata"]["generation"]
    for runner in ("a", "b"):  # what each runner writes (an ack names the change it saw)
        ack = {"action": "stop", "ts_ms": int(time.time() * 1000), "generation": generation}
        r.hset(keys.emergency_acks, runner, json.dumps({**ack, "cancelled": []}))
    wait_for(
        lambda: (
            (bed.condition("emergency", "default", "Acknowledged") or {}).get("status") == "True"
        ),
        10,
        "Acknowledged=True",
    )
    assert (bed.get("emergency", "default") or {})["status"]["acknowledged"] == 2
    assert "emergency.stop.mirrored" in [f["action"] for _, f in r.xrange(keys.audit)]
    printed = bed.kubectl("get", "emergency", "default")
    assert "stop" in printed

    bed.kubectl("patch", "emergency", "default", "--type=merge", "-p", '{"spec":{"action":"none"}}')
    wait_for(lambda: r.hget(keys.emergency, "action") == "none", 15, "resume mirrored")
    pubsub.close()


def test_validation_run_becomes_a_job_and_status_follows(operator_bed: OperatorBed) -> None:
    bed = operator_bed
    bed.start()
    bed.apply(strategy("btc-sma"))  # a run on a missing Strategy waits (issue 19)
    bed.apply(
        "apiVersion: kubetrade.io/v1alpha1\nkind: ValidationRun\nmetadata: {name: v1}\n"
        "spec: {strategyRef: btc-sma, replay: bundled}\n"
    )
    job = wait_for(lambda: bed.get("job", "validation-v1"), 30, "validation Job")
    cmd = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert cmd == [
        "kubetrade",
        "validate",
        "--strategy",
        "btc-sma",
        "--namespace",
        bed.ns,
        "--validation-run",
        "v1",
        "--replay",
        "bundled",
    ]
    wait_for(
        lambda: (bed.get("validationrun", "v1") or {}).get("status", {}).get("phase") == "Pending",
        10,
        "phase Pending",
    )
    finish_job(bed, "validation-v1", ok=True)
    wait_for(
        lambda: (
            (bed.get("validationrun", "v1") or {}).get("status", {}).get("phase") == "Succeeded"
        ),
        15,
        "phase Succeeded",
    )
    cond = bed.condition("validationrun", "v1", "Complete")
    assert cond is not None and cond["status"] == "True"


def test_operator_killed_mid_reconcile_converges_without_duplicates(
    operator_bed: OperatorBed,
) -> None:
    bed = operator_bed
    bed.apply(POLICY.format(name="default", stop=5))
    names = [f"s{i:02d}" for i in range(20)]
    live = ["l1", "l2", "l3"]
    bed.start()
    bed.apply("---\n".join([strategy(n) for n in names] + [strategy(n, mode="live") for n in live]))
    # SIGKILL twice: right after the first Deployment, and again when about half exist
    wait_for(lambda: bed.items("deployments"), 30, "first Deployment")
    bed.kill()
    first = len(bed.items("deployments"))
    bed.start()
    half = (len(names) + len(live)) // 2
    wait_for(lambda: len(bed.items("deployments")) >= min(first + 1, half), 60, "progress")
    bed.kill()
    second = len(bed.items("deployments"))
    bed.start()

    def converged() -> bool:
        deps = bed.items("deployments")
        return len(deps) == len(names) + len(live) and all(
            s.get("status", {}).get("observedGeneration") == s["metadata"]["generation"]
            for s in bed.items("strategies")
        )

    wait_for(converged, 90, "every Strategy reconciled after the restart")
    deps = bed.items("deployments")
    assert sorted(d["metadata"]["name"] for d in deps) == sorted(
        f"kubetrade-runner-{n}" for n in names + live
    )
    assert all(len(d["metadata"]["ownerReferences"]) == 1 for d in deps)
    jobs = bed.items("jobs", "kubetrade.io/job=preflight")
    assert sorted(j["metadata"]["labels"]["kubetrade.io/strategy"] for j in jobs) == live
    assert first <= second <= len(names) + len(live)
    # the runner identities were not duplicated either (names are per Strategy)
    assert len(bed.items("roles", "app.kubernetes.io/managed-by=kubetrade-operator")) == len(
        names
    ) + len(live)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(url: str) -> str | None:
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None


def test_liveness_and_metrics_endpoints(operator_bed: OperatorBed) -> None:
    bed = operator_bed
    health, metrics = _free_port(), _free_port()
    bed.start("--liveness", f"http://127.0.0.1:{health}/healthz", "--metrics-port", str(metrics))
    wait_for(lambda: _get(f"http://127.0.0.1:{health}/healthz") is not None, 30, "liveness 200")
    bed.apply(POLICY.format(name="default", stop=5) + "---" + strategy("m1"))
    text = wait_for(
        lambda: (
            (t := _get(f"http://127.0.0.1:{metrics}/metrics"))
            and 'kubetrade_operator_reconciles_total{kind="Strategy",result="ok",trigger="create"}'
            in t
            and t
        ),
        30,
        "reconcile counted in /metrics",
    )
    assert "kubetrade_operator_reconcile_seconds_bucket" in text


def test_failed_validation_job_and_missing_risk_policy(operator_bed: OperatorBed) -> None:
    bed = operator_bed
    bed.start()
    bed.apply(
        "apiVersion: kubetrade.io/v1alpha1\nkind: ValidationRun\nmetadata: {name: v2}\n"
        "spec: {strategyRef: orphan, duration: 2h}\n"
        "---\n" + strategy("orphan", policy="absent")
    )
    job = wait_for(lambda: bed.get("job", "validation-v2"), 30, "validation Job")
    assert job["spec"]["activeDeadlineSeconds"] == 2 * 3600 + 3600
    finish_job(bed, "validation-v2", ok=False)
    wait_for(
        lambda: (
            (bed.condition("validationrun", "v2", "Complete") or {}).get("reason") == "JobFailed"
        ),
        15,
        "JobFailed condition",
    )
    assert (bed.get("validationrun", "v2") or {})["status"]["phase"] == "Failed"

    # paper without its RiskPolicy: reported, but the runner still runs on default limits
    cond = wait_for(lambda: bed.condition("strategy", "orphan", "RiskPolicyValid"), 30, "cond")
    assert cond["status"] == "False" and cond["reason"] == "RiskPolicyNotFound"
    assert "spec.riskPolicyRef" in cond["message"]
    assert replicas(bed, "orphan") == 1
