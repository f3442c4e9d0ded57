"""KubetradeLiveTwinDiverged (issue 20) checked by ``promtool test rules`` on the chart's
own rule file: it fires once live equity has been further from its paper twin's than the
RiskPolicy's twinDivergencePct for 5 minutes, never while the threshold is 0 (off), and
not for a strategy within its threshold."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

RULES = Path(__file__).resolve().parents[3] / "charts" / "kubetrade" / "files" / \
    "prometheus-rules.yaml"
A = '{namespace="trading", strategy="btc-live"}'  # 0.2 % at first, 1.5 % from minute 3
B = '{namespace="trading", strategy="eth-live"}'  # 0.4 % against a 0.5 % threshold
C = '{namespace="trading", strategy="off-live"}'  # 9 % but no threshold


def _description() -> str:
    rules = yaml.safe_load(RULES.read_text())
    rule = next(r for g in rules["groups"] for r in g["rules"]
                if r.get("alert") == "KubetradeLiveTwinDiverged")
    return str(rule["annotations"]["description"])


def _case() -> dict[str, object]:
    return {
        "interval": "1m",
        "input_series": [
            {"series": f"kubetrade_twin_divergence_pct{A}", "values": "0.2 0.2 0.2 1.5x12"},
            {"series": f"kubetrade_twin_divergence_threshold_pct{A}", "values": "1x15"},
            {"series": f"kubetrade_twin_divergence_pct{B}", "values": "0.4x15"},
            {"series": f"kubetrade_twin_divergence_threshold_pct{B}", "values": "0.5x15"},
            {"series": f"kubetrade_twin_divergence_pct{C}", "values": "9x15"},
            {"series": f"kubetrade_twin_divergence_threshold_pct{C}", "values": "0x15"},
        ],
        "alert_rule_test": [
            {"eval_time": "6m", "alertname": "KubetradeLiveTwinDiverged", "exp_alerts": []},
            {"eval_time": "9m", "alertname": "KubetradeLiveTwinDiverged", "exp_alerts": [{
                "exp_labels": {"severity": "warning", "namespace": "trading",
                               "strategy": "btc-live"},
                "exp_annotations": {
                    "summary": "btc-live: live equity 1.5% away from its paper twin",
                    "description": _description()},
            }]},
        ],
    }


def test_live_twin_diverged_fires_past_the_policy_threshold(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool missing: scripts/system-deps.sh installs Debian's prometheus")
    spec = tmp_path / "twin-test.yaml"
    spec.write_text(yaml.safe_dump({"rule_files": [str(RULES)], "evaluation_interval": "1m",
                                    "tests": [_case()]}))
    out = subprocess.run([promtool, "test", "rules", str(spec)], capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
