"""Issue 19 on the real API server: the operator never stops or leaves trading unasked,
and what ``kubectl`` shows is true.

As in test_operator.py the bed has no kubelet or Job controller: the tests write what
the runner would write into Redis and the Job status the Job controller would write.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from functools import partial
from typing import Any

from kubetrade.state.keys import Keys
from tests.fixtures.kubetrade_operator import OperatorBed, wait_for
from tests.integration.operator.test_operator import (
    POLICY,
    finish_job,
    ready_pod,
    replicas,
    status,
    strategy,
    sync_redis,
    template_hash,
)


def preflight_jobs(bed: OperatorBed) -> list[str]:
    return [j["metadata"]["name"] for j in bed.items("jobs", "kubetrade.io/job=preflight")]


def summarize(bed: OperatorBed, name: str, trades: int, **extra: Any) -> None:
    """What the runner writes (its summary hash), stamped now unless told otherwise."""
    fields = {
        "phase": "Running",
        "pnl": "1.5",
        "equity": "10001.5",
        "trades": str(trades),
        "win_rate": "0.5",
        "open_positions": "0",
        "updated_ms": str(int(time.time() * 1000)),
        **extra,
    }
    sync_redis(bed).hset(Keys(bed.prefix).summary(name), mapping=fields)


def reconciled_after(bed: OperatorBed, name: str, trades: int) -> None:
    """Wait until a reconcile has folded a summary written now (so it saw what came
    before it): two summaries, so at least one whole reconcile ran after the call."""
    for n in (trades, trades + 1):
        summarize(bed, name, n)

        def folded(n: int = n) -> bool:
            return status(bed, name).get("trades") == n

        wait_for(folded, 20, f"trades={n} folded")


def live_running(bed: OperatorBed, name: str) -> str:
    """Apply a live Strategy, pass its pre-flight; returns the pre-flight Job's name."""
    bed.apply(POLICY.format(name="default", stop=5))
    bed.start()
    bed.apply(strategy(name, mode="live"))
    (job,) = wait_for(lambda: preflight_jobs(bed), 30, "pre-flight Job")
    finish_job(bed, job, ok=True)
    wait_for(lambda: replicas(bed, name) == 1, 20, "live runner started")
    wait_for(lambda: status(bed, name).get("preflightPassedHash"), 10, "PASS recorded")
    return str(job)


def test_an_expired_preflight_job_does_not_stop_the_live_runner(
    operator_bed: OperatorBed,
) -> None:
    bed = operator_bed
    job = live_running(bed, "live-ttl")
    passed = status(bed, "live-ttl")["preflightPassedHash"]

    # ttlSecondsAfterFinished ran out: the Job controller deletes the finished Job
    bed.kubectl("delete", "job", job, "--wait=true")
    reconciled_after(bed, "live-ttl", 7)

    assert preflight_jobs(bed) == []  # no re-run: the spec it checked did not change
    assert replicas(bed, "live-ttl") == 1
    st = status(bed, "live-ttl")
    assert st["preflightPassedHash"] == passed and st["preflight"] == "PASS"


