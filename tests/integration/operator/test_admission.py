"""The API server itself refuses a live Strategy whose RiskPolicy has no stop-loss or
daily loss limit, and refuses removing those limits from a policy a live Strategy uses
(the ValidatingAdmissionPolicies of kubetrade/operator/admission.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kubetrade.operator import admission
from tests.bed import ControlPlane
from tests.fixtures.kubetrade_operator import wait_for

# Bound to labelled namespaces only, so the cluster-wide policies touch no other test.
SELECTOR = {"matchLabels": {"kubetrade.io/admission-test": "enforce"}}

LIVE = """
apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {{name: {name}}}
spec:
  algorithm: sma-crossover
  symbols: ["BTC/USDT"]
  mode: {mode}
  riskPolicyRef: {policy}
  exchange: {{credentialsSecret: binance-keys}}
"""
POLICY = """
apiVersion: kubetrade.io/v1alpha1
kind: RiskPolicy
metadata: {{name: {name}}}
spec: {{stopLossPct: {stop}, dailyLossLimitPct: {daily}}}
"""


@pytest.fixture
def ns(apiserver: ControlPlane, kubetrade_crds: Path, k8s_namespace: str) -> str:
    apiserver.kubectl("apply", "-f", "-", input=admission.render(SELECTOR))
    apiserver.kubectl("label", "namespace", k8s_namespace, "kubetrade.io/admission-test=enforce")
    apiserver.kubectl(
        "-n", k8s_namespace, "apply", "-f", "-", input=POLICY.format(name="probe", stop=0, daily=3)
    )

    def enforced() -> bool:  # policies become active through informers: wait for that
        probe = apiserver.kubectl(
            "-n",
            k8s_namespace,
            "apply",
            "--dry-run=server",
            "-f",
            "-",
            input=LIVE.format(name="probe", mode="live", policy="probe"),
            check=False,
        )
        return probe.returncode != 0 and "kubetrade-live-strategy-risk-limits" in probe.stderr

    wait_for(enforced, 30, "admission policies in force")
    return k8s_namespace


def apply(apiserver: ControlPlane, ns: str, manifest: str) -> subprocess.CompletedProcess[str]:
    return apiserver.kubectl("-n", ns, "apply", "-f", "-", input=manifest, check=False)


@pytest.mark.parametrize(
    ("stop", "daily", "field"), [(0, 3, "stopLossPct=0"), (5, 0, "dailyLossLimitPct=0")]
)
def test_live_strategy_refused_when_its_policy_lacks_limits(
    apiserver: ControlPlane, ns: str, stop: int, daily: int, field: str
) -> None:
    assert apply(apiserver, ns, POLICY.format(name="weak", stop=stop, daily=daily)).returncode == 0
    refused = apply(apiserver, ns, LIVE.format(name="live-1", mode="live", policy="weak"))
    assert refused.returncode != 0
    assert (
        "spec.riskPolicyRef: live mode needs a stop-loss and a daily loss limit" in refused.stderr
    )
    assert f"spec.{field}" in refused.stderr
    # paper trading with the same policy is fine
    paper = apply(apiserver, ns, LIVE.format(name="paper-1", mode="paper", policy="weak"))
    assert paper.returncode == 0, paper.stderr


def test_limits_cannot_be_removed_under_a_live_strategy(apiserver: ControlPlane, ns: str) -> None:
    assert apply(apiserver, ns, POLICY.format(name="fit", stop=5, daily=3)).returncode == 0
    live = apply(apiserver, ns, LIVE.format(name="live-2", mode="live", policy="fit"))
    assert live.returncode == 0, live.stderr
    patched = apiserver.kubectl(
        "-n",
        ns,
        "patch",
        "riskpolicy",
        "fit",
        "--type=merge",
        "-p",
        '{"spec":{"stopLossPct":0}}',
        check=False,
    )
    assert patched.returncode != 0
    assert "spec.stopLossPct and spec.dailyLossLimitPct must be > 0" in patched.stderr
    assert "live Strategy live-2" in patched.stderr
    # other edits of the policy still go through
    ok = apiserver.kubectl(
        "-n",
        ns,
        "patch",
        "riskpolicy",
        "fit",
        "--type=merge",
        "-p",
        '{"spec":{"maxDrawdownPct":10}}',
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
