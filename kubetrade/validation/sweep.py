"""Parameter sweeps, walk-forward: choose on the in-sample part, judge on the rest.

``kubetrade validate --sweep fastPeriod=5,10,20 --sweep slowPeriod=20,30,50`` replays
every combination of the grid (or ``--samples N`` random ones of it, seeded) over the
first ``in_sample`` fraction of the candles, on all local cores, ranks them by the
in-sample Sharpe ratio (then total return), and replays the best one over the
remaining out-of-sample candles. The GO/NO-GO decision and the report are those of the
out-of-sample run, so a sweep cannot buy a GO by fitting the noise it was chosen on;
the report's ``sweep`` section holds the ranking and both ranges.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from kubetrade.domain.clock import SystemClock
from kubetrade.domain.metrics import compute_metrics
from kubetrade.domain.sweeps import RANKED_BY, grid_points, ranked, slice_points
from kubetrade.marketdata.frame import CandleFrame
from kubetrade.validation.plan import RunOutcome, ValidationPlan
from kubetrade.validation.replay import replay
from kubetrade.validation.sweep_progress import OnUpdate, SweepProgress, SweepTick

TOP = 10
"""Ranked combinations kept in the report."""


@dataclass(frozen=True)
class SweepSpec:
    """The grid (parameter -> values), optional random sampling and the split.

    ``slices``/``slice_index``: a cluster sweep's worker runs only slice
    ``slice_index`` of ``slices`` of the combinations (None: all of them, one machine).
    ``watch`` gets the progress figures (:class:`SweepTick`) as they come."""

    grid: dict[str, list[Any]]
    samples: int | None = None
    seed: int = 0
    in_sample: float = 0.7
    jobs: int | None = None
    slices: int | None = None
    slice_index: int = 0
    top: int = TOP
    watch: Callable[[SweepTick], None] | None = field(default=None, compare=False, repr=False)

    def all_combinations(self) -> list[dict[str, Any]]:
        """Every point of the grid, or ``samples`` of them drawn without replacement."""
        return grid_points(self.grid, self.samples, self.seed)

    def combinations(self) -> list[dict[str, Any]]:
        """The combinations this process runs: all of them, or its slice."""
        points = self.all_combinations()
        if self.slices is None:
            return points
        return slice_points(points, self.slice_index, self.slices)


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["fastPeriod=5,10", "stdDev=1.5,2"]`` -> {name: [values]} (ints, floats or text).
    ValueError names a malformed item."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name.strip() or not values.strip():
            raise ValueError(f"--sweep: {item!r} is not NAME=V1,V2,...")
        grid[name.strip()] = [_value(v.strip()) for v in values.split(",") if v.strip()]
    return grid


def _value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def with_parameters(plan: ValidationPlan, params: dict[str, Any]) -> ValidationPlan:
    """``plan`` trading the same Strategy with ``params`` over its parameters."""
    spec = plan.strategy.spec
    new_spec = spec.model_copy(update={"parameters": {**spec.parameters, **params}})
    return replace(plan, strategy=plan.strategy.model_copy(update={"spec": new_spec}))


def _one_line(exc: ValueError) -> str:
    """``exc`` as one line: a pydantic error as ``field: rule; ...`` (no URLs, no
    newlines), anything else as its text."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(_pydantic_error(e) for e in errors())
    return " ".join(str(exc).split())


def _pydantic_error(error: dict[str, Any]) -> str:
    """``field: rule``, or the rule alone for a model-level check."""
    msg = str(error.get("msg", "")).removeprefix("Value error, ")
    where = ".".join(str(p) for p in error.get("loc", ()))
    return f"{where}: {msg}" if where else msg


_WORK: tuple[ValidationPlan, CandleFrame] | None = None
"""The plan and in-sample candles, set before the worker processes fork."""


