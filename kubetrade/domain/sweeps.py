"""Parameter sweeps, the pure part: the points of a grid, the slice of them one worker
runs, the order they are ranked in, and the gathering of slices' results into one
ranking.

A *result* is what one combination scored on the in-sample candles, a mapping
``{"parameters": {name: value}, "sharpe": float, "total_return": float (fraction),
"trades": int, "max_drawdown": float (fraction)}``, or ``{"parameters": ...,
"error": str}`` for a combination the algorithm refused. A *slice report* is what one
worker of a cluster sweep (one pod of an Indexed Job) wrote: ``{"slice": i, "slices":
n, "combinations": k, "done": d, "complete": bool, "top": [results, best first],
"decision": "GO" | "NO-GO" | None}``; ``decision`` is the out-of-sample verdict of
the slice's best, present once ``complete``.

The same functions serve ``kubetrade validate --sweep`` on one machine and the
operator gathering an Indexed Job's slices, so the two rank identically.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RANKED_BY = "in-sample Sharpe ratio, then total return"
"""How results are ordered, as the report and the status say it."""


def grid_points(
    grid: Mapping[str, Sequence[Any]], samples: int | None = None, seed: int = 0
) -> list[dict[str, Any]]:
    """Every point of ``grid`` (parameter -> values), parameters in name order, or
    ``samples`` of them drawn without replacement (``random.Random(seed)``, so every
    worker that draws with the same seed gets the same list)."""
    keys = sorted(grid)
    points = [dict(zip(keys, values, strict=True))
              for values in itertools.product(*(grid[k] for k in keys))]
    if samples is not None and samples < len(points):
        points = random.Random(seed).sample(points, samples)
    return points


def slice_points(points: Sequence[Any], index: int, count: int) -> list[Any]:
    """The points worker ``index`` of ``count`` runs: every ``count``-th from ``index``
    (interleaved, so neighbouring grid points, which cost alike, spread over the
    workers). ValueError when ``index`` is not in [0, count)."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"sweep slice {index} of {count}: the index must be in [0, {count})")
    return list(points[index::count])


def slice_count(combinations: int, parallelism: int, slices: int | None = None) -> int:
    """How many slices (Indexed Job completions) a sweep of ``combinations`` runs in:
    ``slices`` when given, else one per parallel pod; never more than there are
    combinations, never fewer than one."""
    wanted = slices if slices is not None else parallelism
    return max(1, min(wanted, combinations))


def rank_key(result: Mapping[str, Any]) -> tuple[bool, float, float]:
    """Sort key, best first: runnable before refused, then the higher Sharpe ratio,
    then the higher total return (a missing or non-finite figure counts as 0)."""
    return ("error" in result, -_finite(result.get("sharpe")),
            -_finite(result.get("total_return")))


def ranked(results: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``results`` best first (:func:`rank_key`; ties keep their order)."""
    return sorted((dict(r) for r in results), key=rank_key)


def _finite(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def json_safe(result: Mapping[str, Any]) -> dict[str, Any]:
    """``result`` with non-finite floats as None (JSON, and so the API server, has no
    NaN or infinity)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in result.items()}


@dataclass(frozen=True)
class Gathered:
    """The slices' reports merged: how far the sweep is and its ranking so far."""

    slices: int
    """Slices the sweep runs in (the Job's completions)."""
    combinations: int
    """Combinations over all slices."""
    done: int
    """Combinations scored so far."""
    slices_done: int
    """Slices whose report is complete."""
    top: list[dict[str, Any]] = field(default_factory=list)
    """The best results over all reports, best first."""
    winner: int | None = None
    """The slice holding the best result, once every slice is complete."""
    decision: str | None = None
    """The winner's out-of-sample GO/NO-GO, once every slice is complete."""

    @property
    def complete(self) -> bool:
        return self.slices_done == self.slices

    @property
    def best(self) -> dict[str, Any] | None:
        return self.top[0] if self.top and "error" not in self.top[0] else None

    def progress_text(self) -> str:
        """``"12 of 40 combinations (30%), best so far fastPeriod=10 slowPeriod=30
        (in-sample Sharpe 1.23)"``: what ``kubectl get validationrun`` shows."""
        pct = 100 * self.done / self.combinations if self.combinations else 0.0
        text = f"{self.done} of {self.combinations or '?'} combinations ({pct:.0f}%)"
        best = self.best
        if best is not None:
            text += f", best so far {parameters_text(best['parameters'])}"
            if best.get("sharpe") is not None:
                text += f" (in-sample Sharpe {_finite(best['sharpe']):.2f})"
        return text


def parameters_text(parameters: Mapping[str, Any]) -> str:
    """``{"fastPeriod": 10, "slowPeriod": 30}`` -> ``"fastPeriod=10 slowPeriod=30"``."""
    return " ".join(f"{k}={v}" for k, v in sorted(parameters.items()))


def gather(
    reports: Iterable[Mapping[str, Any]], slices: int, top: int, combinations: int
) -> Gathered:
    """Merge the slice reports written so far (any order, at most one per slice index;
    a later duplicate of an index is ignored) into one ranking of ``top`` entries, of a
    sweep of ``combinations`` in ``slices``.

    The best result overall is the best of some slice, and each complete slice judged
    its own best out of sample, so the winner's ``decision`` is the sweep's."""
    seen: dict[int, Mapping[str, Any]] = {}
    for report in reports:
        index = int(report["slice"])
        if 0 <= index < slices and index not in seen:
            seen[index] = report
    entries: list[tuple[tuple[bool, float, float], int, dict[str, Any]]] = []
    for index, report in seen.items():
        entries += [(rank_key(r), index, dict(r)) for r in report.get("top", [])]
    entries.sort(key=lambda e: (e[0], e[1]))
    done_slices = [i for i, r in seen.items() if r.get("complete")]
    complete = len(done_slices) == slices
    winner = entries[0][1] if complete and entries and "error" not in entries[0][2] else None
    return Gathered(
        slices=slices,
        combinations=combinations,
        done=sum(int(r.get("done", 0)) for r in seen.values()),
        slices_done=len(done_slices),
        top=[e[2] for e in entries[:top]],
        winner=winner,
        decision=seen[winner].get("decision") if winner is not None else None,
    )
