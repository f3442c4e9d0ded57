"""The GO/NO-GO gate as the runbook states it: defaults, overrides, and a NO-GO that
names the failed criterion and by how much."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from kubetrade.domain.gonogo import GO, NO_GO, Criteria, evaluate, parse_fraction


@dataclass
class M:
    trades: int = 20
    win_rate: Decimal = Decimal("0.6")
    sharpe: float | Decimal | None = Decimal("1.2")
    max_drawdown: Decimal = Decimal("0.05")


def test_defaults_are_the_runbooks_table() -> None:
    c = Criteria()
    assert (c.min_trades, c.min_win_rate, c.min_sharpe, c.max_drawdown) == (
        10, Decimal("0.45"), Decimal("0.5"), Decimal("0.15"),
    )


def test_all_passing_is_go_with_four_results_in_runbook_order() -> None:
    result = evaluate(M())
    assert result.decision == GO
    names = [r.name for r in result.results]
    assert names == ["Min Trades", "Win Rate", "Sharpe Ratio", "Max Drawdown"]
    assert all(r.passed and r.shortfall is None for r in result.results)


@pytest.mark.parametrize(
    ("metrics", "key", "shortfall"),
    [
        (M(trades=7), "min_trades", Decimal(3)),
        (M(win_rate=Decimal("0.40")), "min_win_rate", Decimal("0.05")),
        (M(sharpe=Decimal("0.2")), "min_sharpe", Decimal("0.3")),
        (M(max_drawdown=Decimal("0.21")), "max_drawdown", Decimal("0.06")),
    ],
)
def test_each_failure_is_named_with_its_shortfall(metrics: M, key: str, shortfall: Decimal) -> None:
    result = evaluate(metrics)
    assert result.decision == NO_GO
    assert [r.key for r in result.failed] == [key]
    assert result.failed[0].shortfall == shortfall
    assert "short by" in result.failed[0].explain()


def test_boundaries_pass_inclusively() -> None:
    m = M(trades=10, win_rate=Decimal("0.45"), sharpe=Decimal("0.5"), max_drawdown=Decimal("0.15"))
    assert evaluate(m).decision == GO


def test_float_actual_compares_as_printed() -> None:
    # 0.1 + 0.2 style float noise must not flip a boundary the other way than printed
    assert evaluate(M(sharpe=0.5)).decision == GO


def test_undefined_sharpe_fails_without_inventing_a_shortfall() -> None:
    result = evaluate(M(sharpe=float("nan")))
    assert result.decision == NO_GO
    (failed,) = result.failed
    assert failed.key == "min_sharpe" and failed.actual is None and failed.shortfall is None
    assert "undefined" in failed.explain()
    assert evaluate(M(sharpe=None)).decision == NO_GO


def test_overrides_change_the_verdict() -> None:
    strict = Criteria.from_overrides({"minTrades": 30, "min_win_rate": "70%", "maxDrawdown": 0.01})
    assert strict.min_trades == 30 and strict.min_win_rate == Decimal("0.7")
    result = evaluate(M(), strict)
    assert {r.key for r in result.failed} == {"min_trades", "min_win_rate", "max_drawdown"}
    lax = Criteria.from_overrides({"min_trades": "1", "min_sharpe": "-1", "max_drawdown": None})
    assert lax.max_drawdown == Decimal("0.15")
    assert evaluate(M(trades=1, sharpe=Decimal("-0.5")), lax).decision == GO


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"min_win_rate": 45}, "min_win_rate: 45 is above 1"),
        ({"max_drawdown": "-0.1"}, "max_drawdown: must be >= 0"),
        ({"min_trades": 2.5}, "min_trades: must be a whole number"),
        ({"min_sharpe": "abc"}, "min_sharpe: 'abc' is not a number"),
        ({"min_profit": 1}, "unknown criterion 'min_profit'"),
    ],
)
def test_bad_overrides_name_the_field_and_rule(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Criteria.from_overrides(overrides)


def test_parse_fraction_accepts_percent() -> None:
    assert parse_fraction("15%", "x") == Decimal("0.15")
    assert parse_fraction("0.15", "x") == Decimal("0.15")


def test_json_form_uses_fractions_and_numbers() -> None:
    d = evaluate(M(win_rate=Decimal("0.4"))).to_dict()
    win = next(r for r in d if r["key"] == "min_win_rate")
    assert win == {
        "key": "min_win_rate", "name": "Win Rate", "comparison": ">=", "threshold": 0.45,
        "actual": 0.4, "passed": False, "shortfall": 0.05,
        "description": "Minimum profitable trade ratio",
    }
    trades = next(r for r in d if r["key"] == "min_trades")
    assert trades["threshold"] == 10 and trades["actual"] == 20
