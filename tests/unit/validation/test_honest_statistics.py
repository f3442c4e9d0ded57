"""A criterion states its sample, the Sharpe ratio its standard error (Lo 2002), and a
criterion the sample cannot support is "insufficient data", never judged on noise."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kubetrade.cli import main
from kubetrade.domain.gonogo import NO_GO, evaluate
from kubetrade.domain.metrics import PerformanceMetrics
from tests.unit.validation._data import filters_dir, shared_data, strategy_yaml


def _validate(tmp_path: Path, capsys: pytest.CaptureFixture[str], file: str, symbol: str,
              tf: str, params: str, *flags: str) -> tuple[dict[str, Any], str]:
    spec = tmp_path / "s.yaml"
    spec.write_text(strategy_yaml("h", "sma-crossover", params, symbol, tf))
    reports = tmp_path / "reports"
    main(["validate", "--strategy-file", str(spec), "--replay", str(shared_data(file)),
          "--report-dir", str(reports), "--datadir", str(filters_dir(tmp_path)), *flags])
    (path,) = reports.glob("validation_report_*.json")
    return json.loads(path.read_text()), capsys.readouterr().out


def test_one_day_of_minute_data_flags_the_sharpe_ratio_instead_of_judging_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report, out = _validate(tmp_path, capsys, "binance-BTCUSDT-1m-2024-09-21.csv",
                            "BTC/USDT", "1m", "{fastPeriod: 3, slowPeriod: 8}",
                            "--min-trades", "1", "--min-win-rate", "0")
    sharpe = next(c for c in report["criteria"] if c["key"] == "min_sharpe")
    assert abs(report["metrics"]["sharpe"]) > 5  # the noise a day of minutes gives
    assert sharpe["judged"] is False and sharpe["passed"] is False
    assert sharpe["shortfall"] is None  # no distance is claimed for an unjudged value
    assert sharpe["sample"] == {"days": pytest.approx(1439 / 1440, abs=1e-3),
                                "returns": 1439}
    assert "needs 7 days" in sharpe["note"]
    assert report["decision"] == NO_GO and report["insufficient_data"] == ["Sharpe Ratio"]
    assert "NO-GO (insufficient data: Sharpe Ratio)" in out
    assert "INSUFFICIENT DATA Sharpe Ratio" in out
    trades = next(c for c in report["criteria"] if c["key"] == "min_trades")
    assert trades["judged"] is True and trades["sample"]["trades"] == len(report["trades"])
    assert "marked to market" in report["run"]["judging"]["drawdown"]


def test_the_standard_error_is_lo_2002_from_the_reports_own_curve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report, out = _validate(tmp_path, capsys, "binance-BTCUSDT-1h-2024-08.csv", "BTC/USDT",
                            "1h", "{fastPeriod: 5, slowPeriod: 20}")
    eq = np.array([float(p["equity"]) for p in report["equity_curve"]])
    r = eq[1:] / eq[:-1] - 1
    q = 365 * 24  # hourly periods in a year
    sr_period = r.mean() / r.std(ddof=1)
    # Lo (2002) eq. 9, IID: Var(SR) = (1 + SR^2 / 2) / T, annualised by sqrt(q)
    expected = math.sqrt((1 + sr_period**2 / 2) / len(r)) * math.sqrt(q)
    sharpe = next(c for c in report["criteria"] if c["key"] == "min_sharpe")
    assert sharpe["standard_error"] == pytest.approx(expected, rel=1e-9)
    assert sharpe["judged"] is True  # a month of hours is enough to judge
    assert "(SE)" in out and "days" in out


def _metrics(sharpe: float, se: float, days: float, trades: int = 40,
             win_rate: float = 0.7) -> PerformanceMetrics:
    return PerformanceMetrics(trades, int(trades * win_rate), 0, win_rate, sharpe, 0.05, 0.1,
                              2.0, Decimal(1), Decimal(1), Decimal(0), Decimal(1), 8760.0,
                              sharpe_se=se, days=days, returns=int(days * 24))


def test_confidence_refuses_a_threshold_inside_the_interval() -> None:
    m = _metrics(sharpe=1.5, se=0.8, days=60)
    assert evaluate(m).decision == "GO"  # off by default: judged on the estimate
    verdict = evaluate(m, confidence=Decimal("0.95"))  # 1.5 - 0.5 < 1.96 * 0.8
    assert [r.key for r in verdict.insufficient] == ["min_sharpe"]
    assert verdict.decision == NO_GO
    assert evaluate(_metrics(sharpe=3.0, se=0.5, days=60),
                    confidence=Decimal("0.95")).decision == "GO"
    # a win rate of 0.7 over 40 trades (SE 0.072) against 0.45: judged at 95%, but
    # 0.6 (SE 0.077, 0.15 above) is within 1.96 standard errors
    assert evaluate(m, confidence=Decimal("0.95")).results[1].judged
    coin = evaluate(_metrics(sharpe=3.0, se=0.5, days=60, win_rate=0.6),
                    confidence=Decimal("0.95")).results[1]
    assert not coin.judged and "standard errors" in coin.note
    with pytest.raises(ValueError, match="confidence"):
        evaluate(m, confidence=Decimal("0.5"))


def test_no_trades_is_no_win_rate_to_judge() -> None:
    verdict = evaluate(_metrics(sharpe=0.0, se=0.0, days=30, trades=0, win_rate=0.0))
    win = verdict.results[1]
    assert win.judged is False and win.note == "no trades"
    assert "INSUFFICIENT DATA Win Rate" in win.explain()


def test_the_headline_names_failed_criteria_before_unjudged_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new user read 'NO-GO (insufficient data: Sharpe Ratio)' while trades and win
    rate had failed outright: the headline (also the Telegram text) names them first."""
    report, out = _validate(tmp_path, capsys, "binance-BTCUSDT-1m-2024-09-21.csv",
                            "BTC/USDT", "1m", "{fastPeriod: 3, slowPeriod: 8}",
                            "--min-trades", "100000")
    assert report["decision"] == NO_GO and report["insufficient_data"] == ["Sharpe Ratio"]
    headline = next(line for line in out.splitlines() if line.startswith("Validation of"))
    assert "(failed: Min Trades" in headline, headline
    assert headline.rstrip().endswith("insufficient data: Sharpe Ratio)"), headline
