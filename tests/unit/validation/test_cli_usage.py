"""Usage errors of the two commands: exit code 2 and a message naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetrade.cli import main
from tests.unit.validation._data import filters_dir, shared_data, strategy_yaml


def test_preflight_needs_a_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["preflight"])
    assert exc.value.code == 2
    assert "--strategy-file" in capsys.readouterr().err


def test_preflight_bad_strategy_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("apiVersion: kubetrade.io/v1alpha1\nkind: Strategy\nmetadata: {name: s}\n"
                   "spec: {algorithm: sma-crossover, symbols: [BTCUSDT]}\n")
    assert main(["preflight", "--strategy-file", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "symbols[0] 'BTCUSDT' is not BASE/QUOTE" in err


def test_validate_needs_exactly_one_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "--replay", "x.csv"]) == 2
    assert "give either --strategy-file FILE" in capsys.readouterr().err
    spec = tmp_path / "s.yaml"
    spec.write_text("apiVersion: kubetrade.io/v1alpha1\nkind: Strategy\nmetadata: {name: s}\n"
                    "spec: {algorithm: sma-crossover, symbols: [BTC/USDT]}\n")
    assert main(["validate", "--strategy-file", str(spec), "--strategy", "s"]) == 2
    assert main(["validate", "--strategy-file", str(spec), "--duration", "48"]) == 2
    assert "duration: '48' is not like 48h" in capsys.readouterr().err


def test_a_percentage_written_as_a_fraction_is_said_by_validate_and_preflight(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """stopLossPct: 0.05 is a 0.05 % stop: allowed, but said, as the operator does (a
    new-user trial: pre-flight said 'Stop-Loss Configured PASS stop_loss_pct = 0.05%')."""
    spec = tmp_path / "s.yaml"
    spec.write_text(strategy_yaml("fr", "sma-crossover", "{fastPeriod: 3, slowPeriod: 8}",
                                  "BTC/USDT", "1m", risk="{stopLossPct: 0.05}"))
    main(["validate", "--strategy-file", str(spec), "--replay",
          str(shared_data("binance-BTCUSDT-1m-2024-09-21.csv")), "--no-html",
          "--report-dir", str(tmp_path / "r"), "--datadir", str(filters_dir(tmp_path))])
    warning = ("warning: RiskPolicy spec.stopLossPct is 0.05: did you mean 5 % rather than "
               "0.05 %?")
    assert warning in capsys.readouterr().err
    # the pre-flight's exchange checks fail at once on a closed local port (no internet)
    monkeypatch.setenv("KUBETRADE_EXCHANGE_URL", "http://127.0.0.1:9")
    main(["preflight", "--strategy-file", str(spec), "--no-publish",
          "--report-dir", str(tmp_path / "p")])
    assert warning in capsys.readouterr().err


def test_a_misspelt_risk_policy_ref_is_refused_not_traded_with_the_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(strategy_yaml("fr", "sma-crossover", "{fastPeriod: 3, slowPeriod: 8}",
                                  "BTC/USDT", "1m", risk="{stopLossPct: 2}")
                    .replace("riskPolicyRef: fr-risk", "riskPolicyRef: fr-rsik"))
    said = "spec.riskPolicyRef 'fr-rsik' is not a RiskPolicy there (did you mean 'fr-risk'?)"
    assert main(["validate", "--strategy-file", str(spec), "--replay", "bundled",
                 "--no-html", "--report-dir", str(tmp_path / "r")]) == 2
    assert said in capsys.readouterr().err
    assert main(["preflight", "--strategy-file", str(spec), "--no-publish"]) == 2
    assert said in capsys.readouterr().err
