"""Least-privilege RBAC for the operator, the runners, the API and the Jobs.

``python -m kubetrade.operator.rbac [NAMESPACE]`` prints the manifests; the rendered
copy in ``kubetrade/operator/rbac.yaml`` (namespace ``kubetrade``) is what the Helm
chart mirrors and what a test keeps in step with this module.

- operator: reconciles the kinds into Deployments and Jobs, patches their status,
  posts Events, reads sweep slices' ConfigMaps and writes the sweep's report ConfigMap.
  Nothing cluster-scoped (it serves one named namespace with Kopf's cluster scanning off).
  No Secrets (exchange keys reach runners as volumes the kubelet mounts), no Pods.
- runner: by default each runner gets its own ServiceAccount and Role from the operator
  (render.runner_rbac: its own Strategy, its RiskPolicy and the Emergency, by name).
  The shared ``kubetrade-runner`` account here (read of the three kinds) is for
  ``KUBETRADE_RUNNER_RBAC=shared``. Either way: no Secrets, no writes, no Pods.
- api: reads every kind, patches Strategy (enabled), RiskPolicy (limits) and Emergency.
- notify: reads Strategies and the Emergency, patches the Emergency (/stop, /resume).
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
        # a sweep's slices report in ConfigMaps; the operator gathers them into the
        # ValidationRun's report ConfigMap
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "verbs": ["get", "list", "create", "patch"],
        },
        # per-strategy runner identities; the API server only lets the operator grant
        # what it holds itself (read of the three kinds)
        {
            "apiGroups": [""],
            "resources": ["serviceaccounts"],
            "verbs": ["get", "create", "patch", "delete"],
        },
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["roles", "rolebindings"],
            "verbs": ["get", "create", "patch", "delete"],
        },
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
        # the `default` RiskPolicy/Emergency when nobody created them (KubernetesDesiredState)
        {"apiGroups": [GROUP], "resources": ["riskpolicies", "emergencies"], "verbs": ["create"]},
    ],
    "notify": [
        {"apiGroups": [GROUP], "resources": ["strategies", "emergencies"], "verbs": READ},
        {"apiGroups": [GROUP], "resources": ["emergencies"], "verbs": ["patch", "create"]},
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
    return docs


def render(namespace: str = "kubetrade") -> str:
    header = "# Generated by `python -m kubetrade.operator.rbac`; do not edit.\n"
    return header + yaml.safe_dump_all(manifests(namespace), sort_keys=False)


def chart_rules() -> str:
    """The rules as the Helm chart reads them (charts/kubetrade/files/rbac-rules.yaml),
    so the chart's Roles and the operator's tests share one source."""
    header = "# Generated by `make crds` from kubetrade/operator/rbac.py; do not edit.\n"
    return header + yaml.dump(RULES, Dumper=_PlainDumper, sort_keys=False)


class _PlainDumper(yaml.SafeDumper):
    """No YAML anchors: the rule lists share Python objects, Helm readers need no aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--chart-rules":
        with open(sys.argv[2], "w") as out:
            out.write(chart_rules())
    else:
        sys.stdout.write(render(sys.argv[1] if len(sys.argv) > 1 else "kubetrade"))
