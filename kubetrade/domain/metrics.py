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
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import chain
from typing import Any, TypeVar

import numpy as np

from kubetrade.domain.models import ZERO, ClosedTrade, to_dict

_V = TypeVar("_V")

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


def periods_per_year(timestamps_ms: Sequence[int] | np.ndarray) -> float:
    """Annualisation factor from the median spacing of the timestamps (365-day year)."""
    ts = np.asarray(timestamps_ms, dtype=np.int64)
    if len(ts) < 2:
        return 0.0
    gaps = np.diff(ts)
    gaps = gaps[gaps > 0]
    if not len(gaps):
        return 0.0
    # the median of integers: the middle one, or the mean of the two middle ones (as
    # statistics.median: the two summed exactly, then divided once)
    k = len(gaps) // 2
    part = np.partition(gaps, [k - 1, k] if k else [k])
    middle = int(part[k]) if len(gaps) % 2 else (int(part[k - 1]) + int(part[k])) / 2
    return YEAR_MS / middle


def simple_returns(equity: np.ndarray) -> np.ndarray:
    """``returns_of`` on a float array (the same float operations, vectorised)."""
    prev, cur = equity[:-1], equity[1:]
    keep = prev > 0
    if keep.all():  # the usual case: the same operations without copying the columns
        out: np.ndarray = np.divide(cur, prev)
    else:
        out = np.divide(cur[keep], prev[keep])
    out -= 1.0  # in place: one array of a million floats less alive at once
    return out


def returns_of(equity: Sequence[float]) -> list[float]:
    """Simple per-period returns E_i / E_{i-1} - 1 (periods with E_{i-1} <= 0 skipped)."""
    return simple_returns(np.asarray(equity, dtype=np.float64)).tolist()  # type: ignore[no-any-return]


_SUM_CHUNK = 1 << 16


def exact_sum(values: np.ndarray) -> float:
    """``math.fsum`` of ``values`` (exact, rounded once), fed a chunk at a time: the
    same sum without a Python float per value alive at once (a million are ~32 MB)."""
    return math.fsum(chain.from_iterable(
        values[i:i + _SUM_CHUNK].tolist() for i in range(0, len(values), _SUM_CHUNK)))


def sharpe_ratio(returns: Sequence[float] | np.ndarray, annualization: float) -> float:
    if len(returns) < 2 or annualization <= 0:
        return 0.0
    r = np.asarray(returns, dtype=np.float64)
    if r.min() == r.max():
        return 0.0  # no variation: std is 0 exactly
    n = len(r)
    # exact sums (math.fsum) of the float terms, computed by numpy: the two-pass sample
    # variance (statistics.stdev is exact but ~50x slower on a million returns; the two
    # agree to ~1e-15 relative)
    mean = exact_sum(r) / n
    dev = r - mean
    np.square(dev, out=dev)  # what ** 2 does, in place
    sd = math.sqrt(exact_sum(dev) / (n - 1))
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


