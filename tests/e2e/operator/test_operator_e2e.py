"""End to end: Strategy CRs -> operator -> runner Deployments -> the pods' processes
trading paper on replayed real candles -> `kubectl get strategies` shows trades and
P&L -> `kubectl patch emergency default` halts them all.

No kubelet runs in the bed, so the test plays it: for each runner Deployment the
operator renders it starts the container's command with the container's environment
(fieldRefs resolved, the Secret volume "mounted" as files), authenticated as the
runner ServiceAccount.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from kubetrade.exchange.replay import bundled_candles
from kubetrade.state.keys import Keys
from tests.fixtures.kubetrade_operator import Kubelet, OperatorBed, wait_for

MANIFESTS = """
apiVersion: kubetrade.io/v1alpha1
kind: RiskPolicy
metadata: {name: default}
spec: {strategyMaxConsecutiveLosses: 0}
---
apiVersion: kubetrade.io/v1alpha1
kind: Emergency
metadata: {name: default}
---
apiVersion: v1
kind: Secret
metadata: {name: binance-keys}
stringData: {apiKey: test-key, secretKey: test-secret}
---
apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {name: fast-sma}
spec:
  algorithm: sma-crossover
  parameters: {fastPeriod: 2, slowPeriod: 4}
  symbols: ["BTC/USDT"]
  exchange: {testnet: true, credentialsSecret: binance-keys}
---
apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {name: slow-sma}
spec:
  algorithm: sma-crossover
  parameters: {fastPeriod: 3, slowPeriod: 8}
  symbols: ["BTC/USDT"]
"""


@pytest.fixture
def kubelet(operator_bed: OperatorBed, tmp_path: Path) -> Iterator[Kubelet]:
    k = Kubelet(operator_bed, tmp_path)
    try:
        yield k
    finally:
        k.stop()


def _trades(table: str, name: str) -> int:
    row = next((line for line in table.splitlines() if line.startswith(name + " ")), "")
    cols = re.split(r"\s{2,}", row.strip())
    # NAME MODE PHASE P&L TRADES WIN RATE AGE
    return int(cols[4]) if len(cols) >= 7 and cols[4].isdigit() else 0


def test_runner_pods_trade_and_the_kill_switch_halts_them(
    operator_bed: OperatorBed, kubelet: Kubelet, fake_binance: Any
) -> None:
    bed = operator_bed
    csv = bundled_candles("BTC/USDT")
    assert csv is not None
    bed.start(
        KUBETRADE_MARKET_DATA=f"replay:{csv}",
        KUBETRADE_REPLAY_INTERVAL="0.02",
        KUBETRADE_EXCHANGE_URL=fake_binance.url,
        LOG_LEVEL="WARNING",
    )
    bed.apply(MANIFESTS)
    names = ["fast-sma", "slow-sma"]
    deployments = wait_for(
        lambda: (d := bed.items("deployments")) and len(d) == 2 and d, 30, "2 Deployments"
    )
    for d in deployments:
        assert d["spec"]["replicas"] == 1
        kubelet.run(d)

    try:
        table = wait_for(
            lambda: (
                (t := bed.kubectl("get", "strategies"))
                and all(_trades(t, n) >= 2 for n in names)
                and t
            ),
            180,
            "trades of both runners in `kubectl get strategies`",
        )
        for name in names:
            st = bed.get("strategy", name)["status"]  # type: ignore[index]
            assert st["phase"] == "Running"
            assert st["pnl"] and st["winRate"].endswith("%")
        print("\n" + table)

        bed.kubectl(
            "patch",
            "emergency",
            "default",
            "--type",
            "merge",
            "-p",
            '{"spec":{"action":"stop","reason":"e2e","requestedBy":"tester"}}',
        )
        wait_for(
            lambda: (
                (bed.get("emergency", "default") or {}).get("status", {}).get("acknowledged") == 2
            ),
            60,
            "both runners acknowledge the stop",
        )
        wait_for(
            lambda: all(
                (bed.get("strategy", n) or {}).get("status", {}).get("phase") == "Halted"
                for n in names
            ),
            30,
            "both Strategies show phase Halted",
        )
        halted = {n: _trades(bed.kubectl("get", "strategies"), n) for n in names}
        st = bed.get("strategy", "fast-sma")["status"]  # type: ignore[index]
        assert "stop" in (st.get("haltedReason") or "")
        print(bed.kubectl("get", "strategies,emergencies"))
        assert all(p.poll() is None for p in kubelet.procs.values()), "runners stay up, halted"
        assert halted

        # deleting a Strategy goes through its runner (told to stop, orders cancelled)
        # before the operator removes the Deployment; state stays in Redis
        bed.kubectl("delete", "strategy", "slow-sma", "--wait=false")
        wait_for(lambda: bed.get("strategy", "slow-sma") is None, 60, "slow-sma deleted")
        assert bed.get("deployment", "kubetrade-runner-slow-sma") is None
        r: Any = redis.Redis.from_url(bed.redis_url, decode_responses=True)
        keys = Keys(bed.prefix)
        done = [
            f
            for _, f in r.xrange(keys.audit)
            if f["action"] == "strategy.deleted" and f["strategy"] == "slow-sma"
        ]
        assert json.loads(done[-1]["detail"])["ordersLeftOpen"] == []
        assert r.exists(keys.summary("slow-sma"))
        runner_audit = [f["action"] for _, f in r.xrange(keys.audit) if f["strategy"] == "slow-sma"]
        assert "strategy.disabled" in runner_audit  # the runner itself acted on the request
    except AssertionError:
        print(kubelet.logs())
        raise
