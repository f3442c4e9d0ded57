"""The five market-data cases end to end: `kubetrade validate --replay <case file>` refuses
with exit 2 and a message naming file, line and rule, or (with the flag that says how)
runs and gives the right figures."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kubetrade.cli import main
from tests.marketdata import market_file

CASES = Path(__file__).resolve().parents[2] / "data" / "cases"
ROOT = Path(__file__).resolve().parents[3]


def validate(strategy: Path, replay: Path | str, reports: Path, *flags: str,
             capsys: pytest.CaptureFixture[str]) -> tuple[int, str, dict[str, Any] | None]:
    code = main(["validate", "--strategy-file", str(strategy), "--replay", str(replay),
                 "--report-dir", str(reports), *flags])
    err = capsys.readouterr().err
    found = sorted(reports.glob("validation_report_*.json")) if reports.is_dir() else []
    return code, err, json.loads(found[-1].read_text()) if found else None


def test_candles_nan_exit_2_as_a_user_runs_it(tmp_path: Path) -> None:
    case = CASES / "candles-nan"
    run = subprocess.run(
        [sys.executable, "-m", "kubetrade", "validate", "--strategy-file", "btc-sma.yaml",
         "--replay", "candles_nan.csv", "--report-dir", str(tmp_path / "out")],
        cwd=case, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 2, run.stderr
    assert "candles_nan.csv:21: not-finite: open is nan" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "out").exists()


def test_seconds_refused_then_converted_matches_the_ms_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES / "seconds-timestamps"
    code, err, report = validate(case / "btc-sma.yaml", case / "candles_seconds.csv",
                                 tmp_path / "s", capsys=capsys)
    assert code == 2 and report is None
    assert "candles_seconds.csv:2: time-unit:" in err and "looks like seconds" in err
    _, _, ms = validate(case / "btc-sma.yaml", case / "candles_ms.csv", tmp_path / "ms",
                        capsys=capsys)
    code, _, conv = validate(case / "btc-sma.yaml", case / "candles_seconds.csv",
                             tmp_path / "conv", "--time-unit", "s", capsys=capsys)
    assert code == 3 and ms is not None and conv is not None
    assert conv["run"]["data"]["start"] == "2024-09-21T00:00:00Z"
    assert conv["metrics"] == ms["metrics"]
    assert conv["metrics"]["trades"] == 4  # the observed ms run: 4 trades, not 2
    assert conv["data_quality"]["time_unit"] == "s"


def test_conflicting_duplicate_refused_or_the_later_row_trades_like_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES / "conflicting-duplicates"
    code, err, _ = validate(case / "btc-sma.yaml", case / "candles_dup.csv", tmp_path / "d",
                            capsys=capsys)
    assert code == 2 and "candles_dup.csv:68: conflicting-duplicate:" in err
    _, _, clean = validate(case / "btc-sma.yaml", case / "candles_clean.csv", tmp_path / "c",
                           capsys=capsys)
    _, _, last = validate(case / "btc-sma.yaml", case / "candles_dup.csv", tmp_path / "l",
                          "--duplicates", "last", capsys=capsys)
    assert clean is not None and last is not None
    pnls = [Decimal(t["pnl"]) for t in last["trades"]]
    assert pnls[3] == Decimal("-4.14476131")  # the complete candle's result, not -4.0812...
    assert [t["pnl"] for t in last["trades"]] == [t["pnl"] for t in clean["trades"]]
    assert last["data_quality"]["conflicting_duplicates"] == 1


def test_timeframe_mismatch_refused_and_resampled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES / "timeframe-mismatch"
    minutes = market_file("binance-BTCUSDT-1m-2024-09-21.csv")
    hours = market_file("binance-BTCUSDT-1h-2024-08.csv")
    code, err, _ = validate(case / "btc-sma-1h.yaml", minutes, tmp_path / "a", capsys=capsys)
    assert code == 2 and "timeframe-mismatch: candles are 1m apart" in err and "--resample" in err
    code, err, _ = validate(case / "strategies" / "btc-sma.yaml", hours, tmp_path / "b",
                            capsys=capsys)
    assert code == 2 and "timeframe is 1m" in err
    code, _, report = validate(case / "btc-sma-1h.yaml", minutes, tmp_path / "c", "--resample",
                               capsys=capsys)
    assert code in (0, 3) and report is not None
    assert report["run"]["data"]["candles"] == 24 and report["run"]["timeframe"] == "1h"
    assert report["run"]["data"]["end"] == "2024-09-22T00:00:00Z"  # last 23:00 candle's close
    assert report["data_quality"]["resampled_from"] == "1m"


def test_tiny_price_shib_trades_with_the_real_tick(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES / "tiny-price-shib"
    strategy = case / "shib-bollinger-breakout.yaml"
    _, _, tiny = validate(strategy, case / "shib_tiny.csv", tmp_path / "tiny", capsys=capsys)
    assert tiny is not None
    # the README: shib_big.csv made 7 trades under a 0.01 tick, shib_tiny.csv 0 (every
    # order rounded to a 0.00 price); with SHIBUSDT's real tick 0.00000001 the tiny
    # prices trade as the big ones did. (shib_big.csv itself cannot be a SHIB market:
    # at 1413 USDT per SHIB, a 1-SHIB lot is more than the position limit allows.)
    assert tiny["metrics"]["trades"] == 7
    assert tiny["rejected_orders"] == 0


def test_unknown_symbol_refused_not_given_a_default_tick(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES / "tiny-price-shib"
    text = (case / "shib-bollinger-breakout.yaml").read_text().replace("SHIB/USDT", "FLOKI/USDT")
    strategy = tmp_path / "floki.yaml"
    strategy.write_text(text)
    code, err, _ = validate(strategy, case / "shib_tiny.csv", tmp_path / "r", capsys=capsys)
    assert code == 2 and "'FLOKI/USDT'" in err and "does not guess a tick size" in err
