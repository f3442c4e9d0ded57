"""Least-privilege RBAC for the operator, the runners, the API and the Jobs.

``python -m kubetrade.operator.rbac [NAMESPACE]`` prints the manifests; the rendered
copy in ``kubetrade/operator/rbac.yaml`` (namespace ``kubetrade``) is what the Helm
chart mirrors and what a test keeps in step with this module.

- operator: reconciles the kinds into Deployments and Jobs, patches their status,
  posts Events. No Secrets (exchange keys reach runners as volumes the kubelet mounts),
  no Pods.
- runner: reads Strategies, RiskPolicies and the Emergency. Nothing else: no Secrets,
  no writes, no Pods.
- api: reads every kind, patches Strategy (enabled), RiskPolicy (limits) and Emergency.
- jobs (pre-flight, validation): read specs, write ValidationRun status and the report
  ConfigMap.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from kubetrade.resources import GROUP

KINDS = ["strategies", "riskpolicies", "emergencies", "validationruns"]
READ = ["get", "list", "watch"]

Rule = dict[str, Any]

RULES: dict[str, list[Rule]] = {
    "operator": [
        {"apiGroups": [GROUP], "resources": KINDS, "verbs": [*READ, "patch"]},
        {
            "apiGroups": [GROUP],
            "resources": [f"{k}/status" for k in KINDS],
            "verbs": ["get", "patch"],
        },
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "verbs": [*READ, "create", "patch", "delete"],
        },
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": [*READ, "create", "delete"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ],
    "runner": [
        {
            "apiGroups": [GROUP],
            "resources": ["strategies", "riskpolicies", "emergencies"],
            "verbs": READ,
        },
    ],
    "api": [
        {"apiGroups": [GROUP], "resources": KINDS, "verbs": READ},
        {
            "apiGroups": [GROUP],
            "resources": ["strategies", "riskpolicies", "emergencies"],
            "verbs": ["patch"],
        },
    ],
    "jobs": [
        {
            "apiGroups": [GROUP],
            "resources": ["strategies", "riskpolicies", "validationruns"],
            "verbs": READ,
        },
        {"apiGroups": [GROUP], "resources": ["validationruns/status"], "verbs": ["get", "patch"]},
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "verbs": ["get", "create", "patch", "update"],
        },
    ],
}

#: Kopf discovers the resources it serves from the CRDs (cluster-scoped, read-only).
OPERATOR_CLUSTER_RULES: list[Rule] = [
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": READ,
    },
]


def account(component: str) -> str:
    return f"kubetrade-{component}"


def manifests(namespace: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    labels = {"app.kubernetes.io/part-of": "kubetrade"}
    for component, rules in RULES.items():
        name = account(component)
        meta = {
            "name": name,
            "namespace": namespace,
            "labels": {**labels, "app.kubernetes.io/component": component},
        }
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": meta,
                # Only pods that call the API get a token (operator, runner, api, jobs all do).
                "automountServiceAccountToken": True,
            }
        )
        docs.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": meta,
                "rules": rules,
            }
        )
        docs.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": meta,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
            }
        )
    cluster_name = f"kubetrade-operator-crds-{namespace}"
    docs.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": cluster_name, "labels": labels},
            "rules": OPERATOR_CLUSTER_RULES,
        }
    )
    docs.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": cluster_name, "labels": labels},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": cluster_name,
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": account("operator"), "namespace": namespace}
            ],
        }
    )
    return docs


def render(namespace: str = "kubetrade") -> str:
    header = "# Generated by `python -m kubetrade.operator.rbac`; do not edit.\n"
    return header + yaml.safe_dump_all(manifests(namespace), sort_keys=False)


if __name__ == "__main__":
    sys.stdout.write(render(sys.argv[1] if len(sys.argv) > 1 else "kubetrade"))
