"""Alert rules and the Grafana dashboard must refer to metrics the code exports, and
must be valid for the tools that load them: a rule on a metric nobody exports never
fires, which is worse than no rule."""

from __future__ import annotations

import importlib
import inspect
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry

ROOT = Path(__file__).resolve().parents[3]
FILES = ROOT / "charts" / "kubetrade" / "files"
# Metrics of Prometheus itself and of kube-state-metrics, not of kubetrade.
EXTERNAL = {"up", "kube_pod_container_status_restarts_total"}
METRIC = re.compile(r"\b(kubetrade_[a-z0-9_]+|up|kube_[a-z0-9_]+)\b")
# Modules holding kubetrade's metrics (runner, API, operator): a module-level
# CollectorRegistry is read as it is; a class named *Metrics is instantiated.
METRIC_MODULES = [
    "kubetrade.runner.metrics",
    "kubetrade.runner.twin_metrics",
    "kubetrade.api.security",
    "kubetrade.operator.metrics",
]


def _registries(module: object) -> list[CollectorRegistry]:
    found: list[CollectorRegistry] = []
    for attr in dir(module):
        value = getattr(module, attr)
        if isinstance(value, CollectorRegistry) and value is not REGISTRY:
            found.append(value)
        elif isinstance(value, type) and attr.endswith("Metrics"):
            params = inspect.signature(value).parameters
            if "registry" in params:
                registry = CollectorRegistry()
                value(registry=registry)
                found.append(registry)
            else:
                found.append(value().registry)
    return found


def exported_names() -> set[str]:
    """Sample names every kubetrade metric family can produce."""
    names: set[str] = set()
    for module_name in METRIC_MODULES:
        module = importlib.import_module(module_name)
        for registry in _registries(module):
            for family in registry.collect():
                base = family.name
                names |= {base, f"{base}_total", f"{base}_bucket", f"{base}_count", f"{base}_sum"}
    return names


def used_names() -> set[str]:
    exprs: list[str] = []
    rules = yaml.safe_load((FILES / "prometheus-rules.yaml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dashboard = json.loads((FILES / "grafana-dashboard.json").read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return {m for e in exprs for m in METRIC.findall(e)}


def test_every_metric_in_rules_and_dashboard_is_exported() -> None:
    exported = exported_names()
    assert exported, "no kubetrade metrics module could be imported"
    missing = sorted(used_names() - exported - EXTERNAL)
    assert missing == [], f"rules/dashboard use metrics the code does not export: {missing}"


def test_rules_cover_the_alerts_that_matter() -> None:
    rules = yaml.safe_load((FILES / "prometheus-rules.yaml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert alerts >= {
        "KubetradeKillSwitchEngaged",
        "KubetradeDailyLossNearLimit",
        "KubetradeDrawdownHalt",
        "KubetradeCircuitBreakerOpen",
        "KubetradeRunnerDown",
        "KubetradeRunnerRestarting",
        "KubetradeCandlesStale",
        "KubetradeReconciliationMismatch",
        "KubetradeValidationNoGo",
    }


def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool missing: scripts/system-deps.sh installs Debian's prometheus")
    out = subprocess.run(
        [promtool, "check", "rules", str(FILES / "prometheus-rules.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_dashboard_panels_are_the_promised_ones() -> None:
    dashboard = json.loads((FILES / "grafana-dashboard.json").read_text())
    titles = " | ".join(p["title"].lower() for p in dashboard["panels"])
    for wanted in ["equity", "p&l", "drawdown", "orders", "rejections", "breaker", "latency"]:
        assert wanted in titles, wanted


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint") or str(
        Path(__import__("sys").executable).parent / "hadolint"
    )
    out = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
