"""The equity curve as a report holds it: bounded in size, the full one beside it.

A replay makes one equity point per candle (a million for two years of minutes); the
report keeps at most ``MAX_POINTS`` of them. Above that, the curve is cut into equal
buckets of consecutive points and each bucket keeps its lowest and highest point (in
time order), plus the very first and last point, so the plotted drawdowns and peaks are
the real ones. The metrics are always computed from the full curve, never this one.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

MAX_POINTS = 20_000
"""Largest equity curve written into a report (about 1.5 MB of JSON)."""


E = TypeVar("E", Decimal, float)


def downsample(curve: Sequence[tuple[int, E]], max_points: int = MAX_POINTS
               ) -> list[tuple[int, E]]:
    """``curve`` (ms, equity) unchanged when it has at most ``max_points`` points, else
    at most ``max_points`` of its own points: per bucket the minimum and the maximum
    equity, in time order, with the first and last point always kept."""
    n = len(curve)
    if n <= max_points:
        return list(curve)
    if max_points < 4:
        raise ValueError(f"max_points must be at least 4, got {max_points}")
    buckets = (max_points - 2) // 2
    out = [curve[0]]
    for b in range(buckets):
        lo = 1 + (n - 2) * b // buckets
        hi = 1 + (n - 2) * (b + 1) // buckets
        if lo >= hi:
            continue
        i_min = i_max = lo
        low = high = curve[lo][1]
        for i in range(lo + 1, hi):
            e = curve[i][1]
            if e < low:
                low, i_min = e, i
            elif e > high:
                high, i_max = e, i
        first, second = sorted((i_min, i_max))
        out.append(curve[first])
        if second != first:
            out.append(curve[second])
    out.append(curve[-1])
    return out


def write_curve_csv(curve: Sequence[tuple[int, Decimal]], path: Path) -> Path:
    """The full-resolution curve as CSV ``ts_ms,equity`` (equity an exact decimal)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["ts_ms", "equity"])
        w.writerows(curve)
    tmp.replace(path)
    return path


__all__ = ["MAX_POINTS", "downsample", "write_curve_csv"]
