"""The report's extra tables and figures, recomputed here independently from the
report's own trades and equity curve (real candles, a strategy that trades often)."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import empyrical
import numpy as np
import pytest

from kubetrade.cli import main
from tests.unit.validation._data import filters_dir, shared_data, strategy_yaml

# no stop-loss halts, so the run trades the whole month and ends holding a position
RISK = "{dailyLossLimitPct: 0, maxDrawdownPct: 0, strategyMaxConsecutiveLosses: 0}"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("tables")
    spec = tmp / "s.yaml"
    spec.write_text(strategy_yaml("tables", "rsi-mean-reversion",
                                  "{period: 5, oversold: 20, overbought: 60}", "LTC/BTC", "5m",
                                  RISK))
    main(["validate", "--strategy-file", str(spec), "--replay",
          str(shared_data("freqtrade-LTCBTC-5m-2018-01.csv")), "--report-dir",
          str(tmp / "reports"), "--datadir", str(filters_dir(tmp))])
    (path,) = (tmp / "reports").glob("validation_report_*.json")
    data: dict[str, Any] = json.loads(path.read_text())
    data["_page"] = str(path.with_suffix(".html"))
    return data


def _recount(trades: list[dict[str, Any]], key: Any) -> dict[str, dict[str, Any]]:
    acc: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in trades:
        acc[key(t)].append(t)
    return {k: {"trades": len(v), "wins": sum(Decimal(t["pnl"]) > 0 for t in v),
                "net_pnl": sum(Decimal(t["pnl"]) for t in v),
                "fees": sum(Decimal(t["fees"]) for t in v)} for k, v in acc.items()}


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def test_grouped_tables_match_the_trades(report: dict[str, Any]) -> None:
    a, trades = report["analysis"], report["trades"]
    assert len(trades) > 20
    keys = {
        "by_symbol": lambda t: t["symbol"],
        "by_exit_reason": lambda t: t["exit_reason"],
        "by_day": lambda t: _utc(t["exit_ms"]).date().isoformat(),
        "by_week": lambda t: "{}-W{:02d}".format(*_utc(t["exit_ms"]).isocalendar()[:2]),
        "by_month": lambda t: _utc(t["exit_ms"]).strftime("%Y-%m"),
    }
    for table, key in keys.items():
        mine = _recount(trades, key)
        stated = a[table]
        assert set(stated) == set(mine), table
        for k, row in stated.items():
            assert row["trades"] == mine[k]["trades"] and row["wins"] == mine[k]["wins"]
            assert Decimal(row["net_pnl"]) == mine[k]["net_pnl"], (table, k)
            assert Decimal(row["fees"]) == mine[k]["fees"]
    assert {"signal", "stop_loss"} <= set(a["by_exit_reason"])
    assert Decimal(a["fees_paid"]) == sum(Decimal(t["fees"]) for t in trades)


def test_figures_match_an_independent_computation(report: dict[str, Any]) -> None:
    a = report["analysis"]
    pnl = np.array([float(t["pnl"]) for t in report["trades"]])
    assert a["sqn"] == pytest.approx(math.sqrt(len(pnl)) * pnl.mean() / pnl.std(ddof=1))
    ts = np.array([p["ts_ms"] for p in report["equity_curve"]])
    eq = np.array([float(p["equity"]) for p in report["equity_curve"]])
    r = eq[1:] / eq[:-1] - 1
    periods = 365 * 86_400_000 / float(np.median(np.diff(ts)))
    assert a["sortino"] == pytest.approx(
        float(empyrical.sortino_ratio(r, annualization=periods)), rel=1e-9)
    days = (ts[-1] - ts[0]) / 86_400_000
    cagr = (eq[-1] / eq[0]) ** (365 / days) - 1
    assert a["cagr"] == pytest.approx(cagr, rel=1e-9)
    assert a["calmar"] == pytest.approx(cagr / report["metrics"]["max_drawdown"], rel=1e-9)
    # the longest time under a previous peak, found by brute force
    peak_at, longest = 0, (0, 0, 0)
    for i in range(len(eq)):
        if eq[i] >= eq[peak_at]:
            peak_at = i
        elif ts[i] - ts[peak_at] > longest[0]:
            longest = (ts[i] - ts[peak_at], ts[peak_at], ts[i])
    ld = a["longest_drawdown"]
    assert ld["start_ms"] == longest[1]
    assert ld["end_ms"] >= longest[2] and ld["days"] * 86_400_000 >= longest[0]
    # months' returns chain to the total return
    total = np.prod([1 + v for v in a["returns_by"]["month"].values()]) - 1
    assert total == pytest.approx(report["metrics"]["total_return"], rel=1e-9, abs=1e-12)


def test_benchmark_and_open_positions(report: dict[str, Any]) -> None:
    bh = report["analysis"]["buy_and_hold"]
    first, last = Decimal(bh["first_close"]), Decimal(bh["last_close"])
    cash = Decimal(report["run"]["starting_cash"])
    assert Decimal(bh["final_equity"]) == (cash * Decimal("0.999") * last / first
                                           * Decimal("0.999")).quantize(Decimal("1e-8"))
    positions = report["open_positions"]
    assert len(positions) == report["open_positions_at_end"]
    for p in positions:
        unrealised = Decimal(p["quantity"]) * (Decimal(p["mark"]) - Decimal(p["average_price"]))
        assert Decimal(p["unrealised_pnl"]) == unrealised - Decimal(p["entry_fees"])
        assert p["mark"] == bh["last_close"]