def _drawdowns(equity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(peak so far, drawdown (peak - E) / peak where the peak is above 0, else 0)."""
    peak = np.maximum.accumulate(equity)
    pos = peak > 0
    if pos.all():  # the usual case: the same operations in place, no column copies
        dd = np.subtract(peak, equity, dtype=np.float64)
        dd /= peak
        return peak, dd
    dd = np.zeros(len(equity))
    dd[pos] = (peak[pos] - equity[pos]) / peak[pos]
    return peak, dd


def max_drawdown(equity: Sequence[float] | np.ndarray) -> float:
    e = np.asarray(equity, dtype=np.float64)
    if not len(e):
        return 0.0
    return max(0.0, float(_drawdowns(e)[1].max()))


def values_at(values: Sequence[_V], indices: Sequence[int]) -> list[_V]:
    """``values`` at ``indices``, read at once when the sequence can (``take``: a
    replay's :class:`~kubetrade.validation.equity_values.EquityValues` casts the closes
    of its held points together), else one by one."""
    take = getattr(values, "take", None)
    return take(indices) if take is not None else [values[i] for i in indices]  # type: ignore[no-any-return]


def _exact_max_drawdown(equity: Sequence[Decimal], floats: np.ndarray) -> float:
    """``max_drawdown`` with the worst point(s) recomputed in Decimal.

    Float subtraction turns an exact 15% drawdown into 0.15000000000000002, which the
    GO/NO-GO gate ("Max Drawdown <= 15%") would fail. The float pass finds the worst
    drawdown; every point within float noise of it is recomputed from the Decimal
    equity (against the highest Decimal equity among the points at its float peak), so
    the reported value is the exact one, rounded once to a float.
    """
    if not len(floats):
        return 0.0
    peak_f, dd = _drawdowns(floats)
    worst = max(0.0, float(dd.max()))
    if worst <= 0:
        return worst
    near = worst - worst * 1e-9
    cands = np.flatnonzero((peak_f > 0) & (dd >= near))
    tops = peak_f[cands]
    # the candidates of one float peak are consecutive (the peak never decreases); the
    # points at that peak from its first one to their last are the peak's ties
    bounds = np.r_[np.flatnonzero(tops[1:] != tops[:-1]) + 1, len(cands)].tolist()
    groups: list[tuple[list[int], list[int]]] = []
    start = 0
    for stop in bounds:
        top, last = peak_f[cands[start]], int(cands[stop - 1])
        first = int(np.searchsorted(peak_f, top, side="left"))
        ties = (first + np.flatnonzero(floats[first:last + 1] == top)).tolist()
        groups.append((ties, cands[start:stop].tolist()))
        start = stop
    wanted = sorted({i for g in groups for part in g for i in part})
    exact = dict(zip(wanted, values_at(equity, wanted), strict=True))
    best = ZERO
    for ties, points in groups:
        k, high = 0, exact[ties[0]]
        for i in points:
            while k < len(ties) and ties[k] <= i:
                if exact[ties[k]] > high:
                    high = exact[ties[k]]
                k += 1
            d = (high - exact[i]) / high
            if d > best:
                best = d
    return float(best)


def float_columns(curve: Sequence[tuple[int, Decimal]]) -> tuple[np.ndarray, np.ndarray]:
    """(times ms as int64, equity as float64) of ``curve``: columns of an
    :class:`~kubetrade.validation.curve.EquityCurve`-like curve are read without a pair
    per point (its ``float_columns()``), other sequences point by point."""
    own = getattr(curve, "float_columns", None)
    if own is not None:
        return own()  # type: ignore[no-any-return]
    ts = np.fromiter((t for t, _ in curve), np.int64, len(curve))
    eq = np.fromiter((float(e) for _, e in curve), np.float64, len(curve))
    return ts, eq


def equity_values(curve: Sequence[tuple[int, Decimal]]) -> Sequence[Decimal]:
    """The equity of ``curve``'s points (its ``values`` column when it has one)."""
    values = getattr(curve, "values", None)
    return values if values is not None else [e for _, e in curve]


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
    ts, eq = float_columns(equity_curve)
    ann = periods_per_year(ts)
    total_return = (float(eq[-1]) / float(eq[0]) - 1.0
                    if len(eq) >= 2 and eq[0] > 0 else 0.0)
    rets = simple_returns(eq)
    sharpe = sharpe_ratio(rets, ann)
    return PerformanceMetrics(
        trades=n,
        wins=wins,
        losses=losses,
        win_rate=wins / n if n else 0.0,
        sharpe=sharpe,
        max_drawdown=_exact_max_drawdown(equity_values(equity_curve), eq),
        total_return=total_return,
        profit_factor=float(gross_profit / gross_loss) if gross_loss > 0 else None,
        expectancy=net / n if n else ZERO,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        net_pnl=net,
        periods_per_year=ann,
        sharpe_se=sharpe_standard_error(sharpe, len(rets), ann) if sharpe else None,
        days=int(ts[-1] - ts[0]) / 86_400_000 if len(ts) >= 2 else 0.0,
        returns=len(rets),
    )


__all__ = [
    "PerformanceMetrics",
    "compute_metrics",
    "equity_values",
    "exact_sum",
    "float_columns",
    "max_drawdown",
    "periods_per_year",
    "returns_of",
    "sharpe_ratio",
    "sharpe_standard_error",
    "simple_returns",
    "values_at",
]
