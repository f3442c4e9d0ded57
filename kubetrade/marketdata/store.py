"""The candle store: one Parquet file per exchange/symbol/timeframe under a data
directory (``<datadir>/<exchange>/<BASE-QUOTE>/<timeframe>.parquet``, default
``data/candles``).

Writes are atomic (a temp file in the same directory, fsync, then rename) and
serialised per file by an advisory lock, so a reader never sees half a file and two
writers on one node never lose each other's candles. Appending is idempotent by open
time: candles already stored are replaced by the new copy of the same time (the newest
download or recording wins), so appending the same candles twice changes nothing.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from kubetrade.marketdata import checks, parquet
from kubetrade.marketdata.atomic import replace_atomically
from kubetrade.marketdata.checks import COLUMNS, Where
from kubetrade.marketdata.frame import SCHEMA, CandleFrame
from kubetrade.marketdata.loader import LoadOptions, validate
from kubetrade.marketdata.timeframes import can_resample, timeframe_ms

DEFAULT_DATADIR = Path("data/candles")


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """One stored series."""

    exchange: str
    symbol: str  # BTC/USDT
    timeframe: str  # 1m

    @property
    def label(self) -> str:
        return f"{self.exchange} {self.symbol} {self.timeframe}"


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """What ``kubetrade data list`` prints for one series (times in ms)."""

    key: SeriesKey
    path: Path
    count: int
    first_ms: int | None
    last_ms: int | None
    gaps: int
    missing_candles: int


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Candles written by one append: ``added`` new times, ``replaced`` times whose
    stored candle differed, ``total`` in the file afterwards."""

    added: int
    replaced: int
    total: int


class CandleStore:
    """Parquet series under ``root``; see the module docstring."""

    def __init__(self, root: str | Path = DEFAULT_DATADIR) -> None:
        self.root = Path(root)

    def path(self, key: SeriesKey) -> Path:
        base, _, quote = key.symbol.partition("/")
        if not base or not quote or "/" in quote or base in (".", ".."):
            raise ValueError(f"symbol must be BASE/QUOTE, got {key.symbol!r}")
        timeframe_ms(key.timeframe)
        return self.root / key.exchange / f"{base}-{quote}" / f"{key.timeframe}.parquet"

    def keys(self) -> list[SeriesKey]:
        """Every stored series, sorted."""
        out = []
        for p in sorted(self.root.glob("*/*/*.parquet")):
            exchange, pair = p.parent.parent.name, p.parent.name
            out.append(SeriesKey(exchange, pair.replace("-", "/", 1), p.stem))
        return out

    def read_table(self, key: SeriesKey) -> pa.Table | None:
        """The stored columns (schema SCHEMA), or None when nothing is stored."""
        p = self.path(key)
        if not p.is_file():
            return None
        return parquet.read_table(p).cast(SCHEMA)

    def last_ms(self, key: SeriesKey) -> int | None:
        """Open time of the newest stored candle (resume point of a download)."""
        p = self.path(key)
        if not p.is_file():
            return None
        ts = parquet.read_table(p, columns=["timestamp_ms"]).column("timestamp_ms")
        return int(pc.max(ts).as_py()) if len(ts) else None

    def load(self, key: SeriesKey, since_ms: int | None = None,
             until_ms: int | None = None, *, as_timeframe: str | None = None) -> CandleFrame:
        """Stored candles with open time in [since, until], validated by the loader's
        rules (a store file edited by hand is refused like any other file);
        ``as_timeframe``: resampled to that coarser timeframe."""
        table = self.read_table(key)
        where = Where(f"{self.path(key)}", "row", 1)
        if table is None:
            raise FileNotFoundError(
                f"no stored candles for {key.label} under {self.root} "
                "(kubetrade data download fetches them)")
        ts = table.column("timestamp_ms")
        mask = pc.and_(pc.greater_equal(ts, since_ms if since_ms is not None else 0),
                       pc.less_equal(ts, until_ms if until_ms is not None else 2**62))
        part = table.filter(mask)
        if part.num_rows == 0:
            raise FileNotFoundError(f"no stored {key.label} candles in the range asked "
                                    f"(stored: {self.info(key).first_ms}..{self.last_ms(key)})")
        options = LoadOptions(timeframe=as_timeframe or key.timeframe,
                              resample=as_timeframe not in (None, key.timeframe))
        return validate(part, where, options)

    def finer_source(self, key: SeriesKey) -> SeriesKey | None:
        """The finest stored series of the same exchange and symbol that ``key``'s
        timeframe can be resampled from (None when there is none)."""
        want = timeframe_ms(key.timeframe)
        finer = [k for k in self.keys() if (k.exchange, k.symbol) == (key.exchange, key.symbol)
                 and can_resample(timeframe_ms(k.timeframe), want)]
        return min(finer, key=lambda k: timeframe_ms(k.timeframe), default=None)

    def append(self, key: SeriesKey, frame: CandleFrame) -> AppendResult:
        """Merge validated candles into the series, atomically; see the module doc."""
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        new = frame.table
        with _locked(p):
            old = self.read_table(key)
            if old is None or old.num_rows == 0:
                merged, added, replaced = new, new.num_rows, 0
            else:
                merged, added, replaced = _merge(old, new)
            if added or replaced or not p.is_file():
                _write_atomic(merged, p)
        return AppendResult(added, replaced, merged.num_rows)

    def info(self, key: SeriesKey) -> SeriesInfo:
        """Count, first, last and gaps of one series (reads the time column only)."""
        p = self.path(key)
        ts = parquet.read_table(p, columns=["timestamp_ms"]).column("timestamp_ms")
        g = checks.gaps(ts, timeframe_ms(key.timeframe))
        first = int(ts[0].as_py()) if len(ts) else None
        last = int(ts[-1].as_py()) if len(ts) else None
        return SeriesInfo(key, p, len(ts), first, last, g.count, g.missing_candles)

    def export_csv(self, key: SeriesKey, out: Path | None = None) -> bytes | None:
        """The series as CSV (``timestamp_ms,open,high,low,close,volume``) into ``out``,
        or returned as bytes when ``out`` is None."""
        table = self.read_table(key)
        if table is None:
            raise FileNotFoundError(f"no stored candles for {key.label} under {self.root}")
        sink = pa.BufferOutputStream()
        sink.write((",".join(COLUMNS) + "\n").encode())
        pacsv.write_csv(table, sink, write_options=pacsv.WriteOptions(
            include_header=False, quoting_style="none"))
        data = sink.getvalue().to_pybytes()
        if out is None:
            return bytes(data)
        out.write_bytes(data)
        return None


