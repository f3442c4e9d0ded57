"""Validation's outputs in Redis: the latest verdict, an alert for the notifier, audit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubetrade.state.alerts import Alert, AlertKind, Severity, raise_alert
from kubetrade.state.audit import AuditEntry, write_audit
from kubetrade.state.client import connect
from kubetrade.state.keys import keys_from_env
from kubetrade.state.reports import write_validation_latest
from kubetrade.validation.report import latest_summary


async def publish_report(
    redis: Any, keys: Any, report: Mapping[str, Any], location: str, summary: str
) -> None:
    """keys.validation_latest, plus an alert the notifier sends (to Telegram) and an
    audit entry: the decision is the kind of thing someone must be able to look up."""
    latest = latest_summary(report, location)
    await write_validation_latest(redis, keys, latest)
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


async def publish_to(
    redis_url: str, report: Mapping[str, Any], location: str, summary: str
) -> None:
    """:func:`publish_report` to the Redis at ``redis_url``, with the environment's keys."""
    redis = connect(redis_url)
    try:
        await publish_report(redis, keys_from_env(), report, location, summary)
    finally:
        await redis.aclose()
