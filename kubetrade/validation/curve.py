"""The equity curve as a report holds it: bounded in size, the full one beside it.

A replay makes one equity point per candle (a million for two years of minutes); the
report keeps at most ``MAX_POINTS`` of them. Above that, the curve is cut into equal
buckets of consecutive points and each bucket keeps its lowest and highest point (in
time order), plus the very first and last point, so the plotted drawdowns and peaks are
the real ones. The metrics are always computed from the full curve, never this one.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, MutableSequence, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TypeVar, overload

MAX_POINTS = 20_000
"""Largest equity curve written into a report (about 1.5 MB of JSON)."""


E = TypeVar("E", Decimal, float)


class EquityCurve(Sequence[tuple[int, Decimal]]):
    """An equity curve kept as two columns: ``times`` (ms, e.g. an ``array('q')``) and
    ``values`` (Decimal, in the quote asset). It reads as the sequence of
    ``(ms, equity)`` pairs the metrics and the report take, without a tuple per point
    (a million points as tuples hold ~60 MB more and slow every garbage collection);
    equal to any sequence of the same pairs."""

    __slots__ = ("times", "values")

    def __init__(self, times: MutableSequence[int], values: MutableSequence[Decimal]) -> None:
        if len(times) != len(values):
            raise ValueError(f"{len(times)} times for {len(values)} values")
        self.times = times
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    @overload
    def __getitem__(self, index: int) -> tuple[int, Decimal]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[int, Decimal]]: ...

    def __getitem__(self, index: int | slice) -> tuple[int, Decimal] | list[tuple[int, Decimal]]:
        if isinstance(index, slice):
            return list(zip(self.times[index], self.values[index], strict=True))
        return self.times[index], self.values[index]

    def __iter__(self) -> Iterator[tuple[int, Decimal]]:
        return zip(self.times, self.values, strict=True)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def append(self, point: tuple[int, Decimal]) -> None:
        """One more point at the end (``finish_replay`` closes a curve with it)."""
        self.times.append(point[0])
        self.values.append(point[1])


def downsample(curve: Sequence[tuple[int, E]], max_points: int = MAX_POINTS
               ) -> list[tuple[int, E]]:
    """``curve`` (ms, equity) unchanged when it has at most ``max_points`` points, else
    at most ``max_points`` of its own points: per bucket the minimum and the maximum
    equity (the first of equal ones), in time order, with the first and last point
    always kept."""
    n = len(curve)
    if n <= max_points:
        return list(curve)
    if max_points < 4:
        raise ValueError(f"max_points must be at least 4, got {max_points}")
    values: Sequence[E] = (curve.values if isinstance(curve, EquityCurve)  # type: ignore[assignment]
                           else [e for _, e in curve])
    at = values.__getitem__
    buckets = (max_points - 2) // 2
    out = [curve[0]]
    for b in range(buckets):
        lo = 1 + (n - 2) * b // buckets
        hi = 1 + (n - 2) * (b + 1) // buckets
        if lo >= hi:
            continue
        # min/max return the first of equal keys: the first lowest and highest point
        first, second = sorted((min(range(lo, hi), key=at), max(range(lo, hi), key=at)))
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


__all__ = ["MAX_POINTS", "EquityCurve", "downsample", "write_curve_csv"]
