"""The README's cluster path on the real node, with real pods from the image built here.

`helm install` (chart defaults, plus the dashboard password the README sets, the image
built from the Dockerfile, the Redis image from Debian's redis-server and
`KUBETRADE_MARKET_DATA=replay:bundled` because there is no internet) in a namespace
enforcing the `restricted` Pod Security Standard -> operator, API and Redis Ready
through their own probes -> `kubectl apply` of examples/ -> a runner pod paper-trading
the bundled candles -> trades in Redis and P&L in `kubectl get strategies` -> a runner
pod killed mid-trade comes back from Redis with no order sent twice -> `kubectl patch
emergency default ... stop` acknowledged by every runner -> a ValidationRun's Job pod
completes with GO/NO-GO -> `kubectl delete strategy` through the finalizer ->
`helm uninstall` leaves only what the chart keeps on purpose.

The tests run in file order on one release (each step needs the one before).
NetworkPolicies of the chart are rendered and applied but NOT enforced on this node
(the CNI bridge plugin has no policy engine): nothing here relies on them, and their
rendering is tested in tests/unit/chart as before.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from kubetrade.state.keys import Keys
from tests.bed import BedError, Node
from tests.e2e.node.helpers import RELEASE, ROOT, Release, installed, wait_for
from tests.e2e.node.helpers import ready as _ready

# The first test of a session pays for starting the node (and building a stale image).
pytestmark = [pytest.mark.node, pytest.mark.timeout(1500)]

PREFIX = "kt"
VALIDATION = """
apiVersion: kubetrade.io/v1alpha1
kind: ValidationRun
metadata: {name: btc-sma-check}
spec:
  strategyRef: btc-sma
  replay: bundled
