"""One slice of a cluster sweep: what a pod of the sweep's Indexed Job does.

``kubetrade validate --validation-run NAME --sweep ... --sweep-slices N`` in pod
``$JOB_COMPLETION_INDEX`` (Kubernetes sets it in an Indexed Job) runs the same
walk-forward as ``kubetrade validate --sweep`` (:func:`kubetrade.validation.run.run_plan`)
over its slice of the combinations: rank them on the in-sample candles, judge the
slice's best out of sample. It reports in ConfigMap ``<run>-sweep-<index>`` (owned by
the ValidationRun): progress while it runs (combinations done, best so far), then its
ranking, the verdict of its best and that run's full report. The operator gathers the
slices (:mod:`kubetrade.domain.sweeps`) into the ValidationRun's status and report; a
slice never writes the decision itself (the slices would overwrite each other's).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from kubetrade.domain.clock import Clock
from kubetrade.domain.sweeps import json_safe
from kubetrade.resources.validationrun_sweep import (
    REPORT_KEY,
    SLICE_KEY,
    SLICE_LABEL,
    SUMMARY_KEY,
    slice_config_map_name,
)
from kubetrade.validation.cluster_report import ClusterReporter, fit_for_config_map
from kubetrade.validation.plan import ValidationPlan
from kubetrade.validation.sweep_progress import SweepTick

log = logging.getLogger("kubetrade.validation")

SLICE_REPORT_LIMIT = 600_000
"""Bytes of the slice's full report in its ConfigMap: the operator copies the winner's
into the run's report ConfigMap (1 MiB) beside the gathered ranking."""


def slice_index_from_env(environ: Mapping[str, str] | None = None) -> int:
    """This pod's slice: ``JOB_COMPLETION_INDEX`` (set by Kubernetes in an Indexed
    Job). ValueError when it is missing or not a number."""
    env = os.environ if environ is None else environ
    text = env.get("JOB_COMPLETION_INDEX", "")
    if not text.isdigit():
        raise ValueError("--sweep-slices: JOB_COMPLETION_INDEX is not set to a slice index "
                         f"({text!r}); a sweep slice runs as a pod of an Indexed Job")
    return int(text)


def slice_document(
    index: int, slices: int, tick: SweepTick, report: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The slice report the operator gathers (shape: :mod:`kubetrade.domain.sweeps`):
    progress only while ``report`` is None, then complete with the slice's ranking
    and its best's out-of-sample verdict."""
    doc: dict[str, Any] = {"slice": index, "slices": slices, "combinations": tick.total,
                           "done": tick.done, "complete": False,
                           "top": [tick.best] if tick.best is not None else []}
    if report is None:
        return doc
    section = report.get("sweep") or {}
    doc.update({
        "complete": True,
        "done": tick.total,
        "top": [json_safe(r) for r in section.get("top", [])],
        "decision": report.get("decision"),
        "failed_criteria": [str(x) for x in report.get("failed_criteria", [])],
        "in_sample": section.get("in_sample"),
        "out_of_sample": section.get("out_of_sample"),
    })
    return doc


class SliceWriter:
    """Writes one slice's ConfigMap through the run's :class:`ClusterReporter`."""

    def __init__(self, reporter: ClusterReporter, index: int, slices: int) -> None:
        self.reporter = reporter
        self.index = index
        self.slices = slices
        self.last = SweepTick(0, 0, None, None)

    @property
    def name(self) -> str:
        return slice_config_map_name(self.reporter.name, self.index)

    def _put(self, data: dict[str, str]) -> None:
        self.reporter.put_config_map(
            self.name, {"app.kubernetes.io/component": "validation-sweep",
                        SLICE_LABEL: str(self.index)}, data)

    def progress(self, tick: SweepTick) -> None:
        """Done and best so far; best effort (a failed write is logged, the sweep goes on)."""
        self.last = tick
        if tick.done >= tick.total:
            return  # the slice's last word is finish(), after the out-of-sample run
        try:
            self._put({SLICE_KEY: json.dumps(slice_document(self.index, self.slices, tick,
                                                            None))})
        except Exception as exc:
            log.warning("could not write sweep progress to ConfigMap %s: %s", self.name, exc)

    def finish(self, report: Mapping[str, Any], summary: str) -> None:
        """The slice's ranking, verdict and full report (raises on failure: a slice whose
        result cannot be written must fail its pod, so the Job says so)."""
        doc = slice_document(self.index, self.slices, self.last, report)
        self._put({SLICE_KEY: json.dumps(doc),
                   REPORT_KEY: fit_for_config_map(report, SLICE_REPORT_LIMIT),
                   SUMMARY_KEY: summary})


def execute_slice(
    plan: ValidationPlan, reporter: ClusterReporter | None, wall: Clock
) -> tuple[int, dict[str, Any]]:
    """Run this pod's slice of ``plan.sweep`` and report it; (exit code 0, the slice's
    report). Errors propagate (a ValueError naming the slice) for the caller to mark
    the ValidationRun Failed with the reason."""
    from kubetrade.validation.run import run_plan
    from kubetrade.validation.summary import format_summary

    sweep = plan.sweep
    if sweep is None or sweep.slices is None or reporter is None:
        raise ValueError("a sweep slice needs --sweep, --sweep-slices and --validation-run")
    writer = SliceWriter(reporter, sweep.slice_index, sweep.slices)
    plan = replace(plan, sweep=replace(sweep, watch=writer.progress))
    try:
        report = run_plan(plan, wall, wall.now_ms(), None)
        summary = format_summary(report, f"ConfigMap {reporter.namespace}/{writer.name}")
        writer.finish(report, summary)
    except ValueError as exc:  # the caller marks the run Failed with this message
        raise ValueError(f"sweep slice {writer.index}: {exc}") from exc
    print(summary, flush=True)
    return 0, report
