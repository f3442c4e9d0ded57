"""Coarser candles from finer ones with the standard OHLCV rules: first open, highest
high, lowest low, last close, summed volume, bucketed by the coarse candle's open time
(aligned as the exchange aligns it). Vectorised (Arrow group-by, in row order)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from kubetrade.marketdata.timeframes import bucket_offset_ms


@dataclass(frozen=True, slots=True)
class Resampled:
    """The coarse table and how many partial buckets at either end were dropped."""

    table: pa.Table
    partial_dropped: int


def _round8(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Floats rounded to 8 decimals through decimal128 (``pc.round`` leaves binary
    noise: 27.411630000000002)."""
    return pc.cast(pc.cast(values, pa.decimal128(38, 8), safe=False), pa.float64())


def resample(table: pa.Table, fine_ms: int, coarse_ms: int) -> Resampled:
    """Candles of ``coarse_ms`` from a sorted, unique table of ``fine_ms`` candles.

    A bucket at either end that lacks some of its fine candles is dropped (its open or
    close would not be the real one: the data starts or ends inside it); a bucket with
    a hole inside is kept (the hole is a gap the report counts).
    """
    ts = table.column("timestamp_ms")
    offset = bucket_offset_ms(coarse_ms)
    shifted = pc.subtract(ts, offset)
    bucket = pc.add(pc.multiply(pc.divide(shifted, coarse_ms), coarse_ms), offset)
    work = table.append_column("bucket", bucket)
    grouped = work.group_by("bucket", use_threads=False).aggregate([
        ("open", "first"), ("high", "max"), ("low", "min"), ("close", "last"),
        ("volume", "sum"), ("timestamp_ms", "count"),
    ])
    grouped = grouped.sort_by("bucket")
    out = pa.table({
        "timestamp_ms": grouped.column("bucket"),
        "open": grouped.column("open_first"),
        "high": grouped.column("high_max"),
        "low": grouped.column("low_min"),
        "close": grouped.column("close_last"),
        # a float sum carries error in the last digits (584.5145500000001): exchanges
        # report volume to at most 8 decimals
        "volume": _round8(grouped.column("volume_sum")),
    })
    full = coarse_ms // fine_ms
    counts = grouped.column("timestamp_ms_count")
    start, stop, dropped = 0, out.num_rows, 0
    if stop and counts[0].as_py() < full:
        start, dropped = 1, 1
    if stop > start and counts[stop - 1].as_py() < full:
        stop, dropped = stop - 1, dropped + 1
    return Resampled(out.slice(start, stop - start), dropped)
