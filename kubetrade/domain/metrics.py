"""Performance metrics for analytics and the GO/NO-GO validation.

Formulas (also in docs/metrics.md; ratios are fractions, 0.45 means 45%):

* ``trades``        number of closed round trips.
* ``win_rate``      wins / trades, a win being a trade with net ``pnl > 0`` (fees
                    included); 0 when there are no trades.
* ``total_return``  E_last / E_first - 1 over the equity curve.
* ``max_drawdown``  max over t of (peak_t - E_t) / peak_t, peak_t = max(E_0..E_t);
                    a positive fraction (0.12 = 12% below the peak at worst).
* ``sharpe``        per-period simple returns r_i = E_i / E_{i-1} - 1 of the equity
                    curve, risk-free rate 0:
                    sharpe = mean(r) / std(r, ddof=1) * sqrt(N), with N the number of
                    periods in a year for a market open 365 days:
                    N = 365 * 86_400_000 / period_ms, period_ms the median spacing of
                    the curve's timestamps (1m candles: N = 525_600). 0 when fewer than
                    two returns or std is 0. This is empyrical's ``sharpe_ratio`` with
                    ``annualization=N``, which the tests check.
* ``sharpe_se``     standard error of ``sharpe`` under IID returns, Lo (2002), "The
                    Statistics of Sharpe Ratios", Financial Analysts Journal 58(4), eq. 9:
                    SE(SR_period) = sqrt((1 + SR_period^2 / 2) / T), T returns, scaled by
                    sqrt(N) like the ratio itself. None when the Sharpe ratio is 0 by rule.
* ``days``          span of the equity curve in days (last - first timestamp), the
                    sample a time-based statistic rests on; ``returns`` = T.
* ``profit_factor`` gross profit / gross loss = sum(pnl > 0) / |sum(pnl < 0)|; ``None``
                    when there is no losing trade (undefined, not infinite).
* ``expectancy``    mean net pnl per trade in quote currency = sum(pnl) / trades
                    (equivalently win_rate * avg_win - loss_rate * avg_loss).

Ratios are floats: they are statistics compared with thresholds, not money; money
(``expectancy``, ``gross_profit``, ``gross_loss``, ``net_pnl``) stays Decimal.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise
from typing import Any

from kubetrade.domain.models import ZERO, ClosedTrade, to_dict

YEAR_MS = 365 * 86_400_000

HEADLINE_METRICS = (
    "trades",
    "win_rate",
    "sharpe",
    "max_drawdown",
    "total_return",
    "profit_factor",
    "expectancy",
)
"""The metrics a validation report's ``metrics`` and the dashboard's analytics show,
in their order (fields of :class:`PerformanceMetrics`)."""


@dataclass(frozen=True, slots=True)
class PerformanceMetrics:
    trades: int
    wins: int
    losses: int
    win_rate: float
    sharpe: float
    max_drawdown: float
    total_return: float
    profit_factor: float | None
    expectancy: Decimal
    gross_profit: Decimal
    gross_loss: Decimal
    net_pnl: Decimal
    periods_per_year: float
    sharpe_se: float | None = None
    days: float = 0.0
    returns: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Every field by name, the Decimal money as strings."""
        return to_dict(self)


def periods_per_year(timestamps_ms: Sequence[int]) -> float:
    """Annualisation factor from the median spacing of the timestamps (365-day year)."""
    if len(timestamps_ms) < 2:
        return 0.0
    gaps = [b - a for a, b in pairwise(timestamps_ms) if b > a]
    if not gaps:
        return 0.0
    return YEAR_MS / statistics.median(gaps)


def returns_of(equity: Sequence[float]) -> list[float]:
    """Simple per-period returns E_i / E_{i-1} - 1 (periods with E_{i-1} <= 0 skipped)."""
    return [b / a - 1.0 for a, b in pairwise(equity) if a > 0]


