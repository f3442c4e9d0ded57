"""The validation rules of candle data, each a vectorised check over an Arrow table.

Input tables have the columns of ``COLUMNS`` (``timestamp_ms`` int64, prices and
volume float64) plus ``line`` (int64: the CSV line or Parquet row each candle came
from, for messages). Every rule either passes or raises ``CandleDataError`` naming the
source, the first offending line and the rule. No Python loop touches the rows.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from kubetrade.marketdata.errors import CandleDataError
from kubetrade.marketdata.timeframes import describe_ms, iso_ms

COLUMNS = ("timestamp_ms", "open", "high", "low", "close", "volume")
PRICES = ("open", "high", "low", "close")
# No market trades at 1e15 per unit: a value that large is a unit or parse error.
MAX_PRICE = 1e15
MAX_VOLUME = 1e20
# Magnitude bands of a 2001..2286 timestamp in each unit (ms are 1e12..1e13 today).
_UNIT_BANDS = (("s", 1e11), ("ms", 1e14), ("us", 1e17), ("ns", float("inf")))
_TO_MS = {"s": (1000, 1), "ms": (1, 1), "us": (1, 1000), "ns": (1, 1_000_000)}
TIME_UNITS = tuple(_TO_MS)


# Arrow scalars built from raw bytes: pyarrow converts a Python value (a scalar argument
# of pyarrow.compute, pa.array of a list) through its pandas shim, which imports pandas
# (~0.3 s of every `kubetrade validate`) although nothing here uses it.
def _raw(kind: pa.DataType, data: bytes) -> pa.Array:
    return pa.Array.from_buffers(kind, 1, [None, pa.py_buffer(data)])


def _f(value: float) -> pa.Scalar:
    """``value`` as an Arrow float64 scalar."""
    return _raw(pa.float64(), struct.pack("<d", value))[0]


def _i(value: int) -> pa.Scalar:
    """``value`` as an Arrow int64 scalar."""
    return _raw(pa.int64(), struct.pack("<q", value))[0]


_FALSE_ARRAY = _raw(pa.bool_(), b"\x00")
_FALSE = _FALSE_ARRAY[0]
_TRUE = _raw(pa.bool_(), b"\x01")[0]


@dataclass(frozen=True, slots=True)
class Where:
    """Where rows came from: ``source`` for messages, ``unit`` "line" (CSV) or "row",
    ``first`` the line of row 0 (2 for a CSV with its header). Once rows are reordered
    the table carries a ``line`` column with each row's original line."""

    source: str
    unit: str = "line"
    first: int = 2

    def line_of(self, table: pa.Table, index: int) -> int:
        if "line" in table.column_names:
            return int(table.column("line")[index].as_py())
        return index + self.first

    def fail(self, table: pa.Table, index: int | None, rule: str, detail: str) -> CandleDataError:
        line = None if index is None else self.line_of(table, index)
        return CandleDataError(self.source, line, rule, detail, unit=self.unit)


def _first(mask: pa.ChunkedArray | pa.Array) -> int | None:
    """Index of the first true value of a boolean array, or None."""
    filled = pc.fill_null(mask, _FALSE)
    idx = pc.index(filled, _TRUE).as_py()
    return None if idx is None or idx < 0 else int(idx)


def _row_text(table: pa.Table, i: int) -> str:
    return ",".join(str(table.column(c)[i].as_py()) for c in COLUMNS)


def check_values(table: pa.Table, where: Where) -> None:
    """Missing values, NaN/inf, overflow, non-positive prices, high below open/close,
    low above open/close, negative volume. One combined mask over the columns (a few
    vectorised passes); only a failing row is looked at one by one, to name its rule."""
    for name in COLUMNS:
        if table.column(name).null_count:
            i = _first(pc.is_null(table.column(name)))
            raise where.fail(table, i, "missing-value", f"{name} is empty")
    o, h, low, c, v = (table.column(n) for n in (*PRICES, "volume"))
    ok = pc.and_(pc.greater_equal(v, _f(0.0)), pc.less(v, _f(MAX_VOLUME)))
    for col in (o, h, low, c):  # NaN fails every comparison: caught here too
        ok = pc.and_(ok, pc.and_(pc.greater(col, _f(0.0)), pc.less(col, _f(MAX_PRICE))))
    ok = pc.and_(ok, pc.greater_equal(h, pc.max_element_wise(o, c)))
    ok = pc.and_(ok, pc.less_equal(low, pc.min_element_wise(o, c)))
    if pc.all(ok).as_py():
        return
    i = _first(pc.invert(ok))
    assert i is not None
    rule, detail = _diagnose({n: float(table.column(n)[i].as_py()) for n in COLUMNS[1:]})
    raise where.fail(table, i, rule, f"{detail} in {_row_text(table, i)}")


