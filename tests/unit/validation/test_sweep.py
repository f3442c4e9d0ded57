"""Walk-forward sweeps: chosen on the in-sample part, judged on the rest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubetrade.cli import main
from kubetrade.domain.gonogo import Criteria
from kubetrade.validation.sweep import SweepSpec, parse_grid
from tests.unit.validation._data import filters_dir, shared_data, strategy_yaml

LTC = "freqtrade-LTCBTC-5m-2018-01.csv"


def _sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str], *flags: str
           ) -> tuple[int, dict[str, Any], str]:
    spec = tmp_path / "s.yaml"
    spec.write_text(strategy_yaml("sw", "rsi-mean-reversion",
                                  "{period: 14, oversold: 30, overbought: 70}", "LTC/BTC", "5m"))
    code = main(["validate", "--strategy-file", str(spec), "--replay", str(shared_data(LTC)),
                 "--report-dir", str(tmp_path / "r"), "--no-html", "--datadir",
                 str(filters_dir(tmp_path)), "--sweep", "period=5,14", "--sweep",
                 "oversold=20,25", "--sweep", "overbought=60,70", *flags])
    (path,) = (tmp_path / "r").glob("validation_report_*.json")
    return code, json.loads(path.read_text()), capsys.readouterr().out


def test_an_in_sample_best_that_fails_out_of_sample_ends_no_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 90% of the month to choose on: the best would be a GO in sample, but the last
    # three days cannot support it (too few trades, too few days for its Sharpe ratio)
    code, report, out = _sweep(tmp_path, capsys, "--in-sample", "0.9", "--jobs", "2")
    sweep = report["sweep"]
    best = sweep["best"]
    c = Criteria()
    assert best["trades"] >= c.min_trades and best["sharpe"] >= c.min_sharpe
    assert best["max_drawdown"] <= c.max_drawdown
    assert sweep["combinations"] == 8 and len(sweep["top"]) == 8
    sharpes = [t["sharpe"] for t in sweep["top"]]
    assert sharpes == sorted(sharpes, reverse=True)
    # the decision and the report are the out-of-sample run's
    assert report["decision"] == "NO-GO" and code == 3
    assert report["run"]["parameters"] == {"period": best["parameters"]["period"],
                                           "oversold": best["parameters"]["oversold"],
                                           "overbought": best["parameters"]["overbought"]}
    assert report["run"]["data"]["start_ms"] == sweep["out_of_sample"]["start_ms"]
    assert report["run"]["data"]["candles"] == sweep["out_of_sample"]["candles"]
    assert sweep["in_sample"]["end_ms"] < sweep["out_of_sample"]["start_ms"]
    assert all(t["entry_ms"] >= sweep["out_of_sample"]["start_ms"] for t in report["trades"])
    assert "verdict from the" in out and "out-of-sample candles" in out


def test_random_samples_of_the_grid_are_seeded() -> None:
    spec = SweepSpec(parse_grid(["a=1,2,3,4", "b=x,y", "c=0.5,1.5"]), samples=5, seed=7)
    assert spec.combinations() == spec.combinations()
    assert len(spec.combinations()) == 5
    assert len(SweepSpec(spec.grid).combinations()) == 16
    assert {"a": 1, "b": "x", "c": 0.5} in SweepSpec(spec.grid).combinations()


@pytest.mark.parametrize("item", ["period", "=1,2", "period="])
def test_malformed_sweep_items_are_refused(item: str) -> None:
    with pytest.raises(ValueError, match="--sweep"):
        parse_grid([item])


def test_a_sweep_whose_every_combination_is_refused_says_why_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelt parameter in --sweep: exit 2 and one line naming the combination, the
    field and the rule (it printed a Python list repr with pydantic's newlines and URL)."""
    spec = tmp_path / "s.yaml"
    spec.write_text(strategy_yaml("sw", "rsi-mean-reversion",
                                  "{period: 14, oversold: 30, overbought: 70}", "LTC/BTC", "5m"))
    code = main(["validate", "--strategy-file", str(spec), "--replay", str(shared_data(LTC)),
                 "--report-dir", str(tmp_path / "r"), "--no-html", "--datadir",
                 str(filters_dir(tmp_path)), "--sweep", "periood=5,14"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert err == ("kubetrade validate: sweep: none of the 2 combinations could run; "
                   "periood=5: periood: Extra inputs are not permitted"), err


def test_refused_combinations_are_counted_apart_in_the_report_and_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # oversold=65 is not below overbought=60: 2 of the 12 combinations cannot run
    spec = tmp_path / "s.yaml"
    spec.write_text(strategy_yaml("sw", "rsi-mean-reversion",
                                  "{period: 14, oversold: 30, overbought: 70}", "LTC/BTC", "5m"))
    main(["validate", "--strategy-file", str(spec), "--replay", str(shared_data(LTC)),
          "--report-dir", str(tmp_path / "r"), "--no-html", "--datadir",
          str(filters_dir(tmp_path)), "--sweep", "period=5,14", "--sweep",
          "oversold=20,25,65", "--sweep", "overbought=60,70", "--jobs", "1", "--sweep-top", "20"])
    (path,) = (tmp_path / "r").glob("validation_report_*.json")
    sweep = json.loads(path.read_text())["sweep"]
    assert (sweep["combinations"], sweep["refused"]) == (12, 2)
    assert [t["parameters"]["oversold"] for t in sweep["top"] if "error" in t] == [65, 65]
    out = capsys.readouterr().out
    assert ("sweep: 12 combinations (2 refused, e.g. overbought=60 oversold=65 period=5: "
            "overbought (60.0) must be greater than oversold (65.0)) ranked on") in out


def test_the_html_page_shows_the_sweep_ranking_it_decided_from(tmp_path: Path) -> None:
    # the page gave the verdict of a sweep without the sweep: no ranking, no ranges
    spec = tmp_path / "s.yaml"
    spec.write_text(strategy_yaml("sw", "rsi-mean-reversion",
                                  "{period: 14, oversold: 30, overbought: 70}", "LTC/BTC", "5m"))
    main(["validate", "--strategy-file", str(spec), "--replay", str(shared_data(LTC)),
          "--report-dir", str(tmp_path / "r"), "--datadir", str(filters_dir(tmp_path)),
          "--sweep", "period=5,14", "--sweep", "oversold=20,75", "--jobs", "1"])
    (path,) = (tmp_path / "r").glob("validation_report_*.json")
    sweep = json.loads(path.read_text())["sweep"]
    page = path.with_suffix(".html").read_text()
    section = page.split("<h2>Parameter sweep (walk-forward)</h2>")[1].split("<h2>")[0]
    assert "4 combinations (2 refused), ranked by in-sample Sharpe ratio" in section
    assert f"{sweep['in_sample']['candles']} candles" in section
    assert f"{sweep['out_of_sample']['candles']} candles" in section
    rows = section.split("<tr>")[2:]
    assert len(rows) == len(sweep["top"]) == 4
    best = " ".join(f"{k}={v}" for k, v in sweep["top"][0]["parameters"].items())
    assert rows[0].startswith(f"<td>1</td><td>{best}</td>")
    assert "must be greater than" in rows[-1]  # a refused one says why
