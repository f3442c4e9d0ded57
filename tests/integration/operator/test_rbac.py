"""The ServiceAccounts get what they need and nothing more (checked by the API server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetrade.operator import rbac
from tests.bed import ControlPlane
from tests.fixtures.kubetrade_operator import wait_for


@pytest.fixture
def accounts(apiserver: ControlPlane, kubetrade_crds: Path, k8s_namespace: str) -> str:
    apiserver.kubectl("apply", "-f", "-", input=rbac.render(k8s_namespace))
    # The authorizer learns new Roles through a watch: wait until each account has one
    # permission it should have, so a "no" below is a real refusal, not propagation lag.
    for component in rbac.RULES:

        def granted(c: str = component) -> bool:
            return can(apiserver, k8s_namespace, c, "get", "strategies.kubetrade.io")

        wait_for(granted, 15, f"RBAC of {component} in effect")
    return k8s_namespace


def can(apiserver: ControlPlane, ns: str, component: str, verb: str, resource: str) -> bool:
    cfg = apiserver.kubeconfig_for_service_account(ns, rbac.account(component))
    kind, _, sub = resource.partition("/")
    extra = [f"--subresource={sub}"] if sub else []
    result = apiserver.kubectl(
        "auth", "can-i", verb, kind, *extra, "-n", ns, kubeconfig=cfg, check=False
    )
    assert result.stdout.strip() in ("yes", "no"), result.stderr
    return result.stdout.strip() == "yes"


@pytest.mark.parametrize(
    ("component", "verb", "resource", "allowed"),
    [
        ("runner", "get", "strategies.kubetrade.io", True),
        ("runner", "watch", "riskpolicies.kubetrade.io", True),
        ("runner", "watch", "emergencies.kubetrade.io", True),
        ("runner", "patch", "strategies.kubetrade.io", False),
        ("runner", "patch", "strategies.kubetrade.io/status", False),
        ("runner", "list", "secrets", False),
        ("runner", "get", "secrets", False),
        ("runner", "create", "pods", False),
        ("runner", "create", "deployments.apps", False),
        ("operator", "create", "deployments.apps", True),
        ("operator", "create", "jobs.batch", True),
        ("operator", "patch", "strategies.kubetrade.io/status", True),
        ("operator", "get", "secrets", False),
        ("operator", "create", "pods", False),
        ("api", "patch", "emergencies.kubetrade.io", True),
        ("api", "create", "strategies.kubetrade.io", False),
        ("api", "delete", "strategies.kubetrade.io", False),
        ("api", "get", "secrets", False),
        ("jobs", "patch", "validationruns.kubetrade.io/status", True),
        ("jobs", "create", "configmaps", True),
        ("jobs", "patch", "strategies.kubetrade.io", False),
        ("jobs", "list", "secrets", False),
    ],
)
def test_least_privilege(
    apiserver: ControlPlane,
    accounts: str,
    component: str,
    verb: str,
    resource: str,
    allowed: bool,
) -> None:
    assert can(apiserver, accounts, component, verb, resource) is allowed