def test_a_new_preflight_runs_beside_the_trading_runner(operator_bed: OperatorBed) -> None:
    bed = operator_bed
    first = live_running(bed, "live-hand")
    old_hash = template_hash(bed, "live-hand")

    bed.kubectl(
        "patch", "strategy", "live-hand", "--type=merge", "-p", '{"spec":{"symbols":["ETH/USDT"]}}'
    )
    (second,) = wait_for(
        lambda: [j for j in preflight_jobs(bed) if j != first], 20, "pre-flight of the new spec"
    )
    reconciled_after(bed, "live-hand", 3)
    assert replicas(bed, "live-hand") == 1 and template_hash(bed, "live-hand") == old_hash
    deployed = bed.condition("strategy", "live-hand", "Deployed") or {}
    assert deployed.get("reason") == "HeldForPreflight"

    # the new spec fails its pre-flight: the runner of the passed one keeps trading
    finish_job(bed, second, ok=False)
    wait_for(lambda: status(bed, "live-hand").get("preflight") == "FAIL", 20, "FAIL shown")
    reconciled_after(bed, "live-hand", 5)
    assert replicas(bed, "live-hand") == 1 and template_hash(bed, "live-hand") == old_hash
    message = (bed.condition("strategy", "live-hand", "PreflightPassed") or {})["message"]
    assert "keeps trading with config" in message

    # fixing the spec (a third configuration) and passing it rolls the runner
    bed.kubectl(
        "patch", "strategy", "live-hand", "--type=merge", "-p", '{"spec":{"symbols":["BNB/USDT"]}}'
    )
    (third,) = wait_for(
        lambda: [j for j in preflight_jobs(bed) if j not in (first, second)], 20, "third"
    )
    finish_job(bed, third, ok=True)
    wait_for(lambda: template_hash(bed, "live-hand") != old_hash, 20, "runner rolled")
    assert replicas(bed, "live-hand") == 1
    assert json.dumps(status(bed, "live-hand")["preflightPassedHash"]) != json.dumps(old_hash)


EMERGENCY = "apiVersion: kubetrade.io/v1alpha1\nkind: Emergency\nmetadata: {name: default}\n"


def emergency_status(bed: OperatorBed) -> dict[str, Any]:
    return dict((bed.get("emergency", "default") or {}).get("status") or {})


def ack(bed: OperatorBed, runner: str, action: str, generation: int) -> None:
    """What a runner writes when it applies the Emergency of ``generation``."""
    body = {"action": action, "ts_ms": int(time.time() * 1000), "generation": generation}
    sync_redis(bed).hset(Keys(bed.prefix).emergency_acks, runner, json.dumps(body))


def test_acks_are_per_change_and_per_runner_that_can_ack(operator_bed: OperatorBed) -> None:
    bed = operator_bed
    bed.apply(POLICY.format(name="default", stop=5))
    bed.apply(strategy("a") + "---\n" + strategy("b") + "---\n" + strategy("gone"))
    bed.apply(EMERGENCY)
    bed.start()
    wait_for(lambda: all(replicas(bed, n) == 1 for n in ("a", "b", "gone")), 30, "three runners")
    # a live Strategy held at 0 replicas (no RiskPolicy fit for live) can never ack
    bed.apply(strategy("held", mode="live", policy="missing"))
    wait_for(lambda: replicas(bed, "held") == 0, 20, "held at 0 replicas")

    # a first stop, acknowledged by every runner, then resumed
    bed.kubectl("patch", "emergency", "default", "--type=merge", "-p", '{"spec":{"action":"stop"}}')
    gen1 = wait_for(
        lambda: (
            emergency_status(bed).get("state") == "stop"
            and (bed.get("emergency", "default") or {})["metadata"]["generation"]
        ),
        15,
        "first stop mirrored",
    )
    for name in ("a", "b", "gone"):
        ack(bed, name, "stop", gen1)
    wait_for(lambda: emergency_status(bed).get("acknowledged") == 3, 15, "three acks")
    assert emergency_status(bed)["runners"] == 3  # "held" is not expected to ack

    # "gone" is deleted: its ack goes with it
    bed.kubectl("delete", "strategy", "gone", "--wait=true", "--timeout=60s")
    keys = Keys(bed.prefix)
    assert sync_redis(bed).hget(keys.emergency_acks, "gone") is None

    # a new stop (another reason: a new generation): the old acks do not count
    bed.kubectl(
        "patch", "emergency", "default", "--type=merge", "-p", '{"spec":{"reason":"again"}}'
    )
    wait_for(lambda: emergency_status(bed).get("waitingFor") == ["a", "b"], 15, "nobody acked")
    st = emergency_status(bed)
    assert (st["acknowledged"], st["runners"]) == (0, 2)
    cond = bed.condition("emergency", "default", "Acknowledged") or {}
    assert cond["status"] == "False" and "waiting for: a, b" in cond["message"]

    gen2 = (bed.get("emergency", "default") or {})["metadata"]["generation"]
    ack(bed, "a", "stop", gen2)
    wait_for(lambda: emergency_status(bed).get("waitingFor") == ["b"], 15, "a acked")
    ack(bed, "b", "stop", gen2)
    wait_for(
        lambda: (
            (bed.condition("emergency", "default", "Acknowledged") or {}).get("status") == "True"
        ),
        15,
        "Acknowledged=True",
    )


