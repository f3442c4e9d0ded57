"""Sweeps, the pure part: slicing the grid over workers and gathering their rankings."""

from __future__ import annotations

import math
from typing import Any

import pytest

from kubetrade.domain.sweeps import (
    gather,
    grid_points,
    rank_key,
    ranked,
    slice_count,
    slice_points,
)

GRID = {"slowPeriod": [20, 30, 50], "fastPeriod": [5, 10]}


def result(fast: int, slow: int, sharpe: float, ret: float = 0.0) -> dict[str, Any]:
    return {"parameters": {"fastPeriod": fast, "slowPeriod": slow}, "sharpe": sharpe,
            "total_return": ret, "trades": 12, "max_drawdown": 0.05}


def test_grid_points_in_name_order_and_samples_are_seeded() -> None:
    points = grid_points(GRID)
    assert points[0] == {"fastPeriod": 5, "slowPeriod": 20}
    assert points[-1] == {"fastPeriod": 10, "slowPeriod": 50}
    assert len(points) == 6
    drawn = grid_points(GRID, samples=4, seed=3)
    assert drawn == grid_points(GRID, samples=4, seed=3)
    assert len(drawn) == 4 and all(p in points for p in drawn)
    assert grid_points(GRID, samples=100) == points


@pytest.mark.parametrize("count", [1, 2, 3, 4, 6])
def test_slices_partition_the_points(count: int) -> None:
    points = grid_points(GRID)
    slices = [slice_points(points, i, count) for i in range(count)]
    flat = [p for s in slices for p in s]
    assert sorted(map(str, flat)) == sorted(map(str, points))  # every point exactly once
    assert max(map(len, slices)) - min(map(len, slices)) <= 1  # balanced


def test_slice_index_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match=r"slice 2 of 2"):
        slice_points([1, 2, 3], 2, 2)


def test_slice_count_one_per_pod_never_more_than_combinations() -> None:
    assert slice_count(40, 4) == 4
    assert slice_count(3, 8) == 3
    assert slice_count(40, 2, slices=10) == 10
    assert slice_count(0, 2) == 1


def test_rank_key_errors_last_and_non_finite_as_zero() -> None:
    rows = [result(5, 20, 0.5), {"parameters": {"fastPeriod": 30}, "error": "fast >= slow"},
            result(10, 20, math.nan, 0.2), result(10, 30, 1.5), result(5, 30, 0.5, 0.1)]
    order = [r["parameters"] for r in ranked(rows)]
    assert order == [{"fastPeriod": 10, "slowPeriod": 30}, {"fastPeriod": 5, "slowPeriod": 30},
                     {"fastPeriod": 5, "slowPeriod": 20}, {"fastPeriod": 10, "slowPeriod": 20},
                     {"fastPeriod": 30}]
    assert rank_key(result(1, 2, math.inf)) == (False, -0.0, -0.0)


def slice_report(index: int, rows: list[dict[str, Any]], complete: bool = True,
                 decision: str = "NO-GO") -> dict[str, Any]:
    top = ranked(rows)
    return {"slice": index, "slices": 2, "combinations": len(rows),
            "done": len(rows) if complete else 1, "complete": complete, "top": top,
            "decision": decision if complete else None}


def test_gathering_merges_rankings_and_takes_the_winners_decision() -> None:
    zero = [result(5, 20, 0.4), result(10, 20, 1.1)]
    one = [result(5, 30, 2.0), result(10, 30, -0.3)]
    g = gather([slice_report(0, zero, decision="NO-GO"), slice_report(1, one, decision="GO")],
               slices=2, top=3, combinations=4)
    assert g.complete and g.done == 4 and g.slices_done == 2
    assert [r["sharpe"] for r in g.top] == [2.0, 1.1, 0.4]
    assert g.winner == 1 and g.decision == "GO"
    assert g.progress_text() == ("4 of 4 combinations (100%), best so far fastPeriod=5 "
                                 "slowPeriod=30 (in-sample Sharpe 2.00)")
    # the same as ranking everything at once
    assert g.top == ranked(zero + one)[:3]


def test_partial_gathering_has_progress_but_no_decision() -> None:
    g = gather([slice_report(1, [result(5, 30, 0.7)], complete=False)], slices=2, top=10,
               combinations=4)
    assert not g.complete and g.done == 1 and g.winner is None and g.decision is None
    assert g.best is not None and g.best["sharpe"] == 0.7
    assert g.progress_text().startswith("1 of 4 combinations (25%), best so far")


def test_a_duplicate_or_foreign_slice_index_is_ignored() -> None:
    first = slice_report(0, [result(5, 20, 0.1)])
    again = slice_report(0, [result(5, 20, 9.0)])
    foreign = slice_report(5, [result(5, 20, 8.0)])
    g = gather([first, again, foreign], slices=2, top=10, combinations=2)
    assert [r["sharpe"] for r in g.top] == [0.1] and g.slices_done == 1


def test_equal_scores_in_two_slices_go_to_the_lower_index() -> None:
    g = gather([slice_report(1, [result(10, 30, 1.0)], decision="GO"),
                slice_report(0, [result(5, 20, 1.0)], decision="NO-GO")],
               slices=2, top=10, combinations=2)
    assert g.winner == 0 and g.decision == "NO-GO"


def test_when_no_combination_ran_there_is_no_winner() -> None:
    refused = {"parameters": {"fastPeriod": 30, "slowPeriod": 20}, "error": "fast >= slow"}
    g = gather([slice_report(0, [refused]), slice_report(1, [dict(refused)])], slices=2,
               top=10, combinations=2)
    assert g.complete and g.winner is None and g.best is None
