"""The validation report: its JSON shape, the file it is written to, the summary, progress."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kubetrade.domain.clock import ManualClock
from kubetrade.domain.gonogo import Criteria
from kubetrade.domain.models import ClosedTrade
from kubetrade.validation.cluster_report import fit_for_config_map
from kubetrade.validation.plan import parse_duration
from kubetrade.validation.progress import Progress
from kubetrade.validation.report import RunInfo, build_report, load_reports, write_report
from kubetrade.validation.summary import format_summary


class Metrics:
    trades = 2
    win_rate = Decimal("0.5")
    sharpe = 0.3
    max_drawdown = Decimal("0.02")
    total_return = Decimal("0.01")
    profit_factor = float("inf")


def _report(finished_ms: int = 1_726_963_200_000) -> dict[str, Any]:
    trade = ClosedTrade("t1", "s", "BTC/USDT", Decimal("0.1"), Decimal("100"), Decimal("110"),
                        1_726_876_800_000, 1_726_876_860_000, Decimal("0.02"), Decimal("0.98"))
    run = RunInfo("btc-sma", "sma-crossover", {"fastPeriod": 5, "slowPeriod": 20},
                    ["BTC/USDT"], "1m", "replay", "x.csv")
    curve = [(1_726_876_800_000, Decimal("10000")), (1_726_876_860_000, Decimal("10001"))]
    return build_report(run, Criteria(), Metrics(), [trade], curve,
                          1_726_876_800_000, 1_726_876_860_000, 2, 1, finished_ms)


def test_report_holds_what_the_runbook_promises() -> None:
    r = _report()
    assert r["decision"] == "NO-GO"
    assert {c["key"] for c in r["criteria"] if not c["passed"]} == {"min_trades", "min_sharpe"}
    assert r["metrics"] == {"trades": 2, "win_rate": 0.5, "sharpe": 0.3, "max_drawdown": 0.02,
                            "total_return": 0.01, "profit_factor": None}
    (t,) = r["trades"]
    assert t["entry_time"] == "2024-09-21T00:00:00Z" and t["exit_price"] == "110"
    assert {"entry_price", "quantity", "fees", "pnl", "exit_time"} <= set(t)
    assert r["equity_curve"][1] == {"ts_ms": 1_726_876_860_000, "time": "2024-09-21T00:01:00Z",
                                    "equity": "10001"}
    run = r["run"]
    assert run["parameters"] == {"fastPeriod": 5, "slowPeriod": 20}
    assert run["data"]["start"] == "2024-09-21T00:00:00Z" and run["data"]["candles"] == 2
    assert run["code_version"].startswith("0.1.0")
    json.dumps(r, allow_nan=False)  # strictly valid JSON: no NaN/Infinity


def test_written_to_timestamped_file_never_overwriting(tmp_path: Path) -> None:
    r = _report()
    p1 = write_report(r, tmp_path / "data", 1_726_963_200_000)
    p2 = write_report(r, tmp_path / "data", 1_726_963_200_000)
    assert p1.name == "validation_report_20240922T000000Z.json"
    assert p2 != p1 and p2.exists()
    assert json.loads(p1.read_text())["decision"] == "NO-GO"
    (tmp_path / "data" / "validation_report_junk.json").write_text("{not json")
    loaded = load_reports(tmp_path / "data")
    assert len(loaded) == 2 and all(x["_source"] for x in loaded)


def test_summary_names_failures_and_shortfalls() -> None:
    text = format_summary(_report(), "data/x.json")
    assert "NO-GO" in text
    assert "FAIL Min Trades: 2 (needs >= 10), short by 8" in text
    assert "FAIL Sharpe Ratio: 0.3000 (needs >= 0.5000), short by 0.2000" in text
    assert "PASS Win Rate: 50.00%" in text and "data/x.json" in text


def test_progress_logs_percent_and_eta(caplog: pytest.LogCaptureFixture) -> None:
    wall = ManualClock(0)
    seen: list[str] = []
    p = Progress(200, wall, on_update=lambda pct, eta, text: seen.append(text), step_pct=25,
                   min_interval_s=1000)
    caplog.set_level(logging.INFO, "kubetrade.validation")
    for i in range(1, 201):
        wall.advance(0.5)
        p.update(i)
    assert seen == ["25% (ETA 1m15s)", "50% (ETA 50s)", "75% (ETA 25s)", "100% (ETA 0s)"]
    assert "validation progress 50% (ETA 50s)" in caplog.text


@pytest.mark.parametrize(("text", "seconds"), [("48h", 172800), ("90m", 5400),
                                                ("1d12h", 129600), ("30s", 30)])
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["48", "h", "0h", "4 8h", "-1h"])
def test_parse_duration_refuses(bad: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_config_map_copy_samples_the_curve_before_dropping_trades() -> None:
    r = _report()
    r["equity_curve"] = [{"ts_ms": i, "time": "t", "equity": str(10000 + i)} for i in range(50_000)]
    text = fit_for_config_map(r, limit=400_000)
    assert len(text.encode()) <= 400_000
    thin = json.loads(text)
    assert thin["equity_curve_sampled_every"] >= 2
    assert thin["equity_curve"][0] == r["equity_curve"][0]
    assert thin["equity_curve"][-1] == r["equity_curve"][-1]
    assert thin["trades"] == r["trades"] and "trades_truncated_from" not in thin
    small = _report()
    assert json.loads(fit_for_config_map(small)) == small
