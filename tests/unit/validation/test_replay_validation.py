"""`kubetrade validate --replay` over real recorded candles.

The report must agree with itself: metrics recomputed here, independently, from the
report's own trades and equity curve (with empyrical for Sharpe and drawdown) equal the
metrics it states; and a strategy built to fail one criterion gets NO-GO naming exactly
that criterion with its shortfall.
"""

from __future__ import annotations

import json
import statistics
from decimal import Decimal
from pathlib import Path
from typing import Any

import empyrical
import numpy as np
import pytest

from kubetrade.cli import main
from tests.unit.validation._data import filters_dir, shared_data, strategy_yaml

LTC = ("freqtrade-LTCBTC-5m-2018-01.csv", "LTC/BTC", "5m")
ETH = ("freqtrade-ETHBTC-5m-2018-01.csv", "ETH/BTC", "5m")
BTC_1H = ("binance-BTCUSDT-1h-2024-08.csv", "BTC/USDT", "1h")
BTC_1M = ("binance-BTCUSDT-1m-2024-09-21.csv", "BTC/USDT", "1m")
UNIT = ("freqtrade-UNITTESTBTC-1m-2017-11.csv", "UNIT/BTC", "1m")
# No stop-loss, no halts, 80% of equity per position: built to draw down.
RECKLESS = ("{stopLossPct: 0, dailyLossLimitPct: 0, maxDrawdownPct: 0, maxPositionSizePct: 80, "
            "maxOrderQuantity: 1000000000000, maxOrderNotional: 1000000000000, "
            "strategyMaxConsecutiveLosses: 0}")


def validate(tmp_path: Path, data: tuple[str, str, str], algorithm: str, params: str,
             *flags: str, risk: str = "", capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    file, symbol, timeframe = data
    spec = tmp_path / "strategy.yaml"
    spec.write_text(strategy_yaml("under-test", algorithm, params, symbol, timeframe, risk))
    reports = tmp_path / "reports"
    code = main(["validate", "--strategy-file", str(spec), "--replay", str(shared_data(file)),
                 "--report-dir", str(reports), "--datadir", str(filters_dir(tmp_path)), *flags])
    (path,) = reports.glob("validation_report_*.json")
    report: dict[str, Any] = json.loads(path.read_text())
    assert code == (0 if report["decision"] == "GO" else 3)
    out = capsys.readouterr().out
    assert f": {report['decision']}" in out and str(path) in out
    return report


def independent_metrics(report: dict[str, Any]) -> dict[str, Any]:
    pnl = [Decimal(t["pnl"]) for t in report["trades"]]
    ts = np.array([p["ts_ms"] for p in report["equity_curve"]], dtype=np.int64)
    eq = np.array([float(p["equity"]) for p in report["equity_curve"]])
    returns = eq[1:] / eq[:-1] - 1.0
    periods = 365 * 86_400_000 / float(np.median(np.diff(ts)))
    losses = -sum((p for p in pnl if p < 0), Decimal(0))
    return {
        "trades": len(pnl),
        "win_rate": sum(1 for p in pnl if p > 0) / len(pnl),
        "total_return": eq[-1] / eq[0] - 1.0,
        "max_drawdown": -float(empyrical.max_drawdown(returns)),
        "sharpe": float(empyrical.sharpe_ratio(returns, risk_free=0, annualization=periods)),
        "profit_factor": float(sum((p for p in pnl if p > 0), Decimal(0)) / losses),
    }


@pytest.mark.parametrize(
    ("data", "algorithm", "params"),
    [
        (LTC, "rsi-mean-reversion", "{period: 5, oversold: 20, overbought: 60}"),
        (BTC_1H, "sma-crossover", "{fastPeriod: 5, slowPeriod: 20}"),
        (UNIT, "bollinger-breakout", "{period: 20, stdDev: 2}"),
    ],
)
def test_metrics_match_an_independent_computation_from_the_reports_own_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: tuple[str, str, str],
    algorithm: str, params: str,
) -> None:
    report = validate(tmp_path, data, algorithm, params, capsys=capsys)
    stated = report["metrics"]
    mine = independent_metrics(report)
    assert stated["trades"] == mine["trades"] > 0
    for key in ("win_rate", "total_return", "max_drawdown", "sharpe", "profit_factor"):
        assert stated[key] == pytest.approx(mine[key], rel=1e-9, abs=1e-12), key
    # the trades and the equity curve tell one story: with everything closed, the
    # equity gained is exactly the sum of the trades' net P&L
    start = Decimal(report["run"]["starting_cash"])
    assert Decimal(report["equity_curve"][0]["equity"]) == start
    if report["open_positions_at_end"] == 0:
        final = Decimal(report["equity_curve"][-1]["equity"])
        assert final - start == sum(Decimal(t["pnl"]) for t in report["trades"])
    # each trade is a real round trip inside the replayed range
    data_range = report["run"]["data"]
    for t in report["trades"]:
        assert data_range["start_ms"] <= t["entry_ms"] <= t["exit_ms"] <= data_range["end_ms"]
        assert Decimal(t["quantity"]) > 0 and Decimal(t["fees"]) > 0
    assert data_range["candles"] == sum(1 for _ in shared_data(data[0]).open()) - 1
    assert report["run"]["mode"] == "replay" and report["run"]["code_version"]


