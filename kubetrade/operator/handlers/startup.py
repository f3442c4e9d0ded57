"""Operator start-up: how Kopf persists its state and talks to the API server."""

from __future__ import annotations

import logging
from typing import Any

import kopf

FINALIZER = "kubetrade.io/finalizer"


class ObjectNames(logging.Filter):
    """Prefix every line Kopf logs about an object with ``[namespace/name]`` (Kopf keeps
    the reference in the record; our log format would otherwise drop it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict) and not getattr(record, "kubetrade_named", False):
            record.msg = f"[{ref.get('namespace')}/{ref.get('name')}] {record.msg}"
            record.kubetrade_named = True
        return True


def name_objects_in_logs() -> None:
    """Install :class:`ObjectNames` on Kopf's object logger (once)."""
    logger = logging.getLogger("kopf.objects")
    if not any(isinstance(f, ObjectNames) for f in logger.filters):
        logger.addFilter(ObjectNames())


async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Kopf's settings: our finalizer and annotation prefix, warnings-only events, one
    namespace, and watch/request timeouts that survive an idle connection."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kubetrade.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="kubetrade.io", key="last-handled-configuration"
    )
    # Kopf's own per-handler lines stay out of Events; ours are posted with kopf.event
    settings.posting.level = logging.WARNING
    name_objects_in_logs()
    # One namespace, named: no cluster-wide namespace/CRD scanning (and no RBAC for it).
    settings.scanning.disabled = True
    settings.watching.server_timeout = 120
    settings.watching.client_timeout = 150
    settings.networking.request_timeout = 30


def register(registry: kopf.OperatorRegistry) -> None:
    """Register :func:`configure` as the start-up handler."""
    kopf.on.startup(registry=registry, id="startup")(configure)