def _merge(old: pa.Table, new: pa.Table) -> tuple[pa.Table, int, int]:
    """Old and new candles by open time, new winning; (table, added, replaced)."""
    new_ts = new.column("timestamp_ms")
    overlap = pc.is_in(old.column("timestamp_ms"), value_set=new_ts.combine_chunks())
    kept_old = old.filter(pc.invert(overlap))
    replaced_old = old.filter(overlap)
    added = new.num_rows - replaced_old.num_rows
    changed = 0
    if replaced_old.num_rows:
        same = new.filter(pc.is_in(new_ts, value_set=replaced_old.column(
            "timestamp_ms").combine_chunks())).sort_by("timestamp_ms")
        replaced_old = replaced_old.sort_by("timestamp_ms")
        differs = pc.not_equal(same.column("open"), replaced_old.column("open"))
        for name in ("high", "low", "close", "volume"):
            differs = pc.or_(differs, pc.not_equal(same.column(name), replaced_old.column(name)))
        changed = int(pc.sum(pc.cast(differs, pa.int64())).as_py() or 0)
    merged = pa.concat_tables([kept_old, new]).sort_by("timestamp_ms")
    return merged, added, changed


def _write_atomic(table: pa.Table, path: Path) -> None:
    replace_atomically(path, lambda tmp: parquet.write_table(table.cast(SCHEMA), tmp,
                                                         compression="zstd"))


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An advisory lock beside ``path`` (one writer per series on this machine)."""
    lock = path.with_name(f".{path.name}.lock")
    with open(lock, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def stored_paths(datadir: str | Path, symbols: list[str], timeframe: str,
                 exchange: str = "binance") -> dict[str, Path]:
    """The store's Parquet file of each symbol at ``timeframe`` (for a replay);
    ValueError names the first symbol with nothing stored."""
    store = CandleStore(datadir)
    out: dict[str, Path] = {}
    for symbol in symbols:
        path = store.path(SeriesKey(exchange, symbol, timeframe))
        if not path.is_file():
            raise ValueError(
                f"replay:store: no {symbol} {timeframe} candles under {store.root} "
                f"(kubetrade data download --symbols {symbol} --timeframes {timeframe} "
                "--since ...)")
        out[symbol] = path
    return out
