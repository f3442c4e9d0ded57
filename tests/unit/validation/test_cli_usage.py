"""Usage errors of the two commands: exit code 2 and a message naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetrade.cli import main


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
