"""`kubetrade validate` with REDIS_URL: the latest result for the API and the alert the
notifier sends to Telegram, on a real redis-server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from kubetrade.cli import main
from kubetrade.state.alerts import Alert, AlertKind, Severity
from kubetrade.state.keys import Keys
from tests.unit.validation._data import shared_data, strategy_yaml


async def test_result_kept_in_redis_and_alert_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    redis_client: Any, redis_url: str,  # Any: redis.asyncio replies are untyped
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("KUBETRADE_REDIS_PREFIX", "val-test")
    keys = Keys("val-test")
    spec = tmp_path / "s.yaml"
    spec.write_text(strategy_yaml("eth-sma", "sma-crossover",
                                  "{fastPeriod: 50, slowPeriod: 200}", "ETH/BTC", "5m"))
    code = await asyncio.to_thread(main, [
        "validate", "--strategy-file", str(spec), "--report-dir", str(tmp_path / "data"),
        "--replay", str(shared_data("freqtrade-ETHBTC-5m-2018-01.csv"))])
    assert code == 3
    summary = capsys.readouterr().out.strip()
    (path,) = (tmp_path / "data").glob("validation_report_*.json")

    latest = json.loads(await redis_client.get(keys.validation_latest))
    assert latest["decision"] == "NO-GO" and latest["strategy"] == "eth-sma"
    assert latest["report"] == str(path)
    assert [c["key"] for c in latest["criteria"] if not c["passed"]] == ["min_win_rate"]
    assert "trades" not in latest and "equity_curve" not in latest  # a summary, not the report

    (entry,) = await redis_client.xrange(keys.alerts)
    alert = Alert.from_stream(*entry)
    assert alert.kind is AlertKind.VALIDATION_RESULT and alert.severity is Severity.WARNING
    assert alert.title == "Validation NO-GO: eth-sma" and alert.strategy == "eth-sma"
    assert alert.text == summary and "FAIL Win Rate" in alert.text
    assert alert.data["decision"] == "NO-GO"
    audit = [f for _, f in await redis_client.xrange(keys.audit)]
    assert [(f["actor"], f["action"]) for f in audit] == [("validation", "validation_result")]
