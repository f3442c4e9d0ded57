"""The one candle loader: CSV (``timestamp_ms,open,high,low,close,volume``) or Parquet in,
validated ``CandleFrame`` out, or ``CandleDataError`` naming file, line and rule.

Reading is Arrow's (multi-threaded C++ parser); every rule is a vectorised check
(checks.py). In order: values (missing, NaN/inf, overflow, non-positive prices, high
below / low above open and close, negative volume), time unit (seconds, microseconds
or nanoseconds are refused unless ``time_unit`` converts them), sort, duplicates
(identical ones dropped and counted; conflicting ones refused unless
``duplicates="last"``), spacing against the expected timeframe (refused unless
``resample`` builds the coarser timeframe), then gaps are counted for the report.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from kubetrade.domain.models import Candle
from kubetrade.marketdata import checks, parquet
from kubetrade.marketdata.checks import COLUMNS, Where
from kubetrade.marketdata.errors import CandleDataError
from kubetrade.marketdata.frame import SCHEMA, CandleFrame, LoadReport
from kubetrade.marketdata.resample import resample as resample_table
from kubetrade.marketdata.timeframes import can_resample, describe_ms, timeframe_ms

CSV_HEADER = list(COLUMNS)
_TYPES = {name: SCHEMA.field(name).type for name in COLUMNS}
# the single-threaded reader puts "Row #N: " before the error (the threaded one does not)
_CONVERSION = re.compile(
    r"column #(\d+): (?:Row #\d+: )?CSV conversion error to \w+: invalid value '(.*)'")


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """How to read candles.

    ``timeframe``: the Strategy's timeframe (``"1m"``, ``"1h"``...); None accepts the
    file's own spacing. ``time_unit``: the unit of the file's times when it is not ms
    (``s``, ``us``, ``ns``). ``resample``: build ``timeframe`` candles from finer ones
    instead of refusing them. ``duplicates``: ``"refuse"`` conflicting rows for one
    time, or keep the ``"last"`` of them.
    """

    timeframe: str | None = None
    time_unit: str | None = None
    resample: bool = False
    duplicates: Literal["refuse", "last"] = "refuse"


def load_candles(path: str | Path, options: LoadOptions | None = None) -> CandleFrame:
    """Validated candles of a CSV or Parquet file (by suffix ``.parquet``/``.pq``).

    Raises ``CandleDataError`` (a ValueError) naming the file, line and rule; OSError
    when the file cannot be read."""
    p = Path(path)
    if p.suffix.lower() in (".parquet", ".pq"):
        raw, where = read_parquet(p), Where(str(p), "row", 1)
    else:
        raw, where = read_csv(p), Where(str(p), "line")
    return validate(raw, where, options or LoadOptions())


def read_csv(path: Path) -> pa.Table:
    """The CSV as a typed table (row i is line i + 2 of the file; header = 1)."""
    with path.open("rb") as fh:
        header = fh.readline().decode("utf-8", "replace").strip().lstrip("\ufeff")
    if [h.strip().strip('"') for h in header.split(",")] != CSV_HEADER:
        raise CandleDataError(str(path), 1, "header",
                              f"must be {','.join(CSV_HEADER)}, got {header!r}")
    try:
        table = _read_csv(path, _TYPES)
    except pa.ArrowInvalid as e:
        raise _locate(path, str(e)) from None
    return _without_trailing_blank_lines(table)


def _without_trailing_blank_lines(table: pa.Table) -> pa.Table:
    """``table`` without the rows of blank lines at the end of the file (an editor's or
    a ``cat``'s extra newline; pandas and Freqtrade skip them too). A blank line before
    a candle is still an error at its line: the file may have lost data there."""
    end = table.num_rows
    while end and all(table.column(c)[end - 1].as_py() is None for c in COLUMNS):
        end -= 1
    return table if end == table.num_rows else table.slice(0, end)


def _read_csv(path: Path, types: dict[str, pa.DataType]) -> pa.Table:
    # one thread: on 1M candles (54 MB) Arrow's thread pool costs ~25 MiB more peak RSS
    # and more CPU (0.28-0.40 s vs 0.30-0.48 s; 0.29-0.46 s wall vs 0.56-0.75 s on the
    # 2 shared cores of a busy node), the same table
    return pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(skip_rows=1, column_names=CSV_HEADER,
                                       use_threads=False),
        parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types=types, null_values=[""], strings_can_be_null=False,
            quoted_strings_can_be_null=False),
    )


def _locate(path: Path, message: str) -> CandleDataError:
    """The line of a value Arrow could not parse (its message names column and value
    only): re-read as text, find it. Runs only on the error path."""
    m = _CONVERSION.search(message)
    if m is None:
        with path.open("rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if lineno > 1 and raw.strip() and raw.count(b",") != len(COLUMNS) - 1:
                    return CandleDataError(
                        str(path), lineno, "columns",
                        f"expected {len(COLUMNS)} columns, got {raw.count(b',') + 1}")
        return CandleDataError(str(path), None, "unreadable", message)
    column, value = COLUMNS[int(m.group(1))], m.group(2)
    text = _read_csv(path, dict.fromkeys(COLUMNS, pa.string()))
    index = pc.index(text.column(column), value).as_py()
    line = int(index) + 2 if index is not None and index >= 0 else None
    kind = "an integer (ms since the epoch)" if column == "timestamp_ms" else "a number"
    return CandleDataError(str(path), line, "not-a-number",
                           f"{column} {value!r} is not {kind}")


def read_parquet(path: Path) -> pa.Table:
    """The Parquet table's six columns, typed (errors name rows from 1).
    Timestamp columns (Arrow timestamp types) are taken as ms since the epoch."""
    table = parquet.read_table(path)
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise CandleDataError(str(path), None, "columns",
                              f"missing {', '.join(missing)} (needs {', '.join(COLUMNS)})")
    ts = table.column("timestamp_ms")
    if pa.types.is_timestamp(ts.type):
        ts = pc.cast(pc.cast(ts, pa.timestamp("ms")), pa.int64())
    cols: dict[str, pa.ChunkedArray] = {"timestamp_ms": ts}
    for name in COLUMNS[1:]:
        try:
            cols[name] = pc.cast(table.column(name), pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise CandleDataError(str(path), None, "not-a-number", f"{name}: {e}") from None
    try:
        cols["timestamp_ms"] = pc.cast(cols["timestamp_ms"], pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise CandleDataError(str(path), None, "not-a-number", f"timestamp_ms: {e}") from None
    return pa.table(cols)


def frame_from_candles(candles: Sequence[Candle], source: str,
                       options: LoadOptions | None = None) -> CandleFrame:
    """Validate candles that came as objects (a downloaded page) by the same rules;
    ``line`` in errors is the 1-based position in ``candles``."""
    table = pa.table({
        "timestamp_ms": pa.array([c.ts_ms for c in candles], pa.int64()),
        "open": pa.array([float(c.open) for c in candles], pa.float64()),
        "high": pa.array([float(c.high) for c in candles], pa.float64()),
        "low": pa.array([float(c.low) for c in candles], pa.float64()),
        "close": pa.array([float(c.close) for c in candles], pa.float64()),
        "volume": pa.array([float(c.volume) for c in candles], pa.float64()),
    })
    return validate(table, Where(source, "row", 1), options or LoadOptions())


def validate(raw: pa.Table, where: Where, options: LoadOptions) -> CandleFrame:
    """Apply every rule to ``raw`` (the six columns); see the module doc."""
    if raw.num_rows == 0:
        raise CandleDataError(where.source, None, "empty", "no candles")
    checks.check_values(raw, where)
    table, unit = checks.normalise_time(raw, where, options.time_unit)
    table, unsorted = checks.sort_by_time(table, where)
    table, identical, conflicting = checks.drop_duplicates(
        table, where, keep_last=options.duplicates == "last")
    table, step, resampled_from, dropped = _fit_timeframe(table, where, options)
    gaps = checks.gaps(table.column("timestamp_ms"), step) if step else checks.Gaps()
    ts = table.column("timestamp_ms")
    report = LoadReport(
        source=where.source, rows=raw.num_rows, candles=table.num_rows,
        timeframe=describe_ms(step) if step else options.timeframe, time_unit=unit,
        unsorted_rows=unsorted, identical_duplicates=identical,
        conflicting_duplicates=conflicting, resampled_from=resampled_from,
        partial_buckets_dropped=dropped, gaps=gaps.count,
        missing_candles=gaps.missing_candles, longest_gap_ms=gaps.longest_ms,
        longest_gap_after_ms=gaps.longest_after_ms,
        first_ms=int(ts[0].as_py()) if len(ts) else None,
        last_ms=int(ts[-1].as_py()) if len(ts) else None,
    )
    return CandleFrame(table, report)


def _fit_timeframe(table: pa.Table, where: Where, options: LoadOptions
                   ) -> tuple[pa.Table, int | None, str | None, int]:
    """Check the spacing against the wanted timeframe; resample when asked.
    Returns (table, step ms, resampled-from name, partial buckets dropped)."""
    sp = checks.spacing(table)
    if options.timeframe is None:
        if sp.step_ms is not None:
            checks.check_grid(table, where, sp.step_ms)
        return table, sp.step_ms, None, 0
    want = timeframe_ms(options.timeframe)
    if sp.step_ms is None or sp.step_ms == want:
        if sp.step_ms is not None:
            checks.check_grid(table, where, want)
        return table, want, None, 0
    have = describe_ms(sp.step_ms)
    found = f"candles are {have} apart ({sp.at_step} of {sp.steps} gaps)"
    if options.resample and can_resample(sp.step_ms, want):
        checks.check_grid(table, where, sp.step_ms)
        out = resample_table(table, sp.step_ms, want)
        if out.table.num_rows == 0:
            raise CandleDataError(where.source, None, "timeframe-mismatch",
                                  f"{found}: not one whole {options.timeframe} candle in them")
        return out.table, want, have, out.partial_dropped
    if sp.step_ms < want and can_resample(sp.step_ms, want):
        hint = f"pass --resample to build {options.timeframe} candles from them, or use a " \
               f"{options.timeframe} file"
    elif sp.step_ms < want:
        hint = f"{options.timeframe} candles cannot be built from {have} ones"
    else:
        hint = f"{options.timeframe} candles cannot be built from coarser {have} ones"
    raise CandleDataError(where.source, None, "timeframe-mismatch",
                          f"{found} but the Strategy's timeframe is {options.timeframe}: {hint}")
