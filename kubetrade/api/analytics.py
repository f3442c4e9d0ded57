"""``GET /api/analytics`` maths, pure: engine metrics and equity curves per strategy
and overall, and the one-entry cache that spares recomputing an unchanged view."""

import dataclasses
import math
from decimal import Decimal
from typing import Any

from kubetrade.api import schemas as s
from kubetrade.domain.gonogo import SHARPE_MIN_DAYS, SHARPE_MIN_RETURNS
from kubetrade.domain.metrics import HEADLINE_METRICS, compute_metrics
from kubetrade.domain.models import ClosedTrade
from kubetrade.domain.twr import combine
from kubetrade.state.reader import EquityPoint, thin


def finite_float(value: Any) -> float | None:
    """``value`` as a float, or None when absent, not a number or not finite (JSON has
    no infinity)."""
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def metrics_out(metrics: Any) -> s.MetricsOut:
    """Engine metrics (dataclass or pydantic) as the API model; non-finite ratios
    (profit factor with no losses) become null, as JSON has no infinity."""
    if hasattr(metrics, "model_dump"):
        data = metrics.model_dump()
    elif dataclasses.is_dataclass(metrics) and not isinstance(metrics, type):
        data = dataclasses.asdict(metrics)
    else:
        data = dict(vars(metrics))
    days, returns = float(data.get("days") or 0.0), int(data.get("returns") or 0)
    return s.MetricsOut(
        trades=int(data.get("trades") or 0),
        **{k: finite_float(data.get(k)) for k in HEADLINE_METRICS if k != "trades"},
        sharpe_se=finite_float(data.get("sharpe_se")), days=days, returns=returns,
        sharpe_judged=days >= SHARPE_MIN_DAYS and returns >= SHARPE_MIN_RETURNS,
    )


def combine_curves(curves: list[list[EquityPoint]]) -> list[EquityPoint]:
    """Total equity over time: at each timestamp, the sum of every strategy's latest
    equity (strategies count from their first point, so it steps up when one starts)."""
    combined = combine([[(p.ts_ms, p.equity) for p in c] for c in curves])
    return [EquityPoint(ts, eq) for ts, eq in combined.total]


def analytics(
    names: list[str],
    trades_by: dict[str, list[ClosedTrade]],
    curves: dict[str, list[EquityPoint]],
    max_points: int,
) -> s.AnalyticsOut:
    """Metrics, P&L and a thinned equity curve (at most ``max_points``) per strategy
    in ``names`` and over all of them. CPU-bound: callers run it off the event loop.

    Overall: ``equity_curve`` is the total equity (money; it steps up when a strategy
    starts and brings its capital), while the metrics (return, Sharpe, drawdown) are
    computed on the *time-weighted* curve of kubetrade.domain.twr, where a strategy
    enters at its start with its capital, as funds report returns across cash flows
    (GIPS: time-weighted returns adjusted for external cash flows, geometrically
    linked; docs/metrics.md). So adding a strategy is never profit.
    """
    per = {n: _block(trades_by[n], curves[n], max_points) for n in names}
    all_trades = sorted((t for n in names for t in trades_by[n]), key=lambda t: t.exit_ms)
    combined = combine([[(p.ts_ms, p.equity) for p in curves[n]] for n in names])
    overall = _block(
        all_trades,
        [EquityPoint(ts, eq) for ts, eq in combined.total],
        max_points,
        measured=combined.unit,
    )
    marked = [b.marked_pnl for b in per.values() if b.marked_pnl is not None]
    overall.marked_pnl = sum(marked, Decimal(0)) if marked else None
    return s.AnalyticsOut(overall=overall, strategies=per)


def _block(
    trades: list[ClosedTrade],
    curve: list[EquityPoint],
    max_points: int,
    measured: list[tuple[int, Decimal]] | None = None,
) -> s.AnalyticsBlock:
    """One block; the metrics come from ``measured`` (default: ``curve`` itself)."""
    points = measured if measured is not None else [(p.ts_ms, p.equity) for p in curve]
    metrics = compute_metrics(trades, points)
    return s.AnalyticsBlock(
        metrics=metrics_out(metrics),
        pnl=sum((t.pnl for t in trades), Decimal(0)),
        marked_pnl=curve[-1].equity - curve[0].equity if curve else None,
        equity_curve=[
            s.EquityPointOut(ts_ms=p.ts_ms, equity=p.equity) for p in thin(curve, max_points)
        ],
    )


class AnalyticsCache:
    """The last analytics answer and the marks (page size, stream positions) it was
    computed from; one entry, as the dashboard polls one view."""

    def __init__(self) -> None:
        self._entry: tuple[object, s.AnalyticsOut] | None = None

    def get(self, marks: object) -> s.AnalyticsOut | None:
        """The cached answer when it was computed from equal ``marks``, else None."""
        if self._entry is not None and self._entry[0] == marks:
            return self._entry[1]
        return None

    def put(self, marks: object, result: s.AnalyticsOut) -> None:
        self._entry = (marks, result)