def _diagnose(row: dict[str, float]) -> tuple[str, str]:
    """The rule one bad row breaks, in order of precedence (rule, detail)."""
    for name, value in row.items():
        if not math.isfinite(value):
            return "not-finite", f"{name} is {value}"
    for name in PRICES:
        if row[name] <= 0:
            return "non-positive-price", f"{name} must be > 0"
        if row[name] >= MAX_PRICE:
            return "overflow", f"{name} {row[name]:g} is beyond any market (>= {MAX_PRICE:g})"
    if row["high"] < max(row["open"], row["close"]):
        return "high-below-open-close", "high is below open or close"
    if row["low"] > min(row["open"], row["close"]):
        return "low-above-open-close", "low is above open or close"
    if row["volume"] < 0:
        return "negative-volume", "volume < 0"
    return "overflow", f"volume {row['volume']:g} >= {MAX_VOLUME:g}"


def _unit_of(value: float) -> str:
    for unit, upper in _UNIT_BANDS:
        if abs(value) < upper:
            return unit
    return "ns"  # pragma: no cover - the last band is infinite


def detect_time_unit(ts: pa.ChunkedArray | pa.Array) -> str:
    """The unit of epoch timestamps judged by magnitude: s, ms, us or ns."""
    return _unit_of(float(pc.min(ts).as_py()))


def normalise_time(table: pa.Table, where: Where, time_unit: str | None) -> tuple[pa.Table, str]:
    """Timestamps in ms since the epoch. Without ``time_unit`` the file must already be
    in ms (a seconds/us/ns file is refused, saying which unit it looks like); with it,
    values are converted. Mixed units and non-positive times are refused.

    Returns the table and the unit the input was in."""
    ts = table.column("timestamp_ms")
    i = _first(pc.less_equal(ts, _i(0)))
    if i is not None:
        raise where.fail(table, i, "time-unit", f"timestamp {ts[i].as_py()} is not after 1970")
    lo_unit = _unit_of(float(pc.min(ts).as_py()))
    hi_unit = _unit_of(float(pc.max(ts).as_py()))
    if lo_unit != hi_unit:
        first_unit = _unit_of(float(ts[0].as_py()))
        odd = lo_unit if first_unit == hi_unit else hi_unit
        lo, hi = _band(odd)
        i = _first(pc.and_(pc.greater_equal(ts, _f(lo)), pc.less(ts, _f(hi))))
        raise where.fail(table, i, "time-unit",
                         f"timestamps mix units: this one looks like {_unit_name(odd)}, "
                         f"the first one like {_unit_name(first_unit)}")
    if time_unit is None:
        if lo_unit != "ms":
            first = int(ts[0].as_py())
            as_unit = iso_ms(_convert_value(first, lo_unit))
            raise where.fail(
                table, 0, "time-unit",
                f"timestamp_ms {first} looks like {_unit_name(lo_unit)} ({as_unit} read as "
                f"{lo_unit}; as milliseconds it would be {iso_ms(first)}): convert the file "
                f"or pass --time-unit {lo_unit}")
        return table, "ms"
    if time_unit not in _TO_MS:
        raise ValueError(f"time unit {time_unit!r}: one of {', '.join(TIME_UNITS)}")
    mul, div = _TO_MS[time_unit]
    converted = (pc.divide(pc.multiply(ts, _i(mul)), _i(div)) if div > 1
                 else pc.multiply(ts, _i(mul)))
    if _unit_of(float(pc.min(converted).as_py())) != "ms":
        raise where.fail(table, 0, "time-unit",
                         f"--time-unit {time_unit} given, but timestamp {ts[0].as_py()} looks "
                         f"like {_unit_name(lo_unit)}")
    idx = table.schema.get_field_index("timestamp_ms")
    return table.set_column(idx, "timestamp_ms", converted.cast(pa.int64())), lo_unit


def _band(unit: str) -> tuple[float, float]:
    lower = 0.0
    for name, upper in _UNIT_BANDS:
        if name == unit:
            return lower, upper
        lower = upper
    raise ValueError(unit)  # pragma: no cover


def _convert_value(value: int, unit: str) -> int:
    mul, div = _TO_MS[unit]
    return value * mul // div


def _unit_name(unit: str) -> str:
    return {"s": "seconds", "ms": "milliseconds", "us": "microseconds",
            "ns": "nanoseconds"}[unit]


def sort_by_time(table: pa.Table, where: Where) -> tuple[pa.Table, int]:
    """Rows in time order (stable: rows sharing a time keep their file order) and the
    number of rows that were out of order."""
    ts = _to_array(table.column("timestamp_ms"))
    if len(ts) < 2:
        return table, 0
    back = pc.fill_null(pc.less(pc.pairwise_diff(ts), _i(0)), _FALSE)
    if not pc.any(back).as_py():
        return table, 0
    unsorted = int(pc.sum(pc.cast(back, pa.int64())).as_py() or 0)
    order = pc.sort_indices(table, sort_keys=[("timestamp_ms", "ascending")])
    if "line" not in table.column_names:
        lines = pc.add(pc.cast(order, pa.int64()), where.first)
        return table.take(order).append_column("line", lines), unsorted
    return table.take(order), unsorted