def ready(bed: OperatorBed, name: str) -> dict[str, Any]:
    return bed.condition("strategy", name, "Ready") or {}


def test_status_comes_from_what_the_cluster_and_the_runner_say_now(
    operator_bed: OperatorBed,
) -> None:
    bed = operator_bed
    bed.apply(POLICY.format(name="default", stop=5))
    bed.start(KUBETRADE_HEARTBEAT_MAX_AGE="5")
    bed.apply(strategy("truth"))
    wait_for(lambda: replicas(bed, "truth") == 1, 30, "runner Deployment")

    # the runner reports, but its pod is not ready (Deployment 0/1): not Ready
    summarize(bed, "truth", 4)
    wait_for(lambda: status(bed, "truth").get("trades") == 4, 20, "summary folded")
    wait_for(lambda: ready(bed, "truth").get("reason") == "RunnerNotReady", 10, "not ready")
    assert ready(bed, "truth")["status"] == "False"

    ready_pod(bed, "truth")
    wait_for(lambda: ready(bed, "truth").get("status") == "True", 15, "Ready=True")
    assert status(bed, "truth")["phase"] == "Running"

    # a summary older than the limit (5 s here, 60 s by default) with no heartbeat
    # since is stale, never Running (written just after the object's creation: an
    # older one would be another object's, not shown at all)
    created = (bed.get("strategy", "truth") or {})["metadata"]["creationTimestamp"]
    born_ms = int(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp() * 1000)
    summarize(bed, "truth", 4, updated_ms=str(born_ms + 1000))
    wait_for(lambda: status(bed, "truth").get("phase") == "Stale", 15, "phase Stale")
    assert ready(bed, "truth")["reason"] == "RunnerHeartbeatStale"
    assert "Stale" in bed.kubectl("get", "strategies", "truth")

    # a heartbeat alone (a 1h strategy between candles) makes it fresh again
    sync_redis(bed).hset(
        Keys(bed.prefix).summary("truth"), "heartbeat_ms", str(int(time.time() * 1000))
    )
    wait_for(lambda: status(bed, "truth").get("phase") == "Running", 15, "fresh again")


def test_a_recreated_strategy_does_not_inherit_the_old_numbers(
    operator_bed: OperatorBed,
) -> None:
    bed = operator_bed
    bed.apply(POLICY.format(name="default", stop=5))
    bed.start()
    bed.apply(strategy("again"))
    wait_for(lambda: replicas(bed, "again") == 1, 30, "runner Deployment")
    summarize(bed, "again", 9)
    ready_pod(bed, "again")
    wait_for(lambda: ready(bed, "again").get("status") == "True", 20, "Ready=True")

    bed.kubectl("delete", "strategy", "again", "--wait=true", "--timeout=60s")
    wait_for(lambda: bed.get("deployment", "kubetrade-runner-again") is None, 20, "runner gone")
    bed.apply(strategy("again"))  # the old summary is still in Redis
    wait_for(lambda: replicas(bed, "again") == 1, 30, "new runner Deployment")
    ready_pod(bed, "again")
    reconciled = wait_for(
        lambda: (st := status(bed, "again")).get("observedGeneration") and st, 15, "status"
    )
    wait_for(
        lambda: (
            ready(bed, "again").get("reason") == "NoHeartbeat"
            or status(bed, "again").get("phase") == "Starting"
        ),
        15,
        "reconciled",
    )
    st = status(bed, "again")
    assert "trades" not in st and "pnl" not in st, reconciled
    assert st["phase"] == "Starting" and ready(bed, "again")["status"] == "False"


