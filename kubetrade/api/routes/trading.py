"""Trading state, read from Redis: ``/api/status``, ``/api/trades``, ``/api/portfolio``,
``/api/positions``, ``/api/analytics``."""

import asyncio
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query

from kubetrade.api import schemas as s
from kubetrade.api.analytics import analytics as compute_analytics
from kubetrade.api.deps import ClockDep, Ctx, Reader, User
from kubetrade.api.routes.common import (
    AUTH_RESPONSES,
    BAD,
    MAX_TS,
    NAME_PATTERN,
    STREAM_PATTERN,
    SYMBOL_PATTERN,
    check_cursor,
)
from kubetrade.api.views import (
    emergency_action,
    emergency_applied,
    last_candles_out,
    market_data_kind,
    overall_status,
    positions_out,
    trade_out,
)
from kubetrade.domain.models import ClosedTrade
from kubetrade.state.liveness import shown_phase
from kubetrade.state.reader import EquityPoint, summary_decimal, summary_int

router = APIRouter(tags=["state"], responses={**AUTH_RESPONSES, **BAD})

StrategyName = Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=253)]


@router.get(
    "/api/status",
    response_model=s.StatusOut,
)
async def status(user: User, reader: Reader, clock: ClockDep) -> s.StatusOut:
    """What the runners do, per runner: the phase each reported, its heartbeat, and
    under an emergency whether it acknowledged carrying it out. ``stopped`` only once
    every runner has (``stopping`` until then)."""
    names = await reader.strategy_names()
    summaries = await reader.summaries(names)
    emergency = await reader.emergency()
    acks = await reader.emergency_acks() if emergency_action(emergency.get("action")) != "none" \
        else {}
    action = emergency_action(emergency.get("action"))
    now = clock.now_ms()
    items = [
        s.StrategyStatusOut(
            name=n,
            phase=shown_phase(summaries[n], now),
            halted_reason=summaries[n].get("halted_reason") or None,
            updated_ms=summary_int(summaries[n], "updated_ms"),
            heartbeat_ms=summary_int(summaries[n], "heartbeat_ms"),
            emergency_applied=emergency_applied(emergency, acks.get(n)),
            timeframe=summaries[n].get("timeframe") or None,
            market_data=market_data_kind(summaries[n].get("market_data")),
            last_candles=last_candles_out(summaries[n], now),
        )
        for n in names
    ]
    return s.StatusOut(
        status=overall_status(action, items),
        emergency=action,
        strategies=items,
        time_ms=now,
    )


@router.get(
    "/api/trades",
    response_model=s.TradesPage,
)
async def trades(
    user: User,
    reader: Reader,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 50,
    cursor: Annotated[
        str | None,
        Query(pattern=STREAM_PATTERN, description="`next_cursor` of the previous page."),
    ] = None,
    strategy: StrategyName = None,
    symbol: Annotated[str | None, Query(pattern=SYMBOL_PATTERN)] = None,
    since_ms: Annotated[
        int | None, Query(ge=0, le=MAX_TS, description="Exit time >= (ms).")
    ] = None,
    until_ms: Annotated[
        int | None, Query(ge=0, le=MAX_TS, description="Exit time <= (ms).")
    ] = None,
) -> s.TradesPage:
    """Closed trades, newest first, paged by cursor."""
    check_cursor(cursor)
    page = await reader.trades(limit, cursor, strategy, symbol, since_ms, until_ms)
    return s.TradesPage(
        items=[trade_out(r.id, r.trade) for r in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/api/portfolio",
    response_model=s.PortfolioOut,
)
async def portfolio(user: User, reader: Reader, clock: ClockDep) -> s.PortfolioOut:
    """Equity and P&L over every strategy, and the open positions."""
    summaries, positions = await reader.overview()
    now = clock.now_ms()
    equity, pnl = Decimal(0), Decimal(0)
    rows: list[s.StrategyPortfolioOut] = []
    updated: list[int] = []
    for name, summary in sorted(summaries.items()):
        eq, pl = summary_decimal(summary, "equity"), summary_decimal(summary, "pnl")
        equity += eq or 0
        pnl += pl or 0
        if (u := summary_int(summary, "updated_ms")) is not None:
            updated.append(u)
        rows.append(
            s.StrategyPortfolioOut(
                name=name,
                phase=shown_phase(summary, now),
                equity=eq,
                pnl=pl,
                open_positions=len(positions.get(name, [])),
            )
        )
    out_positions = positions_out(positions)
    return s.PortfolioOut(
        equity=equity,
        pnl=pnl,
        open_positions=len(out_positions),
        strategies=rows,
        positions=out_positions,
        updated_ms=max(updated) if updated else None,
    )


@router.get(
    "/api/positions",
    response_model=list[s.PositionOut],
)
async def positions(
    user: User, reader: Reader, strategy: StrategyName = None
) -> list[s.PositionOut]:
    """Open positions of every strategy (or one)."""
    names = [strategy] if strategy else await reader.strategy_names()
    return positions_out(await reader.positions(names))


@router.get(
    "/api/analytics",
    response_model=s.AnalyticsOut,
)
async def analytics(
    user: User,
    ctx: Ctx,
    max_points: Annotated[
        int, Query(ge=2, le=10_000, description="Equity curve points per series.")
    ] = 500,
) -> s.AnalyticsOut:
    """Performance metrics (engine formulas) and equity curves, overall and per
    strategy."""
    reader = ctx.reader
    names = await reader.strategy_names()
    trades_by: dict[str, list[ClosedTrade]] = {}
    curves: dict[str, list[EquityPoint]] = {}
    for n in names:
        trades_by[n] = await reader.cached_trades(n)
        curves[n] = await reader.cached_equity(n)
    marks = (max_points, tuple((n, reader.stream_marks(n)) for n in names))
    cached = ctx.analytics_cache.get(marks)
    if cached is not None:
        return cached
    # CPU-bound over up to 10^5 trades: off the event loop, so other requests and
    # WebSocket pushes keep flowing meanwhile.
    result = await asyncio.to_thread(compute_analytics, names, trades_by, curves, max_points)
    ctx.analytics_cache.put(marks, result)
    return result
