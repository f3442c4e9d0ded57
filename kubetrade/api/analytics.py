"""``GET /api/analytics`` maths, pure: engine metrics and equity curves per strategy
and overall, and the one-entry cache that spares recomputing an unchanged view."""

import dataclasses
import math
from decimal import Decimal
from typing import Any

from kubetrade.api import schemas as s
from kubetrade.domain.metrics import compute_metrics
from kubetrade.domain.models import ClosedTrade
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
    return s.MetricsOut(
        trades=int(data.get("trades") or 0),
        **{
            k: finite_float(data.get(k))
            for k in (
                "win_rate",
                "sharpe",
                "max_drawdown",
                "total_return",
                "profit_factor",
                "expectancy",
            )
        },
    )


def combine_curves(curves: list[list[EquityPoint]]) -> list[EquityPoint]:
    """Total equity over time: at each timestamp, the sum of every strategy's latest
    equity (strategies count from their first point)."""
    events = sorted(
        ((p.ts_ms, i, p.equity) for i, curve in enumerate(curves) for p in curve),
        key=lambda e: (e[0], e[1]),
    )
    latest: dict[int, Decimal] = {}
    out: list[EquityPoint] = []
    for ts, i, eq in events:
        latest[i] = eq
        total = sum(latest.values(), Decimal(0))
        if out and out[-1].ts_ms == ts:
            out[-1] = EquityPoint(ts, total)
        else:
            out.append(EquityPoint(ts, total))
    return out


def analytics(
    names: list[str],
    trades_by: dict[str, list[ClosedTrade]],
    curves: dict[str, list[EquityPoint]],
    max_points: int,
) -> s.AnalyticsOut:
    """Metrics, P&L and a thinned equity curve (at most ``max_points``) per strategy
    in ``names`` and over all of them. CPU-bound: callers run it off the event loop."""
    per = {n: _block(trades_by[n], curves[n], max_points) for n in names}
    all_trades = sorted((t for n in names for t in trades_by[n]), key=lambda t: t.exit_ms)
    combined = combine_curves([curves[n] for n in names])
    overall = _block(all_trades, combined, max_points)
    return s.AnalyticsOut(overall=overall, strategies=per)


def _block(
    trades: list[ClosedTrade], curve: list[EquityPoint], max_points: int
) -> s.AnalyticsBlock:
    metrics = compute_metrics(trades, [(p.ts_ms, p.equity) for p in curve])
    return s.AnalyticsBlock(
        metrics=metrics_out(metrics),
        pnl=sum((t.pnl for t in trades), Decimal(0)),
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