def test_go_report_holds_what_was_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = validate(tmp_path, LTC, "rsi-mean-reversion",
                      "{period: 5, oversold: 20, overbought: 60}", capsys=capsys)
    assert report["decision"] == "GO" and report["failed_criteria"] == []
    run = report["run"]
    assert run["strategy"] == "under-test" and run["algorithm"] == "rsi-mean-reversion"
    assert run["parameters"] == {"period": 5, "oversold": 20, "overbought": 60}
    assert run["symbols"] == ["LTC/BTC"] and run["timeframe"] == "5m"
    assert run["data"]["start"] == "2018-01-10T04:55:00Z"
    assert run["criteria"] == {"min_trades": 10, "min_win_rate": "0.45", "min_sharpe": "0.5",
                               "max_drawdown": "0.15"}
    assert [c["passed"] for c in report["criteria"]] == [True] * 4


# Each row: real data and a strategy (and for drawdown, a risk policy) that fail exactly
# one of the runbook's default criteria.
FAIL_ONE = [
    ("min_trades", "Min Trades", BTC_1H, "rsi-mean-reversion",
     "{period: 14, oversold: 20, overbought: 80}", ""),
    ("min_win_rate", "Win Rate", ETH, "sma-crossover", "{fastPeriod: 50, slowPeriod: 200}", ""),
    ("min_sharpe", "Sharpe Ratio", ETH, "rsi-mean-reversion",
     "{period: 14, oversold: 30, overbought: 70}", ""),
    ("max_drawdown", "Max Drawdown", UNIT, "rsi-mean-reversion",
     "{period: 14, oversold: 30, overbought: 70}", RECKLESS),
]


@pytest.mark.parametrize(("key", "name", "data", "algorithm", "params", "risk"), FAIL_ONE)
def test_built_to_fail_one_criterion_gets_no_go_naming_it_with_shortfall(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, name: str,
    data: tuple[str, str, str], algorithm: str, params: str, risk: str,
) -> None:
    report = validate(tmp_path, data, algorithm, params, risk=risk, capsys=capsys)
    assert report["decision"] == "NO-GO"
    failed = [c for c in report["criteria"] if not c["passed"]]
    assert [c["key"] for c in failed] == [key]
    (c,) = failed
    assert c["name"] == name
    metric = {"min_trades": "trades", "min_win_rate": "win_rate", "min_sharpe": "sharpe",
              "max_drawdown": "max_drawdown"}[key]
    assert c["actual"] == pytest.approx(report["metrics"][metric])
    expected = (c["actual"] - c["threshold"] if key == "max_drawdown"
                else c["threshold"] - c["actual"])
    assert c["shortfall"] == pytest.approx(expected) and c["shortfall"] > 0
    assert len(report["failed_criteria"]) == 1 and name in report["failed_criteria"][0]
    assert "short by" in report["failed_criteria"][0]