def drop_duplicates(table: pa.Table, where: Where, keep_last: bool) -> tuple[pa.Table, int, int]:
    """Drop rows that repeat a time. Identical repeats are dropped and counted; a repeat
    with other values is refused (naming both lines) unless ``keep_last``, which keeps
    the later row of the file (a refreshed download appends the complete candle after
    the forming one). Input sorted by time, stably. Returns (table, identical,
    conflicting)."""
    n = table.num_rows
    if n < 2:
        return table, 0, 0
    head, tail = table.slice(0, n - 1), table.slice(1)
    same_ts = pc.equal(head.column("timestamp_ms"), tail.column("timestamp_ms"))
    if not pc.any(same_ts).as_py():
        return table, 0, 0
    differs = pc.not_equal(head.column("open"), tail.column("open"))
    for name in ("high", "low", "close", "volume"):
        differs = pc.or_(differs, pc.not_equal(head.column(name), tail.column(name)))
    conflict = pc.and_(same_ts, differs)
    dups = int(pc.sum(pc.cast(same_ts, pa.int64())).as_py() or 0)
    if dups == 0:
        return table, 0, 0
    conflicts = int(pc.sum(pc.cast(conflict, pa.int64())).as_py() or 0)
    if conflicts and not keep_last:
        i = _first(conflict)
        assert i is not None
        other = where.line_of(table, i)
        raise where.fail(
            table, i + 1, "conflicting-duplicate",
            f"two different candles for {iso_ms(int(table.column('timestamp_ms')[i].as_py()))} "
            f"({where.unit} {other}: {_row_text(table, i)}; this one: {_row_text(table, i + 1)}); "
            "fix the file, or keep the later row with --duplicates last")
    # keep the last row of each run of equal times
    keep = pc.invert(pa.concat_arrays([_to_array(same_ts), _FALSE_ARRAY]))
    return table.filter(keep), dups - conflicts, conflicts


def _to_array(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


@dataclass(frozen=True, slots=True)
class Spacing:
    """Time between consecutive candles: the most common step and how many steps."""

    step_ms: int | None
    steps: int
    at_step: int


def spacing(table: pa.Table) -> Spacing:
    """The most common gap between consecutive (sorted, unique) candle times. Fast path:
    the smallest gap, when at least half the gaps are that (regular data); otherwise a
    full mode count."""
    ts = table.column("timestamp_ms")
    if len(ts) < 2:
        return Spacing(None, 0, 0)
    diffs = pc.pairwise_diff(_to_array(ts)).slice(1)
    smallest = pc.min(diffs)
    at_smallest = int(pc.sum(pc.cast(pc.equal(diffs, smallest), pa.int64())).as_py() or 0)
    if 2 * at_smallest >= len(diffs):
        return Spacing(int(smallest.as_py()), len(diffs), at_smallest)
    mode = pc.mode(diffs, n=1)
    step = int(mode[0]["mode"].as_py())
    return Spacing(step, len(diffs), int(mode[0]["count"].as_py()))


def check_grid(table: pa.Table, where: Where, step_ms: int) -> None:
    """Every gap between candles is a whole number of ``step_ms`` (a candle at 00:00:30
    in 1m data is refused)."""
    ts = _to_array(table.column("timestamp_ms"))
    if len(ts) < 2:
        return
    diffs = pc.pairwise_diff(ts).slice(1)
    i = _first(pc.not_equal(pc.subtract(diffs, pc.multiply(pc.divide(diffs, _i(step_ms)),
                                                           _i(step_ms))), _i(0)))
    if i is not None:
        raise where.fail(table, i + 1, "spacing",
                         f"candle {iso_ms(int(ts[i + 1].as_py()))} is "
                         f"{describe_ms(int(diffs[i].as_py()))} after the previous one, not a "
                         f"whole number of {describe_ms(step_ms)} candles")


@dataclass(frozen=True, slots=True)
class Gaps:
    """Missing stretches in a series of one timeframe."""

    count: int = 0
    missing_candles: int = 0
    longest_ms: int = 0
    longest_after_ms: int | None = None


def gaps(ts: pa.ChunkedArray | pa.Array, step_ms: int) -> Gaps:
    """Gaps of sorted unique open times ``ts``: how many, candles missing, and the
    longest missing span (ms, and the open time of the candle before it)."""
    arr = _to_array(ts)
    if len(arr) < 2:
        return Gaps()
    diffs = pc.pairwise_diff(arr).slice(1)
    missing = pc.subtract(pc.divide(diffs, _i(step_ms)), _i(1))
    is_gap = pc.greater(missing, _i(0))
    count = int(pc.sum(pc.cast(is_gap, pa.int64())).as_py() or 0)
    if count == 0:
        return Gaps()
    at = int(pc.index(diffs, pc.max(diffs)).as_py())
    return Gaps(count, int(pc.sum(pc.max_element_wise(missing, _i(0))).as_py()),
                int(diffs[at].as_py()) - step_ms, int(arr[at].as_py()))