def test_two_object_rules_are_reported_as_conditions_and_events(
    operator_bed: OperatorBed,
) -> None:
    bed = operator_bed
    bed.apply(
        "apiVersion: kubetrade.io/v1alpha1\nkind: RiskPolicy\nmetadata: {name: narrow}\n"
        'spec: {stopLossPct: 0.05, dailyLossLimitPct: 3, allowedSymbols: ["ETH/USDT"]}\n'
    )
    bed.apply(
        "apiVersion: kubetrade.io/v1alpha1\nkind: ValidationRun\nmetadata: {name: early}\n"
        "spec: {strategyRef: later, duration: 2h}\n"
    )
    bed.start()
    bed.apply(strategy("excluded", policy="narrow"))

    # allowedSymbols excludes the Strategy's only symbol: RiskPolicyValid=False + Event
    cond = wait_for(
        lambda: (
            (c := bed.condition("strategy", "excluded", "RiskPolicyValid"))
            and c["reason"] == "SymbolsNotAllowed"
            and c
        ),
        30,
        "SymbolsNotAllowed",
    )
    assert cond["status"] == "False"
    assert (
        "spec.symbols BTC/USDT not in RiskPolicy 'narrow' spec.allowedSymbols" in (cond["message"])
    )

    # a percentage written as a fraction: a Warning condition and Event on the policy
    warning = wait_for(lambda: bed.condition("riskpolicy", "narrow", "Warning"), 15, "Warning")
    assert warning["status"] == "True" and warning["reason"] == "FractionalPercentage"
    assert "did you mean 5 % rather than 0.05 %?" in warning["message"]

    # a ValidationRun on a Strategy that does not exist waits: a condition, no Job
    waiting = wait_for(lambda: bed.condition("validationrun", "early", "StrategyFound"), 15, "w")
    assert waiting["status"] == "False" and waiting["reason"] == "StrategyNotFound"
    assert (bed.get("validationrun", "early") or {})["status"]["phase"] == "Pending"
    assert bed.get("job", "validation-early") is None

    def reasons(kind: str, name: str) -> set[str]:
        return {
            e["reason"]
            for e in bed.items("events")
            if e["involvedObject"]["name"] == name and e["involvedObject"]["kind"] == kind
        }

    wait_for(
        lambda: (
            "SymbolsNotAllowed" in reasons("Strategy", "excluded")
            and "FractionalPercentage" in reasons("RiskPolicy", "narrow")
            and "StrategyNotFound" in reasons("ValidationRun", "early")
        ),
        15,
        "the three Warning Events",
    )

    # the Strategy appears: the run gets its Job
    bed.apply(strategy("later"))
    wait_for(lambda: bed.get("job", "validation-early"), 20, "the run's Job")


LONG = "a-validation-run-whose-name-is-far-longer-than-sixty-three-characters-v2"


def test_every_name_the_api_accepts_is_handled(operator_bed: OperatorBed) -> None:
    bed = operator_bed
    bed.apply(POLICY.format(name="default", stop=5))
    bed.start()
    bed.apply(strategy("btc.sma.v2"))
    for run in ("btc-sma.v2", LONG):
        bed.apply(
            "apiVersion: kubetrade.io/v1alpha1\nkind: ValidationRun\n"
            f"metadata: {{name: {run}}}\nspec: {{strategyRef: btc-sma, replay: bundled}}\n"
        )
    bed.apply(strategy("btc-sma"))

    # the dotted Strategy gets a runner under a valid, hash-shortened name
    runners = wait_for(
        lambda: [
            d
            for d in bed.items("deployments", "kubetrade.io/strategy=btc.sma.v2")
            if d["spec"]["replicas"] == 1
        ],
        30,
        "runner of btc.sma.v2",
    )
    assert runners[0]["metadata"]["name"].startswith("kubetrade-runner-btc-sma-v2-")
    assert status(bed, "btc.sma.v2")["phase"] == "Starting"

    # both runs get their Job (valid names, at most 63 characters) and a phase
    def job_of(run: str) -> dict[str, Any] | None:
        st = (bed.get("validationrun", run) or {}).get("status") or {}
        return bed.get("job", st["job"]) if st.get("job") and st.get("phase") else None

    for run in ("btc-sma.v2", LONG):
        job = wait_for(partial(job_of, run), 30, f"Job and phase of {run}")
        assert len(job["metadata"]["name"]) <= 63 and "." not in job["metadata"]["name"]

    # what the operator did is in `kubectl describe` (Normal Events)
    events = wait_for(
        lambda: (
            {e["reason"] for e in bed.items("events") if e["type"] == "Normal"} >= {"JobCreated"}
            and [e for e in bed.items("events") if e["reason"] == "JobCreated"]
        ),
        15,
        "JobCreated Events",
    )
    assert {e["involvedObject"]["name"] for e in events} == {"btc-sma.v2", LONG}
    assert "Traceback" not in bed.logs()
    assert f"[{bed.ns}/btc.sma.v2] " in bed.logs()  # operator lines name their object


