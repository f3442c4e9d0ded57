"""Helpers every handler module uses: status patches and reconcile metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Mapping
from typing import Any

import kopf

from kubetrade.operator import metrics


def write_status(patch: kopf.Patch, current: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """Only the fields that changed: status writes bump resourceVersion and wake watchers."""
    for key, value in new.items():
        if current.get(key) != value:
            patch.status[key] = value


async def timed(kind: str, trigger: str, work: Awaitable[None]) -> None:
    """Count and time one reconcile; errors are re-raised for Kopf to retry."""
    started = time.perf_counter()
    try:
        await work
    except Exception:
        metrics.RECONCILES.labels(kind, trigger, "error").inc()
        raise
    finally:
        metrics.RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - started)
    metrics.RECONCILES.labels(kind, trigger, "ok").inc()
