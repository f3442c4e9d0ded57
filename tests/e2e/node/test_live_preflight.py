"""`mode: live` on the real node: the operator's pre-flight Job pod runs `kubetrade
preflight` against the fake Binance (tests/fakes/binance: Binance's REST protocol, so
the real ccxt client signs and parses) with the keys of the Strategy's Secret, mounted
as a volume; a PASS shows in the Strategy's status and the live runner pod starts
against the same fake; a key the exchange refuses is a FAIL in the status and no runner.

The fake runs in this test process and listens on the node's address only (pods reach
it through the bridge's gateway; nothing is routed off the machine); the operator hands
KUBETRADE_EXCHANGE_URL (set with the chart's operator.extraEnv) on to the Job and
runner pods, as the operator e2e does. The RiskPolicy is the chart's `default` (its
stop-loss and daily loss limit make a live Strategy admissible). The fake listens on
port 443, which the chart's NetworkPolicy opens for runners and pre-flight Jobs (TCP
443 to networkPolicy.egressCIDRs), but that policy is NOT enforced on this node (the
CNI bridge plugin has no policy engine): nothing here shows it would let them through.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.bed import Node
from tests.bed.nodenet import NODE_NAME
from tests.e2e.node.helpers import Release, installed, ready, wait_for
from tests.fakes.binance import FakeBinance

# The first test of a session pays for starting the node (and building a stale image).
pytestmark = [pytest.mark.node, pytest.mark.timeout(1500)]

STRATEGY = """
apiVersion: v1
kind: Secret
metadata: {{name: {name}-keys}}
stringData: {{apiKey: {key}, secretKey: {secret}}}
---
apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {{name: {name}}}
spec:
  algorithm: sma-crossover
  parameters: {{fastPeriod: 10, slowPeriod: 30}}
  symbols: ["BTC/USDT"]
  mode: live
  initialCapital: 400
  exchange: {{testnet: false, credentialsSecret: {name}-keys}}
"""


@pytest.fixture(scope="module")
def fake(node: Node) -> Iterator[FakeBinance]:
    """The fake exchange on the node's address, port 443 (the port the chart's egress
    policy opens to the exchange; plain HTTP); its market is the recording replayed as
    now (for a runner on the system clock), 10,000 USDT on the account."""
    fake = FakeBinance(host=node.ip, port=443).start()
    fake.run_market_live()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def live(node: Node, fake: FakeBinance) -> Iterator[Release]:
    with installed(node, {"KUBETRADE_EXCHANGE_URL": fake.url}, "kubetrade-live") as rel:
        yield rel


def _status(rel: Release, name: str) -> dict[str, Any]:
    return dict((rel.get("strategy", name) or {}).get("status") or {})


def _preflight_job(rel: Release, name: str) -> dict[str, Any]:
    """The Strategy's pre-flight Job, once it has finished (succeeded or failed)."""

    def finished() -> dict[str, Any] | None:
        jobs = rel.get("jobs", "-l", f"kubetrade.io/job=preflight,kubetrade.io/strategy={name}")
        for job in (jobs or {}).get("items", []):
            st = job.get("status", {})
            if st.get("succeeded") or st.get("failed"):
                return dict(job)
        return None

    job: dict[str, Any] = wait_for(finished, 300, f"the pre-flight Job of {name}", rel.why)
    return job


def _row(log: str, check: str) -> str:
    """The line of `check` in `kubetrade preflight`'s table."""
    return next((line for line in log.splitlines() if line.startswith(check)), "")


def _job_pod(rel: Release, job: str) -> dict[str, Any]:
    pods = (rel.get("pods", "-l", f"job-name={job}") or {}).get("items", [])
    assert len(pods) == 1, (pods, rel.why())
    return dict(pods[0])


def test_a_live_strategy_passes_preflight_in_a_pod_and_its_runner_reads_the_fake(
    node: Node, live: Release, fake: FakeBinance
) -> None:
    manifests = STRATEGY.format(name="btc-live", key=fake.api_key, secret=fake.secret)
    live.kubectl("apply", "-f", "-", input=manifests)
    job = _preflight_job(live, "btc-live")
    name = job["metadata"]["name"]
    log = live.kubectl("logs", f"job/{name}", check=False)
    assert job["status"].get("succeeded") == 1, f"{log}\n{live.why()}"
    pod = _job_pod(live, name)
    assert pod["spec"]["nodeName"] == NODE_NAME and pod["status"]["phase"] == "Succeeded"
    # the signed calls reached the fake with the Secret's key (-2015 otherwise)
    assert fake.count("GET", "/api/v3/account") >= 1, fake.requests
    assert "PASS" in _row(log, "API Key Validity"), log
    assert "Pre-flight for btc-live (live): " in log and "must not start" not in log, log
    status = wait_for(
        lambda: (s := _status(live, "btc-live")).get("preflight") == "PASS" and s,
        120, "status.preflight PASS", live.why,
    )  # fmt: skip
    assert status.get("preflightPassedHash")
    # the live runner: its pod Ready (restore, reconciliation against the fake, then the
    # loop's heartbeat) and reading the fake's market
    runner: dict[str, Any] = wait_for(
        lambda: next((p for p in live.runner_pods("btc-live") if ready(p)), None),
        240, "the live runner pod Ready",
        lambda: live.why() + live.kubectl("logs", "deploy/kubetrade-runner-btc-live",
                                          "--tail", "30", check=False),
    )  # fmt: skip
    klines = fake.count("GET", "/api/v3/klines")
    wait_for(lambda: fake.count("GET", "/api/v3/klines") > klines, 180,
             "the runner to poll the fake's candles", live.why)  # fmt: skip
    env = {e["name"]: e.get("value") for e in runner["spec"]["containers"][0]["env"]}
    assert env["KUBETRADE_EXCHANGE_URL"] == fake.url
    assert env["BINANCE_TESTNET"] == "false"
    assert not any(fake.api_key in str(v) for v in env.values())  # keys only as a volume
    wait_for(lambda: _status(live, "btc-live").get("phase") == "Running", 120,
             "btc-live Running", live.why)  # fmt: skip


def test_a_key_the_exchange_refuses_fails_preflight_and_starts_no_runner(
    live: Release, fake: FakeBinance
) -> None:
    manifests = STRATEGY.format(name="btc-badkey", key="not-the-key", secret=fake.secret)
    live.kubectl("apply", "-f", "-", input=manifests)
    job = _preflight_job(live, "btc-badkey")
    name = job["metadata"]["name"]
    log = live.kubectl("logs", f"job/{name}", check=False)
    assert job["status"].get("failed") == 1 and not job["status"].get("succeeded"), log
    assert _job_pod(live, name)["status"]["phase"] == "Failed"
    assert "FAIL" in _row(log, "API Key Validity"), log
    assert "Pre-flight for btc-badkey (live): FAIL" in log, log
    assert "not-the-key" not in log  # the refused key is never printed
    status = wait_for(
        lambda: (s := _status(live, "btc-badkey")).get("preflight") == "FAIL" and s,
        120, "status.preflight FAIL", live.why,
    )  # fmt: skip
    wait_for(lambda: _status(live, "btc-badkey").get("phase") == "PreflightFailed", 60,
             "btc-badkey PreflightFailed", live.why)  # fmt: skip
    assert not status.get("preflightPassedHash")
    deployment = live.get("deployment", "kubetrade-runner-btc-badkey")
    assert deployment is None or deployment["spec"]["replicas"] == 0, deployment
    assert not live.runner_pods("btc-badkey")