def test_the_delete_wait_shows_itself_and_has_a_way_out(operator_bed: OperatorBed) -> None:
    bed = operator_bed
    r = sync_redis(bed)
    keys = Keys(bed.prefix)
    bed.apply(POLICY.format(name="default", stop=5))
    bed.start()
    bed.apply(strategy("stuck"))
    wait_for(lambda: replicas(bed, "stuck") == 1, 30, "runner Deployment")
    # an order the runner never cancels (its exchange is unreachable, say)
    r.hset(keys.orders("stuck"), "o-1", json.dumps({"status": "open"}))

    bed.kubectl("delete", "strategy", "stuck", "--wait=false")
    cond = wait_for(
        lambda: (
            (c := bed.condition("strategy", "stuck", "Ready"))
            and c["reason"] == "WaitingForRunner"
            and c
        ),
        10,
        "WaitingForRunner",
    )
    assert "1 open order(s)" in cond["message"]
    assert (
        "kubectl annotate strategy stuck kubetrade.io/abandon-open-orders=true" in (cond["message"])
    )
    assert status(bed, "stuck")["phase"] == "Terminating"
    assert "Terminating" in bed.kubectl("get", "strategies", "stuck")
    wait_for(
        lambda: any(
            e["reason"] == "WaitingForRunner" and e["involvedObject"]["name"] == "stuck"
            for e in bed.items("events")
        ),
        10,
        "WaitingForRunner Event",
    )

    # the documented way out
    bed.kubectl("annotate", "strategy", "stuck", "kubetrade.io/abandon-open-orders=true")
    wait_for(lambda: bed.get("strategy", "stuck") is None, 15, "Strategy gone")
    assert bed.get("deployment", "kubetrade-runner-stuck") is None
    assert any(
        e["reason"] == "OpenOrdersAbandoned" and e["involvedObject"]["name"] == "stuck"
        for e in bed.items("events")
    )
    deleted = [f for _, f in r.xrange(keys.audit) if f["action"] == "strategy.deleted"][-1]
    detail = json.loads(deleted["detail"])
    assert detail["outcome"] == "OpenOrdersAbandoned" and detail["ordersLeftOpen"] == ["o-1"]
    assert bed.logs().count("failed temporarily") == 0


def test_a_strategy_that_lives_a_moment_leaves_nothing_behind(operator_bed: OperatorBed) -> None:
    bed = operator_bed
    bed.apply(POLICY.format(name="default", stop=5))
    bed.start()
    for i in range(5):
        bed.apply(strategy(f"blink-{i}"))
        bed.kubectl("delete", "strategy", f"blink-{i}", "--wait=false")
    wait_for(lambda: not bed.items("strategies"), 60, "all Strategies gone")

    def owned(kind: str) -> list[str]:
        return [
            o["metadata"]["name"]
            for o in bed.items(kind, "app.kubernetes.io/managed-by=kubetrade-operator")
        ]

    for kind in ("deployments", "serviceaccounts", "roles", "rolebindings"):
        assert owned(kind) == [], kind
