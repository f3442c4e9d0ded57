"""The replay driver: recorded candles through the engine and paper broker at full speed."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kubetrade.domain.clock import ManualClock
from kubetrade.exchange.replay import run_replay
from kubetrade.marketdata.filters import load_best
from kubetrade.marketdata.frame import CandleFrame
from kubetrade.marketdata.replay_input import replay_candles
from kubetrade.validation.fast_replay import column_array, replay_fast
from kubetrade.validation.plan import (
    RunOutcome,
    ValidationPlan,
    engine_and_broker,
    open_positions,
)


def load_plan_candles(plan: ValidationPlan) -> CandleFrame:
    """The candles ``plan`` replays (its file or store range, at its timeframe)."""
    symbol = plan.symbol or plan.strategy.spec.symbols[0]
    return replay_candles(plan.replay_path, plan.replay_store, symbol,
                          plan.strategy.spec.timeframe, plan.load_options)


def replay(
    plan: ValidationPlan, progress: Callable[[int, int], None] | None = None,
    candles: CandleFrame | None = None,
) -> RunOutcome:
    """Recorded candles (``candles``, else the plan's) through the engine and paper
    broker as fast as the CPU allows.

    ``progress(done, total)`` is called about every 1 % of the candles. ValueError when
    the plan has no candle file or the file holds no candles.
    """
    symbol = plan.symbol or plan.strategy.spec.symbols[0]
    if candles is None:
        candles = load_plan_candles(plan)
    # the exchange's real filters (tick, lot, min notional); an unknown symbol is refused
    engine, broker = engine_and_broker(plan, {symbol: load_best(plan.data_dir).market(symbol)})
    clock = ManualClock(candles[0].ts_ms)
    every = max(1, len(candles) // 100)
    result = replay_fast(engine, broker, candles, clock, symbol, progress, every)
    if result is None:  # an algorithm reading whole candles: every candle through the engine
        result = run_replay(engine, broker, candles, clock, on_progress=progress,
                            symbol=symbol, progress_every=every)
    return RunOutcome(
        trades=result.trades,
        equity_curve=result.equity_curve,  # not copied: a million points as a list is ~60 MB
        candles=result.candles,
        data_start_ms=candles[0].ts_ms,
        data_end_ms=result.equity_curve[-1][0] if result.equity_curve else candles[-1].ts_ms,
        open_positions=len(engine.positions),
        rejected_orders=result.rejected,
        data_quality=candles.report.to_dict(),
        positions=open_positions(engine),
        prices=price_points(candles),
        first_close=candles[0].close,
        last_close=candles[-1].close,
    )


PRICE_POINTS = 4000


def price_points(frame: CandleFrame, limit: int = PRICE_POINTS) -> list[tuple[int, float]]:
    """At most ``limit`` evenly spaced (open time ms, close) of ``frame``, plus the last."""
    n = len(frame)
    step = max(1, -(-n // limit))
    out = list(zip(column_array(frame, "timestamp_ms", np.int64)[::step].tolist(),
                   column_array(frame, "close", np.float64)[::step].tolist(), strict=True))
    if (n - 1) % step:
        out.append((frame[-1].ts_ms, float(frame[-1].close)))
    return out
