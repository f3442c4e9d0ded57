"""Kopf handlers, one module per kind, each a set of module-level functions.

``build_registry(settings)`` registers them all onto a new ``kopf.OperatorRegistry`` (an
explicit registry, not Kopf's global one, so several operators can run in one process);
their shared clients come through Kopf's ``memo`` (see ``kubetrade.operator.clients``).

Every handler is level-triggered and idempotent: it computes the whole desired state
from the object and Kopf's in-memory indexes (RiskPolicies, Strategies, Deployments,
Jobs), writes only what differs, by name, with server-side apply. The create/update/
resume handlers and the per-object timer run the same reconcile, so a missed event, an
operator restart or a changed RiskPolicy converge within one timer interval.
"""

from __future__ import annotations

import kopf

from kubetrade.operator.handlers import (
    emergency,
    indexes,
    riskpolicy,
    startup,
    strategy,
    validationrun,
)
from kubetrade.operator.settings import OperatorSettings

__all__ = ["build_registry"]


def build_registry(settings: OperatorSettings) -> kopf.OperatorRegistry:
    """A registry holding every handler; timers tick every ``settings.status_interval``
    seconds (the Emergency's at most every 2 s)."""
    registry = kopf.OperatorRegistry()
    interval = settings.status_interval
    startup.register(registry)
    indexes.register(registry)
    strategy.register(registry, interval)
    riskpolicy.register(registry, interval)
    emergency.register(registry, interval)
    validationrun.register(registry, interval)
    return registry
