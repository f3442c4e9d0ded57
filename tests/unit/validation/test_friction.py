"""Fees, slippage and participation are the run's parameters, recorded and printed."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kubetrade.cli import main
from kubetrade.resources import ValidationRun
from kubetrade.validation.plan import Friction
from tests.unit.validation._data import filters_dir, shared_data, strategy_yaml


def _validate(tmp_path: Path, capsys: pytest.CaptureFixture[str], *flags: str
              ) -> tuple[dict[str, Any], str]:
    spec = tmp_path / "s.yaml"
    spec.write_text(strategy_yaml("f", "rsi-mean-reversion",
                                  "{period: 5, oversold: 20, overbought: 60}", "LTC/BTC", "5m"))
    reports = tmp_path / f"r{len(list(tmp_path.iterdir()))}"
    main(["validate", "--strategy-file", str(spec), "--replay",
          str(shared_data("freqtrade-LTCBTC-5m-2018-01.csv")), "--report-dir", str(reports),
          "--datadir", str(filters_dir(tmp_path)), *flags])
    (path,) = reports.glob("validation_report_*.json")
    return json.loads(path.read_text()), capsys.readouterr().out


def test_defaults_are_recorded_and_printed(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    report, out = _validate(tmp_path, capsys)
    assert report["run"]["friction"] == {"fee_rate": "0.001", "slippage_bps": "2",
                                         "participation": "0.1", "sizing_margin": "0.005"}
    assert ("friction: fee 0.10% per fill, slippage 2 bps per market order, limit fills "
            "<= 10.00% of a candle's volume, entries sized with a 0.50% price margin") in out


def test_flags_change_what_the_trades_pay(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    base, _ = _validate(tmp_path, capsys)
    free, out = _validate(tmp_path, capsys, "--fee-rate", "0%", "--slippage-bps", "0")
    assert free["run"]["friction"]["fee_rate"] == "0"
    assert "fee 0.00% per fill, slippage 0 bps" in out
    assert all(Decimal(t["fees"]) == 0 for t in free["trades"])
    assert all(Decimal(t["fees"]) > 0 for t in base["trades"])
    # the same signals: the first entry is at the same candle, without the 2 bps
    b, f = base["trades"][0], free["trades"][0]
    assert b["entry_ms"] == f["entry_ms"]
    assert Decimal(b["entry_price"]) > Decimal(f["entry_price"])
    dear, _ = _validate(tmp_path, capsys, "--fee-rate", "0.005", "--slippage-bps", "20")
    assert sum(Decimal(t["pnl"]) for t in dear["trades"]) < sum(
        Decimal(t["pnl"]) for t in base["trades"])


@pytest.mark.parametrize("flags", [("--fee-rate", "2"), ("--slippage-bps", "-1"),
                                   ("--participation", "0"), ("--slippage-bps", "x")])
def test_bad_friction_is_a_usage_error(tmp_path: Path, flags: tuple[str, str],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(strategy_yaml("f", "sma-crossover", "{fastPeriod: 5, slowPeriod: 20}",
                                  "BTC/USDT", "1m"))
    code = main(["validate", "--strategy-file", str(spec), "--replay", "bundled",
                 "--report-dir", str(tmp_path), *flags])
    assert code == 2
    assert flags[0].lstrip("-").split("-")[0] in capsys.readouterr().err


def test_validation_run_friction_fields() -> None:
    vr = ValidationRun.model_validate({
        "apiVersion": "kubetrade.io/v1alpha1", "kind": "ValidationRun",
        "metadata": {"name": "v"},
        "spec": {"strategyRef": "s", "friction": {"feeRatePct": 0.075, "slippageBps": 5}}})
    f = vr.spec.friction
    assert (f.fee_rate_pct, f.slippage_bps, f.participation_pct) == (
        Decimal("0.075"), Decimal(5), Decimal(10))
    default = ValidationRun.model_validate({
        "apiVersion": "kubetrade.io/v1alpha1", "kind": "ValidationRun",
        "metadata": {"name": "v"}, "spec": {"strategyRef": "s"}}).spec.friction
    # the CR's defaults are the paper broker's
    assert Friction() == Friction(fee_rate=default.fee_rate_pct / 100,
                                  slippage_bps=default.slippage_bps,
                                  participation=default.participation_pct / 100)