def sharpe_ratio(returns: Sequence[float], annualization: float) -> float:
    if len(returns) < 2 or annualization <= 0:
        return 0.0
    if min(returns) == max(returns):
        return 0.0  # no variation: std is 0 exactly
    n = len(returns)
    mean = math.fsum(returns) / n
    # two-pass sample variance in floats (statistics.stdev is exact but ~50x slower on
    # a million returns; the two agree to ~1e-15 relative)
    sd = math.sqrt(math.fsum((r - mean) ** 2 for r in returns) / (n - 1))
    if sd == 0 or math.isnan(sd):
        return 0.0
    return mean / sd * math.sqrt(annualization)


def sharpe_standard_error(sharpe: float, returns: int, annualization: float) -> float | None:
    """Lo (2002) IID standard error of an annualised Sharpe ratio from ``returns``
    per-period returns (see the module docstring); None when it cannot be stated."""
    if returns < 2 or annualization <= 0:
        return None
    per_period = sharpe / math.sqrt(annualization)
    return math.sqrt((1 + per_period * per_period / 2) / returns) * math.sqrt(annualization)


def max_drawdown(equity: Sequence[float]) -> float:
    peak = -math.inf
    worst = 0.0
    for e in equity:
        if e > peak:
            peak = e
        if peak > 0:
            dd = (peak - e) / peak
            if dd > worst:
                worst = dd
    return worst


def _exact_max_drawdown(equity: Sequence[Decimal], floats: Sequence[float]) -> float:
    """``max_drawdown`` with the worst point(s) recomputed in Decimal.

    Float subtraction turns an exact 15% drawdown into 0.15000000000000002, which the
    GO/NO-GO gate ("Max Drawdown <= 15%") would fail. The float pass finds the worst
    drawdown; every point within float noise of it is recomputed from the Decimal
    equity, so the reported value is the exact one, rounded once to a float.
    """
    worst = max_drawdown(floats)
    if worst <= 0:
        return worst
    near = worst - worst * 1e-9
    peak_f = -math.inf
    peak_d = ZERO
    best = ZERO
    for f, d in zip(floats, equity, strict=True):
        if f >= peak_f:
            if f > peak_f or d > peak_d:
                peak_d = d
            peak_f = f
        if peak_f > 0 and (peak_f - f) / peak_f >= near:
            dd = (peak_d - d) / peak_d
            if dd > best:
                best = dd
    return float(best)


def compute_metrics(
    trades: Sequence[ClosedTrade], equity_curve: Sequence[tuple[int, Decimal]]
) -> PerformanceMetrics:
    """All metrics of one run; see the module docstring for every formula."""
    n = len(trades)
    pnls = [t.pnl for t in trades]
    wins = sum(1 for p in pnls if p > 0)
    losses = sum(1 for p in pnls if p < 0)
    gross_profit = sum((p for p in pnls if p > 0), ZERO)
    gross_loss = -sum((p for p in pnls if p < 0), ZERO)
    net = sum(pnls, ZERO)
    ts = [t for t, _ in equity_curve]
    eq = [float(e) for _, e in equity_curve]
    ann = periods_per_year(ts)
    total_return = eq[-1] / eq[0] - 1.0 if len(eq) >= 2 and eq[0] > 0 else 0.0
    rets = returns_of(eq)
    sharpe = sharpe_ratio(rets, ann)
    return PerformanceMetrics(
        trades=n,
        wins=wins,
        losses=losses,
        win_rate=wins / n if n else 0.0,
        sharpe=sharpe,
        max_drawdown=_exact_max_drawdown([e for _, e in equity_curve], eq),
        total_return=total_return,
        profit_factor=float(gross_profit / gross_loss) if gross_loss > 0 else None,
        expectancy=net / n if n else ZERO,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        net_pnl=net,
        periods_per_year=ann,
        sharpe_se=sharpe_standard_error(sharpe, len(rets), ann) if sharpe else None,
        days=(ts[-1] - ts[0]) / 86_400_000 if len(ts) >= 2 else 0.0,
        returns=len(rets),
    )


__all__ = [
    "PerformanceMetrics",
    "compute_metrics",
    "max_drawdown",
    "periods_per_year",
    "returns_of",
    "sharpe_ratio",
    "sharpe_standard_error",
]
