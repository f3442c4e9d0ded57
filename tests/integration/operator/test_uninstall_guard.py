"""The chart's pre-delete guard against the bed's real API server (issue 19 item 2).

`helm uninstall` while Strategies exist is refused and touches nothing; forced, it sets
the Emergency `default` to stop first (runners watch it themselves); with no Strategies
it lets the uninstall go on. The forced case runs as a ServiceAccount holding exactly the
hook Role's rules, so the chart's Role is known to be enough.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, cast

import yaml
from kubernetes import client as k8s

from kubetrade.operator import uninstall
from kubetrade.operator.uninstall import guard_uninstall
from tests.bed import ControlPlane
from tests.fixtures.kubetrade_operator import wait_for

STRATEGY = """apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {name: %s}
spec:
  algorithm: sma-crossover
  parameters: {fastPeriod: 10, slowPeriod: 30}
  symbols: ["BTC/USDT"]
  timeframe: 1m
  mode: paper
  exchange: {name: binance, testnet: true}
  riskPolicyRef: default
  enabled: true
"""
EMERGENCY = """apiVersion: kubetrade.io/v1alpha1
kind: Emergency
metadata: {name: default}
spec: {action: none}
"""


def _emergency(api_client: k8s.ApiClient, ns: str) -> dict[str, Any]:
    api = k8s.CustomObjectsApi(api_client)
    obj = api.get_namespaced_custom_object("kubetrade.io", "v1alpha1", ns, "emergencies", "default")
    return cast(dict[str, Any], obj)


def test_refuses_while_strategies_exist_and_touches_nothing(
    apiserver: ControlPlane, kubetrade_crds: Path, k8s_namespace: str, k8s_api_client: k8s.ApiClient
) -> None:
    ns = k8s_namespace
    apiserver.kubectl("apply", "-n", ns, "-f", "-", input=EMERGENCY)
    apiserver.kubectl("apply", "-n", ns, "-f", "-", input=STRATEGY % "btc-sma")
    apiserver.kubectl("apply", "-n", ns, "-f", "-", input=STRATEGY % "eth-sma")
    before = _emergency(k8s_api_client, ns)

    out = io.StringIO()
    assert guard_uninstall(ns, False, k8s_api_client, out=out) == 1

    message = out.getvalue()
    assert "btc-sma, eth-sma" in message
    assert f"kubectl delete strategies --all -n {ns}" in message
    assert "--reuse-values --set forceUninstall=true" in message
    after = _emergency(k8s_api_client, ns)
    assert after["spec"] == before["spec"]
    assert after["spec"]["action"] == "none"
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_forced_sets_the_emergency_to_stop_with_the_hook_roles_rights(
    apiserver: ControlPlane, kubetrade_crds: Path, k8s_namespace: str, k8s_api_client: k8s.ApiClient
) -> None:
    ns = k8s_namespace
    apiserver.kubectl("apply", "-n", ns, "-f", "-", input=EMERGENCY)
    apiserver.kubectl("apply", "-n", ns, "-f", "-", input=STRATEGY % "btc-sma")
    cfg = _hook_account(apiserver, k8s_api_client, ns)

    assert uninstall.run(ns, True, kubeconfig=str(cfg)) == 0

    spec = _emergency(k8s_api_client, ns)["spec"]
    assert spec["action"] == "stop"
    assert "uninstall" in spec["reason"]
    assert spec["requestedBy"] == "helm-uninstall"


def test_forced_creates_a_missing_emergency_as_stop(
    apiserver: ControlPlane, kubetrade_crds: Path, k8s_namespace: str, k8s_api_client: k8s.ApiClient
) -> None:
    ns = k8s_namespace
    apiserver.kubectl("apply", "-n", ns, "-f", "-", input=STRATEGY % "btc-sma")

    assert guard_uninstall(ns, True, k8s_api_client, out=io.StringIO()) == 0

    assert _emergency(k8s_api_client, ns)["spec"]["action"] == "stop"


def test_no_strategies_lets_the_uninstall_go_on_untouched(
    apiserver: ControlPlane, kubetrade_crds: Path, k8s_namespace: str, k8s_api_client: k8s.ApiClient
) -> None:
    ns = k8s_namespace
    apiserver.kubectl("apply", "-n", ns, "-f", "-", input=EMERGENCY)

    assert guard_uninstall(ns, False, k8s_api_client, out=io.StringIO()) == 0
    assert guard_uninstall(ns, True, k8s_api_client, out=io.StringIO()) == 0

    assert _emergency(k8s_api_client, ns)["spec"]["action"] == "none"


def _hook_account(apiserver: ControlPlane, api_client: k8s.ApiClient, ns: str) -> Path:
    """A ServiceAccount bound to a Role of exactly ``HOOK_RULES``; its kubeconfig."""
    name = "uninstall-guard"
    meta = {"name": name, "namespace": ns}
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": uninstall.HOOK_RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
        },
    ]
    apiserver.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    cfg = Path(apiserver.kubeconfig_for_service_account(ns, name))

    def granted() -> bool:
        result = apiserver.kubectl(
            "auth",
            "can-i",
            "patch",
            "emergencies.kubetrade.io",
            "-n",
            ns,
            kubeconfig=cfg,
            check=False,
        )
        return result.stdout.strip() == "yes"

    # the authorizer learns new Roles through a watch
    wait_for(granted, 15, "hook Role in effect")
    return cfg
