"""Validation's outputs in the cluster: the report ConfigMap and the ValidationRun's
status (progress, decision, failed criteria), written by :class:`ClusterReporter`."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from kubetrade.resources import API_VERSION, GROUP, VERSION
from kubetrade.resources.validationrun_sweep import (
    report_config_map_name as report_config_map_name,  # re-exported for the CLI
)
from kubetrade.validation.cluster import custom_objects, read_cluster_object
from kubetrade.validation.report import iso

log = logging.getLogger("kubetrade.validation")

CONFIGMAP_LIMIT = 900_000
"""Bytes of report JSON a ConfigMap may hold here: the API server's limit is 1 MiB for
the whole object, and the summary and metadata need room too."""


def fit_for_config_map(report: Mapping[str, Any], limit: int = CONFIGMAP_LIMIT) -> str:
    """The report's JSON, thinned only when it would not fit in a ConfigMap.

    A long replay's equity curve can exceed 1 MiB; the curve is sampled (first and last
    points kept, ``equity_curve_sampled_every`` says how) before any trade is dropped,
    because trades are what a reviewer audits. The full report stays in the file.
    """
    text = json.dumps(report, separators=(",", ":"))
    if len(text.encode()) <= limit:
        return text
    thin = dict(report)
    curve = list(report.get("equity_curve", []))
    every = 2
    while len(curve) > 2:
        sampled = curve[::every]
        if sampled[-1] is not curve[-1]:
            sampled.append(curve[-1])
        thin["equity_curve"] = sampled
        thin["equity_curve_sampled_every"] = every
        text = json.dumps(thin, separators=(",", ":"))
        if len(text.encode()) <= limit:
            return text
        every *= 2
        if every > len(curve):
            break
    trades = list(report.get("trades", []))
    thin["trades_truncated_from"] = len(trades)
    while trades:
        trades = trades[: len(trades) // 2]
        thin["trades"] = trades
        text = json.dumps(thin, separators=(",", ":"))
        if len(text.encode()) <= limit:
            return text
    thin["trades"] = []
    return json.dumps(thin, separators=(",", ":"))


class ClusterReporter:
    """Writes progress, decision and the report ConfigMap for one ValidationRun.

    Status patches go to the status subresource with a merge patch, touching only the
    fields validation owns (decision, progress, reportConfigMap, failedCriteria, phase)
    so the operator's own fields (job, conditions, times) are left alone.
    """

    def __init__(self, api_client: Any, namespace: str, name: str) -> None:
        self.api = api_client
        self.namespace = namespace
        self.name = name
        self._uid: str | None = None

    def _custom(self) -> Any:
        return custom_objects(self.api)

    def get(self) -> dict[str, Any]:
        obj = read_cluster_object(self.api, "validationruns", self.namespace, self.name)
        self._uid = obj.get("metadata", {}).get("uid")
        return obj

    def patch_status(self, status: dict[str, Any]) -> None:
        self._custom().patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, "validationruns", self.name, {"status": status},
            _content_type="application/merge-patch+json",
        )

    def progress(self, text: str) -> None:
        """Progress is best effort: a failed patch is logged, never fatal."""
        try:
            self.patch_status({"progress": text, "phase": "Running"})
        except Exception as exc:
            log.warning("could not patch ValidationRun %s/%s progress: %s",
                        self.namespace, self.name, exc)

    def write_config_map(self, report: Mapping[str, Any], summary: str) -> str:
        name = report_config_map_name(self.name)
        labels = {"app.kubernetes.io/component": "validation-report",
                  "kubetrade.io/decision": str(report["decision"])}
        self.put_config_map(name, labels, {"report.json": fit_for_config_map(report),
                                           "summary.txt": summary})
        return name

    def put_config_map(self, name: str, labels: Mapping[str, str],
                       data: Mapping[str, str]) -> None:
        """Create or replace ConfigMap ``name`` owned by the ValidationRun (deleted with
        it), labelled as kubetrade's and as this run's, plus ``labels``."""
        if self._uid is None:
            self.get()
        owner = []
        if self._uid:
            owner = [k8s.V1OwnerReference(
                api_version=API_VERSION, kind="ValidationRun", name=self.name, uid=self._uid,
                controller=False, block_owner_deletion=False,
            )]
        body = k8s.V1ConfigMap(
            metadata=k8s.V1ObjectMeta(
                name=name,
                namespace=self.namespace,
                labels={"app.kubernetes.io/name": "kubetrade",
                        "kubetrade.io/validation-run": self.name, **labels},
                owner_references=owner or None,
            ),
            data=dict(data),
        )
        core = k8s.CoreV1Api(self.api)
        try:
            core.create_namespaced_config_map(self.namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            core.replace_namespaced_config_map(name, self.namespace, body)

    def finish(self, report: Mapping[str, Any], summary: str) -> str:
        """ConfigMap first, then the status naming it, so a reader that sees the
        decision always finds the report."""
        name = self.write_config_map(report, summary)
        failed = [str(x) for x in report.get("failed_criteria", [])]
        self.patch_status({
            "decision": report["decision"],
            "reportConfigMap": name,
            "failedCriteria": failed,
            "progress": "100%",
            "phase": "Succeeded",
            "completionTime": iso(int(report["finished_ms"]))[:19] + "Z",
        })
        return name

    def fail(self, message: str) -> None:
        try:
            self.patch_status({"phase": "Failed", "progress": f"failed: {message}"[:1024]})
        except Exception as exc:
            log.warning("could not mark ValidationRun %s/%s failed: %s",
                        self.namespace, self.name, exc)
