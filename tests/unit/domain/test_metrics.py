"""Metric formulas on hand-computed examples (the empyrical cross-check is in test_replay)."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from kubetrade.domain.metrics import compute_metrics, max_drawdown, periods_per_year
from kubetrade.domain.models import ClosedTrade


def trade(pnl: str) -> ClosedTrade:
    return ClosedTrade("t", "s", "BTC/USDT", Decimal(1), Decimal(1), Decimal(1), 0, 1,
                       Decimal(0), Decimal(pnl))


def test_trade_metrics() -> None:
    curve = [(0, Decimal(100)), (60_000, Decimal(110)), (120_000, Decimal(99)),
             (180_000, Decimal(121))]
    m = compute_metrics([trade("30"), trade("-10"), trade("-5"), trade("10")], curve)
    assert m.trades == 4 and m.wins == 2 and m.losses == 2
    assert m.win_rate == 0.5
    assert m.profit_factor == pytest.approx(40 / 15)
    assert m.expectancy == Decimal("6.25")
    assert m.net_pnl == Decimal(25)
    assert m.total_return == pytest.approx(0.21)
    assert m.max_drawdown == pytest.approx(0.1)  # 110 -> 99
    r = [0.1, 99 / 110 - 1, 121 / 99 - 1]
    mean = sum(r) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in r) / 2)
    assert m.sharpe == pytest.approx(mean / sd * math.sqrt(525_600))
    assert m.to_dict()["expectancy"] == "6.25"


def test_edge_cases() -> None:
    m = compute_metrics([], [])
    assert (m.trades, m.win_rate, m.sharpe, m.max_drawdown, m.total_return) == (0, 0, 0, 0, 0)
    assert m.profit_factor is None and m.expectancy == 0
    m = compute_metrics([trade("5")], [(0, Decimal(1)), (3_600_000, Decimal(1))])
    assert m.profit_factor is None  # no losing trade: undefined, not infinite
    assert m.sharpe == 0.0  # flat curve
    assert periods_per_year([0, 3_600_000, 7_200_000]) == 8760
    assert max_drawdown([1.0, 2.0, 1.0, 3.0]) == 0.5


def test_a_drawdown_of_exactly_the_limit_is_reported_exactly() -> None:
    """Equity is Decimal; a drawdown that is exactly 15% must come out as 0.15, not
    0.15000000000000002 from float subtraction, or the runbook's "Max Drawdown <= 15%"
    turns a boundary GO into NO-GO."""
    from kubetrade.domain.gonogo import evaluate

    peak = Decimal("16372.81")
    curve = [(0, Decimal(10000)), (60_000, peak), (120_000, peak * Decimal("0.85")),
             (180_000, Decimal(15000))]
    m = compute_metrics([trade("1")] * 10, curve)
    assert m.max_drawdown == 0.15
    (dd,) = [r for r in evaluate(m).results if r.key == "max_drawdown"]
    assert dd.passed, dd.explain()
    # and a hair beyond the limit still fails
    curve[2] = (120_000, peak * Decimal("0.85") - Decimal("0.01"))
    m = compute_metrics([trade("1")] * 10, curve)
    (dd,) = [r for r in evaluate(m).results if r.key == "max_drawdown"]
    assert not dd.passed
