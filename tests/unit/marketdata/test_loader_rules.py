"""Each rule of the candle loader: the file, line and rule in the refusal, or the fix
and the count in the report."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kubetrade.marketdata import CandleDataError, LoadOptions, load_candles
from tests.unit.marketdata._csv import HEADER, real_rows, replace_row, write


def refused(path: Path, options: LoadOptions | None = None) -> CandleDataError:
    with pytest.raises(CandleDataError) as info:
        load_candles(path, options)
    err = info.value
    assert str(path) in str(err)
    return err


def test_clean_real_file_loads_as_decimal_candles(tmp_path: Path) -> None:
    rows = real_rows(30)
    frame = load_candles(write(tmp_path, rows))
    assert len(frame) == 30
    first = rows[0].split(",")
    assert frame[0].ts_ms == int(first[0])
    assert frame[0].open == Decimal(first[1]) and frame[0].volume == Decimal(first[5])
    assert [c.ts_ms for c in frame] == [int(r.split(",")[0]) for r in rows]
    assert frame.report.timeframe == "1m" and frame.report.gaps == 0
    assert frame[-1] == frame[29] and frame[1:3] == [frame[1], frame[2]]


@pytest.mark.parametrize(
    ("values", "rule"),
    [
        ("NaN,NaN,NaN,NaN,0", "not-finite"),
        ("63100,inf,63000,63050,1", "not-finite"),
        ("63100,1e400,63000,63050,1", "not-finite"),  # overflows a double
        ("63100,2e15,63000,63050,1", "overflow"),
        ("0,63200,0,63050,1", "non-positive-price"),
        ("-5,63200,-6,63050,1", "non-positive-price"),
        ("63100,63090,63000,63050,1", "high-below-open-close"),
        ("63100,63200,63060,63050,1", "low-above-open-close"),
        ("63100,63200,63000,63050,-1", "negative-volume"),
        ("63100,63200,,63050,1", "missing-value"),
        ("63100,abc,63000,63050,1", "not-a-number"),
    ],
)
def test_impossible_values_are_refused_with_line_and_rule(
    tmp_path: Path, values: str, rule: str
) -> None:
    rows = replace_row(real_rows(), 7, values)
    err = refused(write(tmp_path, rows))
    assert err.rule == rule
    assert err.line == 9  # header is line 1, row index 7 is line 9
    assert f":9: {rule}:" in str(err)


def test_wrong_header_and_column_count(tmp_path: Path) -> None:
    err = refused(write(tmp_path, real_rows(3), header="time,open,high,low,close,volume"))
    assert (err.rule, err.line) == ("header", 1)
    rows = real_rows(5)
    rows[3] = rows[3] + ",7"
    err = refused(write(tmp_path, rows, name="extra.csv"))
    assert (err.rule, err.line) == ("columns", 5)


def test_fractional_timestamp_is_named(tmp_path: Path) -> None:
    rows = real_rows(5)
    rows[2] = "1726876920000.5," + rows[2].split(",", 1)[1]
    err = refused(write(tmp_path, rows))
    assert (err.rule, err.line) == ("not-a-number", 4)


@pytest.mark.parametrize("tail", ["\n", "\n\n\n", "\r\n"])
def test_blank_lines_at_the_end_are_not_candles(tmp_path: Path, tail: str) -> None:
    # an editor's extra newline was refused as "line 7: timestamp_ms is empty"
    path = write(tmp_path, real_rows(5))
    path.write_bytes(path.read_bytes() + tail.encode())
    assert len(load_candles(path)) == 5


def test_blank_line_is_a_missing_value(tmp_path: Path) -> None:
    rows = real_rows(5)
    rows.insert(2, "")
    err = refused(write(tmp_path, rows))
    assert (err.rule, err.line) == ("missing-value", 4)


@pytest.mark.parametrize(("unit", "div", "name"), [("s", 1000, "seconds")])
def test_seconds_refused_then_converted_with_time_unit(
    tmp_path: Path, unit: str, div: int, name: str
) -> None:
    rows = real_rows(10)
    conv = [f"{int(r.split(',')[0]) // div},{r.split(',', 1)[1]}" for r in rows]
    path = write(tmp_path, conv)
    err = refused(path)
    assert err.rule == "time-unit" and f"looks like {name}" in str(err)
    assert "--time-unit s" in str(err) and "2024-09-21T00:00:00Z" in str(err)
    frame = load_candles(path, LoadOptions(time_unit=unit))
    assert [c.ts_ms for c in frame] == [int(r.split(",")[0]) for r in rows]
    assert frame.report.time_unit == unit


@pytest.mark.parametrize(("unit", "mul", "name"), [("us", 1000, "microseconds"),
                                                   ("ns", 1_000_000, "nanoseconds")])
def test_finer_units_refused_then_converted(tmp_path: Path, unit: str, mul: int,
                                            name: str) -> None:
    rows = real_rows(10)
    conv = [f"{int(r.split(',')[0]) * mul},{r.split(',', 1)[1]}" for r in rows]
    path = write(tmp_path, conv)
    err = refused(path)
    assert err.rule == "time-unit" and f"looks like {name}" in str(err)
    frame = load_candles(path, LoadOptions(time_unit=unit))
    assert frame[0].ts_ms == int(rows[0].split(",")[0])


def test_mixed_units_refused_at_the_odd_line(tmp_path: Path) -> None:
    rows = real_rows(10)
    ts, rest = rows[6].split(",", 1)
    rows[6] = f"{int(ts) // 1000},{rest}"
    err = refused(write(tmp_path, rows))
    assert (err.rule, err.line) == ("time-unit", 8)
    assert "mix units" in str(err)


def test_wrong_explicit_unit_refused(tmp_path: Path) -> None:
    err = refused(write(tmp_path, real_rows(5)), LoadOptions(time_unit="s"))
    assert err.rule == "time-unit" and "--time-unit s given" in str(err)


def test_unsorted_rows_are_sorted_and_counted(tmp_path: Path) -> None:
    rows = real_rows(20)
    shuffled = rows[10:] + rows[:10]
    frame = load_candles(write(tmp_path, shuffled))
    assert [c.ts_ms for c in frame] == [int(r.split(",")[0]) for r in rows]
    assert frame.report.unsorted_rows == 1


def test_identical_duplicates_dropped_and_counted(tmp_path: Path) -> None:
    rows = real_rows(20)
    frame = load_candles(write(tmp_path, [*rows[:5], rows[3], *rows[5:], rows[19]]))
    assert len(frame) == 20 and frame.report.identical_duplicates == 2
    assert frame.report.rows == 22


def test_conflicting_duplicate_refused_or_later_kept(tmp_path: Path) -> None:
    rows = real_rows(20)
    ts = rows[4].split(",")[0]
    forming = f"{ts},63100,63100,63100,63100,0.5"
    path = write(tmp_path, [*rows[:4], forming, *rows[4:]])
    err = refused(path)
    assert (err.rule, err.line) == ("conflicting-duplicate", 7)
    assert "line 6" in str(err)
    frame = load_candles(path, LoadOptions(duplicates="last"))
    kept = frame[4]
    assert kept.volume == Decimal(rows[4].split(",")[5])
    assert frame.report.conflicting_duplicates == 1


def test_off_grid_candle_refused(tmp_path: Path) -> None:
    rows = real_rows(10)
    ts, rest = rows[5].split(",", 1)
    rows[5] = f"{int(ts) + 30_000},{rest}"
    err = refused(write(tmp_path, rows))
    assert (err.rule, err.line) == ("spacing", 7)


def test_gaps_counted_with_the_longest(tmp_path: Path) -> None:
    rows = real_rows(30)
    kept = rows[:5] + rows[6:10] + rows[14:]  # one missing, then four missing
    frame = load_candles(write(tmp_path, kept), LoadOptions(timeframe="1m"))
    r = frame.report
    assert (r.gaps, r.missing_candles, r.longest_gap_ms) == (2, 5, 4 * 60_000)
    assert r.longest_gap_after_ms == int(rows[9].split(",")[0])
    assert r.to_dict()["longest_gap"] == "4m"


def test_timeframe_mismatch_refused_and_resampled(tmp_path: Path) -> None:
    rows = real_rows(30)
    path = write(tmp_path, rows)
    err = refused(path, LoadOptions(timeframe="5m"))
    assert err.rule == "timeframe-mismatch" and "--resample" in str(err)
    frame = load_candles(path, LoadOptions(timeframe="5m", resample=True))
    fields = [[Decimal(x) for x in r.split(",")[1:]] for r in rows]
    assert len(frame) == 6 and frame.report.resampled_from == "1m"
    for k, candle in enumerate(frame):
        part = fields[5 * k : 5 * k + 5]
        assert candle.ts_ms == int(rows[5 * k].split(",")[0])
        assert candle.open == part[0][0] and candle.close == part[-1][3]
        assert candle.high == max(p[1] for p in part) and candle.low == min(p[2] for p in part)
        assert candle.volume == sum((p[4] for p in part), Decimal(0))


def test_resample_drops_partial_edge_buckets(tmp_path: Path) -> None:
    rows = real_rows(30)[2:28]  # starts at :02, ends at :27
    frame = load_candles(write(tmp_path, rows), LoadOptions(timeframe="5m", resample=True))
    assert len(frame) == 4 and frame.report.partial_buckets_dropped == 2


def test_coarser_data_than_timeframe_is_refused(tmp_path: Path) -> None:
    rows = real_rows(30)[::5]
    err = refused(write(tmp_path, rows), LoadOptions(timeframe="1m", resample=True))
    assert err.rule == "timeframe-mismatch" and "cannot be built from coarser 5m" in str(err)


def test_empty_file_refused(tmp_path: Path) -> None:
    assert refused(write(tmp_path, [])).rule == "empty"


def test_parquet_same_rules_with_rows(tmp_path: Path) -> None:
    rows = real_rows(10)
    cols = list(zip(*(r.split(",") for r in rows), strict=True))
    table = pa.table({
        "timestamp_ms": pa.array([int(x) for x in cols[0]], pa.int64()),
        **{n: pa.array([float(x) for x in cols[i + 1]]) for i, n in
           enumerate(["open", "high", "low", "close", "volume"])},
    })
    good = tmp_path / "c.parquet"
    pq.write_table(table, good)
    assert [c.close for c in load_candles(good)] == [Decimal(x) for x in cols[4]]
    bad = table.set_column(2, "high", pa.array([float("nan")] * 10))
    pq.write_table(bad, tmp_path / "bad.parquet")
    err = refused(tmp_path / "bad.parquet")
    assert (err.rule, err.line) == ("not-finite", 1) and "(row 1)" in str(err)


def test_header_constant_is_the_documented_one() -> None:
    assert HEADER == "timestamp_ms,open,high,low,close,volume"


def test_quoted_header_accepted(tmp_path: Path) -> None:
    quoted = ",".join(f'"{h}"' for h in HEADER.split(","))
    assert len(load_candles(write(tmp_path, real_rows(5), header=quoted))) == 5
