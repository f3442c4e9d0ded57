"""Reading the cluster for validation: the API client, the Strategy and RiskPolicy a run
validates, and finished ValidationRuns as report-like records for pre-flight."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from kubetrade.resources import GROUP, VERSION, parse_manifest

log = logging.getLogger("kubetrade.validation")


def kube_api_client(kubeconfig: str | None = None) -> Any:
    """An ApiClient: in-cluster service account in a pod, else the kubeconfig
    (``--kubeconfig``, then KUBECONFIG, then ~/.kube/config)."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
        return k8s.ApiClient()
    return k8s_config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]


def custom_objects(api_client: Any) -> Any:
    """kubernetes' CustomObjectsApi on ``api_client``."""
    return k8s.CustomObjectsApi(api_client)


def read_cluster_object(api_client: Any, plural: str, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = custom_objects(api_client).get_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, name
    )
    return obj


def list_cluster_objects(api_client: Any, plural: str, namespace: str) -> list[dict[str, Any]]:
    listing = custom_objects(api_client).list_namespaced_custom_object(
        GROUP, VERSION, namespace, plural
    )
    items: list[dict[str, Any]] = listing.get("items", [])
    return items


def cluster_strategy(api_client: Any, namespace: str, name: str) -> Any:
    """The Strategy CR (validated like a file, so errors read the same)."""
    doc = read_cluster_object(api_client, "strategies", namespace, name)
    doc.pop("status", None)
    _strip_server_fields(doc)
    return parse_manifest(doc, f"strategies/{name} in namespace {namespace}")


def cluster_risk_policy(api_client: Any, namespace: str, name: str) -> Any | None:
    """The RiskPolicy CR, or None when it does not exist (defaults then apply)."""
    try:
        doc = read_cluster_object(api_client, "riskpolicies", namespace, name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    doc.pop("status", None)
    _strip_server_fields(doc)
    return parse_manifest(doc, f"riskpolicies/{name} in namespace {namespace}")


def _strip_server_fields(doc: dict[str, Any]) -> None:
    meta = doc.get("metadata", {})
    for key in ("managedFields", "creationTimestamp", "selfLink", "finalizers",
                "ownerReferences", "deletionTimestamp", "deletionGracePeriodSeconds"):
        meta.pop(key, None)


def _report_run_from_config_map(api_client: Any, namespace: str, name: str) -> dict[str, Any]:
    """The ``run`` section of a report ConfigMap, or {} when it cannot be read."""
    try:
        cm = k8s.CoreV1Api(api_client).read_namespaced_config_map(name, namespace)
        run = json.loads((cm.data or {}).get("report.json", "{}")).get("run", {})
    except Exception as exc:  # the decision in the status still counts without it
        log.warning("could not read report ConfigMap %s/%s: %s", namespace, name, exc)
        return {}
    return run if isinstance(run, dict) else {}


def cluster_validation_reports(api_client: Any, namespace: str) -> list[dict[str, Any]]:
    """Finished ValidationRuns as report-like dicts (decision, strategy, time) for
    pre-flight's Paper Validation check."""
    out: list[dict[str, Any]] = []
    for item in list_cluster_objects(api_client, "validationruns", namespace):
        status = item.get("status") or {}
        decision = status.get("decision")
        if decision not in ("GO", "NO-GO"):
            continue
        finished = status.get("completionTime") or item["metadata"].get("creationTimestamp")
        ts = 0
        if isinstance(finished, str):
            try:
                ts = int(datetime.fromisoformat(finished.replace("Z", "+00:00")).timestamp() * 1000)
            except ValueError:
                ts = 0
        run: dict[str, Any] = {"strategy": item.get("spec", {}).get("strategyRef", "")}
        cm_name = status.get("reportConfigMap")
        if cm_name:
            recorded = _report_run_from_config_map(api_client, namespace, str(cm_name))
            if recorded.get("strategy") == run["strategy"]:
                run = recorded
        out.append({
            "decision": decision,
            "run": run,
            "finished_ms": ts,
            "criteria": [
                {"name": text, "passed": False} for text in status.get("failedCriteria", [])
            ],
            "_source": f"validationruns/{item['metadata']['name']}",
        })
    return out
