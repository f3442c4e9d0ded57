"""Cluster sweeps, the validation side: each slice ranks its share of the grid with the
same replays as one machine, the slices gathered rank like the whole sweep, and a
slice reports progress (done, best so far) and its result in the shape the operator
gathers."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import replace
from typing import Any

import pytest

from kubetrade.domain.clock import ManualClock
from kubetrade.domain.gonogo import Criteria
from kubetrade.domain.sweeps import gather
from kubetrade.exchange.replay import bundled_candles
from kubetrade.resources import RiskPolicySpec, Strategy
from kubetrade.validation.plan import ValidationPlan
from kubetrade.validation.progress import TerminalBar
from kubetrade.validation.replay import load_plan_candles
from kubetrade.validation.sweep import SweepSpec, rank
from kubetrade.validation.sweep_progress import SweepProgress, SweepTick
from kubetrade.validation.sweep_slice import slice_document, slice_index_from_env

GRID = {"fastPeriod": [5, 10, 15], "slowPeriod": [20, 30]}


@pytest.fixture(scope="module")
def plan() -> ValidationPlan:
    strategy = Strategy.model_validate({
        "metadata": {"name": "btc-sma"},
        "spec": {"algorithm": "sma-crossover", "parameters": {"fastPeriod": 10, "slowPeriod": 30},
                 "symbols": ["BTC/USDT"], "timeframe": "1m"},
    })
    return ValidationPlan(strategy=strategy, limits=RiskPolicySpec().to_limits(),
                          criteria=Criteria(), mode="replay",
                          replay_path=bundled_candles("BTC/USDT", "1m"))


def test_slices_gathered_rank_like_the_whole_sweep(plan: ValidationPlan) -> None:
    frame = load_plan_candles(plan)
    whole = rank(plan, frame, SweepSpec(GRID, jobs=1))
    reports = []
    for index in range(3):
        spec = SweepSpec(GRID, jobs=1, slices=3, slice_index=index)
        assert len(spec.combinations()) == 2
        ranking = rank(plan, frame, spec)
        reports.append({"slice": index, "combinations": 2, "done": 2, "complete": True,
                        "top": ranking, "decision": "NO-GO"})
    g = gather(reports, slices=3, top=10, combinations=6)
    assert g.top == whole  # same replays, same scores, same order
    assert g.done == 6 and g.winner is not None


def test_progress_counts_and_keeps_the_best_so_far(
    plan: ValidationPlan, caplog: pytest.LogCaptureFixture
) -> None:
    ticks: list[SweepTick] = []
    updates: list[tuple[float, float | None, str]] = []
    spec = SweepSpec(GRID, jobs=1, watch=ticks.append)
    with caplog.at_level(logging.INFO, logger="kubetrade.validation"):
        ranking = rank(plan, load_plan_candles(plan), spec,
                       lambda pct, eta, text: updates.append((pct, eta, text)))
    assert ticks[0].done == 0 and ticks[-1].done == ticks[-1].total == 6
    assert [t.done for t in ticks] == sorted(t.done for t in ticks)
    assert ticks[-1].best is not None
    assert ticks[-1].best["parameters"] == ranking[0]["parameters"]
    assert ticks[-1].eta_s == 0.0
    assert updates[-1][0] == 100.0 and updates[-1][2].startswith("6/6 combinations, best so far")
    lines = [r for r in caplog.records if r.getMessage().startswith("sweep progress")]
    assert lines and lines[-1].__dict__["done"] == 6 and lines[-1].__dict__["total"] == 6


def test_progress_ticks_are_throttled_by_step_and_time() -> None:
    clock = ManualClock(0)
    ticks: list[SweepTick] = []
    progress = SweepProgress(100, clock, watch=ticks.append, step_pct=10, min_interval_s=10)
    for i in range(100):
        progress.add({"parameters": {"p": i}, "sharpe": float(i % 7)})
    assert [t.done for t in ticks] == [10 * k for k in range(1, 11)]
    assert ticks[-1].best is not None and ticks[-1].best["sharpe"] == 6.0
    # between steps, a tick after min_interval_s of wall time
    ticks.clear()
    progress = SweepProgress(1000, clock, watch=ticks.append, step_pct=10, min_interval_s=10)
    progress.add({"parameters": {"p": 0}, "sharpe": 0.0})
    clock.set(11_000)
    progress.add({"parameters": {"p": 1}, "sharpe": 0.0})
    assert [t.done for t in ticks] == [2]


def test_a_terminal_shows_the_sweep_text_after_the_eta() -> None:
    out = io.StringIO()
    TerminalBar(out, width=10)(50.0, 30.0, "3/6 combinations, best so far fastPeriod=5")
    assert out.getvalue().startswith("\r[#####.....]  50.0% ETA     30s 3/6 combinations, best")


def test_slice_document_while_running_and_complete() -> None:
    best = {"parameters": {"fastPeriod": 5}, "sharpe": 1.0}
    tick = SweepTick(3, 10, best, 12.0)
    running = slice_document(2, 4, tick, None)
    assert running == {"slice": 2, "slices": 4, "combinations": 10, "done": 3,
                       "complete": False, "top": [best]}
    report: dict[str, Any] = {
        "decision": "NO-GO", "failed_criteria": ["Min Trades: 3 < 10"],
        "sweep": {"top": [{"parameters": {"fastPeriod": 5}, "sharpe": float("nan")}],
                  "in_sample": {"candles": 7}, "out_of_sample": {"candles": 3}}}
    done = slice_document(2, 4, tick, report)
    assert done["complete"] and done["done"] == 10 and done["decision"] == "NO-GO"
    assert done["top"] == [{"parameters": {"fastPeriod": 5}, "sharpe": None}]
    json.dumps(done, allow_nan=False)  # the API server takes no NaN


def test_the_slice_index_comes_from_the_indexed_job() -> None:
    assert slice_index_from_env({"JOB_COMPLETION_INDEX": "3"}) == 3
    with pytest.raises(ValueError, match="Indexed Job"):
        slice_index_from_env({})


def test_the_sweep_spec_slices_the_full_list() -> None:
    spec = SweepSpec(GRID)
    sliced = [replace(spec, slices=2, slice_index=i).combinations() for i in (0, 1)]
    assert sliced[0] + sliced[1] != spec.combinations()  # interleaved, not halves
    assert sorted(map(str, sliced[0] + sliced[1])) == sorted(map(str, spec.combinations()))
