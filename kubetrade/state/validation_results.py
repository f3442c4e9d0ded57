"""A validation verdict in Redis: the latest result, an alert for the notifier (Telegram)
and an audit entry -- written the same way by a ``kubetrade validate`` process and by the
operator when it gathers a cluster sweep."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubetrade.state.alerts import Alert, AlertKind, Severity, raise_alert
from kubetrade.state.audit import AuditEntry, write_audit
from kubetrade.state.client import Redis
from kubetrade.state.keys import Keys
from kubetrade.state.reports import write_validation_latest


def latest_summary(report: Mapping[str, Any], location: str) -> dict[str, Any]:
    """What keys.validation_latest holds: the verdict and where the full report is,
    without the (possibly large) trade list and equity curve."""
    return {
        "decision": report["decision"],
        "strategy": report["run"]["strategy"],
        "namespace": report["run"].get("namespace", ""),
        "criteria": report["criteria"],
        "failed_criteria": report.get("failed_criteria", []),
        "metrics": report["metrics"],
        "run": {k: v for k, v in report["run"].items()},
        "finished_ms": report["finished_ms"],
        "report": location,
    }


async def publish_report(
    redis: Redis, keys: Keys, report: Mapping[str, Any], location: str, summary: str
) -> None:
    """keys.validation_latest, plus an alert the notifier sends (to Telegram) and an
    audit entry: the decision is the kind of thing someone must be able to look up.
    ``report``: a validation report (decision, run, criteria, metrics, finished_ms);
    ``location``: where its full text is; ``summary``: the alert's text."""
    await write_validation_latest(redis, keys, latest_summary(report, location))
    go = report["decision"] == "GO"
    strategy = str(report["run"]["strategy"])
    await raise_alert(redis, keys, Alert(
        kind=AlertKind.VALIDATION_RESULT,
        severity=Severity.INFO if go else Severity.WARNING,
        title=f"Validation {report['decision']}: {strategy}",
        text=summary,
        ts_ms=int(report["finished_ms"]),
        strategy=strategy,
        data={"decision": report["decision"], "metrics": report["metrics"],
              "failed_criteria": report.get("failed_criteria", []), "report": location},
    ))
    await write_audit(redis, keys, AuditEntry(
        ts_ms=int(report["finished_ms"]),
        actor="validation",
        action="validation_result",
        strategy=strategy,
        detail={"decision": report["decision"], "report": location,
                "failed_criteria": report.get("failed_criteria", [])},
    ))
