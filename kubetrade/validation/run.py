"""The GO/NO-GO run: a plan traded (replay or forward), measured and judged into a report.

The criteria and the judgement are pure (:mod:`kubetrade.domain.gonogo`); this module
runs the plan and puts the verdict, the metrics and what was run into one report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from kubetrade.domain.clock import Clock
from kubetrade.domain.metrics import compute_metrics, float_columns
from kubetrade.marketdata.replay_input import release_arrow_memory
from kubetrade.validation.analysis import (
    breakdowns,
    buy_and_hold,
    day_closes,
    figures,
    period_returns,
    slippage_paid,
)
from kubetrade.validation.curve import write_curve_csv
from kubetrade.validation.plan import RunOutcome, ValidationPlan
from kubetrade.validation.progress import Progress
from kubetrade.validation.replay import load_plan_candles, replay
from kubetrade.validation.report import RunInfo, build_report


def run_info(plan: ValidationPlan, symbols: list[str]) -> RunInfo:
    """The report's ``run`` section: what was run, enough to reproduce it."""
    spec = plan.strategy.spec
    return RunInfo(
        strategy=plan.strategy.metadata.name,
        namespace=plan.namespace,
        algorithm=spec.algorithm,
        parameters=spec.validated_parameters(),
        symbols=symbols,
        timeframe=spec.timeframe,
        mode=plan.mode,
        source=plan.source or (str(plan.replay_path) if plan.replay_path else
                               "store" if plan.replay_store is not None else "exchange"),
        starting_cash=Decimal(spec.initial_capital),
        risk=plan.limits.model_dump(mode="json", by_alias=True),
        duration_seconds=plan.duration_s if plan.mode == "forward" else None,
        validation_run=plan.validation_run,
        friction=plan.friction.to_dict(),
    )


def finish_report(
    plan: ValidationPlan, outcome: RunOutcome, symbols: list[str], started_ms: int,
    finished_ms: int,
) -> dict[str, Any]:
    """The report of a finished run: metrics of ``outcome``, judged by ``plan.criteria``."""
    metrics = compute_metrics(outcome.trades, outcome.equity_curve)
    report = build_report(
        run_info(plan, symbols), plan.criteria, metrics, outcome.trades, outcome.equity_curve,
        outcome.data_start_ms, outcome.data_end_ms, outcome.candles, started_ms, finished_ms,
        plan.confidence,
    )
    report["open_positions_at_end"] = outcome.open_positions
    report["open_positions"] = outcome.positions or []
    report["rejected_orders"] = outcome.rejected_orders
    report["analysis"] = analyse(plan, outcome, metrics)
    if plan.equity_csv is not None:
        report["equity_curve_file"] = str(write_curve_csv(outcome.equity_curve,
                                                          plan.equity_csv))
    if outcome.data_quality is not None:
        report["data_quality"] = outcome.data_quality
    return report


def analyse(plan: ValidationPlan, outcome: RunOutcome, metrics: Any) -> dict[str, Any]:
    """The report's ``analysis``: breakdowns, further figures, friction paid, benchmark."""
    trades, curve = outcome.trades, outcome.equity_curve
    out: dict[str, Any] = breakdowns(trades)
    # a replay's curve is columns: converted to floats once (with the metrics)
    closes = day_closes(*float_columns(curve))
    out["returns_by"] = {p: period_returns(closes, p) for p in ("day", "week", "month")}
    out.update(figures(trades, curve, metrics.max_drawdown, metrics.periods_per_year))
    out["slippage_paid_estimate"] = str(slippage_paid(trades, plan.friction.slippage_bps))
    capital = Decimal(plan.strategy.spec.initial_capital)
    out["buy_and_hold"] = (
        buy_and_hold(outcome.first_close, outcome.last_close, capital, plan.friction.fee_rate)
        if outcome.first_close is not None and outcome.last_close is not None else None)
    out["price_curve"] = [[ts, p] for ts, p in outcome.prices or []]
    return out


def run_plan(
    plan: ValidationPlan,
    wall: Clock,
    started_ms: int,
    on_update: Callable[[float, float | None, str], None] | None = None,
) -> dict[str, Any]:
    """Trade ``plan`` (replay at full speed, or forward on Binance's public candles for
    ``plan.duration_s``) and return its report. ``on_update(percent, eta_s, text)`` gets
    the progress; ``started_ms`` (wall clock) goes into the report."""
    if plan.mode == "replay" and plan.sweep is not None:
        # imported here: the sweep's process pool (multiprocessing, concurrent.futures)
        # is not needed by a single replay
        from kubetrade.validation.sweep import walk_forward

        best, outcome, section = walk_forward(plan, load_plan_candles(plan), plan.sweep,
                                              on_update)
        report = finish_report(best, outcome, [plan.symbol or plan.strategy.spec.symbols[0]],
                               started_ms, wall.now_ms())
        report["sweep"] = section
        return report
    if plan.mode == "replay":
        progress = Progress(1, wall, on_update=on_update)
        outcome = replay(plan, progress.update_of)
        release_arrow_memory()
        symbols = [plan.symbol or plan.strategy.spec.symbols[0]]
    else:
        progress = Progress(plan.duration_s * 1000, wall, on_update=on_update,
                            step_pct=1.0, min_interval_s=300.0)
        progress.update(0, force=True)  # "Running, 0%" from the first second
        # imported here: ccxt and aiohttp take ~1 s to import, and a replay needs neither
        from kubetrade.validation.forward import forward_on_binance

        outcome = asyncio.run(forward_on_binance(plan, progress.update))
        symbols = list(plan.strategy.spec.symbols)
    return finish_report(plan, outcome, symbols, started_ms, wall.now_ms())
