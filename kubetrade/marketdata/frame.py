"""Validated candles held as columns, with a lazy view as domain ``Candle`` objects.

``CandleFrame`` keeps one Arrow table (``timestamp_ms`` int64 open times in ms, sorted
and unique; ``open``/``high``/``low``/``close``/``volume`` float64). It is also a
``Sequence[Candle]``: indexing or iterating builds ``Candle`` objects (Decimals) on
demand, a chunk at a time, so a replay of a million candles never holds a million
Decimal candles at once. Prices go through float64: a value with more than 15
significant digits keeps its first 15 (Binance sends at most 8 decimals and well under
15 digits), and each becomes the shortest decimal that reads back as the same float.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, overload

import pyarrow as pa
import pyarrow.compute as pc

from kubetrade.domain.models import Candle
from kubetrade.marketdata.checks import COLUMNS
from kubetrade.marketdata.timeframes import describe_ms, iso_ms

SCHEMA = pa.schema([
    ("timestamp_ms", pa.int64()), ("open", pa.float64()), ("high", pa.float64()),
    ("low", pa.float64()), ("close", pa.float64()), ("volume", pa.float64()),
])
_CHUNK = 65_536


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What loading found and did. Times in ms since the epoch; gaps at the timeframe.

    ``unsorted_rows``: rows that came before an earlier time (sorted); ``identical_
    duplicates``: repeated rows dropped; ``conflicting_duplicates``: different rows for
    one time resolved by keeping the later (only with ``duplicates="last"``);
    ``time_unit``: the unit the input was in (converted to ms when not ms);
    ``resampled_from``: the finer timeframe the candles were built from, if any.
    """

    source: str
    rows: int
    candles: int
    timeframe: str | None
    time_unit: str = "ms"
    unsorted_rows: int = 0
    identical_duplicates: int = 0
    conflicting_duplicates: int = 0
    resampled_from: str | None = None
    partial_buckets_dropped: int = 0
    gaps: int = 0
    missing_candles: int = 0
    longest_gap_ms: int = 0
    longest_gap_after_ms: int | None = None
    first_ms: int | None = None
    last_ms: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the validation report and the log)."""
        out = asdict(self)
        out["first"] = iso_ms(self.first_ms) if self.first_ms is not None else None
        out["last"] = iso_ms(self.last_ms) if self.last_ms is not None else None
        out["longest_gap"] = describe_ms(self.longest_gap_ms) if self.longest_gap_ms else None
        return out

    def summary(self) -> str:
        """One line for a terminal: candles, range, what was fixed, gaps."""
        parts = [f"{self.candles} candles"]
        if self.timeframe:
            parts.append(self.timeframe)
        if self.first_ms is not None and self.last_ms is not None:
            parts.append(f"{iso_ms(self.first_ms)} .. {iso_ms(self.last_ms)}")
        if self.resampled_from:
            parts.append(f"resampled from {self.resampled_from}")
        if self.time_unit != "ms":
            parts.append(f"times converted from {self.time_unit}")
        if self.unsorted_rows:
            parts.append(f"{self.unsorted_rows} rows out of order (sorted)")
        if self.identical_duplicates:
            parts.append(f"{self.identical_duplicates} identical duplicates dropped")
        if self.conflicting_duplicates:
            parts.append(f"{self.conflicting_duplicates} conflicting duplicates (kept later)")
        parts.append(f"gaps {self.gaps}" + (
            f" (longest {describe_ms(self.longest_gap_ms)} after "
            f"{iso_ms(self.longest_gap_after_ms)})"
            if self.gaps and self.longest_gap_after_ms is not None else ""))
        return ", ".join(parts)


def _decimals(column: pa.ChunkedArray | pa.Array) -> list[Decimal]:
    """Shortest round-trip decimal text of each float (Arrow's formatter), as Decimals."""
    return list(map(Decimal, pc.cast(column, pa.string()).to_pylist()))


class CandleFrame(Sequence[Candle]):
    """Sorted, unique, validated candles as columns plus a lazy ``Candle`` sequence."""

    __slots__ = ("report", "table")

    def __init__(self, table: pa.Table, report: LoadReport) -> None:
        # one chunk per column: numpy views of a column (the replay's) are then free,
        # where a column of many chunks (one per CSV block) is copied at every view
        self.table = table.select(list(COLUMNS)).cast(SCHEMA).combine_chunks()
        self.report = report

    # ---- columns ----------------------------------------------------------------
    def column(self, name: str) -> pa.ChunkedArray:
        """One column (``timestamp_ms``, ``open``, ..., ``volume``) as an Arrow array."""
        return self.table.column(name)

    @property
    def first_ms(self) -> int | None:
        return int(self.table.column("timestamp_ms")[0].as_py()) if len(self) else None

    @property
    def last_ms(self) -> int | None:
        return int(self.table.column("timestamp_ms")[-1].as_py()) if len(self) else None

    # ---- Sequence[Candle] ----------------------------------------------------------
    def __len__(self) -> int:
        return int(self.table.num_rows)

    @overload
    def __getitem__(self, index: int) -> Candle: ...

    @overload
    def __getitem__(self, index: slice) -> list[Candle]: ...

    def __getitem__(self, index: int | slice) -> Candle | list[Candle]:
        n = len(self)
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return list(self._candles(self.table.slice(start, max(0, stop - start))))
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"candle index {index} out of range ({n} candles)")
        return next(self._candles(self.table.slice(index, 1)))

    def __iter__(self) -> Iterator[Candle]:
        for start in range(0, len(self), _CHUNK):
            yield from self._candles(self.table.slice(start, _CHUNK))

    @staticmethod
    def _candles(part: pa.Table) -> Iterator[Candle]:
        ts = part.column("timestamp_ms").to_pylist()
        cols = [_decimals(part.column(n)) for n in ("open", "high", "low", "close", "volume")]
        for t, o, h, low, c, v in zip(ts, *cols, strict=True):
            yield Candle(t, o, h, low, c, v)

    def to_list(self) -> list[Candle]:
        """Every candle at once (small inputs; a replay should iterate instead)."""
        return list(self)
