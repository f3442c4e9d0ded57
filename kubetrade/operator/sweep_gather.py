"""Gathering a cluster sweep: the slices' ConfigMaps -> the ValidationRun's status and
report.

Each pod of a sweep's Indexed Job reports in ConfigMap ``<run>-sweep-<index>`` (see
:mod:`kubetrade.validation.sweep_slice`): progress while it runs, then its ranking, its
best's out-of-sample verdict and that run's full report. On every reconcile the
operator reads them (one list call by label), merges them
(:func:`kubetrade.domain.sweeps.gather`) into ``status.sweep`` and ``status.progress``,
and once every slice is complete writes the run's report ConfigMap (the winning slice's
report, its ``sweep`` section replaced by the gathered ranking) and then the decision,
so a reader that sees the decision finds the report.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubetrade.domain.sweeps import RANKED_BY, Gathered, gather, parameters_text
from kubetrade.operator.kube import Kube
from kubetrade.operator.render import Manifest, owner_reference
from kubetrade.operator.render_validation import slices_of
from kubetrade.resources.validationrun_sweep import (
    REPORT_KEY,
    SLICE_KEY,
    SLICE_LABEL,
    SUMMARY_KEY,
    ParameterSweep,
    SweepEntry,
    report_config_map_name,
)

log = logging.getLogger("kubetrade.operator")

RUN_LABEL = "kubetrade.io/validation-run"
"""The label validation's ConfigMaps carry: the ValidationRun's name."""


async def read_slices(kube: Kube, namespace: str, run: str) -> dict[int, Mapping[str, str]]:
    """The data of every slice ConfigMap of ``run``, by slice index (a ConfigMap whose
    slice document does not parse is skipped with a warning: it is being rewritten or
    is not ours)."""
    listing = await kube.request(
        "GET", f"/api/v1/namespaces/{namespace}/configmaps",
        query=[("labelSelector", f"{RUN_LABEL}={run},{SLICE_LABEL}")])
    out: dict[int, Mapping[str, str]] = {}
    for item in (listing or {}).get("items", []):
        data = item.get("data") or {}
        try:
            index = int(json.loads(data[SLICE_KEY])["slice"])
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("sweep slice ConfigMap %s unreadable: %s",
                        item.get("metadata", {}).get("name"), exc)
            continue
        out[index] = data
    return out


def gathered(slices: Mapping[int, Mapping[str, str]], sweep: ParameterSweep) -> Gathered:
    """The slices merged (:func:`kubetrade.domain.sweeps.gather`)."""
    docs = [json.loads(data[SLICE_KEY]) for _, data in sorted(slices.items())]
    return gather(docs, slices_of(sweep), sweep.top, sweep.combinations())


def _entry(result: Mapping[str, Any]) -> dict[str, Any]:
    return SweepEntry.model_validate(dict(result)).to_manifest_dict()


def sweep_status(g: Gathered, sweep: ParameterSweep) -> dict[str, Any]:
    """``status.sweep`` (camelCase, as the CRD declares it)."""
    out: dict[str, Any] = {
        "combinations": g.combinations, "done": g.done, "slices": g.slices,
        "slicesDone": g.slices_done, "parallelism": min(sweep.parallelism, g.slices),
        "top": [_entry(r) for r in g.top],
    }
    if g.best is not None:
        out["best"] = _entry(g.best)
    if g.winner is not None:
        out["winnerSlice"] = g.winner
    return out


def gathered_report(g: Gathered, winner: Mapping[str, str]) -> tuple[dict[str, Any], str]:
    """(the run's report, its summary): the winning slice's report and summary, with the
    ``sweep`` section over every slice."""
    report: dict[str, Any] = json.loads(winner[REPORT_KEY])
    section = dict(report.get("sweep") or {})
    section.update({
        "combinations": g.combinations,
        "slices": g.slices,
        "ranked_by": RANKED_BY,
        "best": g.top[0] if g.top else None,
        "top": g.top,
        "winner_slice": g.winner,
        "decision_from": "out-of-sample run of the best in-sample combination over "
        "every slice",
    })
    section.pop("slice", None)
    report["sweep"] = section
    best = parameters_text(g.top[0]["parameters"]) if g.top else "none"
    summary = (f"{winner.get(SUMMARY_KEY, '').rstrip()}\n\nSweep: {g.combinations} "
               f"combinations in {g.slices} slices, ranked by {RANKED_BY}; best {best} "
               f"(slice {g.winner}), judged out of sample: {report.get('decision')}\n")
    return report, summary


def report_config_map(
    run: str, namespace: str, uid: str, report: Mapping[str, Any], summary: str
) -> Manifest:
    """The run's report ConfigMap (owned by the ValidationRun, deleted with it)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": report_config_map_name(run),
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "kubetrade",
                       "app.kubernetes.io/component": "validation-report",
                       RUN_LABEL: run, "kubetrade.io/decision": str(report.get("decision"))},
            "ownerReferences": [owner_reference("ValidationRun", run, uid, controller=False)],
        },
        "data": {REPORT_KEY: json.dumps(report, separators=(",", ":")),
                 SUMMARY_KEY: summary},
    }


@dataclass(frozen=True)
class Followed:
    """What one reconcile of a sweep found: the status fields to write, the gathered
    state, and -- when this reconcile decided -- the report and summary it wrote."""

    status: dict[str, Any]
    gathered: Gathered
    report: dict[str, Any] | None = None
    summary: str = ""
    location: str = ""


async def follow_sweep(
    kube: Kube, run: str, namespace: str, uid: str, sweep: ParameterSweep,
    status: Mapping[str, Any],
) -> Followed:
    """Gather the slices. Once every slice is complete and no decision is written yet,
    the report ConfigMap is written first and the decision fields come with it."""
    slices = await read_slices(kube, namespace, run)
    g = gathered(slices, sweep)
    new: dict[str, Any] = {"sweep": sweep_status(g, sweep), "progress": g.progress_text()}
    if g.winner is None or status.get("decision") in ("GO", "NO-GO"):
        return Followed(new, g)
    report, summary = gathered_report(g, slices[g.winner])
    manifest = report_config_map(run, namespace, uid, report, summary)
    await kube.apply(manifest)
    name = manifest["metadata"]["name"]
    new.update({"decision": report.get("decision"), "reportConfigMap": name,
                "failedCriteria": [str(x) for x in report.get("failed_criteria", [])]})
    return Followed(new, g, report, summary, f"ConfigMap {namespace}/{name}")
