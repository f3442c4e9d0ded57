"""KubetradeMarketDataStale (issue 13) checked by ``promtool test rules`` on the chart's
own rule file: it fires when the newest candle closed more than 3 timeframes ago (180 s
for 1m) for a minute, and not for a 1h strategy whose candle is 50 minutes old."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

RULES = Path(__file__).resolve().parents[3] / "charts" / "kubetrade" / "files" / \
    "prometheus-rules.yaml"
L1M = '{namespace="trading", symbol="BTC/USDT", timeframe="1m"}'
L1H = '{namespace="trading", symbol="ETH/USDT", timeframe="1h"}'


def _description() -> str:
    rules = yaml.safe_load(RULES.read_text())
    rule = next(r for g in rules["groups"] for r in g["rules"]
                if r.get("alert") == "KubetradeMarketDataStale")
    return str(rule["annotations"]["description"])


def _case() -> dict[str, object]:
    # one sample a minute; the 1m age grows 60 s a minute from 30 s (stalled feed):
    # 30, 90, 150, 210 (> 180 from minute 3), 270, ...; the 1h age sits at 3000 s
    return {
        "interval": "1m",
        "input_series": [
            {"series": f"kubetrade_last_candle_age_seconds{L1M}", "values": "30+60x10"},
            {"series": f"kubetrade_candle_timeframe_seconds{L1M}", "values": "60x10"},
            {"series": f"kubetrade_last_candle_age_seconds{L1H}", "values": "3000x10"},
            {"series": f"kubetrade_candle_timeframe_seconds{L1H}", "values": "3600x10"},
        ],
        "alert_rule_test": [
            {"eval_time": "3m", "alertname": "KubetradeMarketDataStale", "exp_alerts": []},
            {"eval_time": "5m", "alertname": "KubetradeMarketDataStale", "exp_alerts": [{
                "exp_labels": {"severity": "warning", "namespace": "trading",
                               "symbol": "BTC/USDT", "timeframe": "1m"},
                # age 30 + 5 * 60 = 330 s at minute 5
                "exp_annotations": {"summary": "No closed BTC/USDT 1m candle for 5m 30s",
                                    "description": _description()},
            }]},
        ],
    }


def test_market_data_stale_fires_after_three_timeframes(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool missing: scripts/system-deps.sh installs Debian's prometheus")
    spec = tmp_path / "stale-test.yaml"
    spec.write_text(yaml.safe_dump({"rule_files": [str(RULES)], "evaluation_interval": "1m",
                                    "tests": [_case()]}))
    out = subprocess.run([promtool, "test", "rules", str(spec)], capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
