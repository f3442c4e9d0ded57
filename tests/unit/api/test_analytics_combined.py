"""Case tests/data/cases/analytics-combined-curve: GET /api/analytics 'overall' for
strategies that start at different times. The overall metrics are time-weighted
(kubetrade/domain/twr.py): a strategy entering with its capital is not profit."""

from __future__ import annotations

import math
from decimal import Decimal as D

from kubetrade.api.analytics import analytics
from kubetrade.state.reader import EquityPoint

T0 = 1726876800000


def test_case_two_flat_strategies_second_joins_an_hour_later() -> None:
    a = [EquityPoint(T0 + i * 60_000, D("10000")) for i in range(1, 181)]
    b = [EquityPoint(T0 + 3_600_000 + i * 60_000, D("10000")) for i in range(0, 121)]
    out = analytics(["a", "b"], {"a": [], "b": []}, {"a": a, "b": b}, 10)
    m = out.overall.metrics
    # was: total_return 1.0 (+100 %), sharpe 54.19
    assert (m.total_return, m.sharpe, m.max_drawdown) == (0.0, 0.0, 0.0)
    # the money curve still shows the capital that joined
    assert out.overall.equity_curve[-1].equity == D("20000")


def test_case_local_run_both_lose_018_pct_overall_loses_too() -> None:
    """The local run: btc-sma (1m) and btc-sma-hourly, whose curve is the same one 59 min
    later, each lose 0.179 % (10000 -> 9982.10). Observed overall: +99.6 %, Sharpe +43.7."""
    path = [D(10_000) + D(str(round(6 * math.sin(math.pi * i * 6 / 179) - 17.9 * i / 179, 2)))
            for i in range(180)]
    assert (path[0], path[-1]) == (D("10000"), D("9982.1"))
    a = [EquityPoint(T0 + 60_000 * (i + 1), e) for i, e in enumerate(path)]
    b = [EquityPoint(p.ts_ms + 3_540_000, p.equity) for p in a]
    out = analytics(["btc-sma", "btc-sma-hourly"], {"btc-sma": [], "btc-sma-hourly": []},
                    {"btc-sma": a, "btc-sma-hourly": b}, 4)
    for block in out.strategies.values():
        assert block.metrics.total_return is not None
        assert abs(block.metrics.total_return + 0.00179) < 1e-12
    m = out.overall.metrics
    assert m.total_return is not None and m.sharpe is not None
    # time-weighted: a loss of the same order as each strategy's, not +99.6 %
    assert -0.0036 < m.total_return < 0
    assert m.sharpe < 0
    assert m.max_drawdown is not None and m.max_drawdown < 0.005
    # money in, money out: 20000 -> 19964.20, the -0.179 % of the case's README
    assert out.overall.equity_curve[-1].equity / D(20_000) - 1 == D("-0.00179")