"""


def _trades(table: str, name: str) -> int:
    row = next((line for line in table.splitlines() if line.startswith(name + " ")), "")
    cols = re.split(r"\s{2,}", row.strip())
    # NAME MODE PHASE P&L TRADES WIN RATE AGE
    return int(cols[4]) if len(cols) >= 7 and cols[4].isdigit() else 0


@pytest.fixture(scope="module")
def release(node: Node) -> Iterator[Release]:
    # no internet: the runners replay the bundled candles (fast)
    env = {"KUBETRADE_MARKET_DATA": "replay:bundled", "KUBETRADE_REPLAY_INTERVAL": "0.05"}
    with installed(node, env, "kubetrade") as rel:
        yield rel


def test_helm_install_makes_operator_api_and_redis_ready(release: Release) -> None:
    for component in ("operator", "api", "redis"):
        pods = release.get("pods", "-l", f"app.kubernetes.io/component={component}")
        items = (pods or {}).get("items", [])
        assert items, f"no {component} pod\n{release.why()}"
        if component == "operator":  # a liveness probe only: Ready = Running
            assert items[0]["status"]["phase"] == "Running"
        assert all(_ready(p) for p in items), f"{component} not Ready\n{release.why()}"
        for c in items[0]["spec"]["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True


def test_a_strategy_trades_in_a_runner_pod(release: Release) -> None:
    release.kubectl("apply", "-f", str(ROOT / "examples" / "riskpolicy.yaml"))
    # The runbook's hot reload of risk limits: the replayed day has losing streaks, and the
    # example's 5-losses-in-a-row rule would disable the strategy before the later steps.
    release.kubectl("patch", "riskpolicy", "default", "--type", "merge",
                    "-p", '{"spec":{"strategyMaxConsecutiveLosses":0}}')  # fmt: skip
    release.kubectl("apply", "-f", str(ROOT / "examples" / "strategies" / "btc-sma.yaml"))
    wait_for(
        lambda: any(_ready(p) for p in release.runner_pods("btc-sma")),
        180, "the btc-sma runner pod Ready", release.why,
    )  # fmt: skip
    table = wait_for(
        lambda: (t := release.kubectl("get", "strategies")) and _trades(t, "btc-sma") >= 2 and t,
        240, "2 trades of btc-sma in `kubectl get strategies`",
        lambda: release.why() + release.kubectl("logs", "deploy/kubetrade-runner-btc-sma",
                                                "--tail", "30", check=False),
    )  # fmt: skip
    print(f"\n{table}")
    status = (release.get("strategy", "btc-sma") or {})["status"]
    assert status["phase"] == "Running"
    assert status["pnl"]
    r = release.redis()
    assert r.xlen(Keys(PREFIX).trades) >= 2


def _consistent(r: Any, keys: Keys, name: str) -> dict[str, int]:
    """What the paper exchange executed is what the runner applied, each once. Both
    read in one transaction: a force-deleted pod can still commit a fill for a moment,
    and two separate reads once saw its seen-mark without its fill."""
    pipe = r.pipeline(transaction=True)
    pipe.get(keys.paper_broker(name))
    pipe.smembers(keys.fills_seen(name))
    raw, seen = pipe.execute()
    paper = json.loads(raw or "{}")
    fills, orders = paper.get("fills", []), paper.get("orders", [])
    assert len({o["client_order_id"] for o in orders}) == len(orders), "an order sent twice"
    assert len({f["trade_id"] for f in fills}) == len(fills), "a fill applied twice"
    assert {f["trade_id"] for f in fills} == seen
    return {"orders": len(orders), "fills": len(fills)}


def test_a_killed_runner_pod_restores_from_redis_without_duplicate_orders(
    release: Release,
) -> None:
    keys, r = Keys(PREFIX), release.redis()
    cursor = keys.candle_cursor("btc-sma")
    trades_before = _trades(release.kubectl("get", "strategies"), "btc-sma")
    old = release.runner_pods("btc-sma")[0]["metadata"]["name"]
    release.kubectl("delete", "pod", old, "--grace-period=0", "--force")
    # The cursor (open time of the last candle decided on) when the pod died.
    killed_at = int(r.hget(cursor, "BTC/USDT") or 0)
    before = _consistent(r, keys, "btc-sma")
    wait_for(
        lambda: any(_ready(p) and p["metadata"]["name"] != old
                    for p in release.runner_pods("btc-sma")),
        180, "a new btc-sma runner pod Ready", release.why,
    )  # fmt: skip
    # The new pod goes on from the restored cursor: 20 more candles decided after it.
    wait_for(
        lambda: int(r.hget(cursor, "BTC/USDT") or 0) > killed_at + 20 * 60_000,
        180, "the new pod to decide candles after the restored cursor", release.why,
    )  # fmt: skip
    after = _consistent(r, keys, "btc-sma")
    assert after["orders"] >= before["orders"] and after["fills"] >= before["fills"]
    assert _trades(release.kubectl("get", "strategies"), "btc-sma") >= trades_before


def test_the_emergency_stop_is_acknowledged_by_every_runner(release: Release) -> None:
    release.kubectl("patch", "emergency", "default", "--type", "merge",
                    "-p", '{"spec":{"action":"stop","reason":"e2e-node"}}')  # fmt: skip
    wait_for(
        lambda: (release.get("emergency", "default") or {}).get("status", {})
        .get("acknowledged") == 1,
        120, "the runner to acknowledge the stop", release.why,
    )  # fmt: skip
    wait_for(
        lambda: (release.get("strategy", "btc-sma") or {}).get("status", {}).get("phase")
        == "Halted",
        60, "btc-sma Halted", release.why,
    )  # fmt: skip
    release.kubectl("patch", "emergency", "default", "--type", "merge",
                    "-p", '{"spec":{"action":"none"}}')  # fmt: skip


def test_a_validation_run_job_completes_with_a_decision(release: Release) -> None:
    release.kubectl("apply", "-f", "-", input=VALIDATION)
    status = wait_for(
        lambda: (s := (release.get("validationrun", "btc-sma-check") or {}).get("status", {}))
        and s.get("phase") in ("Succeeded", "Failed") and s,
        300, "the ValidationRun to finish", release.why,
    )  # fmt: skip
    assert status["phase"] == "Succeeded", status
    assert status["decision"] in ("GO", "NO-GO")
    report = release.get("configmap", status["reportConfigMap"])
    assert report and report["data"], status
    # `kubetrade validate` writes the decision before its pod exits; the Job follows.
    wait_for(
        lambda: ((release.get("job", status["job"]) or {}).get("status", {})
                 .get("succeeded") == 1),
        120, "the validation Job to complete", release.why,
    )  # fmt: skip


def test_helm_uninstall_is_refused_while_a_strategy_exists(release: Release) -> None:
    """The pre-delete hook (issue 19 item 2): the uninstall fails, names the Strategy and
    the way out, and removes nothing; forcing then works as README says."""
    with pytest.raises(BedError) as refused:
        release.node.helm("uninstall", RELEASE, "-n", release.ns, "--wait", "--timeout", "3m")
    assert "job kubetrade-uninstall-guard failed" in str(refused.value), refused.value
    log = release.kubectl("logs", f"job/{RELEASE}-uninstall-guard")
    assert "btc-sma" in log and "kubectl delete strategies --all" in log, log
    assert release.get("deployment", f"{RELEASE}-operator") is not None
    assert release.get("strategy", "btc-sma") is not None
    # Helm leaves a release whose pre-delete hook failed `uninstalling`, and `helm upgrade`
    # then finds no deployed release: the documented way to force is a rollback to the
    # current revision first, then the upgrade that sets the value (README, NOTES).
    status = json.loads(release.node.helm("status", RELEASE, "-n", release.ns, "-o", "json").stdout)
    assert status["info"]["status"] == "uninstalling"
    release.node.helm("rollback", RELEASE, str(status["version"]), "-n", release.ns)
    release.node.helm("upgrade", RELEASE, str(ROOT / "charts" / "kubetrade"), "-n", release.ns,
                      "--reuse-values", "--set", "forceUninstall=true")  # fmt: skip
    status = json.loads(release.node.helm("status", RELEASE, "-n", release.ns, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    hook = json.loads(release.kubectl("get", "job", f"{RELEASE}-uninstall-guard", "-o", "json"))
    assert hook  # the refused Job stays (its log) until the next uninstall


def test_deleting_a_strategy_goes_through_the_finalizer(release: Release) -> None:
    release.kubectl("delete", "strategy", "btc-sma", "--wait=false")
    wait_for(lambda: release.get("strategy", "btc-sma") is None, 120, "btc-sma deleted",
             release.why)  # fmt: skip
    assert release.get("deployment", "kubetrade-runner-btc-sma") is None
    wait_for(lambda: not release.runner_pods("btc-sma"), 120, "the runner pod gone", release.why)


def test_helm_uninstall_leaves_only_what_the_chart_keeps(release: Release) -> None:
    release.node.helm("uninstall", RELEASE, "-n", release.ns, "--wait")
    components = "app.kubernetes.io/component in (operator,api,redis,runner,notify)"
    wait_for(
        lambda: not (release.get("pods", "-l", components) or {}).get("items"),
        180, "every pod of the release gone", release.why,
    )  # fmt: skip
    for kind in ("deployments", "statefulsets", "services"):
        assert not (release.get(kind) or {}).get("items"), kind
    # What users applied stays theirs: the ValidationRun (and the Job it owns, whose
    # completed pod holds the logs) until they delete it.
    assert release.get("validationrun", "btc-sma-check") is not None
    # kept on purpose: the kill switch and the risk policy (helm.sh/resource-policy: keep)
    assert release.get("emergency", "default") is not None
    assert release.get("riskpolicy", "default") is not None