def test_flags_override_the_criteria(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the min-trades failure above passes once the bar is lowered to its 4 trades
    report = validate(tmp_path, BTC_1H, "rsi-mean-reversion",
                      "{period: 14, oversold: 20, overbought: 80}", "--min-trades", "3",
                      "--min-win-rate", "40%", "--max-drawdown", "0.2", capsys=capsys)
    assert report["decision"] == "GO"
    assert report["run"]["criteria"]["min_trades"] == 3
    assert {c["key"]: c["threshold"] for c in report["criteria"]} == {
        "min_trades": 3, "min_win_rate": 0.4, "min_sharpe": 0.5, "max_drawdown": 0.2}


def test_bad_input_is_a_usage_error_naming_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(strategy_yaml("x", "sma-crossover", "{fastPeriod: 5, slowPeriod: 20}",
                                  "BTC/USDT", "1m"))
    csv = str(shared_data(BTC_1M[0]))
    assert main(["validate", "--strategy-file", str(spec), "--replay", csv,
                 "--min-win-rate", "45", "--report-dir", str(tmp_path)]) == 2
    assert ("--min-win-rate: 45 is above 1; give a fraction (0.45) or a percentage (45%)"
            in capsys.readouterr().err)
    # each flag's own value in the example (it was always win rate's 0.45 / 45%)
    assert main(["validate", "--strategy-file", str(spec), "--replay", csv,
                 "--max-drawdown", "15", "--report-dir", str(tmp_path)]) == 2
    assert ("--max-drawdown: 15 is above 1; give a fraction (0.15) or a percentage (15%)"
            in capsys.readouterr().err)
    assert main(["validate", "--strategy-file", str(spec), "--replay", "/nonexistent.csv",
                 "--report-dir", str(tmp_path)]) == 2
    assert "replay: /nonexistent.csv is not a file" in capsys.readouterr().err
    assert not list(tmp_path.glob("validation_report_*"))


def test_sharpe_convention_is_the_documented_one() -> None:
    # guard for the independent computation above: empyrical with ddof=1 matches the
    # plain formula mean/stdev*sqrt(N)
    r = np.array([0.01, -0.02, 0.015, 0.003])
    plain = statistics.fmean(r) / statistics.stdev(r) * (365**0.5)
    assert float(empyrical.sharpe_ratio(r, annualization=365)) == pytest.approx(plain)


@pytest.mark.parametrize(("flags", "said"), [
    (["--max-drawdown", "1"], "--max-drawdown: 1 is ambiguous; give 1% (or 0.01)"),
    (["--min-trades", "-3"], "--min-trades: must be >= 0, got -3"),
    (["--participation", "0"], "--participation: 0 must be in (0, 1]"),
    (["--max-drawdown", "150%"], "--max-drawdown: must be a fraction between 0 and 1"),
])
def test_each_bad_flag_is_named_as_typed(flags: list[str], said: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    # these said max_drawdown / min_trades / participation, and --max-drawdown 1 was
    # taken as 100 %: a gate that never fails
    spec = tmp_path / "s.yaml"
    spec.write_text(strategy_yaml("x", "sma-crossover", "{fastPeriod: 5, slowPeriod: 20}",
                                  "BTC/USDT", "1m"))
    assert main(["validate", "--strategy-file", str(spec), "--replay",
                 str(shared_data(BTC_1M[0])), "--report-dir", str(tmp_path), *flags]) == 2
    assert said in capsys.readouterr().err
