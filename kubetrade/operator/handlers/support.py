"""Helpers every handler module uses: status patches, reconcile metrics, Normal
Events, and a failure reported once then retried with backoff."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from kubetrade.operator import metrics
from kubetrade.operator.clients import Clients
from kubetrade.operator.status import Conditions
from kubetrade.resources import GROUP, VERSION

log = logging.getLogger("kubetrade.operator")


def normal_event(body: kopf.Body, reason: str, message: str) -> None:
    """A Normal Event on ``body`` for `kubectl describe` (posted whatever Kopf's posting
    level, which stays at WARNING so Kopf's own per-handler lines are not Events)."""
    kopf.event(body, type="Normal", reason=reason, message=message)


def readable(exc: Exception) -> str:
    """One line a user can act on: the API server's message, or pydantic's errors."""
    if isinstance(exc, ApiException):
        try:
            text = str(json.loads(exc.body or "{}").get("message") or "")
        except (TypeError, ValueError):
            text = ""
        return f"API server: {text or exc.reason} ({exc.status})"
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'object'}: {e['msg']}" for e in exc.errors()
        )
    return str(exc).replace("\n", " ")


async def guarded(
    c: Clients,
    body: kopf.Body,
    patch: kopf.Patch,
    kind: str,
    trigger: str,
    work: Awaitable[None],
) -> None:
    """Run one reconcile. A failure (API server refusal, unreadable object) sets the
    ``Ready`` condition to False ReconcileFailed with a readable message, posts a
    Warning Event and logs one line -- once per distinct message -- and is retried by
    the timer with backoff (5 s doubling to 5 min), never re-logged every tick."""
    meta = body["metadata"]
    key = (kind, str(meta.get("namespace")), str(meta["name"]))
    now = c.clock.now_ms()
    if trigger == "timer" and not c.backoff.due(key, now):
        if hasattr(work, "close"):
            work.close()  # the coroutine was never awaited: close it quietly
        return
    try:
        await work
    except (ApiException, ValidationError) as exc:
        message = readable(exc)
        report, delay = c.backoff.failed(key, now, message)
        status = dict(body.get("status") or {})
        conds = Conditions(status.get("conditions"), meta.get("generation"))
        conds.set("Ready", False, "ReconcileFailed", f"{message}; retry in {delay:.0f}s", now)
        patch.status["conditions"] = conds.items
        if report:
            kopf.warn(body, reason="ReconcileFailed", message=message)
            log.warning("%s %s/%s: %s (retrying with backoff)", kind, key[1], key[2], message)
        return
    if c.backoff.succeeded(key):
        normal_event(body, "Reconciled", "the earlier failure is resolved")


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


def on_changes(
    registry: kopf.OperatorRegistry,
    plural: str,
    handler: Callable[..., Awaitable[None]],
    *,
    id: str,
    backoff: float,
    update: bool = True,
) -> None:
    """Register ``handler`` for ``plural`` (of our GROUP/VERSION) on update (unless
    ``update`` is False), create and resume, under the one handler ``id``."""
    causes = [kopf.on.update] if update else []
    for cause in (*causes, kopf.on.create, kopf.on.resume):
        cause(GROUP, VERSION, plural, registry=registry, id=id, backoff=backoff)(handler)


def on_timer(
    registry: kopf.OperatorRegistry,
    plural: str,
    handler: Callable[..., Awaitable[None]],
    *,
    id: str,
    interval: float,
    initial_delay: float | None = None,
) -> None:
    """Register ``handler`` as ``plural``'s timer every ``interval`` seconds (first after
    ``initial_delay``; None: Kopf's default), retried with a 5 s backoff."""
    kopf.timer(
        GROUP,
        VERSION,
        plural,
        interval=interval,
        initial_delay=initial_delay,
        registry=registry,
        id=id,
        backoff=5,
    )(handler)