def _score(params: dict[str, Any]) -> dict[str, Any]:
    assert _WORK is not None
    plan, frame = _WORK
    try:
        trial = with_parameters(plan, params)
        trial.strategy.spec.validated_parameters()
        outcome = replay(trial, None, frame)
    except ValueError as exc:  # e.g. fastPeriod >= slowPeriod: refused, not ranked
        return {"parameters": params, "error": _one_line(exc)}
    m = compute_metrics(outcome.trades, outcome.equity_curve)
    return {"parameters": params, "sharpe": m.sharpe, "total_return": m.total_return,
            "trades": m.trades, "max_drawdown": m.max_drawdown}


def rank(plan: ValidationPlan, frame: CandleFrame, spec: SweepSpec,
         on_update: OnUpdate | None = None) -> list[dict[str, Any]]:
    """Every combination of ``spec`` replayed over ``frame``, best first (Sharpe, then
    return: :func:`kubetrade.domain.sweeps.rank_key`); refused combinations last, with
    their error. Progress (done, best so far) goes to the log, ``on_update`` and
    ``spec.watch`` (:class:`SweepProgress`)."""
    global _WORK
    _WORK = (plan, frame)
    points = spec.combinations()
    jobs = max(1, min(spec.jobs or os.cpu_count() or 1, len(points)))
    progress = SweepProgress(len(points), SystemClock(), on_update, spec.watch)
    progress.start()
    results: list[dict[str, Any]] = []
    try:
        if jobs == 1:
            for p in points:
                results.append(_score(p))
                progress.add(results[-1])
        else:
            ctx = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
                chunk = max(1, len(points) // jobs // 4)
                for result in pool.map(_score, points, chunksize=chunk):
                    results.append(result)
                    progress.add(result)
    finally:
        _WORK = None
    return ranked(results)


def walk_forward(plan: ValidationPlan, frame: CandleFrame, spec: SweepSpec,
                 on_update: OnUpdate | None = None,
                 ) -> tuple[ValidationPlan, RunOutcome, dict[str, Any]]:
    """Rank on the in-sample part, run the best out of sample: (the best's plan, its
    out-of-sample outcome, the report's ``sweep`` section). ValueError when the split
    leaves either part empty or no combination could run. A cluster slice
    (``spec.slices``) does the same over its own combinations; its section says which
    slice it was."""
    if not 0 < spec.in_sample < 1:
        raise ValueError(f"--in-sample: {spec.in_sample} must be between 0 and 1")
    cut = int(len(frame) * spec.in_sample)
    if cut < 2 or len(frame) - cut < 2:
        raise ValueError(f"sweep: {len(frame)} candles cannot be split at {spec.in_sample}")
    inside = CandleFrame(frame.table.slice(0, cut), frame.report)
    outside = CandleFrame(frame.table.slice(cut), frame.report)
    ranking = rank(plan, inside, spec, on_update)
    if not ranking or "error" in ranking[0]:
        first: dict[str, Any] = ranking[0] if ranking else {"parameters": {}, "error": "-"}
        shown = " ".join(f"{k}={v}" for k, v in first["parameters"].items())
        raise ValueError(f"sweep: none of the {len(ranking)} combinations could run; "
                         f"{shown}: {first['error']}")
    best_plan = with_parameters(plan, ranking[0]["parameters"])
    outcome = replay(best_plan, None, outside)
    refused = [r for r in ranking if "error" in r]
    section = {
        "combinations": len(ranking),
        "refused": len(refused),
        "ranked_by": RANKED_BY,
        "in_sample": {"candles": cut, "start_ms": inside.first_ms, "end_ms": inside.last_ms},
        "out_of_sample": {"candles": len(frame) - cut, "start_ms": outside.first_ms,
                          "end_ms": outside.last_ms},
        "best": ranking[0],
        "top": ranking[:spec.top],
        "decision_from": "out-of-sample run of the best in-sample combination",
    }
    if spec.slices is not None:
        section["slice"] = {"index": spec.slice_index, "of": spec.slices}
    return best_plan, outcome, section


__all__ = ["TOP", "SweepSpec", "parse_grid", "rank", "walk_forward", "with_parameters"]
