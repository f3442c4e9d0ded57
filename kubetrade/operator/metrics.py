"""Prometheus metrics of the operator (port ``metrics``, scraped by the chart's PodMonitor).

Own registry, so several operators in one test process do not collide.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter(
    "kubetrade_operator_reconciles_total",
    "Reconciles by kind, trigger (create/update/resume/timer/delete) and result.",
    ["kind", "trigger", "result"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "kubetrade_operator_reconcile_seconds",
    "Time of one reconcile.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
WRITES = Counter(
    "kubetrade_operator_writes_total",
    "Objects the operator applied/created (Deployments, Jobs, runner identities).",
    ["kind"],
    registry=REGISTRY,
)
EMERGENCY_ACTION = Gauge(
    "kubetrade_operator_emergency_action",
    "1 for the Emergency action in force in the namespace.",
    ["action"],
    registry=REGISTRY,
)
EMERGENCY_ACKS = Gauge(
    "kubetrade_operator_emergency_acknowledged",
    "Runners that acknowledged the Emergency action in force.",
    registry=REGISTRY,
)
EMERGENCY_RUNNERS = Gauge(
    "kubetrade_operator_emergency_runners",
    "Enabled Strategies (runners expected to acknowledge).",
    registry=REGISTRY,
)
BLOCKED = Gauge(
    "kubetrade_operator_strategy_blocked",
    "1 while a Strategy is kept from trading by a rule (risk policy, pre-flight FAIL).",
    ["strategy", "reason"],
    registry=REGISTRY,
)
VALIDATION_GO = Gauge(
    "kubetrade_validation_go",
    "Decision of the latest finished ValidationRun of a Strategy: 1 GO, 0 NO-GO.",
    ["strategy", "validationrun"],
    registry=REGISTRY,
)
