"""What the report explains a verdict with: trades grouped (symbol, exit reason, day,
week, month), return and risk figures beyond the gate's four, and the benchmark.

Pure: closed trades and the full equity curve in, JSON-ready dicts out. Money is exact
(Decimal, written as strings); ratios are floats. Sources of each figure are in
docs/metrics.md: CAGR (compound annual growth over a 365-day year), Sortino and Price
(1994) with a 0 target (empyrical's ``sortino_ratio``), Calmar = CAGR / max drawdown
(Young 1991), SQN = sqrt(n) * mean(pnl) / std(pnl) (Van Tharp), longest drawdown =
longest time from a peak of the marked-to-market equity until it is regained.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from kubetrade.domain.metrics import equity_values, exact_sum, float_columns, simple_returns
from kubetrade.domain.models import ZERO, ClosedTrade
from kubetrade.validation.report import iso

_CHUNK = 1 << 16
"""Points read into Python objects at a time (ties of the longest drawdown)."""

DAY_MS = 86_400_000


def _group(trades: Sequence[ClosedTrade], key: Callable[[ClosedTrade], str]
           ) -> dict[str, dict[str, Any]]:
    """Per key: trades, wins, win rate, net P&L, fees (money as exact strings)."""
    acc: dict[str, list[ClosedTrade]] = {}
    for t in trades:
        acc.setdefault(key(t), []).append(t)
    out: dict[str, dict[str, Any]] = {}
    for k in sorted(acc):
        group = acc[k]
        wins = sum(1 for t in group if t.pnl > 0)
        out[k] = {"trades": len(group), "wins": wins, "win_rate": wins / len(group),
                  "net_pnl": str(sum((t.pnl for t in group), ZERO)),
                  "fees": str(sum((t.fees for t in group), ZERO))}
    return out


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def _week(ms: int) -> str:
    y, w, _ = datetime.fromtimestamp(ms / 1000, tz=UTC).isocalendar()
    return f"{y}-W{w:02d}"


def _month(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m")


PERIODS: dict[str, Callable[[int], str]] = {"day": _day, "week": _week, "month": _month}


def breakdowns(trades: Sequence[ClosedTrade]) -> dict[str, Any]:
    """Trades by symbol, by exit reason, and by the UTC day, ISO week and month of their
    exit."""
    out: dict[str, Any] = {"by_symbol": _group(trades, lambda t: t.symbol),
                           "by_exit_reason": _group(trades, lambda t: t.exit_reason)}
    for name, label in PERIODS.items():
        out[f"by_{name}"] = _group(trades, _by_exit(label))
    return out


def _by_exit(label: Callable[[int], str]) -> Callable[[ClosedTrade], str]:
    """The label of a trade's exit time, computed once per UTC day (all three periods
    are whole days)."""
    days: dict[int, str] = {}

    def key(t: ClosedTrade) -> str:
        day = t.exit_ms // DAY_MS
        name = days.get(day)
        if name is None:
            name = days[day] = label(day * DAY_MS)
        return name

    return key


def day_closes(ts: np.ndarray, eq: np.ndarray) -> list[tuple[int, float]]:
    """(UTC day start ms, last equity of that day) for each day of the curve (times
    ``ts`` ms, equity ``eq`` as floats), in order, preceded by (first point ms, first
    equity) as the base of the first day."""
    if not len(ts):
        return []
    days = ts // DAY_MS
    last = np.r_[np.flatnonzero(days[1:] != days[:-1]), len(ts) - 1]
    return [(int(ts[0]), float(eq[0])), *zip((days[last] * DAY_MS).tolist(),
                                               eq[last].tolist(), strict=True)]


def period_returns(closes: Sequence[tuple[int, float]], period: str) -> dict[str, float]:
    """Equity return of each UTC day/ISO week/month (by ``day_closes``): its last equity
    over the last equity before it (the first period: over the first point)."""
    label = PERIODS[period]
    out: dict[str, float] = {}
    if len(closes) < 2:
        return out
    base = closes[0][1]
    current = label(closes[1][0])
    last = base
    for day_ms, e in closes[1:]:
        name = label(day_ms)
        if name != current:
            out[current] = last / base - 1 if base > 0 else 0.0
            base, current = last, name
        last = e
    out[current] = last / base - 1 if base > 0 else 0.0
    return out


def _at_peaks(eq: np.ndarray, exact: Sequence[Decimal]) -> np.ndarray:
    """Indices (int64) of the points at or above every earlier point (by the exact
    equity). Floats find them: a point above every earlier float is one; one equal to
    the highest earlier float is checked against the exact peak (rounding keeps order),
    so exact values are read for such ties only. No list of a Python int per point is
    made (a flat million-point curve would be ~36 MB of them)."""
    before = np.empty_like(eq)  # before[i]: the highest of eq[:i]
    before[:1] = -np.inf
    np.maximum.accumulate(eq[:-1], out=before[1:])
    cand = np.flatnonzero(eq >= before)
    tie = eq[cand] == before[cand]
    del before
    if not tie.any():
        return cand
    out = array("q")
    last = 0  # the last point at a peak: its exact value is the peak
    peak: Decimal | None = None
    for start in range(0, len(cand), _CHUNK):
        part = slice(start, start + _CHUNK)
        for i, level in zip(cand[part].tolist(), tie[part].tolist(), strict=True):
            if not level:
                out.append(i)
                last, peak = i, None
                continue
            if peak is None:
                peak = exact[last]
            e = exact[i]
            if e >= peak:
                out.append(i)
                last, peak = i, e
    return np.frombuffer(out, dtype=np.int64)


def _longest_drawdown(ts: np.ndarray, eq: np.ndarray, exact: Sequence[Decimal]
                      ) -> dict[str, Any] | None:
    """Longest span from a peak of the equity until it is back at that peak (or the end
    of the run, ``recovered`` false); None when the equity never fell below a peak.
    ``ts``, ``eq``: the curve's times and equity as floats; ``exact`` its equity."""
    if not len(ts):
        return None
    at = _at_peaks(eq, exact)
    best: tuple[int, int, int, bool] | None = None  # (length, start, end, recovered)
    under = np.flatnonzero(at[1:] > at[:-1] + 1)  # a fall between two peaks
    if len(under):
        spans = ts[at[under + 1]] - ts[at[under]]
        k = int(np.argmax(spans))  # the first longest
        best = (int(spans[k]), int(ts[at[under[k]]]), int(ts[at[under[k] + 1]]), True)
    end_ms = int(ts[-1])
    last_peak = int(ts[at[-1]])
    if at[-1] < len(ts) - 1 and (best is None or end_ms - last_peak > best[0]):
        best = (end_ms - last_peak, last_peak, end_ms, False)
    if best is None:
        return None
    length, start, end, recovered = best
    return {"days": length / DAY_MS, "start": iso(start), "end": iso(end),
            "start_ms": start, "end_ms": end, "recovered": recovered}


