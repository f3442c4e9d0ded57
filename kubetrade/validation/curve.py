"""The equity curve as a report holds it: bounded in size, the full one beside it.

A replay makes one equity point per candle (a million for two years of minutes); the
report keeps at most ``MAX_POINTS`` of them. Above that, the curve is cut into equal
buckets of consecutive points and each bucket keeps its lowest and highest point (in
time order), plus the very first and last point, so the plotted drawdowns and peaks are
the real ones. The metrics are always computed from the full curve, never this one.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, MutableSequence, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar, overload

import numpy as np

from kubetrade.domain.metrics import values_at
from kubetrade.validation.equity_values import EquityValues

MAX_POINTS = 20_000
"""Largest equity curve written into a report (about 1.5 MB of JSON)."""


E = TypeVar("E", Decimal, float)


class EquityCurve(Sequence[tuple[int, Decimal]]):
    """An equity curve kept as two columns: ``times`` (ms, e.g. an ``array('q')``) and
    ``values`` (Decimal, in the quote asset: a list, or a replay's :class:`EquityValues`
    runs). It reads as the sequence of ``(ms, equity)`` pairs the metrics and the
    report take, without a tuple per point
    (a million points as tuples hold ~60 MB more and slow every garbage collection);
    equal to any sequence of the same pairs."""

    __slots__ = ("_floats", "times", "values")

    def __init__(self, times: MutableSequence[int],
                 values: MutableSequence[Decimal] | EquityValues) -> None:
        if len(times) != len(values):
            raise ValueError(f"{len(times)} times for {len(values)} values")
        self.times = times
        self.values = values
        self._floats: tuple[np.ndarray, np.ndarray] | None = None

    def float_columns(self) -> tuple[np.ndarray, np.ndarray]:
        """(times as int64, equity as float64, each ``float(value)``): made once for the
        metrics, the analysis and the downsampling (a million Decimals take ~0.3 s to
        convert), again only when points were appended since."""
        cols = self._floats
        if cols is None or len(cols[0]) != len(self.values):
            n = len(self.values)
            kept = getattr(self.values, "floats", None)  # EquityValues keeps them
            cols = (np.array(self.times, dtype=np.int64),
                    np.array(kept, dtype=np.float64) if kept is not None else
                    np.fromiter(map(float, self.values), np.float64, n))
            self._floats = cols
        return cols

    def points(self, indices: Sequence[int]) -> list[tuple[int, Decimal]]:
        """The points at ``indices``, their values read at once."""
        return list(zip([self.times[i] for i in indices], values_at(self.values, indices),
                        strict=True))

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


def _first_extreme(f: np.ndarray, lo: np.ndarray, hi: np.ndarray, top: bool,
                   exact: Sequence[object] | None) -> list[int]:
    """Per bucket ``lo[k]:hi[k]`` (contiguous, together ``lo[0]:hi[-1]``) the index of
    its first lowest (``top``: highest) value. ``f`` are the values as floats; when the
    real values are ``exact`` (Decimals), a bucket whose extreme float is shared by
    several points picks among those by the exact values (rounding to a float keeps
    the order, so the exact extreme is one of them)."""
    reduce = np.maximum.reduceat if top else np.minimum.reduceat
    body = f[lo[0]:hi[-1]]
    ext = reduce(body, lo - lo[0])
    bucket = np.repeat(np.arange(len(lo)), hi - lo)
    at = np.flatnonzero(body == ext[bucket]) + lo[0]
    of = bucket[at - lo[0]]
    if exact is not None:
        # a tie in the same run of one value as the tie before it never comes first
        repeats = getattr(exact, "repeats", None)
        if repeats is not None:
            keep = ~(repeats(at) & np.r_[False, of[1:] == of[:-1]])
            at, of = at[keep], of[keep]
    starts = np.flatnonzero(np.r_[True, of[1:] != of[:-1]])
    first = at[starts].tolist()
    if exact is not None:
        counts = np.diff(np.r_[starts, len(at)])
        tied = np.flatnonzero(counts > 1).tolist()
        ties = [at[starts[k]:starts[k] + counts[k]].tolist() for k in tied]
        flat = [i for group in ties for i in group]
        value = dict(zip(flat, values_at(exact, flat), strict=True))
        pick: Callable[[int], Any] = value.__getitem__
        for k, group in zip(tied, ties, strict=True):
            first[k] = max(group, key=pick) if top else min(group, key=pick)
    return first  # type: ignore[no-any-return]


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
    if isinstance(curve, EquityCurve):
        values: Sequence[E] = curve.values  # type: ignore[assignment]
        f = curve.float_columns()[1]
    else:
        values = [e for _, e in curve]
        f = np.fromiter(map(float, values), np.float64, n)
    exact = None if values and type(values[0]) is float else values
    buckets = (max_points - 2) // 2
    bounds = 1 + (n - 2) * np.arange(buckets + 1, dtype=np.int64) // buckets
    keep = bounds[:-1] < bounds[1:]
    lo, hi = bounds[:-1][keep], bounds[1:][keep]
    picked = [0]
    for a, b in zip(_first_extreme(f, lo, hi, False, exact),
                    _first_extreme(f, lo, hi, True, exact), strict=True):
        first, second = (a, b) if a <= b else (b, a)
        picked.append(first)
        if second != first:
            picked.append(second)
    picked.append(n - 1)
    if isinstance(curve, EquityCurve):
        return curve.points(picked)  # type: ignore[return-value]
    return [curve[i] for i in picked]


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
