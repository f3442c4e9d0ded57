"""Operator start-up: how Kopf persists its state and talks to the API server."""

from __future__ import annotations

import logging
from typing import Any

import kopf

FINALIZER = "kubetrade.io/finalizer"


async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Kopf's settings: our finalizer and annotation prefix, warnings-only events, one
    namespace, and watch/request timeouts that survive an idle connection."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kubetrade.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="kubetrade.io", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    # One namespace, named: no cluster-wide namespace/CRD scanning (and no RBAC for it).
    settings.scanning.disabled = True
    settings.watching.server_timeout = 120
    settings.watching.client_timeout = 150
    settings.networking.request_timeout = 30


def register(registry: kopf.OperatorRegistry) -> None:
    """Register :func:`configure` as the start-up handler."""
    kopf.on.startup(registry=registry, id="startup")(configure)