def _stats(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = math.fsum(values) / n
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var)


def figures(trades: Sequence[ClosedTrade], curve: Sequence[tuple[int, Decimal]],
            max_drawdown: float, periods_per_year: float) -> dict[str, Any]:
    """CAGR, Sortino, Calmar, profit factor, expectancy, SQN, longest drawdown, fees."""
    ts, eq = float_columns(curve)
    out: dict[str, Any] = {"cagr": None, "sortino": None, "calmar": None, "sqn": None}
    if len(curve) >= 2 and curve[0][1] > 0:
        days = (curve[-1][0] - curve[0][0]) / DAY_MS
        growth = float(curve[-1][1] / curve[0][1])
        if days > 0 and growth > 0:
            out["cagr"] = growth ** (365 / days) - 1
        rets = simple_returns(eq)
        if len(rets) and periods_per_year > 0:
            # exact sums (math.fsum) of the float terms numpy computes
            losses = np.minimum(rets, 0.0)
            losses *= losses  # squared in place: one series-sized temporary, not two
            downside = math.sqrt(exact_sum(losses) / len(rets))
            if downside > 0:
                out["sortino"] = exact_sum(rets) / len(rets) / downside * math.sqrt(
                    periods_per_year)
        if out["cagr"] is not None and max_drawdown > 0:
            out["calmar"] = out["cagr"] / max_drawdown
    pnls = [float(t.pnl) for t in trades]
    if len(pnls) >= 2:
        mean, sd = _stats(pnls)
        if sd > 0:
            out["sqn"] = math.sqrt(len(pnls)) * mean / sd
    losses = -sum((t.pnl for t in trades if t.pnl < 0), ZERO)
    gains = sum((t.pnl for t in trades if t.pnl > 0), ZERO)
    out["profit_factor"] = float(gains / losses) if losses > 0 else None
    out["expectancy"] = str((sum((t.pnl for t in trades), ZERO) / len(trades)).quantize(
        Decimal("1e-8"))) if trades else "0"
    out["fees_paid"] = str(sum((t.fees for t in trades), ZERO))
    out["longest_drawdown"] = _longest_drawdown(ts, eq, equity_values(curve))
    return out


def slippage_paid(trades: Sequence[ClosedTrade], slippage_bps: Decimal) -> Decimal:
    """Estimated cost of slippage: each fill's price against the price it slipped from
    (buys at p(1+b), sells at p(1-b)), times its quantity. An estimate: fills are rounded
    to the price tick after slipping, and stops may fill at their own price."""
    if slippage_bps <= 0:
        return ZERO
    b = slippage_bps / Decimal(10_000)
    total = ZERO
    for t in trades:
        total += t.quantity * (t.entry_price - t.entry_price / (1 + b))
        total += t.quantity * (t.exit_price / (1 - b) - t.exit_price)
    return total.quantize(Decimal("0.00000001"))


def buy_and_hold(first_close: Decimal, last_close: Decimal, capital: Decimal,
                 fee_rate: Decimal) -> dict[str, Any]:
    """The same capital in the symbol from the first close to the last, one fee each way."""
    if first_close <= 0:
        return {"return": None}
    final = capital * (1 - fee_rate) * last_close / first_close * (1 - fee_rate)
    return {"first_close": str(first_close), "last_close": str(last_close),
            "final_equity": str(final.quantize(Decimal("0.00000001"))),
            "return": float(final / capital - 1)}


__all__ = ["breakdowns", "buy_and_hold", "day_closes", "figures", "period_returns",
           "slippage_paid"]
