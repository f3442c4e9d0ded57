"""The chart's pre-delete guard: ``helm uninstall`` is a decision, not an accident.

Run by the chart's pre-delete hook Job as ``kubetrade operator --guard-uninstall
[--force]``. While Strategies exist in the release namespace, an uninstall would remove
the operator, the API and Redis and leave the runners trading unwatched (and each
Strategy's finalizer with nobody to clear it). So:

- no Strategies: nothing to decide, the uninstall goes on (exit 0);
- Strategies and no ``force``: refuse (exit 1) with a message naming them and the two
  ways out (delete the Strategies first, or force);
- Strategies and ``force``: set the Emergency ``default`` to ``stop`` (created if
  missing), then let the uninstall go on (exit 0). Runners watch the Emergency resource
  themselves, so they halt and cancel their open orders even after the operator is gone.

The guard does **not** wait for acknowledgements: the runners act on the resource on
their own, whatever happens to the operator, and the operator's acknowledgement count is
what issue 19 item 3 found untrustworthy, so a wait would delay the uninstall without
making it safer. The stop stays after the uninstall: the chart keeps the Emergency
(``helm.sh/resource-policy: keep``), so a later install does not resume trading unasked.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO, cast

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from kubetrade.resources import GROUP, VERSION

EMERGENCY = "default"
REQUESTED_BY = "helm-uninstall"
REASON = "helm uninstall --set forceUninstall=true: runners halted before the release goes"

#: What the hook's ServiceAccount may do; the chart's hook Role renders exactly these
#: (tests/unit/chart/test_uninstall_hook.py keeps the two in step).
HOOK_RULES: list[dict[str, Any]] = [
    {"apiGroups": [GROUP], "resources": ["strategies"], "verbs": ["list"]},
    {"apiGroups": [GROUP], "resources": ["emergencies"], "verbs": ["get", "create", "patch"]},
]


def refusal(namespace: str, strategies: list[str]) -> str:
    """The message a refused uninstall prints: which Strategies, and the two ways out."""
    names = ", ".join(strategies)
    return (
        f"refusing to uninstall kubetrade: {len(strategies)} Strategy(ies) in namespace "
        f"{namespace} would keep trading with no operator, API or Redis: {names}.\n"
        f"Either delete them first (their runners cancel open orders), then uninstall:\n"
        f"  kubectl delete strategies --all -n {namespace}\n"
        f"or force it (Helm reads an uninstall's values from the release, so set the value "
        f"with an upgrade first; this refusal left the release 'uninstalling', which "
        f"helm upgrade refuses, so first roll back to the REVISION helm history shows last); "
        f"the hook then sets Emergency '{EMERGENCY}' to stop:\n"
        f"  helm rollback RELEASE REVISION -n {namespace}\n"
        f"  helm upgrade RELEASE CHART -n {namespace} --reuse-values --set forceUninstall=true\n"
        f"  helm uninstall RELEASE -n {namespace}"
    )


def guard_uninstall(
    namespace: str,
    force: bool,
    api_client: k8s.ApiClient,
    out: TextIO = sys.stdout,
) -> int:
    """Decide whether the uninstall of the release in ``namespace`` may go on.

    Returns the process exit code: 0 to let Helm go on, 1 to refuse (no Strategy or
    Emergency is touched then). With ``force`` and Strategies present, the Emergency
    ``default`` is set to ``stop`` first. Raises ``ApiException`` when the API server
    refuses a call (the hook then fails, and so does the uninstall: the safe side).
    """
    api = k8s.CustomObjectsApi(api_client)
    listed = cast(
        dict[str, Any], api.list_namespaced_custom_object(GROUP, VERSION, namespace, "strategies")
    )
    names = sorted(item["metadata"]["name"] for item in listed.get("items", []))
    if not names:
        out.write(f"no Strategies in {namespace}: uninstall goes on\n")
        return 0
    if not force:
        out.write(refusal(namespace, names) + "\n")
        return 1
    _stop(api, namespace)
    out.write(
        f"forceUninstall: Emergency '{EMERGENCY}' in {namespace} set to stop; "
        f"{len(names)} Strategy(ies) halt and cancel open orders on their own: "
        f"{', '.join(names)}\n"
    )
    return 0


def _stop(api: k8s.CustomObjectsApi, namespace: str) -> None:
    spec = {"action": "stop", "reason": REASON, "requestedBy": REQUESTED_BY}
    try:
        api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "emergencies", EMERGENCY, {"spec": spec}
        )
    except ApiException as exc:
        if exc.status != 404:
            raise
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Emergency",
            "metadata": {"name": EMERGENCY, "namespace": namespace},
            "spec": spec,
        }
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, "emergencies", body)


def run(namespace: str, force: bool, kubeconfig: str | None = None) -> int:
    """The CLI entry: build a client (in-cluster or kubeconfig), guard, close."""
    from kubetrade.operator.kube import new_api_client

    api_client = new_api_client(kubeconfig)
    try:
        return guard_uninstall(namespace, force, api_client)
    finally:
        api_client.close()
