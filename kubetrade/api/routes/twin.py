"""``GET /api/live-vs-paper``: each live strategy against its paper twin (issue 20).

The runner of a live Strategy runs the same engine in paper mode on the same candles
(kubetrade/runner/twin.py) and stores the comparison after every candle
(kubetrade/state/twin.py). This endpoint reads it: both books' P&L, fees and trades,
fills matched/missed/extra, average slippage against the twin's price (bps), rejected
orders, decision-to-fill latency, the divergence and its threshold, the size-ramp step,
the two equity curves (for one chart), and, when the latest validation report is this
strategy's, how far live has moved from its figures.
"""

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from kubetrade.api.deps import Ctx, Reader, User
from kubetrade.api.routes.common import AUTH_RESPONSES, BAD, NAME_PATTERN
from kubetrade.state.reader import EquityPoint
from kubetrade.state.twin import cached_twin_equity, read_twin

router = APIRouter()


class LiveVsPaperOut(BaseModel):
    """One live strategy against its paper twin (money and bps as decimal strings)."""

    name: str
    comparison: dict[str, Any] | None = Field(
        default=None, description="live and twin figures: pnl, fees, trades per book; "
        "fills_matched/missed/extra, avg_slippage_bps, rejected {live, twin}, "
        "avg_latency_ms, max_latency_ms, divergence_pct, threshold_pct, diverged")
    size_pct: int = Field(100, description="size-ramp step in force, percent of full size")
    ramp: dict[str, Any] | None = Field(default=None, description="ramp state (step index, "
                                        "period start ms); null without a ramp")
    ramp_change: dict[str, Any] | None = Field(default=None, description="latest ramp "
                                               "change (action, from/to percent, reason)")
    started_ms: int = 0
    updated_ms: int = 0
    equity: dict[str, list[tuple[int, str]]] = Field(
        default_factory=dict, description="{live, twin}: [close ms, equity] points")
    reference: dict[str, Any] | None = Field(
        default=None, description="the latest validation report of this strategy (GO/NO-GO)"
        " with live's total return and win rate beside its figures")


def _fraction(value: Any) -> float | None:
    try:
        return float(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return None


def _reference(name: str, latest: dict[str, Any] | None,
               summary: dict[str, str]) -> dict[str, Any] | None:
    """The validation report's figures beside live's (fractions: 0.05 = 5 %)."""
    if not latest or latest.get("strategy") != name:
        return None
    metrics = latest.get("metrics") or {}
    start, pnl = _fraction(summary.get("starting_cash")), _fraction(summary.get("pnl"))
    live_return = pnl / start if start and pnl is not None else None
    live_win = _fraction(summary.get("win_rate"))
    report_return, report_win = _fraction(metrics.get("total_return")), _fraction(
        metrics.get("win_rate"))
    return {
        "decision": latest.get("decision"), "finished_ms": latest.get("finished_ms"),
        "report": latest.get("report"),
        "validation": {"total_return": report_return, "win_rate": report_win,
                       "max_drawdown": _fraction(metrics.get("max_drawdown"))},
        "live": {"total_return": live_return, "win_rate": live_win},
        "gap": {"total_return": None if live_return is None or report_return is None
                else live_return - report_return,
                "win_rate": None if live_win is None or report_win is None
                else live_win - report_win},
    }


def _thin(points: list[tuple[int, str]], limit: int) -> list[tuple[int, str]]:
    """At most ``limit`` evenly spaced points, the last one kept."""
    if len(points) <= limit:
        return points
    step = -(-len(points) // limit)
    out = points[::step]
    return out if out[-1] == points[-1] else [*out, points[-1]]


@router.get(
    "/api/live-vs-paper",
    response_model=list[LiveVsPaperOut],
    tags=["strategies"],
    responses={**AUTH_RESPONSES, **BAD,
               404: {"description": "The named strategy has no paper twin (not live)."}},
)
async def live_vs_paper(
    user: User, ctx: Ctx, reader: Reader,
    strategy: Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=253)] = None,
    points: Annotated[int, Query(ge=2, le=5000)] = 500,
) -> list[LiveVsPaperOut]:
    """Every live strategy with a paper twin (or only ``strategy``), newest figures."""
    names = [strategy] if strategy else await reader.strategy_names()
    latest = await reader.validation_latest()
    summaries = await reader.summaries(names)
    out = []
    for name in names:
        twin = await read_twin(ctx.redis, ctx.keys, name)
        if twin is None:
            continue
        live_curve: list[EquityPoint] = await reader.cached_equity(name)
        twin_curve = await cached_twin_equity(reader, name)
        paper = [(p.ts_ms, str(p.equity)) for p in twin_curve]
        since = paper[0][0] if paper else None
        live = [(p.ts_ms, str(p.equity)) for p in live_curve
                if since is None or p.ts_ms >= since]
        out.append(LiveVsPaperOut(
            name=name, **twin,
            equity={"live": _thin(live, points), "twin": _thin(paper, points)},
            reference=_reference(name, latest, summaries.get(name) or {}),
        ))
    if strategy and not out:
        raise HTTPException(404, f"strategy {strategy!r} has no paper twin (live strategies "
                            "only)")
    return out
